"""Span decoding for extractive QA (Devlin et al. 2019, 4.2-4.3; docs/design.md D6).

The model scores every token of every window with a start logit S.T_i and an end logit E.T_j; the
score of the span i..j is S.T_i + E.T_j. For each question this module

1. takes, in every window, the top-`n_best_size` start and top-`n_best_size` end positions (over the
   window's real tokens, padding excluded) and keeps the pairs (i, j) with both tokens in the context,
   j >= i, j - i + 1 <= `max_answer_length`, and token i in its *max-context* window (a token seen by
   several overlapping windows is decoded only from the window where it has the most context on both
   sides — see `data.squad.max_context_flags`), so each span is proposed once;
2. ranks the candidates of all windows by score and keeps the best `n_best_size`;
3. slices the answer text from the ORIGINAL context with the tokens' character offsets
   (`context[offsets[i][0]:offsets[j][1]]`), so no detokenisation guesswork is needed;
4. gives each n-best entry a probability, the softmax over the n-best scores;
5. SQuAD 2.0: the null ("no answer") score is the minimum over windows of start[CLS] + end[CLS];
   null_odds = null_score - best non-null score, and the answer is "" when null_odds > threshold.
   With `version_2_with_negative` the null answer joins the n-best (and its softmax), as in Google's
   run_squad.py and HF's postprocess_qa_predictions.

Features only need `example_index`, `offsets` ((start, end) char spans for context tokens, None for
everything else) and `token_is_max_context` (a bool per token); examples need `qas_id` and `context`.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertforge.metrics.squad import find_best_thresh, get_raw_scores


@dataclass
class QAPredictions:
    """What `decode_spans` returns, keyed by question id."""

    predictions: dict[str, str] = field(default_factory=dict)  # the answer text ("" = no answer)
    # {text, probability, start_logit, end_logit, char_start, char_end} per question
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    null_odds: dict[str, float] = field(default_factory=dict)  # null_score - best non-null score
    best_non_null: dict[str, str] = field(default_factory=dict)  # best non-empty answer, whatever the threshold


def _as_array(logits: Any) -> np.ndarray:
    """One window's logits as a float64 numpy vector (accepts torch tensors, arrays, lists)."""
    if hasattr(logits, "detach"):  # torch.Tensor, without importing torch here
        logits = logits.detach().float().cpu().numpy()
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected one window's logits as a 1-D vector, got shape {arr.shape}")
    return arr


def _top_indexes(logits: np.ndarray, n: int) -> np.ndarray:
    """Indexes of the n largest logits, largest first (ties: lower index first)."""
    order = np.argsort(-logits, kind="stable")
    return order[:n]


def _softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _check_args(n_best_size: int, max_answer_length: int) -> None:
    if n_best_size < 1:
        raise ValueError(f"n_best_size must be >= 1, got {n_best_size}")
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length must be >= 1, got {max_answer_length}")


def decode_spans(examples: Sequence[Any], features: Sequence[Any], start_logits: Sequence[Any],
                 end_logits: Sequence[Any], n_best_size: int = 20, max_answer_length: int = 30,
                 version_2_with_negative: bool = False, null_threshold: float = 0.0,
                 cls_index: int = 0) -> QAPredictions:
    """Decode every example's answer from its windows' logits (see the module docstring).

    examples: objects with `qas_id` and `context`; features[k] belongs to examples[features[k].example_index].
    start_logits[k], end_logits[k]: feature k's logits, shape (T_k,) or padded longer (a 2-D
    (num_features, T) array/tensor works too); positions past len(features[k].offsets) are padding
    and ignored. Returns predictions, n-best lists, null odds and best non-null answers per qas_id.
    """
    _check_args(n_best_size, max_answer_length)
    if not (len(features) == len(start_logits) == len(end_logits)):
        raise ValueError(f"got {len(features)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    by_example: dict[int, list[int]] = defaultdict(list)
    for k, feature in enumerate(features):
        if not 0 <= feature.example_index < len(examples):
            raise ValueError(f"feature {k} points at example {feature.example_index}, "
                             f"but there are {len(examples)} examples")
        by_example[feature.example_index].append(k)

    out = QAPredictions()
    for example_index, example in enumerate(examples):
        qid = str(example.qas_id)
        context = example.context
        # (score, start_logit, end_logit, char_start, char_end)
        candidates: list[tuple[float, float, float, int, int]] = []
        null_score = null_start = null_end = None
        for k in by_example.get(example_index, []):
            feature = features[k]
            offsets = feature.offsets
            n = len(offsets)
            start = _as_array(start_logits[k])
            end = _as_array(end_logits[k])
            if start.shape[0] < n or end.shape[0] < n:
                raise ValueError(f"feature {k} has {n} tokens but only {start.shape[0]} start / "
                                 f"{end.shape[0]} end logits")
            start, end = start[:n], end[:n]
            # The null answer: both pointers on [CLS]. Keep the window where it is least likely
            # (the minimum): one window that confidently sees the answer outvotes the rest.
            feature_null = start[cls_index] + end[cls_index]
            if null_score is None or feature_null < null_score:
                null_score, null_start, null_end = feature_null, start[cls_index], end[cls_index]
            max_context = feature.token_is_max_context
            for i in _top_indexes(start, n_best_size):
                if offsets[i] is None or not max_context[i]:
                    continue  # a question/special token, or a token better seen from another window
                for j in _top_indexes(end, n_best_size):
                    if offsets[j] is None or j < i or j - i + 1 > max_answer_length:
                        continue
                    candidates.append((float(start[i] + end[j]), float(start[i]), float(end[j]),
                                       offsets[i][0], offsets[j][1]))

        candidates.sort(key=lambda c: c[0], reverse=True)  # stable: equal scores keep window order
        entries = [{"text": context[cs:ce], "probability": 0.0, "start_logit": sl, "end_logit": el,
                    "char_start": cs, "char_end": ce, "score": score}
                   for score, sl, el, cs, ce in candidates[:n_best_size]]
        best = entries[0] if entries else None
        if version_2_with_negative and null_score is not None:
            # As Google/HF: the null answer competes for the n_best_size places, and is added
            # after them when it did not make the cut (so the n-best always offers "").
            null = {"text": "", "probability": 0.0, "start_logit": float(null_start),
                    "end_logit": float(null_end), "char_start": None, "char_end": None,
                    "score": float(null_score)}
            ranked = sorted(entries + [null], key=lambda e: e["score"], reverse=True)
            entries = ranked[:n_best_size]
            if not any(e is null for e in entries):
                entries.append(null)
        for entry, p in zip(entries, _softmax([e["score"] for e in entries])):
            entry["probability"] = p
            del entry["score"]

        best_text = best["text"] if best else ""
        best_score = best["start_logit"] + best["end_logit"] if best else -math.inf
        odds = float(null_score - best_score) if null_score is not None else math.inf
        out.nbest[qid] = entries
        out.null_odds[qid] = odds
        out.best_non_null[qid] = best_text
        if version_2_with_negative and odds > null_threshold:
            out.predictions[qid] = ""
        else:
            out.predictions[qid] = best_text
    return out


def find_best_null_threshold(gold: Mapping[str, list[str]], decoded: QAPredictions) -> tuple[float, float]:
    """Tune the SQuAD 2.0 null threshold on dev, as the official v2 script's `best_f1_thresh`.

    gold: {qas_id: [gold answer texts]} ([] = unanswerable), e.g. `metrics.squad.gold_answers(dev)`.
    The candidates are the best non-null answers and the null odds: predicting "" exactly when
    null_odds > threshold, the returned threshold maximises F1 over the questions; returns
    (threshold, best F1 in percent). Pass the threshold to `decode_spans(null_threshold=...)`.
    """
    qids = [q for q in gold if q in decoded.best_non_null]
    if not qids:
        raise ValueError("no decoded question matches a gold question id")
    gold_subset = {q: gold[q] for q in qids}
    _, f1_raw = get_raw_scores(gold_subset, decoded.best_non_null)
    has_ans = {q: bool(gold[q]) for q in qids}
    na = {q: decoded.null_odds[q] for q in qids}
    # When answering nothing at all is best, the threshold must lie below every null odds (the
    # official script's 0.0 assumes probabilities, but null odds can be negative).
    below_all = min(na.values()) - 1.0
    best_f1, threshold = find_best_thresh(decoded.best_non_null, f1_raw, na, has_ans, initial_thresh=below_all)
    return float(threshold), float(best_f1)
