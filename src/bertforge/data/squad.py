"""SQuAD-format extractive QA data: read the JSON, cut contexts into windows, label answer spans (D6).

    examples = read_squad("dev-v1.1.json")          # SQuAD v1.1 / v2.0, COVID-QA (no titles)
    features = examples_to_features(examples, tokenizer, max_seq_length=384, max_query_length=64,
                                    window_overlap=128, is_training=True)
    batch = collate(features[:32])                  # padded to the batch's longest window

Each feature (one window) reads `[CLS] question [SEP] context-window [SEP]` (Devlin et al. 2019, 4.2):
the question is cut to `max_query_length` tokens, and a context too long for the rest of
`max_seq_length` is covered by windows of W = max_seq_length - len(question) - 3 context tokens,
where consecutive windows SHARE `window_overlap` tokens (so they start W - window_overlap apart; HF
and Google call that step `doc_stride`). Context tokens carry their character span in the original
context (`offsets`), so an answer is always sliced from the original text, never detokenised.

Training labels are token positions in the window: the answer's first and last token, or [CLS]
(index 0) when the question is unanswerable or the answer is not wholly inside this window.
"""
from __future__ import annotations

import bisect
import json
import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from bertforge.fileio import open_text

__all__ = ["SquadExample", "SquadFeature", "read_squad", "examples_to_features", "answer_token_span",
           "locate_answer", "improve_answer_span", "max_context_flags", "window_starts", "collate",
           "length_bucketed_batches", "paragraph_negatives", "QAWindows"]


@dataclass
class SquadExample:
    """One question about one context. `answers` are {"text", "answer_start"} dicts (char offsets)."""

    qas_id: str
    question: str
    context: str
    answers: list[dict] = field(default_factory=list)
    is_impossible: bool = False  # SQuAD 2.0: no answer in the context
    title: str = ""  # the article title ("" for COVID-QA, which has none)


@dataclass
class SquadFeature:
    """One window of one example; every list has one entry per token (no padding: see `collate`)."""

    example_index: int  # index into the examples list given to examples_to_features
    window_index: int  # 0, 1, ... along the context
    input_ids: list[int]
    token_type_ids: list[int]  # 0 for [CLS] question [SEP], 1 for the context window and its [SEP]
    attention_mask: list[int]
    offsets: list[Optional[tuple[int, int]]]  # (start, end) char span in the context; None off-context
    token_is_max_context: list[bool]  # the token is decoded from this window (see max_context_flags)
    start_position: Optional[int] = None  # labels (is_training): answer tokens, or 0 ([CLS])
    end_position: Optional[int] = None
    context_start: int = 0  # index of the window's first context token (= len(question) + 2)
    token_start: int = 0  # index of that token among all the context's tokens


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def read_squad(source: Any) -> list[SquadExample]:
    """Examples from a SQuAD v1.1 / v2.0 / COVID-QA JSON file (a path) or its parsed object.

    v2.0 unanswerable questions have `is_impossible` true and no answers (`plausible_answers` are
    ignored). COVID-QA paragraphs carry a `document_id` and no article title: title is "".
    """
    name = "<json>"
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"SQuAD file not found: {source}")
        try:
            with open_text(source) as f:
                source = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{name}: not a JSON file ({e})") from None
    if not isinstance(source, dict) or not isinstance(source.get("data"), list):
        raise ValueError(f"{name}: not SQuAD-format JSON (expected an object with a 'data' list)")
    examples = []
    for a, article in enumerate(source["data"]):
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            try:
                context = paragraph["context"]
                qas = paragraph["qas"]
            except (KeyError, TypeError):
                raise ValueError(f"{name}: data[{a}].paragraphs[{p}] lacks 'context' or 'qas'") from None
            for qa in qas:
                try:
                    answers = [{"text": ans["text"], "answer_start": int(ans["answer_start"])}
                               for ans in qa.get("answers", [])]
                    examples.append(SquadExample(qas_id=str(qa["id"]), question=qa["question"], context=context,
                                                 answers=answers, title=title,
                                                 is_impossible=bool(qa.get("is_impossible", False))))
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(f"{name}: malformed question in data[{a}].paragraphs[{p}]: {e!r}") from None
    return examples


def paragraph_negatives(examples: Sequence[SquadExample], rate: float, seed: int = 0) -> list[SquadExample]:
    """Unanswerable twins, SQuAD 2.0 style: a question paired with ANOTHER paragraph of its own article.

    Each answerable question gets a twin with probability `rate` (seeded). The other paragraph is drawn
    from the same article (same topic, so the model cannot say "no answer" from the topic alone) among
    those that do not contain any of the question's answer texts (case-insensitive), so a twin is never
    secretly answerable by string match. Examples without a title (COVID-QA) or whose article has a
    single paragraph get none. Example: "Which NFL team represented the AFC at Super Bowl 50?" asked of
    the article's paragraph about the halftime show -> is_impossible=True, answers=[].
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = random.Random(seed)
    paragraphs: dict[str, list[str]] = {}
    for ex in examples:
        if ex.title and ex.context not in paragraphs.setdefault(ex.title, []):
            paragraphs[ex.title].append(ex.context)
    twins = []
    for ex in examples:
        if ex.is_impossible or not ex.title or rng.random() >= rate:
            continue
        texts = [a["text"].lower() for a in ex.answers]
        others = [c for c in paragraphs[ex.title] if c != ex.context and not any(t in c.lower() for t in texts)]
        if others:
            twins.append(SquadExample(qas_id=f"{ex.qas_id}-neg", question=ex.question, context=rng.choice(others),
                                      answers=[], is_impossible=True, title=ex.title))
    return twins


# ----------------------------------------------------------------------------------------------
# Answer spans
# ----------------------------------------------------------------------------------------------

def answer_token_span(offsets: Sequence[tuple[int, int]], char_start: int, char_end: int
                      ) -> Optional[tuple[int, int]]:
    """First and last token overlapping the characters [char_start, char_end), or None if none does.

    A token overlaps when it ends after char_start and starts before char_end, so an answer_start
    that points at the space before the answer, or an answer with trailing whitespace, still gets
    exactly the answer's tokens. A token cut by the span is included whole: "Japan" annotated
    inside "Japanese" maps to the token "japanese" (the model can only point at whole tokens).
    """
    first = bisect.bisect_right(offsets, char_start, key=lambda o: o[1])  # first token ending after char_start
    last = bisect.bisect_left(offsets, char_end, key=lambda o: o[0]) - 1  # last token starting before char_end
    return (first, last) if first <= last else None


def locate_answer(context: str, offsets: Sequence[tuple[int, int]], text: str, answer_start: int
                  ) -> Optional[tuple[int, int]]:
    """The answer's first and last token, preferring an occurrence of `text` that lines up with tokens.

    The annotated characters usually line up with token boundaries. When they cut a token, the
    label would teach the model a wrong span: in the rebuilt SQuAD dev files (squad/SOURCE.md) an
    ambiguous answer got the offset of its *first* occurrence, and the answer "8" then sits inside
    "18", whose token "18" would be the label. So when the annotated span cuts a token, the
    occurrence of `text` nearest to answer_start whose ends coincide with token ends is used
    instead; if there is none ("Japan" appearing only inside "Japanese") the covering tokens stay.
    Leading/trailing whitespace of the answer is ignored.
    """
    lead = len(text) - len(text.lstrip())
    core = text.strip()
    if not core:
        return None

    def aligned(char_start: int) -> Optional[tuple[int, int]]:
        span = answer_token_span(offsets, char_start, char_start + len(core))
        if span and offsets[span[0]][0] == char_start and offsets[span[1]][1] == char_start + len(core):
            return span
        return None

    start = answer_start + lead
    span = aligned(start)
    if span is not None:
        return span
    occurrences = []
    pos = context.find(core)
    while pos != -1:
        occurrences.append(pos)
        pos = context.find(core, pos + 1)
    for pos in sorted(occurrences, key=lambda p: abs(p - start)):
        span = aligned(pos)
        if span is not None:
            return span
    return answer_token_span(offsets, start, start + len(core))


def improve_answer_span(tokens: Sequence[str], start: int, end: int, answer_tokens: Sequence[str]
                        ) -> tuple[int, int]:
    """Shrink [start, end] to the tokens that spell the answer exactly, if such a sub-span exists.

    Google's `_improve_answer_span`. Google's spans start from whitespace-separated words, so for
    the context "(1895-1943)." and the answer "1895" the word span is all of "( 1895 - 1943 ) ." and
    this search finds "1895" inside it. Our spans come from character offsets (`answer_token_span`)
    and are already tight whenever the annotated characters line up with tokens, so here it is the
    safety net for spans that come from something coarser than the answer text (whole words, a
    sentence); it searches from the widest sub-span inwards, so the first exact match is the longest.
    """
    target = list(answer_tokens)
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if list(tokens[new_start:new_end + 1]) == target:
                return new_start, new_end
    return start, end


# ----------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------

def window_starts(n_tokens: int, window: int, overlap: int) -> list[int]:
    """First context token of each window of `window` tokens sharing `overlap` with the next one.

    With n_tokens=10, window=4, overlap=1 the windows are [0:4] [3:7] [6:10]; the last window may be
    shorter than `window` (it ends with the context).
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    step = window - overlap
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def max_context_flags(starts: Sequence[int], lengths: Sequence[int], n_tokens: int) -> list[list[bool]]:
    """For each window, whether each of its tokens has its *maximum context* in that window.

    Google's `_check_is_max_context`. A token seen by several overlapping windows is decoded from
    one only: the window where it has the most context on its nearest side, score =
    min(left, right) + 0.01 * window length (ties go to the earlier window). Example from
    run_squad.py: the words "the man went to the store and bought a gallon of milk" in the windows
    Span A: the man went to the
    Span B: to the store and bought
    Span C: and bought a gallon of
    "bought" has 4 left / 0 right context in B and 1 left / 3 right in C; the minimum is 0 in B and
    1 in C, so C is its max-context window. The length term breaks ties in favour of fuller windows.
    """
    best_score = [-1.0] * n_tokens
    best_window = [-1] * n_tokens
    for w, (start, length) in enumerate(zip(starts, lengths)):
        for pos in range(start, start + length):
            score = min(pos - start, start + length - 1 - pos) + 0.01 * length
            if score > best_score[pos]:
                best_score[pos], best_window[pos] = score, w
    return [[best_window[pos] == w for pos in range(start, start + length)]
            for w, (start, length) in enumerate(zip(starts, lengths))]


def _check_lengths(max_seq_length: int, max_query_length: int, window_overlap: int) -> None:
    for name, value in (("max_seq_length", max_seq_length), ("max_query_length", max_query_length),
                        ("window_overlap", window_overlap)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if max_query_length < 1:
        raise ValueError(f"max_query_length must be >= 1, got {max_query_length}")
    if window_overlap < 0:
        raise ValueError(f"window_overlap must be >= 0, got {window_overlap}")
    # The smallest window: a question of max_query_length tokens plus [CLS], [SEP], [SEP].
    min_window = max_seq_length - max_query_length - 3
    if min_window < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for context: it must be at least "
                         f"max_query_length ({max_query_length}) + 3 special tokens + 1 = {max_query_length + 4}")
    if window_overlap >= min_window:
        raise ValueError(f"window_overlap={window_overlap} must be smaller than the context window, which is "
                         f"{min_window} tokens for a question of max_query_length={max_query_length} "
                         f"(max_seq_length - max_query_length - 3)")


@dataclass(frozen=True)
class QAWindows:
    """How a context is cut into windows (D6), one value shared by training, evaluation and answering.

    max_seq_length: tokens per window, `[CLS] question [SEP] context [SEP]`; max_query_length: question
    tokens kept; window_overlap: context tokens shared by consecutive windows (HF's doc_stride is
    window - overlap). Checked on creation: QAWindows(384, 64, 300) -> ValueError (the overlap must be
    smaller than the 317-token context window).
    """

    max_seq_length: int = 384
    max_query_length: int = 64
    window_overlap: int = 128

    def __post_init__(self) -> None:
        _check_lengths(self.max_seq_length, self.max_query_length, self.window_overlap)

    def features(self, examples: Sequence[SquadExample], tokenizer: Any, is_training: bool = False
                 ) -> list[SquadFeature]:
        return examples_to_features(examples, tokenizer, self.max_seq_length, self.max_query_length,
                                    self.window_overlap, is_training=is_training)


def examples_to_features(examples: Sequence[SquadExample], tokenizer: Any, max_seq_length: int = 384,
                         max_query_length: int = 64, window_overlap: int = 128,
                         is_training: bool = False) -> list[SquadFeature]:
    """Cut every example into windows `[CLS] question [SEP] context-window [SEP]` (module docstring).

    With `is_training`, each feature gets start/end labels from the example's first answer (the
    answer tokens if the whole answer is in the window, else 0 = [CLS]; always 0 for unanswerable
    questions). An answer whose text is not at its answer_start is skipped with a warning (its
    example gets no features), as Google's run_squad.py does.
    """
    _check_lengths(max_seq_length, max_query_length, window_overlap)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    context_cache: dict[str, tuple[list[str], list[int], list[tuple[int, int]]]] = {}
    features: list[SquadFeature] = []
    skipped = 0
    for example_index, ex in enumerate(examples):
        q_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(ex.question)[:max_query_length])
        if ex.context not in context_cache:  # SQuAD asks ~5 questions per paragraph: tokenise it once
            c_tokens, c_offsets = tokenizer.tokenize_with_offsets(ex.context)
            context_cache[ex.context] = (c_tokens, tokenizer.convert_tokens_to_ids(c_tokens), c_offsets)
        c_tokens, c_ids, c_offsets = context_cache[ex.context]
        if not c_ids:
            raise ValueError(f"question {ex.qas_id}: the context has no tokens")

        answer_span = None  # (first, last) context token of the answer
        if is_training and not ex.is_impossible and ex.answers:
            answer = ex.answers[0]
            text, char_start = answer["text"], answer["answer_start"]
            if ex.context[char_start:char_start + len(text)] != text:
                warnings.warn(f"question {ex.qas_id}: answer {text!r} is not at answer_start {char_start}; skipped",
                              stacklevel=2)
                skipped += 1
                continue
            answer_span = locate_answer(ex.context, c_offsets, text, char_start)
            if answer_span is not None:
                answer_span = improve_answer_span(c_tokens, *answer_span, tokenizer.tokenize(text))

        window = max_seq_length - len(q_ids) - 3
        starts = window_starts(len(c_ids), window, window_overlap)
        lengths = [min(window, len(c_ids) - s) for s in starts]
        flags = max_context_flags(starts, lengths, len(c_ids))
        context_start = len(q_ids) + 2  # [CLS] question [SEP]
        for w, (start, length) in enumerate(zip(starts, lengths)):
            n = context_start + length + 1
            feature = SquadFeature(
                example_index=example_index, window_index=w,
                input_ids=[cls_id] + q_ids + [sep_id] + c_ids[start:start + length] + [sep_id],
                token_type_ids=[0] * context_start + [1] * (length + 1),
                attention_mask=[1] * n,
                offsets=[None] * context_start + c_offsets[start:start + length] + [None],
                token_is_max_context=[False] * context_start + flags[w] + [False],
                context_start=context_start, token_start=start)
            if is_training:
                feature.start_position = feature.end_position = 0  # [CLS]: no answer in this window
                if answer_span is not None and start <= answer_span[0] and answer_span[1] < start + length:
                    feature.start_position = context_start + answer_span[0] - start
                    feature.end_position = context_start + answer_span[1] - start
            features.append(feature)
    return features


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------

def collate(features: Sequence[SquadFeature], pad_to_multiple_of: Optional[int] = None,
            pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest feature (rounded up to `pad_to_multiple_of`): (B, T) long tensors
    input_ids, token_type_ids, attention_mask, plus start_positions / end_positions (B,) when the
    features carry labels."""
    if not features:
        raise ValueError("cannot collate an empty batch")
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
    T = max(len(f.input_ids) for f in features)
    if pad_to_multiple_of:
        T = -(-T // pad_to_multiple_of) * pad_to_multiple_of
    B = len(features)
    input_ids = torch.full((B, T), pad_token_id, dtype=torch.long)  # (B, T)
    token_type_ids = torch.zeros((B, T), dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
    for b, f in enumerate(features):
        n = len(f.input_ids)
        input_ids[b, :n] = torch.tensor(f.input_ids)
        token_type_ids[b, :n] = torch.tensor(f.token_type_ids)
        attention_mask[b, :n] = torch.tensor(f.attention_mask)
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
    if all(f.start_position is not None and f.end_position is not None for f in features):
        batch["start_positions"] = torch.tensor([f.start_position for f in features])  # (B,)
        batch["end_positions"] = torch.tensor([f.end_position for f in features])  # (B,)
    return batch


def length_bucketed_batches(features: Sequence[SquadFeature], batch_size: int,
                            seed: Optional[int] = None) -> list[list[int]]:
    """Feature indices in batches of similar length, so each batch pads only to its own longest.

    Sorted by length (ties in a random order when `seed` is given); the batches come shortest
    first: shuffle their order for training, keep it for inference and scatter results back by index.
    """
    from bertforge.data.batching import length_sorted_batches

    return length_sorted_batches([len(f.input_ids) for f in features], batch_size, seed)
