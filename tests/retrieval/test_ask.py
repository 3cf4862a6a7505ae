"""ask_docs: the best span across passages with its file and line, empty readers, duplicates from
overlapping passages, the score floor, and the CLI (`bertforge index`, `bertforge qa --docs`)."""
from __future__ import annotations

import json
import math

import pytest

from bertforge.retrieval import NO_ANSWER, ChunkConfig, DocumentIndex, Passage, ask_docs, ask_docs_many
from bertforge.retrieval.ask import _locate
from bertforge.tasks.qa.answerer import Answer

from .conftest import write_docs

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeReader:
    """A reader that finds given words: every occurrence of a word in `scores` is a span with that score;
    a passage without any gives [] (what a reader with a null score returns for 'no answer here')."""

    def __init__(self, scores: dict[str, float]):
        self.scores, self.calls = scores, []

    def answer_many(self, questions, contexts, top_k=1):
        self.calls.append(len(contexts))
        out = []
        for context in contexts:
            found = []
            for word, score in self.scores.items():
                at = context.find(word)
                while at >= 0:
                    found.append(Answer(text=word, probability=0.0, start=at, end=at + len(word), score=score,
                                        sentence=context))
                    at = context.find(word, at + 1)
            out.append(sorted(found, key=lambda a: -a.score)[:top_k])
        return out


@pytest.fixture(scope="module")
def index(tmp_path_factory, encoder):
    folder = write_docs(tmp_path_factory.mktemp("docs"))
    return DocumentIndex.build(folder, tmp_path_factory.mktemp("idx"), encoder=encoder, warn=lambda line: None)


def test_empty_readers_mean_no_answer(index):
    reader = FakeReader({})
    assert ask_docs(reader, index, "What is the boiling point of water?") == []
    assert reader.calls == [4]  # all passages (k=5 > 4) were read, in one batch


def test_spans_compete_across_passages_by_score(index):
    base = {"Bern": 2.0, "Zurich": 5.0, "Oslo": 1.0}
    reader = FakeReader(base)  # [] for the passages without these words
    answers = ask_docs(reader, index, "Which city?", top_k=10, top_passages=4, min_score=None)
    # expected, computed independently: reader score - 3 ln(rank of the passage in the search results)
    rank = {p.file: r for r, p in enumerate(index.search("Which city?", 4), start=1)}
    bern = (index.folder / "travel/bern.txt").read_text()
    expected = sorted([(base[w] - 3 * math.log(rank[f]), w, f, at) for w, f, at in
                       [("Zurich", "lab.md", (index.folder / "lab.md").read_text().index("Zurich")),
                        ("Bern", "travel/bern.txt", 29), ("Bern", "travel/bern.txt", 35),
                        ("Oslo", "pets.html", (index.folder / "pets.html").read_text().index("Oslo"))]],
                      key=lambda e: -e[0])
    assert [(a.text, a.file, a.start) for a in answers] == [(w, f, at) for _, w, f, at in expected]
    assert [a.score for a in answers] == pytest.approx([e[0] for e in expected])
    z = [e[0] for e in expected]  # the softmax is over every candidate span of every passage read
    assert [a.probability for a in answers] == pytest.approx([math.exp(v) / sum(map(math.exp, z)) for v in z])
    assert bern[29:33] == bern[35:39] == "Bern"
    assert {(a.start, a.line) for a in answers if a.file == "travel/bern.txt"} == {(29, 1), (35, 2)}
    zurich = next(a for a in answers if a.text == "Zurich")
    assert zurich.location == "lab.md:3" and zurich.passage.file == "lab.md"
    d = zurich.to_dict()
    assert {"text", "probability", "file", "line", "sentence", "start", "end", "passage"} <= set(d)
    best = answers[0].score
    assert ask_docs(reader, index, "Which city?", top_passages=4, min_score=best + 0.1) == []  # below the floor
    assert [a.text for a in ask_docs(reader, index, "Which city?", top_passages=4, min_score=best - 0.1)] == \
        [answers[0].text]


def test_default_floor_refuses_low_scores(index):
    assert ask_docs(FakeReader({"Zurich": 2.9}), index, "Where was the Forge Lab founded?", top_passages=1) == []
    assert [a.text for a in ask_docs(FakeReader({"Zurich": 3.1}), index, "Where was the Forge Lab founded?",
                                     top_passages=1)] == ["Zurich"]


def test_reader_with_its_own_null_threshold_gets_no_floor(index):
    reader = FakeReader({"Zurich": 2.9})
    reader.null_threshold = 0.0  # a SQuAD 2.0 model: it returns [] itself where it finds no answer
    assert [a.text for a in ask_docs(reader, index, "Where was the Forge Lab founded?", top_passages=1)] == \
        ["Zurich"]
    reader.null_threshold, reader.always_answer = None, True  # `qa --always-answer`
    assert [a.text for a in ask_docs(reader, index, "Where was the Forge Lab founded?", top_passages=1)] == \
        ["Zurich"]


def test_overlapping_passages_give_one_answer(tmp_path, encoder):
    text = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five."
    folder = write_docs(tmp_path / "docs", {"greek.txt": text})
    index = DocumentIndex.build(folder, tmp_path / "idx", encoder=encoder, chunking=ChunkConfig(6, 4))
    assert len(index) >= 2 and sum("Gamma" in p.text for p in index.passages) >= 2  # read twice ...
    answers = ask_docs(FakeReader({"Gamma": 3.0}), index, "Which letter?", top_k=5, min_score=None)
    assert [(a.text, a.start) for a in answers] == [("Gamma", text.index("Gamma"))]  # ... answered once


def test_locate_in_pages():
    p = Passage(text="end of p2\nline two\fp3 first\np3 second", file="x.pdf", start=100, end=140, line=7, page=2)
    assert _locate(p, 0) == (7, 2)
    assert _locate(p, p.text.index("line two")) == (8, 2)
    assert _locate(p, p.text.index("p3 first")) == (1, 3)
    assert _locate(p, p.text.index("p3 second")) == (2, 3)


def test_real_reader_answers_with_source(index, answerer):
    results = ask_docs_many(answerer, index, ["Who founded the Forge Lab?", "What is the capital of Switzerland?",
                                              "When did the second building open?"])
    assert [(r[0].text, r[0].file, r[0].line) for r in results] == [
        ("Ada Miller", "lab.md", 3), ("Bern", "travel/bern.txt", 2), ("2003", "lab.md", 6)]
    for r in results:
        assert (index.folder / r[0].file).read_text()[r[0].start:r[0].end] == r[0].text
        assert f"**{r[0].text}**" in r[0].sentence


def test_cli_index_and_qa_docs(tmp_path, capsys, answerer, minilm_dir):
    from bertforge.cli.main import main

    folder = write_docs(tmp_path / "docs")
    assert main(["index", str(folder), "--out", str(tmp_path / "idx"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 files, 4 passages (4 embedded); 4 added" in out
    assert main(["qa", "Who founded the Forge Lab?", "--docs", str(tmp_path / "idx"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["question"] == "Who founded the Forge Lab?"
    assert (line["answers"][0]["text"], line["answers"][0]["file"], line["answers"][0]["line"]) == ("Ada Miller",
                                                                                                 "lab.md", 3)
    # a folder: indexed at its default place, then answered (plain text)
    assert main(["qa", "What is the capital of Switzerland?", "--docs", str(folder), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "'Bern'" in captured.out and "travel/bern.txt:2" in captured.out
    assert (folder / ".bertforge-index" / "index.json").exists()
    # the folder changed: the index given as is warns, the folder refreshes
    (folder / "lab.md").write_text("The Forge Lab moved to Geneva in 2020.")
    assert main(["qa", "Where did the lab move?", "--docs", str(tmp_path / "idx"), "--quiet"]) == 0
    assert "1 file(s) of" in capsys.readouterr().err
    assert main(["qa", "Where did the lab move?", "--docs", str(folder), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "(1 embedded); 1 changed" in captured.err and "'Geneva'" in captured.out
    # errors are one line, exit status 2
    assert main(["qa", "Anything?", "--docs", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == (f"bertforge qa: error: --docs {tmp_path / 'nowhere'}: "
                                               "no such folder or index")
    (tmp_path / "empty").mkdir()
    assert main(["index", str(tmp_path / "empty")]) == 2
    assert "no documents to index" in capsys.readouterr().err


def test_cli_prints_no_answer(tmp_path, capsys, monkeypatch, encoder):
    from bertforge.cli import index as cli_index
    from bertforge.cli.main import main

    folder = write_docs(tmp_path / "docs")
    DocumentIndex.build(folder, tmp_path / "idx", encoder=encoder)
    monkeypatch.setattr("bertforge.cli.qa._answerer", lambda args: FakeReader({}))
    assert main(["qa", "What is the boiling point of water?", "--docs", str(tmp_path / "idx")]) == 0
    assert capsys.readouterr().out.splitlines() == ["Q: What is the boiling point of water?", f"   ({NO_ANSWER})"]
    assert main(["qa", "What is the boiling point of water?", "--docs", str(tmp_path / "idx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"question": "What is the boiling point of water?", "answers": []}
    assert cli_index.answer_from_docs  # the qa command's --docs branch lives in cli/index.py
