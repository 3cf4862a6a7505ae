"""The SQuAD evaluators against the leaderboard's own dev predictions and against HF's copy of the
official v2.0 script (transformers.data.metrics.squad_metrics)."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.data.metrics import squad_metrics as hf

from bertforge.metrics import squad as m
from tests.helpers import require_data

REF = ("squad", "reference_predictions")


def _load(*parts):
    with open(require_data(*parts), encoding="utf-8") as f:
        return json.load(f)


# The published dev scores (squad/SOURCE.md; the SQuAD and BERT papers round them to one decimal).
@pytest.mark.parametrize("pred_file, em, f1", [
    ("1.1 - Logistic Regression Baseline (Stanford University).json", 40.14, 50.98),
    ("1.1 - BERT (ensemble) (Google AI Language).json", 86.21, 92.20),
])
def test_v1_reproduces_published_scores(pred_file, em, f1):
    result = m.evaluate_v1(require_data("squad", "dev-v1.1.json"), _load(*REF, pred_file))
    assert round(result["exact_match"], 2) == em
    assert round(result["f1"], 2) == f1


def test_v2_reproduces_published_scores_and_hf_breakdown():
    dev = _load("squad", "dev-v2.0.json")
    preds = _load(*REF, "v2.0 - BERT (single model) (Google AI Language).json")
    result = m.evaluate_v2(dev, preds)
    assert round(result["exact"], 2) == 78.74
    assert round(result["f1"], 2) == 81.78
    assert result["HasAns_total"] == 5928 and result["NoAns_total"] == 5945
    # The full breakdown equals HF's transcription of the official script.
    examples = [SimpleNamespace(qas_id=qa["id"], answers=qa["answers"])
                for art in dev["data"] for p in art["paragraphs"] for qa in p["qas"]]
    ref = hf.squad_evaluate(examples, preds)
    for key in ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert result[key] == pytest.approx(ref[key], abs=1e-9), key


def test_v2_best_thresholds_match_hf_with_random_na_probs():
    dev = _load("squad", "dev-v2.0.json")
    bert = _load(*REF, "v2.0 - BERT (single model) (Google AI Language).json")
    # Every question answered (as a decoder's best non-null span would be), with no-answer
    # probabilities loosely correlated with BERT having abstained, so the best threshold is interior.
    preds = {q: p or "unknown" for q, p in bert.items()}
    rng = random.Random(0)
    na_probs = {q: min(1.0, max(0.0, (0.7 if p == "" else 0.3) + rng.gauss(0, 0.25))) for q, p in bert.items()}
    result = m.evaluate_v2(dev, preds, na_probs=na_probs, na_prob_thresh=0.5)
    examples = [SimpleNamespace(qas_id=qa["id"], answers=qa["answers"])
                for art in dev["data"] for p in art["paragraphs"] for qa in p["qas"]]
    ref = hf.squad_evaluate(examples, preds, no_answer_probs=na_probs, no_answer_probability_threshold=0.5)
    for key in ("exact", "f1", "HasAns_f1", "NoAns_f1", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"):
        assert result[key] == pytest.approx(ref[key], abs=1e-9), key
    assert 0.0 < result["best_f1_thresh"] < 1.0


def test_v1_missing_predictions_count_as_zero():
    gold = {"q1": ["Denver Broncos"], "q2": ["1990"]}
    assert m.squad_v1_scores(gold, {"q1": "the Denver Broncos"}) == {"exact_match": 50.0, "f1": 50.0}


def test_v2_missing_predictions_are_left_out():
    gold = {"q1": ["Denver Broncos"], "q2": ["1990"], "q3": []}
    r = m.squad_v2_scores(gold, {"q1": "Broncos", "q3": ""})
    # q1: P = 1, R = 1/2 -> F1 2/3; q3: empty == empty -> 1; q2 not counted (official behaviour).
    assert r["total"] == 2
    assert r["f1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert r["exact"] == pytest.approx(50.0)


def test_normalize_answer_hand_cases():
    assert m.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert m.normalize_answer("an apple, a day") == "apple day"
    assert m.normalize_answer("theater") == "theater"  # articles only as whole words
    assert m.normalize_answer("Café “Noir”") == "café “noir”"  # only ASCII punctuation is removed


def test_f1_hand_computed():
    # pred tokens {denver, broncos, won}, gold {broncos}: P = 1/3, R = 1 -> F1 = 0.5
    assert m.f1_score("Denver Broncos won", "Broncos") == pytest.approx(0.5)
    assert m.compute_f1("Broncos", "Denver Broncos won") == pytest.approx(0.5)
    assert m.f1_score("", "") == 0.0  # v1.1: no common token -> 0
    assert m.compute_f1("", "") == 1.0  # v2.0: both empty -> 1
    assert m.compute_f1("", "x") == 0.0


def test_v2_gold_that_normalises_to_empty_means_no_answer():
    # A gold answer that is only punctuation/articles is dropped; with none left the gold is "".
    exact, f1 = m.get_raw_scores({"q": ["the ."]}, {"q": ""})
    assert exact == {"q": 1} and f1 == {"q": 1.0}
    exact, f1 = m.get_raw_scores({"q": ["the ."]}, {"q": "dog"})
    assert exact == {"q": 0} and f1 == {"q": 0.0}


_text = st.text(alphabet=st.sampled_from(list("abc the an a.,!-'  \tÉé日")), max_size=25)


@settings(max_examples=300, deadline=None)
@given(_text, _text)
def test_per_answer_scores_match_hf(gold, pred):
    assert m.normalize_answer(pred) == hf.normalize_answer(pred)
    assert m.compute_exact(gold, pred) == hf.compute_exact(gold, pred)
    assert m.compute_f1(gold, pred) == pytest.approx(hf.compute_f1(gold, pred), abs=1e-12)


def test_bad_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        m.evaluate_v1(tmp_path / "nope.json", {})
    with pytest.raises(ValueError, match="data"):
        m.evaluate_v1({"version": "1.1"}, {})
    with pytest.raises(ValueError, match="v2.0 evaluator"):
        m.squad_v1_scores({"q": []}, {"q": ""})
    with pytest.raises(ValueError, match="no prediction"):
        m.squad_v2_scores({"q": ["x"]}, {"other": "x"})
