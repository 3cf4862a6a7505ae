"""Classification metrics from well-kept libraries: scikit-learn (accuracy, F1, Matthews), scipy
(Pearson, Spearman) and seqeval (entity-level precision/recall/F1, CoNLL-2003's definition: an entity
counts only when its type and exact span both match).

Each function takes (predictions, references) and returns floats; `classification_scores` bundles what a
single-label run logs. The GLUE headline metric of each task is named in `bertforge.data.glue.GLUE_TASKS`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PIP = {"sklearn": "scikit-learn", "scipy": "scipy", "seqeval": "seqeval"}


def _lib(module: str):
    """Import `module` (e.g. 'sklearn.metrics'), or say how to install the fine-tuning extras."""
    from bertforge.errors import require

    return require(module, "finetune", _PIP[module.split(".")[0]])


def _check(pred: Sequence, ref: Sequence) -> None:
    if len(pred) != len(ref):
        raise ValueError(f"{len(pred)} predictions for {len(ref)} references")
    if len(ref) == 0:
        raise ValueError("no examples to score")


def accuracy(pred: Sequence, ref: Sequence) -> float:
    accuracy_score = _lib("sklearn.metrics").accuracy_score

    _check(pred, ref)
    return float(accuracy_score(ref, pred))


def f1(pred: Sequence[int], ref: Sequence[int], positive: int = 1) -> float:
    """Binary F1 of the positive class (MRPC: 'is a paraphrase')."""
    f1_score = _lib("sklearn.metrics").f1_score

    _check(pred, ref)
    return float(f1_score(ref, pred, pos_label=positive, average="binary", zero_division=0))


def macro_f1(pred: Sequence, ref: Sequence) -> float:
    f1_score = _lib("sklearn.metrics").f1_score

    _check(pred, ref)
    return float(f1_score(ref, pred, average="macro", zero_division=0))


def matthews(pred: Sequence[int], ref: Sequence[int]) -> float:
    """Matthews correlation (CoLA): 0 for a constant predictor, 1 for a perfect one."""
    matthews_corrcoef = _lib("sklearn.metrics").matthews_corrcoef

    _check(pred, ref)
    return float(matthews_corrcoef(ref, pred))


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy.stats.rankdata's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1 .. end
            start = end
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r. A constant side has no correlation: 0.0 (scipy gives NaN and a warning)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the (average-tie) ranks; 0.0 for a constant side."""
    return pearson(rankdata(x), rankdata(y))


def pearson_spearman(pred: Sequence[float], ref: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (STS-B). A constant prediction has no correlation: 0, not NaN."""
    _check(pred, ref)
    if len(pred) < 2:
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": pearson(pred, ref), "spearman": spearman(pred, ref)}


def multilabel_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """(N, L) 0/1 arrays: micro-averaged F1 and exact-match ('subset') accuracy."""
    sk = _lib("sklearn.metrics")
    accuracy_score, f1_score = sk.accuracy_score, sk.f1_score

    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    return {"micro_f1": float(f1_score(ref, pred, average="micro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(ref, pred))}


def entity_scores(pred: Sequence[Sequence[str]], ref: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision / recall / F1 over IOB2 tag sequences (seqeval, CoNLL evaluation),
    plus token accuracy."""
    sq = _lib("seqeval.metrics")
    accuracy_score, f1_score, precision_score, recall_score = (sq.accuracy_score, sq.f1_score, sq.precision_score,
                                                               sq.recall_score)

    _check(pred, ref)
    for i, (p, r) in enumerate(zip(pred, ref)):
        if len(p) != len(r):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(r)} words")
    pred, ref = [list(p) for p in pred], [list(r) for r in ref]
    return {"precision": float(precision_score(ref, pred, zero_division=0)),
            "recall": float(recall_score(ref, pred, zero_division=0)),
            "f1": float(f1_score(ref, pred, zero_division=0)),
            "accuracy": float(accuracy_score(ref, pred))}


def classification_scores(pred: Sequence, ref: Sequence, num_labels: int) -> dict[str, float]:
    """Accuracy for any single-label task; with two classes also F1 (class 1) and Matthews; with more,
    macro-F1."""
    scores = {"accuracy": accuracy(pred, ref)}
    if num_labels == 2:
        scores.update(f1=f1(pred, ref), matthews=matthews(pred, ref))
    else:
        scores["macro_f1"] = macro_f1(pred, ref)
    return scores
