"""The shipped QA model (bertforge/models/qa-minilm): its card's scores are real, and bf16 gives the same answers."""
from __future__ import annotations

import json

import pytest

from bertforge.tasks.qa.answerer import DEFAULT_MODEL
from tests.helpers import require_data

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").exists(),
                                reason="the shipped QA model is not in this checkout")


def test_card_documents_data_split_seed_and_scores():
    card = (DEFAULT_MODEL / "README.md").read_text(encoding="utf-8")
    scores = json.loads((DEFAULT_MODEL / "scores.json").read_text())
    for needed in ("XQuAD-en", "COVID-QA", "Seed", "not in XQuAD-en", "python -m bertforge.qa_recipe"):
        assert needed in card, needed
    assert f"{scores['xquad']['f1']:.2f}" in card and f"{scores['covid']['f1']:.2f}" in card


def test_loads_in_hf_with_a_trained_head():
    import transformers

    model, info = transformers.BertForQuestionAnswering.from_pretrained(str(DEFAULT_MODEL), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


@pytest.mark.slow
def test_xquad_scores_match_the_card():
    """Recompute XQuAD-en EM/F1 of the shipped weights with the official v1.1 metric."""
    from bertforge.tasks.qa.train import evaluate_squad

    scores = evaluate_squad(DEFAULT_MODEL, require_data("xquad", "xquad.en.json"))
    card = json.loads((DEFAULT_MODEL / "scores.json").read_text())["xquad"]
    assert scores["questions"] == card["questions"] == 1190
    assert scores["exact_match"] == pytest.approx(card["exact_match"], abs=0.3)
    assert scores["f1"] == pytest.approx(card["f1"], abs=0.3)


@pytest.mark.slow
def test_bf16_answers_agree_with_fp32_on_xquad():
    """Fast-inference contract: bf16 autocast answers equal fp32's on >= 98% of XQuAD-en questions."""
    from bertforge.data.squad import read_squad
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    examples = read_squad(require_data("xquad", "xquad.en.json"))
    fp32 = QuestionAnswerer(precision="fp32").predict(examples).predictions
    bf16 = QuestionAnswerer(precision="bf16").predict(examples).predictions
    agree = sum(fp32[k] == bf16[k] for k in fp32) / len(fp32)
    assert agree >= 0.98, agree
