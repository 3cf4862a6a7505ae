"""Token classification data: CoNLL-style files and word-piece label alignment (Devlin et al. 2019, 5.3).

A CoNLL-style file has one token per line, the token first and its tag last (CoNLL-2003: `EU NNP B-NP
B-ORG`, space-separated; WNUT-17: `@paulwalk<TAB>O`), a blank line between sentences, and optionally
`-DOCSTART-` lines between documents. Tags are IOB2 (`B-PER`, `I-PER`, `O`).

BERT sees word pieces, the labels belong to words. As in the paper, a word's label goes on its *first*
word piece and every other position ([CLS], [SEP], continuation pieces `##...`, padding) gets -100, which
the loss ignores. At prediction time each word takes the label predicted at its first piece.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertforge.data import IGNORE_INDEX  # noqa: F401 - re-exported
from bertforge.fileio import open_text


@dataclass
class TaggedSentence:
    words: list[str]
    tags: Optional[list[str]] = None  # None for unlabelled input
    guid: str = ""


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Every sentence of a CoNLL-style file (see the module doc); `-DOCSTART-` lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no CoNLL file at {path}")
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if words:
            sentences.append(TaggedSentence(list(words), list(tags), f"{path.stem}-{len(sentences)}"))
            words.clear(), tags.clear()

    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if fields[0] == "-DOCSTART-":
                flush()
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{n}: expected 'token ... tag', got {line!r}")
            tag = fields[-1].strip()
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise ValueError(f"{path}:{n}: tag {tag!r} is not IOB2 (O, B-TYPE or I-TYPE)")
            words.append(fields[0])
            tags.append(tag)
    flush()
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    return sentences


def tag_list(sentences: Sequence[TaggedSentence]) -> list[str]:
    """The tag set in a readable order: O first, then each type's B- and I- (B-LOC, I-LOC, B-MISC, ...)."""
    found = {t for s in sentences for t in (s.tags or [])}
    types = sorted({t[2:] for t in found if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I") if f"{p}-{t}" in found]


def align_labels(word_ids: Sequence[Optional[int]], word_labels: Sequence[int]) -> list[int]:
    """Word labels -> one label per word piece: the first piece of each word carries it, the rest -100.

    word_ids: per piece, the index of its word or None for special tokens (the tokenizer's `word_ids`).
    E.g. words ["EU", "rejects"] with labels [3, 0], pieces [CLS] eu rejects [SEP] -> [-100, 3, 0, -100];
    words ["Nadim", "Ladki"] -> [CLS] na ##dim lad ##ki [SEP] -> [-100, l0, -100, l1, -100, -100].
    """
    labels, previous = [], None
    for w in word_ids:
        if w is None or w == previous:
            labels.append(IGNORE_INDEX)
        else:
            labels.append(word_labels[w])
        previous = w
    return labels


def word_predictions(word_ids: Sequence[Optional[int]], piece_predictions: Sequence[int], num_words: int,
                     id2label: dict[int, str], default: str = "O") -> list[str]:
    """Piece predictions -> one tag per word, read at each word's first piece. Words with no piece (cut by
    truncation, or characters the tokenizer drops) get `default`, so the result has `num_words` tags."""
    tags = [default] * num_words
    previous = None
    for w, p in zip(word_ids, piece_predictions):
        if w is not None and w != previous:
            tags[w] = id2label[int(p)]
        previous = w
    return tags


def encode_tagged(tokenizer, sentences: Sequence[TaggedSentence], max_length: int,
                  label2id: dict[str, int]) -> tuple[list[dict[str, Any]], list[list[Optional[int]]]]:
    """Tokenise pre-split words: features (input_ids, token_type_ids, and aligned `labels` when tagged)
    and each sentence's `word_ids`, needed to map predictions back to words."""
    features, all_word_ids = [], []
    for s in sentences:
        enc = tokenizer.encode(s.words, is_split_into_words=True, max_length=max_length, truncation=True)
        word_ids = list(enc.word_ids)
        feature = {"input_ids": list(enc.input_ids), "token_type_ids": list(enc.token_type_ids)}
        if s.tags is not None:
            unknown = sorted({t for t in s.tags if t not in label2id})
            if unknown:
                raise ValueError(f"{s.guid}: unknown tags {unknown}; the model knows {sorted(label2id)}")
            feature["labels"] = align_labels(word_ids, [label2id[t] for t in s.tags])
        features.append(feature)
        all_word_ids.append(word_ids)
    return features, all_word_ids
