"""Classification metrics against hand-computed values and the textbook formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bertforge.metrics.classification import (
    accuracy,
    classification_scores,
    entity_scores,
    f1,
    macro_f1,
    matthews,
    multilabel_scores,
    pearson_spearman,
)

REF = [1, 1, 1, 0, 0, 0, 1, 0]
PRED = [1, 0, 1, 0, 1, 0, 1, 1]  # tp 3, fn 1, tn 2, fp 2


def test_accuracy_f1_matthews_by_hand():
    tp, fn, tn, fp = 3, 1, 2, 2
    assert accuracy(PRED, REF) == 5 / 8
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert f1(PRED, REF) == pytest.approx(2 * p * r / (p + r))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert matthews(PRED, REF) == pytest.approx(mcc)
    assert matthews([1] * 8, REF) == 0.0  # a constant predictor (CoLA's majority baseline)
    assert matthews(REF, REF) == pytest.approx(1.0)
    assert matthews([1 - x for x in REF], REF) == pytest.approx(-1.0)


def test_macro_f1_and_bundle():
    ref, pred = ["a", "a", "b", "c"], ["a", "b", "b", "c"]
    f_a, f_b, f_c = 2 * 1 * 0.5 / 1.5, 2 * 0.5 * 1 / 1.5, 1.0
    assert macro_f1(pred, ref) == pytest.approx((f_a + f_b + f_c) / 3)
    scores = classification_scores(PRED, REF, 2)
    assert set(scores) == {"accuracy", "f1", "matthews"}
    assert set(classification_scores([0, 1, 2], [0, 2, 2], 3)) == {"accuracy", "macro_f1"}


def test_pearson_spearman_formulas():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 5, 50)
    pred = ref + rng.normal(0, 1, 50)
    s = pearson_spearman(pred, ref)
    assert s["pearson"] == pytest.approx(np.corrcoef(pred, ref)[0, 1])
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731 - no ties in continuous draws
    assert s["spearman"] == pytest.approx(np.corrcoef(rank(pred), rank(ref))[0, 1])
    assert pearson_spearman(np.exp(ref), ref)["spearman"] == pytest.approx(1.0)  # monotone
    assert pearson_spearman([2.5] * 50, ref) == {"pearson": 0.0, "spearman": 0.0}  # constant: not NaN


def test_entity_scores_conll_definition():
    ref = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    # gold entities: PER(0-1), LOC(3), ORG(0); predicted: PER(0) (wrong span), LOC(3), ORG(0)
    s = entity_scores(pred, ref)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["accuracy"] == pytest.approx(5 / 6)
    # the right span with the wrong type is no match either
    assert entity_scores([["B-ORG", "I-ORG"]], [["B-PER", "I-PER"]])["f1"] == 0.0
    assert entity_scores([["O", "O"]], [["B-PER", "O"]])["recall"] == 0.0  # all-O finds nothing
    with pytest.raises(ValueError, match="2 predicted tags for 3 words"):
        entity_scores([["O", "O"]], [["O", "O", "O"]])


def test_multilabel_by_hand():
    ref = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 0]])
    s = multilabel_scores(pred, ref)
    assert s["subset_accuracy"] == 0.5
    assert s["micro_f1"] == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))  # P = 2/2, R = 2/3


def test_metric_errors():
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="no examples"):
        matthews([], [])
