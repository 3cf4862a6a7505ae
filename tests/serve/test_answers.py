"""The real shipped QA model behind the server: answers grouped into one model call equal the answers of
an independent answerer called one question at a time; known answers; the document mode against
bertforge.retrieval called directly."""
from __future__ import annotations

import pytest

from bertforge.serve import Engine, ServeConfig, create_app

from .helpers import DEMO_QUESTIONS, EXPECTED, PAIRS, demo_passage, post_all, same_answers


def test_batched_answers_equal_one_by_one_answers(real_qa, reference_qa):
    demo = demo_passage()
    pairs = PAIRS + [(q, demo) for q in DEMO_QUESTIONS]  # paragraphs of 250-1000 characters
    top_ks = [1 + i % 3 for i in range(len(pairs))]  # mixed top_k in one group
    app = create_app(Engine(qa=real_qa), ServeConfig(max_wait_ms=500))
    rs = post_all(app, "/api/qa", [{"question": q, "context": c, "top_k": k} for (q, c), k in zip(pairs, top_ks)])
    stats = app.state.batcher.stats
    assert stats.jobs == len(pairs) and stats.largest_batch == len(pairs)  # they were one group
    for r, (q, c), k in zip(rs, pairs, top_ks):
        assert r.status_code == 200, r.text
        got = r.json()["answers"]
        assert same_answers(got, reference_qa.answer(q, c, top_k=k)), (q, got)
        if q in EXPECTED:
            assert got[0]["text"] == EXPECTED[q]


def retrieval_or_skip():
    try:
        import bertforge.retrieval as retrieval
    except ImportError:
        pytest.skip("bertforge.retrieval not available")
    return retrieval


def test_docs_mode_answers_with_file_and_line_as_ask_docs_does(real_qa, tiny_models, tmp_path):
    retrieval = retrieval_or_skip()
    from fastapi.testclient import TestClient

    from bertforge.serve import load_docs

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "python.md").write_text("# Languages\n\nSome notes.\n\n" + PAIRS[-1][1] + "\n", encoding="utf-8")
    (folder / "curie.txt").write_text(PAIRS[3][1] + "\n", encoding="utf-8")
    # a random tiny encoder is enough: with two short files every passage is read anyway
    retrieval.DocumentIndex.build(folder, tmp_path / "index", model=tiny_models["encoder"])
    docs = load_docs(tmp_path / "index")
    question = "Who created Python?"
    with TestClient(create_app(Engine(qa=real_qa, docs=docs))) as c:
        info = c.get("/api/info").json()
        r = c.post("/api/qa", json={"question": question, "top_k": 2, "top_passages": 10})
    assert info["features"]["docs"] is True
    assert r.status_code == 200, r.text
    body = r.json()
    want = retrieval.ask_docs(real_qa, docs.index, question, top_k=2, top_passages=10)
    assert body["source"] == "docs"
    assert [(a["text"], a["file"], a["line"], a["start"]) for a in body["answers"]] == \
        [(a.text, str(a.file), a.line, a.start) for a in want]
    best = body["answers"][0]
    text = (folder / best["file"]).read_text(encoding="utf-8")
    assert best["text"] == "Guido van Rossum" and best["file"] == "python.md"
    assert text[best["start"]:best["end"]] == best["text"]
    assert best["line"] == text[:best["start"]].count("\n") + 1
    passage = best["passage"]
    assert passage["text"][best["start"] - passage["start"]:best["end"] - passage["start"]] == best["text"]


def test_docs_flag_without_an_index_is_one_clear_line(tiny_models, tmp_path, capsys):
    from bertforge.cli.main import main

    code = main(["serve", "--model", str(tiny_models["qa"]), "--no-embed", "--docs", str(tmp_path / "missing"),
                 "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("bertforge serve: error:") and "missing" in err
