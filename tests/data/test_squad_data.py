"""SQuAD data: reading, windows, labels and batching (D6), against HF's run_qa featurisation
(BertTokenizerFast with stride = overlap), HF's copies of Google's helpers, and the real dev sets."""
from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertTokenizerFast
from transformers.data.processors import squad as hf_squad

from bertforge.data.squad import (
    SquadExample,
    collate,
    examples_to_features,
    improve_answer_span,
    length_bucketed_batches,
    locate_answer,
    max_context_flags,
    read_squad,
    window_starts,
)
from bertforge.metrics.squad import normalize_answer
from tests.helpers import require_data


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from bertforge.tokenizer.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    return BertTokenizerFast(str(minilm_dir / "vocab.txt"), do_lower_case=True)


def ex(context: str, question: str = "what?", answer: str | None = None, start: int | None = None, qid="q"):
    answers = []
    if answer is not None:
        answers = [{"text": answer, "answer_start": context.index(answer) if start is None else start}]
    return SquadExample(qas_id=qid, question=question, context=context, answers=answers,
                        is_impossible=answer is None)


def labelled_text(example: SquadExample, feature) -> str:
    return example.context[feature.offsets[feature.start_position][0]:feature.offsets[feature.end_position][1]]


# ----------------------------------------------------------------------------------------------- reading

def test_read_squad_formats():
    # Counts from squad/SOURCE.md and covid_qa/SOURCE.md.
    v1 = read_squad(require_data("squad", "dev-v1.1.json"))
    assert len(v1) == 10570 and sum(len(e.answers) for e in v1) == 34726
    assert v1[0].title == "Super_Bowl_50" and not v1[0].is_impossible
    assert all(e.context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
               for e in v1[:500] for a in e.answers)
    v2 = read_squad(require_data("squad", "dev-v2.0.json"))
    assert len(v2) == 11873 and sum(e.is_impossible for e in v2) == 5945
    assert all(not e.answers for e in v2 if e.is_impossible)
    covid = read_squad(require_data("covid_qa", "covid-qa-train.json"))
    assert len(covid) == 1417 and all(e.title == "" and isinstance(e.qas_id, str) for e in covid)


def test_read_squad_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_squad(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON"):
        read_squad(bad)
    bad.write_text(json.dumps({"version": "1.1"}))
    with pytest.raises(ValueError, match="'data'"):
        read_squad(bad)
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "q"}]}]}]}))
    with pytest.raises(ValueError, match="malformed question"):
        read_squad(bad)


# ----------------------------------------------------------------------------------------------- labels

def test_squad_v1_dev_answers_are_recoverable_from_labels(tokenizer):
    """The issue's bar: >= 99% of SQuAD v1.1 dev answers slice back (normalised) from their labels."""
    examples = read_squad(require_data("squad", "dev-v1.1.json"))
    features = examples_to_features(examples, tokenizer, 384, 64, 128, is_training=True)
    by_example = defaultdict(list)
    for f in features:
        by_example[f.example_index].append(f)
    recovered = labelled = 0
    for i, e in enumerate(examples):
        positives = [f for f in by_example[i] if f.start_position != 0]
        if not positives:
            continue  # the answer fits no window
        labelled += 1
        texts = {labelled_text(e, f) for f in positives}
        assert len(texts) == 1  # every window holding the answer labels the same characters
        recovered += normalize_answer(texts.pop()) == normalize_answer(e.answers[0]["text"])
    assert labelled >= 0.999 * len(examples)  # at 384/128 virtually every answer fits a window
    rate = recovered / labelled
    print(f"recoverable: {recovered}/{labelled} = {rate:.4f}")
    assert rate >= 0.99


def hf_run_qa_labels(enc, i, example, cls_id):
    """HF examples/pytorch/question-answering/run_qa.py, prepare_train_features (transcribed)."""
    input_ids, offsets, seq = enc["input_ids"][i], enc["offset_mapping"][i], enc.sequence_ids(i)
    cls_index = input_ids.index(cls_id)
    if not example.answers:
        return cls_index, cls_index
    start_char = example.answers[0]["answer_start"]
    end_char = start_char + len(example.answers[0]["text"])
    token_start_index = 0
    while seq[token_start_index] != 1:
        token_start_index += 1
    token_end_index = len(input_ids) - 1
    while seq[token_end_index] != 1:
        token_end_index -= 1
    if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
        return cls_index, cls_index
    while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
        token_start_index += 1
    while offsets[token_end_index][1] >= end_char:
        token_end_index -= 1
    return token_start_index - 1, token_end_index + 1


@pytest.mark.parametrize("max_seq_length, max_query_length, overlap", [(384, 64, 128), (96, 40, 30)])
def test_windows_and_labels_match_hf_run_qa(tokenizer, hf_tokenizer, max_seq_length, max_query_length, overlap):
    """Same windows as HF's fast tokenizer with stride=overlap (which *is* an overlap there), the same
    ids/segments/offsets, and the same labels wherever the annotation lines up with tokens."""
    examples = (read_squad(require_data("covid_qa", "covid-qa-dev.json"))[:12]
                + read_squad(require_data("squad", "dev-v1.1.json"))[:300]
                + [e for e in read_squad(require_data("squad", "dev-v2.0.json"))[:200]])
    features = examples_to_features(examples, tokenizer, max_seq_length, max_query_length, overlap, is_training=True)
    enc = hf_tokenizer([e.question for e in examples], [e.context for e in examples], truncation="only_second",
                       max_length=max_seq_length, stride=overlap, return_overflowing_tokens=True,
                       return_offsets_mapping=True, padding=False)
    assert len(features) == len(enc["input_ids"]) > len(examples)
    context_offsets = {e.context: tokenizer.tokenize_with_offsets(e.context)[1] for e in examples}

    def aligned(e) -> bool:  # the annotated characters start and end on token boundaries
        a = e.answers[0]
        offsets = context_offsets[e.context]
        return any(s == a["answer_start"] for s, _ in offsets) and \
            any(t == a["answer_start"] + len(a["text"]) for _, t in offsets)

    compared = hf_quirk = 0
    for i, f in enumerate(features):
        assert f.example_index == enc["overflow_to_sample_mapping"][i]
        assert f.input_ids == enc["input_ids"][i]
        assert f.token_type_ids == enc["token_type_ids"][i]
        assert f.offsets == [tuple(o) if s == 1 else None
                             for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i))]
        e = examples[f.example_index]
        if e.answers and not aligned(e):
            continue  # we move such answers to a token-aligned occurrence (locate_answer); HF keeps the cut token
        ref = hf_run_qa_labels(enc, i, e, hf_tokenizer.cls_token_id)
        if ref[0] > ref[1]:
            # run_qa's quirk: when the answer is the window's last context token, its start loop runs
            # on into the final [SEP] (offsets (0, 0)) and labels start = [SEP], after the end.
            assert f.start_position == f.end_position == ref[1] and ref[0] == len(f.input_ids) - 1
            hf_quirk += 1
            continue
        assert (f.start_position, f.end_position) == ref
        compared += 1
    answered = [e for e in examples if e.answers]
    assert sum(not aligned(e) for e in answered) < 0.1 * len(answered)
    assert compared > 0.8 * len(features) and hf_quirk < 0.01 * len(features)


def test_labels_for_answers_outside_the_window_and_unanswerable(tokenizer):
    words = [f"w{i}" for i in range(300)]
    context = " ".join(words)
    example = ex(context, "which word?", "w150 w151")
    features = examples_to_features([example, ex(context, "none?")], tokenizer, 64, 16, 20, is_training=True)
    mine = [f for f in features if f.example_index == 0]
    positives = [f for f in mine if f.start_position != 0]
    assert positives and all(labelled_text(example, f) == "w150 w151" for f in positives)
    for f in mine:  # a window without the whole answer is labelled [CLS] (index 0) on both ends
        toks = {o for o in f.offsets if o}
        answer_chars = (context.index("w150"), context.index("w151") + 4)
        inside = any(s == answer_chars[0] for s, _ in toks) and any(e == answer_chars[1] for _, e in toks)
        assert (f.start_position != 0) == inside
        if not inside:
            assert f.end_position == 0
    assert all(f.start_position == f.end_position == 0 for f in features if f.example_index == 1)
    # Without is_training there are no labels.
    assert all(f.start_position is None for f in examples_to_features([example], tokenizer, 64, 16, 20))


def test_locate_answer_moves_a_cut_annotation_to_an_aligned_occurrence(tokenizer):
    context = "In 1918 the 8 ships sailed."
    toks, offsets = tokenizer.tokenize_with_offsets(context)
    # "8" annotated inside "1918" (as the rebuilt dev files do for ambiguous answers) -> the standalone 8
    span = locate_answer(context, offsets, "8", context.index("1918") + 3)
    assert context[offsets[span[0]][0]:offsets[span[1]][1]] == "8"
    assert offsets[span[0]][0] == context.index(" 8 ") + 1
    # Only inside a larger token: the covering token is kept.
    context = "Japanese ships"
    toks, offsets = tokenizer.tokenize_with_offsets(context)
    span = locate_answer(context, offsets, "Japan", 0)
    assert context[offsets[span[0]][0]:offsets[span[1]][1]] == "Japanese"
    # Surrounding whitespace in the annotation is ignored.
    span = locate_answer(context, offsets, " ships ", 8)
    assert context[offsets[span[0]][0]:offsets[span[1]][1]] == "ships"


def test_misaligned_answer_is_skipped_with_a_warning(tokenizer):
    bad = SquadExample("q", "what?", "Denver Broncos", [{"text": "Panthers", "answer_start": 0}])
    with pytest.warns(UserWarning, match="not at answer_start"):
        features = examples_to_features([bad, ex("Denver Broncos", answer="Broncos")], tokenizer, is_training=True)
    assert {f.example_index for f in features} == {1}


# ----------------------------------------------------------------------------------------------- google's helpers

def test_improve_answer_span_matches_google(tokenizer):
    # Google's example: the word span "(1895-1943)." around the answer "1895".
    doc_tokens = tokenizer.tokenize("(1895-1943).")
    ours = improve_answer_span(doc_tokens, 0, len(doc_tokens) - 1, tokenizer.tokenize("1895"))
    assert doc_tokens[ours[0]:ours[1] + 1] == ["1895"]
    ref = hf_squad._improve_answer_span(doc_tokens, 0, len(doc_tokens) - 1, tokenizer, "1895")
    assert ours == ref
    doc_tokens = tokenizer.tokenize("the man went to the store and bought a gallon of milk")
    for answer in ("store", "a gallon", "bought a gallon of milk", "cow", "the"):
        for s, e in ((0, len(doc_tokens) - 1), (3, 9), (5, 5)):
            assert improve_answer_span(doc_tokens, s, e, tokenizer.tokenize(answer)) == \
                hf_squad._improve_answer_span(doc_tokens, s, e, tokenizer, answer)


def test_max_context_google_example():
    # "the man went to the store and bought a gallon of milk": spans A [0:5], B [3:8], C [6:11].
    flags = max_context_flags([0, 3, 6], [5, 5, 5], 12)
    bought = 7
    assert flags[1][bought - 3] is False and flags[2][bought - 6] is True


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200), window=st.integers(1, 40), data=st.data())
def test_windows_and_max_context_match_google(n, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    starts = window_starts(n, window, overlap)
    lengths = [min(window, n - s) for s in starts]
    flags = max_context_flags(starts, lengths, n)
    spans = [SimpleNamespace(start=s, length=ln) for s, ln in zip(starts, lengths)]
    for w, (s, ln) in enumerate(zip(starts, lengths)):
        assert flags[w] == [hf_squad._check_is_max_context(spans, w, p) for p in range(s, s + ln)]
    # coverage: every token in some window, and in exactly one as max-context
    owners = [sum(flags[w][p - s] for w, (s, ln) in enumerate(zip(starts, lengths)) if s <= p < s + ln)
              for p in range(n)]
    assert owners == [1] * n
    # consecutive windows share exactly `overlap` tokens, the last ends with the context
    for (s0, l0), (s1, _) in zip(zip(starts, lengths), zip(starts[1:], lengths[1:])):
        assert s0 + l0 - s1 == overlap
    assert starts[-1] + lengths[-1] == n and starts[0] == 0


@settings(max_examples=40, deadline=None)
@given(n_words=st.integers(1, 120), q_words=st.integers(0, 12), max_seq=st.integers(12, 60), data=st.data())
def test_features_cover_the_context(tokenizer, n_words, q_words, max_seq, data):
    max_query = data.draw(st.integers(1, max_seq - 4))
    overlap = data.draw(st.integers(0, max_seq - max_query - 4))
    context = " ".join(f"w{i}" for i in range(n_words))  # "w12" -> 2 tokens ("w", "##12") in MiniLM's vocab
    question = " ".join(["who"] * q_words)
    n_ctx = len(tokenizer.tokenize(context))
    feats = examples_to_features([ex(context, question)], tokenizer, max_seq, max_query, overlap)
    q_len = min(q_words, max_query)
    window = max_seq - q_len - 3
    covered = set()
    for k, f in enumerate(feats):
        assert f.window_index == k and len(f.input_ids) <= max_seq
        assert f.context_start == q_len + 2 and f.input_ids[0] == tokenizer.cls_token_id
        assert f.input_ids[q_len + 1] == tokenizer.sep_token_id == f.input_ids[-1]
        n = len(f.input_ids) - f.context_start - 1
        covered.update(range(f.token_start, f.token_start + n))
        if k + 1 < len(feats):
            assert n == window and f.token_start + n - feats[k + 1].token_start == overlap
    assert covered == set(range(n_ctx))
    assert feats[-1].token_start + len(feats[-1].input_ids) - feats[-1].context_start - 1 == n_ctx


# ----------------------------------------------------------------------------------------------- offsets

def surface(token: str) -> str:
    return token[2:] if token.startswith("##") else token


def fold(text: str) -> str:
    """What an uncased BERT token spells for a piece of original text (lowercase, accents stripped)."""
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


@pytest.mark.parametrize("context, answer", [
    ("The game was in Santa   Clara,\tCalifornia  on   Feb 7.", "Santa   Clara,\tCalifornia"),
    ("Le café crème à Paris coûte 3 €, dit Anaïs Nin.", "Anaïs Nin"),
    ("Ｔｈｅ résumé of Ångström:  naïve façade.", "naïve façade"),
    ("東京大学は日本の大学です。 It is in 東京.", "日本の大学"),
    ("Mixed 北京 and  Zürich   and 서울 too", "Zürich   and 서울"),
])
def test_offsets_slice_the_original_text(tokenizer, context, answer):
    example = ex(context, "where is it?", answer)
    (f,) = examples_to_features([example], tokenizer, is_training=True)
    assert labelled_text(example, f) == answer  # sliced from the original: spaces, accents, CJK intact
    # Each token's span spells it (pieces of one character, e.g. Hangul jamo, share that character's span).
    spelled: dict[tuple[int, int], list[str]] = defaultdict(list)
    for tid, off in zip(f.input_ids, f.offsets):
        if off is not None:
            spelled[off].append(surface(tokenizer.convert_ids_to_tokens(tid)))
    assert list(spelled) == sorted(spelled)
    for (s, e), pieces in spelled.items():
        text = context[s:e]
        assert text and text == text.strip()
        if "[UNK]" not in pieces:
            assert "".join(pieces) == fold(text)
    assert sum("[UNK]" not in p for p in spelled.values()) >= 0.8 * len(spelled)


# ----------------------------------------------------------------------------------------------- batching

def test_collate_pads_to_the_longest_and_keeps_values(tokenizer):
    examples = [ex("Denver Broncos won the game", answer="Denver Broncos"),
                ex("a b c d e f g h i j k l m n o p", "question with more words?", answer="k l")]
    feats = examples_to_features(examples, tokenizer, is_training=True)
    batch = collate(feats)
    T = max(len(f.input_ids) for f in feats)
    assert batch["input_ids"].shape == (2, T) and batch["input_ids"].dtype == torch.long
    for b, f in enumerate(feats):
        n = len(f.input_ids)
        assert batch["input_ids"][b, :n].tolist() == f.input_ids
        assert batch["token_type_ids"][b, :n].tolist() == f.token_type_ids
        assert batch["attention_mask"][b].tolist() == [1] * n + [0] * (T - n)
        assert batch["input_ids"][b, n:].eq(0).all()
    assert batch["start_positions"].tolist() == [f.start_position for f in feats]
    assert collate(feats, pad_to_multiple_of=8)["input_ids"].shape[1] % 8 == 0
    assert "start_positions" not in collate(examples_to_features(examples, tokenizer))
    with pytest.raises(ValueError):
        collate([])


def test_length_bucketed_batches():
    feats = [SimpleNamespace(input_ids=[0] * n) for n in [5, 1, 9, 3, 3, 7, 2, 8, 4, 6]]
    batches = length_bucketed_batches(feats, 3, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(10))
    lengths = [[len(feats[i].input_ids) for i in b] for b in batches]
    assert [x for b in lengths for x in b] == sorted(x for b in lengths for x in b)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    with pytest.raises(ValueError):
        length_bucketed_batches(feats, 0)


# ----------------------------------------------------------------------------------------------- arguments

def test_argument_validation(tokenizer):
    e = [ex("Denver Broncos", answer="Broncos")]
    with pytest.raises(ValueError, match="leaves no room for context"):
        examples_to_features(e, tokenizer, max_seq_length=67, max_query_length=64)
    examples_to_features(e, tokenizer, max_seq_length=68, max_query_length=64, window_overlap=0)  # 1 token: fine
    with pytest.raises(ValueError, match="window_overlap=128 must be smaller"):
        examples_to_features(e, tokenizer, max_seq_length=128, max_query_length=64, window_overlap=128)
    with pytest.raises(ValueError, match="window_overlap must be >= 0"):
        examples_to_features(e, tokenizer, window_overlap=-1)
    with pytest.raises(ValueError, match="max_query_length"):
        examples_to_features(e, tokenizer, max_query_length=0)
    with pytest.raises(TypeError, match="max_seq_length must be an int"):
        examples_to_features(e, tokenizer, max_seq_length=384.0)
    with pytest.raises(ValueError, match="no tokens"):
        examples_to_features([ex("   ")], tokenizer)


def test_long_question_is_cut_to_max_query_length(tokenizer):
    question = " ".join(["why"] * 100)
    (f,) = examples_to_features([ex("Denver Broncos", question)], tokenizer, max_seq_length=64, max_query_length=10,
                                 window_overlap=20)
    assert f.context_start == 12 and f.input_ids[11] == tokenizer.sep_token_id
