"""Train a WordPiece vocabulary (Wu et al. 2016; BERT's 30k vocab, Devlin et al. 2019) for bertforge.

The text is split into words by bertforge's own BasicTokenizer (so training sees exactly the words
the encoder will see, D1), and the merges are learned by the `tokenizers` library's WordPieceTrainer
(a BPE-style trainer that writes continuation pieces with the `##` prefix). Encoding stays ours:
load the result with `Tokenizer.from_vocab(out_path, lowercase=...)`.

The file lists the special tokens first, in the order given (by default [PAD]=0, [UNK]=1, [CLS]=2,
[SEP]=3, [MASK]=4; bert-base-uncased instead has [PAD]=0, [UNK]=100, ... after 99 [unused] slots),
then the alphabet and the learned pieces. The trainer breaks ties between equally frequent pairs in
hash order, so two runs on the same text can differ in a few low-frequency pieces: keep the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Union

from bertforge.fileio import atomic_write_text, open_text
from bertforge.tokenizer.tokenizer import SPECIAL_TOKENS, BasicTokenizer, Tokenizer, check_text

PathLike = Union[str, os.PathLike]


def _texts(files_or_iterator: Union[PathLike, Sequence[PathLike], Iterable[str]]) -> Iterator[str]:
    """A path or a list/tuple of paths -> their lines; any other iterable -> its strings."""
    if isinstance(files_or_iterator, (str, os.PathLike)):
        files_or_iterator = [files_or_iterator]
    if isinstance(files_or_iterator, (list, tuple)):
        paths = [Path(p) for p in files_or_iterator]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"training file not found: {p} (a list is read as file paths; "
                                        f"to train on in-memory texts pass an iterator, e.g. iter(texts))")
        for p in paths:
            with open_text(p) as f:
                yield from f
        return
    if isinstance(files_or_iterator, (bytes, bytearray)) or not hasattr(files_or_iterator, "__iter__"):
        raise TypeError(f"expected a path, a list of paths or an iterable of str, "
                        f"got {type(files_or_iterator).__name__}")
    for i, text in enumerate(files_or_iterator):
        yield check_text(text, f"training text {i}")


def train_vocab(files_or_iterator: Union[PathLike, Sequence[PathLike], Iterable[str]], vocab_size: int,
                out_path: PathLike, lowercase: bool = True, min_frequency: int = 2,
                special_tokens: Sequence[str] = SPECIAL_TOKENS, limit_alphabet: Union[int, None] = None,
                show_progress: bool = False) -> Path:
    """Learn a WordPiece vocabulary of at most `vocab_size` entries and write it (atomically) to
    `out_path`, one token per line. Returns `out_path`. The vocabulary may be smaller when the text
    has too few distinct pieces. `special_tokens` must include [PAD] [UNK] [CLS] [SEP] [MASK].
    `limit_alphabet` caps the single characters kept (each may also get a `##` twin); by default
    min(1000, a quarter of the room left after the special tokens), so the alphabet cannot crowd
    out the learned pieces or push the vocabulary past `vocab_size` (which raises ValueError)."""
    from tokenizers import Tokenizer as _RustTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    special_tokens = list(special_tokens)
    missing = [t for t in SPECIAL_TOKENS if t not in special_tokens]
    if missing or len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens must be distinct and include {list(SPECIAL_TOKENS)}; "
                         f"got {special_tokens}")
    if not isinstance(vocab_size, int) or vocab_size <= len(special_tokens):
        raise ValueError(f"vocab_size must be an int larger than the {len(special_tokens)} special tokens, "
                         f"got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 0:
        raise ValueError(f"min_frequency must be a non-negative int, got {min_frequency!r}")

    if limit_alphabet is None:
        limit_alphabet = min(1000, max(1, (vocab_size - len(special_tokens)) // 4))

    basic = BasicTokenizer(lowercase=lowercase, never_split=special_tokens)
    skip = set(special_tokens)

    def words() -> Iterator[str]:  # one line of space-separated words per input text
        for text in _texts(files_or_iterator):
            yield " ".join(w for w in basic.tokenize(text) if w not in skip)

    rust = _RustTokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    rust.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=special_tokens, limit_alphabet=limit_alphabet,
                                        continuing_subword_prefix="##", show_progress=show_progress)
    rust.train_from_iterator(words(), trainer=trainer)
    by_id = sorted(rust.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in by_id]
    if [i for _, i in by_id] != list(range(len(tokens))) or tokens[:len(special_tokens)] != special_tokens:
        raise RuntimeError("the trainer returned an unexpected vocabulary layout")
    if len(tokens) > vocab_size:
        raise ValueError(f"the alphabet alone gives {len(tokens)} entries > vocab_size={vocab_size}: "
                         f"lower limit_alphabet (now {limit_alphabet}) or raise vocab_size")
    Tokenizer(tokens, lowercase=lowercase, source=str(out_path))  # validates: no blanks, no duplicates
    atomic_write_text(out_path, "".join(t + "\n" for t in tokens))
    return Path(out_path)
