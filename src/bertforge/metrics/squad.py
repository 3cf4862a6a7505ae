"""The official SQuAD evaluators, re-implemented faithfully (Rajpurkar et al. 2016, 2018).

Two scripts exist and they differ in small ways that change the numbers, so both are here:

- **v1.1** (`evaluate-v1.1.py`): EM and F1 are the max over the gold answers of the question; the
  average runs over *every* question in the dataset (a missing prediction scores 0).
- **v2.0** (`evaluate-v2.0.py`): gold answers that normalise to "" are dropped, and a question with no
  gold answer left has the single gold answer "" (only an empty prediction is right). F1 of an empty
  prediction or gold is 1 if both are empty, else 0. Averages run over the questions that *have* a
  prediction. With no-answer probabilities (`na_probs`), a prediction whose probability exceeds
  `na_prob_thresh` counts as "no answer"; `best_exact`/`best_f1` and their thresholds are the best
  scores reachable by choosing that threshold on this data (`find_best_thresh`).

Both share `normalize_answer`: lower-case, drop ASCII punctuation, drop the articles a/an/the, and
collapse whitespace. `dataset` arguments accept the parsed JSON (`{"data": [...]}`), its `data`
list, or a path to the file.
"""
from __future__ import annotations

import collections
import json
import os
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any, Optional

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


# ----------------------------------------------------------------------------------------------
# Gold answers
# ----------------------------------------------------------------------------------------------

def _articles(dataset: Any) -> list[dict]:
    """The list of articles from a parsed SQuAD JSON, its `data` list, or a path to the file."""
    if isinstance(dataset, (str, os.PathLike)):
        if not os.path.exists(dataset):
            raise FileNotFoundError(f"SQuAD dataset file not found: {dataset}")
        with open(dataset, encoding="utf-8") as f:
            dataset = json.load(f)
    if isinstance(dataset, Mapping):
        if "data" not in dataset:
            raise ValueError("not a SQuAD dataset: the JSON object has no 'data' key")
        dataset = dataset["data"]
    if not isinstance(dataset, list):
        raise TypeError(f"expected a SQuAD dataset (dict with 'data', list or path), got {type(dataset).__name__}")
    return dataset


def gold_answers(dataset: Any) -> dict[str, list[str]]:
    """{question id: [gold answer texts]} in dataset order (an unanswerable question maps to [])."""
    gold: dict[str, list[str]] = {}
    for article in _articles(dataset):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                gold[str(qa["id"])] = [a["text"] for a in qa.get("answers", [])]
    return gold


# ----------------------------------------------------------------------------------------------
# SQuAD v1.1
# ----------------------------------------------------------------------------------------------

def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """v1.1 EM of one prediction against one gold answer."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """v1.1 token-level F1 (bag of normalised tokens) of one prediction against one gold answer."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """v1.1 EM/F1 (percent) over every question of `gold`; a missing prediction scores 0.

    A question without gold answers cannot be scored by v1.1 (the official script would crash in
    `max()`); that is an error here — use `squad_v2_scores` for SQuAD 2.0 data.
    """
    if not gold:
        raise ValueError("no questions to evaluate")
    exact = f1 = 0.0
    for qid, truths in gold.items():
        if not truths:
            raise ValueError(f"question {qid} has no gold answer: SQuAD 2.0 data needs the v2.0 evaluator")
        if qid not in predictions:
            continue  # official: "Unanswered question ... will receive score 0."
        prediction = predictions[qid]
        exact += max(exact_match_score(prediction, t) for t in truths)
        f1 += max(f1_score(prediction, t) for t in truths)
    return {"exact_match": 100.0 * exact / len(gold), "f1": 100.0 * f1 / len(gold)}


def evaluate_v1(dataset: Any, predictions: Mapping[str, str]) -> dict[str, float]:
    """The official SQuAD v1.1 evaluation: {"exact_match", "f1"} in percent."""
    return squad_v1_scores(gold_answers(dataset), predictions)


# ----------------------------------------------------------------------------------------------
# SQuAD v2.0
# ----------------------------------------------------------------------------------------------

def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    """v2.0 EM of one prediction against one gold answer (1 or 0)."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """v2.0 F1: as v1.1, except that an empty gold or prediction scores 1 iff both are empty."""
    gold_toks, pred_toks = _tokens(a_gold), _tokens(a_pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def get_raw_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str]
                   ) -> tuple[dict[str, int], dict[str, float]]:
    """Per-question v2.0 EM and F1 (max over gold answers), for the questions that have a prediction.

    Gold answers that normalise to "" are dropped (e.g. an answer that is only punctuation); a
    question left with none has the one gold answer "" — only an empty prediction matches it.
    """
    exact_scores: dict[str, int] = {}
    f1_scores: dict[str, float] = {}
    for qid, truths in gold.items():
        answers = [a for a in truths if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue  # official: "Missing prediction for ..." and the question is left out
        pred = predictions[qid]
        exact_scores[qid] = max(compute_exact(a, pred) for a in answers)
        f1_scores[qid] = max(compute_f1(a, pred) for a in answers)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                           qid_to_has_ans: Mapping[str, bool], na_prob_thresh: float) -> dict[str, float]:
    """Score a question as "predicted no answer" (1 iff it has none) when na_prob > na_prob_thresh."""
    new_scores = {}
    for qid, s in scores.items():
        if na_probs[qid] > na_prob_thresh:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = s
    return new_scores


def _eval_dict(exact: Mapping[str, float], f1: Mapping[str, float],
               qid_list: Optional[Iterable[str]] = None) -> dict[str, float]:
    qids = list(exact) if qid_list is None else [q for q in qid_list if q in exact]
    total = len(qids)
    if total == 0:
        return {"exact": 0.0, "f1": 0.0, "total": 0}
    return {"exact": 100.0 * sum(exact[q] for q in qids) / total,
            "f1": 100.0 * sum(f1[q] for q in qids) / total,
            "total": total}


def find_best_thresh(preds: Mapping[str, str], scores: Mapping[str, float],
                     na_probs: Mapping[str, float], qid_to_has_ans: Mapping[str, bool],
                     initial_thresh: float = 0.0) -> tuple[float, float]:
    """The no-answer threshold that maximises the total score, and that score (percent).

    Start from "every question predicted unanswerable" (score = number of unanswerable questions),
    then admit questions' answers in increasing order of na_prob: an answerable question gains its
    score, an unanswerable one loses 1 if its prediction is non-empty. The best prefix's last
    na_prob is the threshold: predict "no answer" when na_prob > threshold. When no prefix beats
    "all unanswerable", the official script returns 0.0 (right for probabilities in [0, 1]);
    `initial_thresh` overrides that for scores of another range (e.g. null odds, which can be < 0).
    """
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = best_score = num_no_ans
    best_thresh = initial_thresh
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def squad_v2_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str],
                    na_probs: Optional[Mapping[str, float]] = None,
                    na_prob_thresh: float = 1.0) -> dict[str, float]:
    """The official v2.0 evaluation on {qid: [gold texts]} ([] = unanswerable).

    Returns exact, f1, total, HasAns_exact/f1/total, NoAns_exact/f1/total (each part only when the
    data has such questions) and, when `na_probs` is given, best_exact, best_exact_thresh, best_f1,
    best_f1_thresh.
    """
    if not gold:
        raise ValueError("no questions to evaluate")
    qid_to_has_ans = {qid: bool(truths) for qid, truths in gold.items()}
    exact_raw, f1_raw = get_raw_scores(gold, predictions)
    if not exact_raw:
        raise ValueError("no prediction matches a question id of the dataset")
    given_na_probs = na_probs is not None
    if na_probs is None:
        na_probs = {k: 0.0 for k in predictions}
    missing = [q for q in exact_raw if q not in na_probs]
    if missing:
        raise ValueError(f"na_probs lacks {len(missing)} predicted question ids, e.g. {missing[0]}")
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out = _eval_dict(exact_thresh, f1_thresh)
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in qid_to_has_ans.items() if v is wanted]
        if qids:
            for k, v in _eval_dict(exact_thresh, f1_thresh, qids).items():
                out[f"{prefix}_{k}"] = v
    if given_na_probs:
        scored_na = {k: v for k, v in na_probs.items() if k in qid_to_has_ans}
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(predictions, exact_raw, scored_na,
                                                                       qid_to_has_ans)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(predictions, f1_raw, scored_na, qid_to_has_ans)
    return out


def evaluate_v2(dataset: Any, predictions: Mapping[str, str], na_probs: Optional[Mapping[str, float]] = None,
                na_prob_thresh: float = 1.0) -> dict[str, float]:
    """The official SQuAD v2.0 evaluation of a dataset (see `squad_v2_scores`)."""
    return squad_v2_scores(gold_answers(dataset), predictions, na_probs, na_prob_thresh)
