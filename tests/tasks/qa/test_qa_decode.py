"""Span decoding (D6) on hand-made logits, and against HF's port of Google's run_squad post-processing
(transformers.data.metrics.squad_metrics.compute_predictions_logits)."""
from __future__ import annotations

import json
import random
import re
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers.data.metrics import squad_metrics as hf

from bertforge.metrics.squad import squad_v2_scores
from bertforge.tasks.qa.decode import QAPredictions, decode_spans, find_best_null_threshold

NEG = -10.0  # a low logit


def word_spans(context: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", context)]


def make_feature(example_index: int, context: str, n_question: int, first: int, last: int,
                 max_context: list[bool] | None = None) -> SimpleNamespace:
    """[CLS] q_1..q_n [SEP] words[first:last] [SEP], one token per whitespace-separated word."""
    spans = word_spans(context)[first:last]
    offsets = [None] * (n_question + 2) + list(spans) + [None]
    flags = [False] * (n_question + 2) + (max_context or [True] * len(spans)) + [False]
    return SimpleNamespace(example_index=example_index, offsets=offsets, token_is_max_context=flags,
                           context_start=n_question + 2, first_word=first)


def logits_for(feature, peaks: dict[int, float]) -> list[float]:
    out = [NEG] * len(feature.offsets)
    for i, v in peaks.items():
        out[i] = v
    return out


CONTEXT = "The Denver Broncos beat the Carolina Panthers at Levi's Stadium in Santa   Clara ."
EXAMPLE = SimpleNamespace(qas_id="q1", context=CONTEXT)
WORDS = CONTEXT.split()


def tok(feature, word: str) -> int:
    """Token position of a context word in a feature."""
    return feature.context_start + WORDS.index(word) - feature.first_word


def test_picks_the_highest_scoring_span_and_slices_the_original_text():
    f = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    start = logits_for(f, {tok(f, "Santa"): 5.0, tok(f, "Levi's"): 3.0})
    end = logits_for(f, {tok(f, "Clara"): 4.0, tok(f, "Stadium"): 4.5})
    out = decode_spans([EXAMPLE], [f], [start], [end])
    # candidates: Santa..Clara 9.0, Santa..Stadium invalid (end < start), Levi's..Clara 7.0, Levi's..Stadium 7.5
    assert out.predictions["q1"] == "Santa   Clara"  # the original spacing, sliced by offsets
    best = out.nbest["q1"][0]
    assert CONTEXT[best["char_start"]:best["char_end"]] == "Santa   Clara"
    assert (best["start_logit"], best["end_logit"]) == (5.0, 4.0)
    assert out.nbest["q1"][1]["text"] == "Levi's Stadium"
    probs = [e["probability"] for e in out.nbest["q1"]]
    scores = np.array([e["start_logit"] + e["end_logit"] for e in out.nbest["q1"]])
    assert np.allclose(probs, np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum())
    assert probs == sorted(probs, reverse=True)


def test_respects_max_answer_length():
    f = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    start = logits_for(f, {tok(f, "Denver"): 6.0, tok(f, "Carolina"): 2.0})
    end = logits_for(f, {tok(f, "Panthers"): 6.0})
    # Denver..Panthers is 6 tokens: allowed with 6, not with 5 (then Carolina..Panthers, 2 tokens).
    assert decode_spans([EXAMPLE], [f], [start], [end], max_answer_length=6).predictions["q1"] == \
        "Denver Broncos beat the Carolina Panthers"
    assert decode_spans([EXAMPLE], [f], [start], [end], max_answer_length=5).predictions["q1"] == "Carolina Panthers"


def test_end_before_start_is_never_chosen():
    f = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    start = logits_for(f, {tok(f, "Stadium"): 9.0, tok(f, "Carolina"): 1.0})
    end = logits_for(f, {tok(f, "beat"): 9.0, tok(f, "Panthers"): 1.0})
    out = decode_spans([EXAMPLE], [f], [start], [end])
    for e in out.nbest["q1"]:
        assert e["char_start"] < e["char_end"]
    # Stadium..beat is invalid; the best valid pair with these peaks is Carolina..Panthers (2.0)
    # versus Stadium..Stadium (9 - 10 = -1.0).
    assert out.predictions["q1"] == "Carolina Panthers"


def test_question_and_special_tokens_are_never_answers():
    f = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    # [CLS] (0), question tokens (1..3), [SEP]s score highest; the context only mildly.
    start = logits_for(f, {0: 20.0, 1: 20.0, 2: 20.0, 4: 20.0, len(f.offsets) - 1: 20.0, tok(f, "Broncos"): 1.0})
    end = logits_for(f, {0: 20.0, 3: 20.0, 4: 20.0, len(f.offsets) - 1: 20.0, tok(f, "Broncos"): 1.0})
    out = decode_spans([EXAMPLE], [f], [start], [end])
    assert out.predictions["q1"] == "Broncos"
    assert all(e["char_start"] is not None for e in out.nbest["q1"])


def test_max_context_rule_picks_the_window_with_more_context():
    # Two windows over words 0..8 and 4..14; "Panthers" (word 6) is in both, and has more context
    # in the second. The first window's very confident start there must be ignored.
    n = len(WORDS)
    w1 = make_feature(0, CONTEXT, 3, 0, 9, max_context=[True] * 5 + [False] * 4)
    w2 = make_feature(0, CONTEXT, 3, 4, n, max_context=[False] * 1 + [True] * (n - 5))
    s1 = logits_for(w1, {tok(w1, "Panthers"): 9.0})
    e1 = logits_for(w1, {tok(w1, "Panthers"): 9.0})
    s2 = logits_for(w2, {tok(w2, "Panthers"): 2.0})
    e2 = logits_for(w2, {tok(w2, "Panthers"): 2.0})
    out = decode_spans([EXAMPLE], [w1, w2], [s1, s2], [e1, e2])
    best = out.nbest["q1"][0]
    assert best["text"] == "Panthers" and best["start_logit"] == 2.0  # from window 2
    # Flip the flags: now window 1 owns the token and its logits win.
    w1.token_is_max_context = [f or (o is not None) for f, o in zip(w1.token_is_max_context, w1.offsets)]
    w2.token_is_max_context[tok(w2, "Panthers")] = False
    best = decode_spans([EXAMPLE], [w1, w2], [s1, s2], [e1, e2]).nbest["q1"][0]
    assert best["text"] == "Panthers" and best["start_logit"] == 9.0


def test_null_answer_uses_min_over_windows_and_threshold():
    n = len(WORDS)
    w1 = make_feature(0, CONTEXT, 3, 0, 9, max_context=[True] * 5 + [False] * 4)
    w2 = make_feature(0, CONTEXT, 3, 4, n, max_context=[False] * 1 + [True] * (n - 5))
    s1, e1 = logits_for(w1, {0: 4.0}), logits_for(w1, {0: 4.0})  # null 8 here
    s2, e2 = logits_for(w2, {0: 1.0, tok(w2, "Santa"): 2.0}), logits_for(w2, {0: 0.5, tok(w2, "Clara"): 2.0})
    args = ([EXAMPLE], [w1, w2], [s1, s2], [e1, e2])
    out = decode_spans(*args, version_2_with_negative=True)
    # null score = min(8, 1.5) = 1.5; best span Santa..Clara = 4.0; odds = -2.5 -> answer
    assert out.null_odds["q1"] == pytest.approx(-2.5)
    assert out.predictions["q1"] == "Santa   Clara"
    null = [e for e in out.nbest["q1"] if e["text"] == ""]
    assert len(null) == 1 and (null[0]["start_logit"], null[0]["end_logit"]) == (1.0, 0.5)
    assert sum(e["probability"] for e in out.nbest["q1"]) == pytest.approx(1.0)
    assert decode_spans(*args, version_2_with_negative=True, null_threshold=-3.0).predictions["q1"] == ""
    assert decode_spans(*args, version_2_with_negative=True, null_threshold=-2.5).predictions["q1"] == "Santa   Clara"
    # v1 mode never answers "" and has no null entry, but still reports the odds.
    v1 = decode_spans(*args, null_threshold=-100.0)
    assert v1.predictions["q1"] == "Santa   Clara" and all(e["text"] for e in v1.nbest["q1"])
    assert v1.null_odds["q1"] == pytest.approx(-2.5)


def test_padded_tensor_input_equals_lists():
    f1 = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    f2 = make_feature(1, "Santa Clara", 2, 0, 2)
    ex2 = SimpleNamespace(qas_id="q2", context="Santa Clara")
    g = torch.Generator().manual_seed(0)
    T = len(f1.offsets) + 5  # padded past the longest feature
    start, end = torch.randn(2, T, generator=g), torch.randn(2, T, generator=g)
    start[1, len(f2.offsets):] = 100.0  # padding logits must be ignored
    lists = decode_spans([EXAMPLE, ex2], [f1, f2],
                         [start[0, :len(f1.offsets)].tolist(), start[1, :len(f2.offsets)].tolist()],
                         [end[0, :len(f1.offsets)].tolist(), end[1, :len(f2.offsets)].tolist()])
    tensors = decode_spans([EXAMPLE, ex2], [f1, f2], start, end)
    assert tensors.predictions == lists.predictions
    assert tensors.nbest == lists.nbest


def _random_case(rng: random.Random, n_examples: int):
    """Examples with unique single-token words, several overlapping windows and random logits, in
    our layout and in HF's (Google's). Each word is max-context in exactly one window that holds it
    (a random one), as the real rule guarantees."""
    examples, features, starts, ends = [], [], [], []
    hf_examples, hf_features, hf_results = [], [], []
    for ei in range(n_examples):
        n_words = rng.randint(5, 60)
        words = [f"w{ei}x{k}" for k in range(n_words)]
        context = " ".join(words)
        examples.append(SimpleNamespace(qas_id=f"q{ei}", context=context))
        hf_examples.append(SimpleNamespace(qas_id=f"q{ei}", doc_tokens=words))
        window, nq = rng.randint(3, 25), rng.randint(1, 6)
        step = rng.randint(1, window)
        ranges = []
        while True:
            first = len(ranges) * step
            ranges.append((first, min(first + window, n_words)))
            if ranges[-1][1] == n_words:
                break
        owner = [rng.choice([w for w, (a, b) in enumerate(ranges) if a <= k < b]) for k in range(n_words)]
        for w, (first, last) in enumerate(ranges):
            flags = [owner[k] == w for k in range(first, last)]
            f = make_feature(ei, context, nq, first, last, flags)
            T = len(f.offsets)
            s = [rng.gauss(0, 3) for _ in range(T)]
            e = [rng.gauss(0, 3) for _ in range(T)]
            uid = len(features)
            features.append(f), starts.append(s), ends.append(e)
            hf_features.append(SimpleNamespace(
                unique_id=uid, example_index=ei,
                tokens=["[CLS]"] + ["q"] * nq + ["[SEP]"] + words[first:last] + ["[SEP]"],
                token_to_orig_map={f.context_start + k: first + k for k in range(last - first)},
                token_is_max_context={f.context_start + k: flags[k] for k in range(last - first)}))
            hf_results.append(SimpleNamespace(unique_id=uid, start_logits=s, end_logits=e))
    return examples, features, starts, ends, hf_examples, hf_features, hf_results


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("n_best, max_len", [(20, 30), (5, 4), (3, 1)])
def test_matches_hf_run_squad_postprocessing(v2, n_best, max_len):
    rng = random.Random(1000 * n_best + max_len + v2)
    examples, features, starts, ends, hf_ex, hf_feat, hf_res = _random_case(rng, 80)
    out = decode_spans(examples, features, starts, ends, n_best_size=n_best, max_answer_length=max_len,
                       version_2_with_negative=v2, null_threshold=0.5)
    with tempfile.TemporaryDirectory() as d:
        ref_pred = hf.compute_predictions_logits(
            hf_ex, hf_feat, hf_res, n_best, max_len, False, f"{d}/p.json", f"{d}/n.json", f"{d}/o.json",
            False, v2, 0.5, SimpleNamespace(convert_tokens_to_string=" ".join))
        ref_nbest = json.load(open(f"{d}/n.json"))
        ref_odds = json.load(open(f"{d}/o.json")) if v2 else {}
    compared = 0
    for qid, ref in ref_nbest.items():
        ours = out.nbest[qid]
        if any(e["text"] == "empty" for e in ref):
            # HF's nonce entry when no span is valid; we answer "" with no invented candidate.
            assert out.predictions[qid] == "" and all(e["text"] == "" for e in ours)
            continue
        compared += 1
        assert out.predictions[qid] == ref_pred[qid]
        assert [e["text"] for e in ours] == [e["text"] for e in ref]
        assert [e["probability"] for e in ours] == pytest.approx([e["probability"] for e in ref], abs=1e-9)
        assert [e["start_logit"] for e in ours] == pytest.approx([e["start_logit"] for e in ref], abs=1e-12)
        assert [e["end_logit"] for e in ours] == pytest.approx([e["end_logit"] for e in ref], abs=1e-12)
        if v2:
            assert out.null_odds[qid] == pytest.approx(ref_odds[qid], abs=1e-9)
    assert compared >= 30


def test_find_best_null_threshold_maximises_f1():
    rng = random.Random(3)
    decoded = QAPredictions()
    gold = {}
    for k in range(200):
        qid = f"q{k}"
        has_ans = rng.random() < 0.5
        right = rng.random() < 0.7
        gold[qid] = ["blue whale"] if has_ans else []
        decoded.best_non_null[qid] = "blue whale" if right else "the sea"
        decoded.null_odds[qid] = rng.gauss(-1.0 if has_ans else 1.0, 1.5)
    threshold, best_f1 = find_best_null_threshold(gold, decoded)

    def f1_at(t: float) -> float:
        preds = {q: ("" if decoded.null_odds[q] > t else decoded.best_non_null[q]) for q in gold}
        return squad_v2_scores(gold, preds)["f1"]

    candidates = sorted(decoded.null_odds.values())
    brute = max([f1_at(t) for t in candidates] + [f1_at(candidates[0] - 1)])
    assert best_f1 == pytest.approx(brute)
    assert f1_at(threshold) == pytest.approx(best_f1)


def test_find_best_null_threshold_when_answering_nothing_is_best():
    decoded = QAPredictions(best_non_null={"a": "x", "b": "y"}, null_odds={"a": -3.0, "b": -1.0})
    threshold, best_f1 = find_best_null_threshold({"a": [], "b": []}, decoded)
    assert best_f1 == 100.0 and threshold < -3.0  # every odds above it: all predicted ""


def test_bad_arguments():
    f = make_feature(0, CONTEXT, 3, 0, len(WORDS))
    s = logits_for(f, {})
    with pytest.raises(ValueError, match="n_best_size"):
        decode_spans([EXAMPLE], [f], [s], [s], n_best_size=0)
    with pytest.raises(ValueError, match="max_answer_length"):
        decode_spans([EXAMPLE], [f], [s], [s], max_answer_length=0)
    with pytest.raises(ValueError, match="1 features but 2 start"):
        decode_spans([EXAMPLE], [f], [s, s], [s])
    with pytest.raises(ValueError, match="logits"):
        decode_spans([EXAMPLE], [f], [s[:3]], [s[:3]])
    f.example_index = 5
    with pytest.raises(ValueError, match="example 5"):
        decode_spans([EXAMPLE], [f], [s], [s])
