"""The QA pipeline end to end on small models: logits parity with HF, long contexts, bad input, the CLI."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from bertforge.data.squad import QAWindows  # noqa: E402
from bertforge.models.bert.config import BertConfig  # noqa: E402
from bertforge.models.bert.heads import BertForQuestionAnswering  # noqa: E402
from bertforge.models.bert.modeling import BertModel  # noqa: E402
from bertforge.tasks.qa.answerer import QuestionAnswerer, sentence_around  # noqa: E402


@pytest.fixture(scope="module")
def tiny_qa_dir(tmp_path_factory, minilm_dir):
    """A randomly initialised small QA model with the real uncased vocab (answers are arbitrary,
    but every code path of the pipeline runs)."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-qa")
    model = BertForQuestionAnswering(BertConfig.preset("tiny", max_position_embeddings=512))
    model.save_pretrained(d)
    shutil.copy(minilm_dir / "vocab.txt", d / "vocab.txt")
    return d


def test_qa_logits_equal_hf(minilm_dir):
    torch.manual_seed(0)
    ours = BertForQuestionAnswering.from_pretrained(minilm_dir).eval()
    assert sorted(ours.load_report.initialized) == ["qa_outputs.bias", "qa_outputs.weight"]
    hf = transformers.BertForQuestionAnswering.from_pretrained(str(minilm_dir)).eval()
    hf.qa_outputs.load_state_dict(ours.qa_outputs.state_dict())
    ids = torch.randint(1000, 29000, (3, 40))
    am = torch.ones_like(ids)
    am[2, 25:] = 0
    tt = torch.zeros_like(ids)
    tt[:, 12:] = 1
    starts, ends = torch.tensor([3, 39, 0]), torch.tensor([5, 39, 60])  # 60: past the end -> ignored
    with torch.no_grad():
        a = ours(ids, am, tt, start_positions=starts, end_positions=ends)
        b = hf(input_ids=ids, attention_mask=am, token_type_ids=tt, start_positions=starts, end_positions=ends)
    real = am.bool()
    assert (a.logits[0][real] - b.start_logits[real]).abs().max() <= 1e-5
    assert (a.logits[1][real] - b.end_logits[real]).abs().max() <= 1e-5
    # Our loss leaves padding out of the softmax: recompute it from HF's logits over real tokens only.
    ce = torch.nn.functional.cross_entropy
    pad = torch.finfo(torch.float32).min
    s_ref, e_ref = b.start_logits.masked_fill(~real, pad), b.end_logits.masked_fill(~real, pad)
    ref = (ce(s_ref, starts.clamp(0, 40), ignore_index=40) + ce(e_ref, ends.clamp(0, 40), ignore_index=40)) / 2
    assert abs(a.loss.item() - ref.item()) <= 1e-5
    with torch.no_grad():  # without padding, the losses are HF's exactly
        a2 = ours(ids[:2], am[:2], tt[:2], start_positions=starts[:2], end_positions=ends[:2])
        b2 = hf(input_ids=ids[:2], attention_mask=am[:2], token_type_ids=tt[:2], start_positions=starts[:2],
                end_positions=ends[:2])
    assert abs(a2.loss.item() - b2.loss.item()) <= 1e-5


def test_qa_checkpoint_loads_in_hf(tiny_qa_dir):
    hf = transformers.BertForQuestionAnswering.from_pretrained(str(tiny_qa_dir)).eval()
    ours = BertForQuestionAnswering.from_pretrained(tiny_qa_dir)
    ids = torch.randint(1000, 29000, (2, 20))
    with torch.no_grad():
        assert torch.allclose(ours(ids).logits[0], hf(input_ids=ids).start_logits, atol=1e-6)


def test_answers_are_slices_of_the_context_at_any_length(tiny_qa_dir):
    qa = QuestionAnswerer(tiny_qa_dir, batch_size=4, windows=QAWindows(64, 16, 16))
    context = " ".join(f"Sentence number {i} talks about café and 東京 and  spaces." for i in range(60))
    answers = qa.answer("What does sentence 7 talk about?", context, top_k=3)
    assert 1 <= len(answers) <= 3
    for a in answers:
        assert context[a.start:a.end] == a.text and a.text
        assert 0 <= a.probability <= 1 and "**" + a.text + "**" in a.sentence
    assert answers == sorted(answers, key=lambda a: -a.score)
    # several questions at once give the same answers as one at a time
    many = qa.answer_many(["What does sentence 7 talk about?", "Which city?"], context, top_k=3)
    assert [(a.start, a.end) for a in many[0]] == [(a.start, a.end) for a in answers]


def test_bad_input_is_clear(tiny_qa_dir, minilm_dir, tmp_path):
    qa = QuestionAnswerer(tiny_qa_dir)
    with pytest.raises(ValueError, match="question is empty"):
        qa.answer("  ", "Some context.")
    with pytest.raises(ValueError, match="context is empty"):
        qa.answer("Why?", "")
    with pytest.raises(TypeError):
        qa.answer(None, "context")
    with pytest.raises(ValueError, match="top_k"):
        qa.answer("Why?", "Because.", top_k=0)
    long_question = "why " * 200  # over max_query_length: truncated, still answered
    assert qa.answer(long_question, "Because it rained all day.")
    # a checkpoint without a QA head
    BertModel.from_pretrained(minilm_dir).save_pretrained(tmp_path / "base")
    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "base" / "vocab.txt")
    with pytest.raises(ValueError, match="no question-answering head"):
        QuestionAnswerer(tmp_path / "base")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        QuestionAnswerer(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="precision"):
        QuestionAnswerer(tiny_qa_dir, precision="fp8")


def test_sentence_around_marks_the_answer():
    ctx = "First sentence. The answer is here today! Last one."
    s = ctx.index("here")
    assert sentence_around(ctx, s, s + 4) == "The answer is **here** today!"


def test_cli_qa_json(tiny_qa_dir, capsys):
    from bertforge.cli.main import main

    rc = main(["qa", "Where?", "Who?", "--context", "Alice lives in Paris.", "--model", str(tiny_qa_dir),
               "--json", "--top-k", "2"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["question"] for x in lines] == ["Where?", "Who?"]
    for x in lines:
        for a in x["answers"]:
            assert "Alice lives in Paris."[a["start"]:a["end"]] == a["text"]
    assert main(["qa", "Where?", "--context", "", "--model", str(tiny_qa_dir)]) == 2  # clear error, no traceback


def test_no_answer_follows_the_null_threshold_rule(tiny_qa_dir):
    """The answerer says "no answer" exactly when null_odds > threshold (D6), computed independently here
    from decode_spans; always_answer keeps the span; no threshold: always answers (v1 behaviour)."""
    from bertforge.data.squad import SquadExample

    context = "The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall."
    questions = ["Where is the tower?", "When was it finished?", "How tall is it?", "Who designed it?"]
    plain = QuestionAnswerer(tiny_qa_dir)
    assert plain.null_threshold is None and all(plain.answer_many(questions, context))
    probe = QuestionAnswerer(tiny_qa_dir, null_threshold=0.0)
    examples = [SquadExample(str(i), q, context) for i, q in enumerate(questions)]
    odds = sorted(probe.predict(examples, version_2_with_negative=True).null_odds.values())
    middle = (odds[1] + odds[2]) / 2  # a threshold with two questions on each side
    qa = QuestionAnswerer(tiny_qa_dir, null_threshold=middle)
    decoded = qa.predict(examples, version_2_with_negative=True, null_threshold=middle)
    results = qa.ask_many(questions, context)
    for ex, r in zip(examples, results):
        assert (r.answers == []) == (decoded.null_odds[ex.qas_id] > middle)
        # sigmoid(null_odds - threshold): above 0.5 exactly when the answer is withheld
        assert r.no_answer_probability == pytest.approx(1 / (1 + math.exp(middle - decoded.null_odds[ex.qas_id])))
        assert (r.no_answer_probability > 0.5) == (r.answers == [])
    assert sum(not r.answers for r in results) == 2
    forced = QuestionAnswerer(tiny_qa_dir, null_threshold=middle, always_answer=True).answer_many(questions, context)
    assert all(forced)


def test_model_threshold_in_config_is_used(tiny_qa_dir, tmp_path, capsys):
    """A model folder whose config.json carries null_threshold says "no answer" by itself (CLI and JSON)."""
    from bertforge.cli.main import main as cli

    d = tmp_path / "qa"
    shutil.copytree(tiny_qa_dir, d)
    config = json.loads((d / "config.json").read_text())
    config["null_threshold"] = -1e9  # the null answer always wins
    (d / "config.json").write_text(json.dumps(config))
    assert QuestionAnswerer(d).answer("Where?", "In Paris.") == []
    assert cli(["qa", "Where?", "--context", "In Paris.", "--model", str(d), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answers"] == [] and 0 <= out["no_answer_probability"] <= 1
    assert cli(["qa", "Where?", "--context", "In Paris.", "--model", str(d)]) == 0
    assert "does not contain an answer" in capsys.readouterr().out
    assert cli(["qa", "Where?", "--context", "In Paris.", "--model", str(d), "--always-answer", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answers"]
