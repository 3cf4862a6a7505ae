"""Parallel text for translation: readers, token-count batching, detokenisation, and toy tasks.

- `read_parallel(src_file, tgt_file)`: any two aligned files (line i of one translates line i of the other).
- `multi30k(split, src_lang, tgt_lang)`: Multi30K task 1 (Elliott et al. 2016), raw (untokenised) files
  `task1/raw/{split}.{lang}` of ../shared/data/multi30k; splits train (29,000), val (1,014),
  test2016 (1,000), test2017, mscoco2017, test2018.
- `TokenBatchLoader`: batches holding at most `max_tokens` padded tokens (Vaswani et al. 5.1: "each
  training batch contained a set of sentence pairs containing approximately 25000 source tokens and
  25000 target tokens"), of sentences of similar length. Resumable and DDP-sharded with the same
  contract as `bertforge.data.loader.ResumableLoader` (state_dict / load_state_dict, len = batches per epoch).
- `detokenize(words)`: joins the words of BERT's basic tokenizer (which splits off every punctuation
  mark) back into running text, so sacreBLEU scores detokenised output against raw references.
- `toy_pairs(task, ...)`: the copy and reverse tasks, a model check that trains in a minute.

An example is a pair of id lists without special tokens; `TranslationCollator` adds them:
source `x_1..x_m EOS`, decoder input `BOS y_1..y_n`, labels `y_1..y_n EOS` (-100 at padding).
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from bertforge.data import IGNORE_INDEX  # noqa: F401 - re-exported
from bertforge.data.loader import ResumableLoader
from bertforge.fileio import open_text

Example = tuple[list[int], list[int]]  # (source ids, target ids), no special tokens

MULTI30K_SPLITS = {"train": "train", "val": "val", "test2016": "test_2016_flickr",
                   "test2017": "test_2017_flickr", "mscoco2017": "test_2017_mscoco", "test2018": "test_2018_flickr"}


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file, without their line ends."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open_text(path) as f:
        return [line.rstrip("\r\n") for line in f]


def read_parallel(src_file: str | os.PathLike, tgt_file: str | os.PathLike) -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs from two files with the same number of lines."""
    src, tgt = read_lines(src_file), read_lines(tgt_file)
    if len(src) != len(tgt):
        raise ValueError(f"{src_file} has {len(src)} lines but {tgt_file} has {len(tgt)}: "
                         "parallel files must be aligned line by line")
    return list(zip(src, tgt))


def default_multi30k_dir() -> Path:
    """../shared/data/multi30k beside the checkout (env BERTFORGE_DATA overrides the data folder)."""
    env = os.environ.get("BERTFORGE_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"
    return root / "multi30k"


def parallel_files(data_dir: str | os.PathLike, split: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
    """The two files of `split` in `data_dir`: Multi30K's layout (task1/raw/<name>.<lang>) or <split>.<lang>."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    raw = data_dir / "task1" / "raw"
    if raw.is_dir():
        if split not in MULTI30K_SPLITS:
            raise ValueError(f"unknown Multi30K split {split!r}; choose one of {sorted(MULTI30K_SPLITS)}")
        name, folder = MULTI30K_SPLITS[split], raw
    else:
        name, folder = split, data_dir
    src, tgt = folder / f"{name}.{src_lang}", folder / f"{name}.{tgt_lang}"
    for p in (src, tgt):
        if not p.is_file():
            raise FileNotFoundError(f"no {p.name} in {folder} (expected <split>.<lang> files, e.g. "
                                    f"train.{src_lang} and train.{tgt_lang})")
    return src, tgt


def multi30k(split: str, src_lang: str = "de", tgt_lang: str = "en",
             data_dir: Optional[str | os.PathLike] = None) -> list[tuple[str, str]]:
    """Multi30K task 1 sentence pairs of `split` (raw, cased, untokenised text)."""
    return read_parallel(*parallel_files(data_dir or default_multi30k_dir(), split, src_lang, tgt_lang))


# ---------------------------------------------------------------------------------------------
# Encoding, collation, batching by token count
# ---------------------------------------------------------------------------------------------


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """WordPiece ids of `text` without special tokens (bertforge `Tokenizer` API)."""
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


def encode_pairs(pairs: Sequence[tuple[str, str]], src_tokenizer: Any, tgt_tokenizer: Any,
                 max_len: Optional[int] = None) -> list[Example]:
    """Tokenise pairs; with `max_len`, drop pairs whose either side is longer (special tokens counted)."""
    out = []
    for src, tgt in pairs:
        ex = (encode_text(src_tokenizer, src), encode_text(tgt_tokenizer, tgt))
        if max_len is None or (len(ex[0]) + 1 <= max_len and len(ex[1]) + 1 <= max_len):
            out.append(ex)
    return out


@dataclass
class TranslationCollator:
    """Pads a list of examples into the model's keyword arguments (right padding)."""

    pad_token_id: int
    bos_token_id: int
    eos_token_id: int

    def source(self, sources: Sequence[list[int]]) -> dict[str, Tensor]:
        """input_ids (B, S) = x EOS, padded; attention_mask (B, S)."""
        seqs = [list(s) + [self.eos_token_id] for s in sources]
        S = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), S), self.pad_token_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            mask[i, :len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def __call__(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        batch = self.source([s for s, _ in examples])
        T = max(len(t) for _, t in examples) + 1
        dec = torch.full((len(examples), T), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
        for i, (_, t) in enumerate(examples):
            dec[i, :len(t) + 1] = torch.tensor([self.bos_token_id] + list(t), dtype=torch.long)
            labels[i, :len(t) + 1] = torch.tensor(list(t) + [self.eos_token_id], dtype=torch.long)
        return {**batch, "decoder_input_ids": dec, "labels": labels}


def token_batches(lengths: Sequence[int], max_tokens: int, seed: int = 0) -> list[list[int]]:
    """Group example indices into batches of similar length with at most `max_tokens` padded tokens.

    Examples are sorted by length (ties in a seeded random order), then cut greedily so that
    (number of examples) x (longest example) <= max_tokens: the padded size, what the batch costs.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    too_long = [n for n in lengths if n > max_tokens]
    if too_long:
        raise ValueError(f"{len(too_long)} examples are longer ({max(too_long)} tokens) than max_tokens "
                         f"{max_tokens}: raise max_tokens or filter long examples")
    tie = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], tie[i]))
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if current and longest_if_added * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


class TokenBatchLoader(ResumableLoader):
    """Token-count batches: fixed composition, order shuffled per epoch as a pure function of seed + epoch.

    A `ResumableLoader` whose batches are groups from `token_batches` instead of fixed-size slices, so
    it keeps that contract: iterating yields the rest of the current epoch, `state_dict()` is the
    position (epoch, batches consumed) and a resumed run sees exactly the batches it would have seen;
    rank and world size are read at iteration time. Under DDP rank r takes batches r, r + world_size,
    ... of each epoch (cut to a multiple of world_size, so every rank takes the same number of steps).
    """

    def __init__(self, examples: Sequence[Example], max_tokens: int, collate_fn: TranslationCollator,
                 shuffle: bool = True, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        super().__init__(examples, batch_size=1, collate_fn=collate_fn, shuffle=shuffle, seed=seed,
                         rank=rank, world_size=world_size)
        # +1 for the EOS on the source and the BOS/EOS on the target
        self.batches = token_batches([max(len(s), len(t)) + 1 for s, t in examples], max_tokens, seed)

    def __len__(self) -> int:
        return len(self.batches) // self.world_size

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if len(self) == 0:
            raise ValueError(f"{len(self.batches)} batches cannot feed {self.world_size} processes: "
                             "lower max_tokens")
        order = list(range(len(self.batches)))
        if self.shuffle:
            order = torch.randperm(len(order), generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        order = order[: len(self) * self.world_size]
        return [self.batches[i] for i in order[self.rank::self.world_size]]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        if self.batch_index >= len(self):  # the previous epoch was finished: start the next
            self.epoch, self.batch_index = self.epoch + 1, 0
        batches = self._epoch_batches(self.epoch)
        while self.batch_index < len(self):
            batch = self.collate_fn([self.dataset[i] for i in batches[self.batch_index]])
            self.batch_index += 1
            yield batch


# ---------------------------------------------------------------------------------------------
# Detokenisation: BERT's basic tokenizer splits off every punctuation mark; join them back
# ---------------------------------------------------------------------------------------------

_ATTACH_LEFT = set(".,!?;:%)]}…")  # "a dog ." -> "a dog."
_ATTACH_RIGHT = set("([{¿¡")  # "( left )" -> "(left)"
_ATTACH_BOTH = set("-/–@#")  # "T - shirt" -> "T-shirt", "and / or" -> "and/or"
_CLITICS = {"s", "t", "re", "ve", "ll", "d", "m", "S", "T", "RE", "VE", "LL", "D", "M"}


def merge_wordpieces(tokens: Sequence[str]) -> list[str]:
    """["T", "-", "sh", "##irt"] -> ["T", "-", "shirt"]."""
    words: list[str] = []
    for tok in tokens:
        if tok.startswith("##") and words:
            words[-1] += tok[2:]
        else:
            words.append(tok)
    return words


def detokenize(words: Sequence[str]) -> str:
    """Join basic-tokenised words into text, undoing the split of punctuation.

    Rules (a small Moses detokeniser): closing marks attach left ("dog ." -> "dog."), opening
    brackets right, hyphens and slashes both ways ("T - shirt" -> "T-shirt"); an apostrophe attaches
    left and also right before a clitic ("man ' s" -> "man's", "don ' t" -> "don't"); straight double
    quotes alternate open/close; "3 . 5" and "1 , 000" between digits close up. The split is lossy
    (it cannot tell "A - B" from "A-B"), so a round trip of every reference is not exact (measured
    in docs/translation.md).
    """
    out = ""
    glue_next = False  # the previous word asked to attach the next one
    open_quote = False
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        prev = words[i - 1] if i else ""
        attach = glue_next
        glue_next = False
        if w in _ATTACH_LEFT:
            attach = True
            if w in ".," and prev[-1:].isdigit() and nxt[:1].isdigit():
                glue_next = True
        elif w in _ATTACH_RIGHT:
            glue_next = True
        elif w in _ATTACH_BOTH:
            attach, glue_next = True, True
        elif w == "'":
            attach = True
            glue_next = nxt in _CLITICS
        elif w == '"':
            if open_quote:
                attach = True
            else:
                glue_next = True
            open_quote = not open_quote
        out += w if (attach or not out) else " " + w
    return out


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids -> detokenised text (special tokens dropped)."""
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    tokens = tokenizer.convert_ids_to_tokens([i for i in ids if i not in special])
    return detokenize(merge_wordpieces(tokens))


# ---------------------------------------------------------------------------------------------
# Toy tasks
# ---------------------------------------------------------------------------------------------

TOY_TASKS = ("copy", "reverse")
TOY_SYMBOLS = [chr(c) for c in range(ord("a"), ord("z") + 1)]  # the toy vocabulary: one word per letter


def toy_sequences(task: str, n: int, num_symbols: int = 10, min_len: int = 3, max_len: int = 10,
                  seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """n random sequences over symbols 0..num_symbols-1 and their copy or reversal."""
    if task not in TOY_TASKS:
        raise ValueError(f"unknown toy task {task!r}; choose one of {TOY_TASKS}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = [rng.randrange(num_symbols) for _ in range(rng.randint(min_len, max_len))]
        out.append((x, list(x) if task == "copy" else x[::-1]))
    return out


def toy_pairs(task: str, n: int, num_symbols: int = 10, min_len: int = 3, max_len: int = 10,
              seed: int = 0) -> list[tuple[str, str]]:
    """The toy task as text ("c a f" -> "f a c"), so it runs through the same tokenizer and commands."""
    if not 1 <= num_symbols <= len(TOY_SYMBOLS):
        raise ValueError(f"num_symbols must be in [1, {len(TOY_SYMBOLS)}], got {num_symbols}")
    seqs = toy_sequences(task, n, num_symbols, min_len, max_len, seed)
    return [(" ".join(TOY_SYMBOLS[i] for i in x), " ".join(TOY_SYMBOLS[i] for i in y)) for x, y in seqs]


def exact_match(hypotheses: Sequence[Sequence[Any]], references: Sequence[Sequence[Any]]) -> float:
    """Fraction of hypotheses equal to their reference (token lists or strings)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / max(1, len(references))

