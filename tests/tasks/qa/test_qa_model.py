"""The shipped QA model (bertforge/assets/qa-minilm): its card's scores are real, it loads in HF, it has a
calibrated null threshold, and bf16 gives the same answers."""
from __future__ import annotations

import json

import pytest

from bertforge.tasks.qa.answerer import DEFAULT_MODEL, NULL_THRESHOLD_KEY
from tests.helpers import require_data

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").exists(),
                                reason="the shipped QA model is not in this checkout")


def _scores() -> dict:
    return json.loads((DEFAULT_MODEL / "scores.json").read_text())


def test_card_documents_data_command_seed_and_every_score():
    card = (DEFAULT_MODEL / "README.md").read_text(encoding="utf-8")
    scores = _scores()
    for needed in ("SQuAD v1.1 train", "held-out", "COVID-QA", "**Seed**", "epochs", "recipes/qa_squad.py train",
                   "recipes/qa_squad.py finish", "SQuAD v2.0 dev", "null_threshold", "h of training"):
        assert needed in card, needed
    for name in ("squad_dev", "squad_dev_subset", "xquad_en", "covid_dev"):
        assert f"| {scores[name]['f1']:.2f} |" in card, name
    assert f"F1 {scores['squad_v2_dev']['f1']:.2f}" in card
    assert scores["squad_dev"]["questions"] == 10570 and scores["xquad_en"]["questions"] == 1190


def test_config_carries_the_calibrated_threshold_of_the_card():
    config = json.loads((DEFAULT_MODEL / "config.json").read_text())
    assert config[NULL_THRESHOLD_KEY] == pytest.approx(_scores()["null_threshold"])


def test_loads_in_hf_with_a_trained_head():
    import transformers

    model, info = transformers.BertForQuestionAnswering.from_pretrained(str(DEFAULT_MODEL), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


@pytest.mark.slow
@pytest.mark.parametrize("name,data", [("xquad_en", ("xquad", "xquad.en.json")), ("squad_dev_subset", None)])
def test_scores_match_the_card(tmp_path, name, data):
    """Recompute XQuAD-en and the first 500 SQuAD v1.1 dev questions with the official v1.1 metric."""
    from bertforge.tasks.qa.train import evaluate_squad

    if data is None:  # the fixed dev subset of the card: the first 500 questions in file order
        import sys

        from tests.helpers import ROOT
        sys.path.insert(0, str(ROOT / "recipes"))
        from qa_squad import DEV_SUBSET, first_questions

        path = first_questions(require_data("squad", "dev-v1.1.json"), DEV_SUBSET, tmp_path / "subset.json")
    else:
        path = require_data(*data)
    scores = evaluate_squad(DEFAULT_MODEL, path)
    card = _scores()[name]
    assert scores["questions"] == card["questions"]
    assert scores["exact_match"] == pytest.approx(card["exact_match"], abs=0.3)
    assert scores["f1"] == pytest.approx(card["f1"], abs=0.3)


@pytest.mark.slow
def test_bf16_answers_agree_with_fp32_on_xquad():
    """Fast-inference contract: bf16 answers equal fp32's on >= 98% of XQuAD-en questions."""
    from bertforge.data.squad import read_squad
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    examples = read_squad(require_data("xquad", "xquad.en.json"))
    fp32 = QuestionAnswerer(precision="fp32").predict(examples).predictions
    bf16 = QuestionAnswerer(precision="bf16").predict(examples).predictions
    agree = sum(fp32[k] == bf16[k] for k in fp32) / len(fp32)
    assert agree >= 0.98, agree
