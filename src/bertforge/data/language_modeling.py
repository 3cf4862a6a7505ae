"""Language-model data: a corpus as one stream of token ids, cut into equal blocks ("packed sequences").

    doc 1 sentences -> ids ... [SEP] doc 2 ids ... [SEP] doc 3 ...      one uint16 array on disk (tokens.npy)
    |<---- block 0 (T ids) ---->|<---- block 1 ---->| ...               item i = ids[i*T : (i+1)*T]

As GPT-2's WebText training and nanoGPT: documents are concatenated with an end-of-text token between
them ([SEP] with a BERT vocabulary, GPT-2's <|endoftext|>), and the stream is cut into blocks of the
context length, so no position is padding and every step sees B x T real tokens. A block may span two
documents; the end-of-text token tells the model where one stops. Labels are the input ids themselves:
the model shifts them (position t predicts t + 1, `causal_lm_loss`), as HF's `run_clm.py`, so a block
of T tokens trains T - 1 predictions. The final partial block is dropped.

The corpus format is the pre-training one (`bertforge.data.pretraining.read_documents`): UTF-8 text,
blank lines between documents, each file a new document. The stream is memory-mapped, so the corpus is
bounded by disk, not RAM, once tokenized.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertforge.errors import BertforgeError
from bertforge.fileio import atomic_path, atomic_write_json

TOKENS_NAME = "tokens.npy"
META_NAME = "meta.json"


def tokenize_documents(documents: Iterable[list[str]], tokenizer, eos_id: int) -> tuple[np.ndarray, int]:
    """Documents (lists of sentences) -> one id stream with `eos_id` after each document; (ids, documents)."""
    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32
    parts: list[np.ndarray] = []
    n_docs = 0
    for doc in documents:
        ids: list[int] = []
        for sentence in doc:
            ids += tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence))
        if ids:
            parts.append(np.asarray(ids + [eos_id], dtype=dtype))
            n_docs += 1
    if not parts:
        raise BertforgeError("the corpus is empty: no document with a token in it (check the files' encoding)")
    return np.concatenate(parts), n_docs


def build_lm_data(documents: Iterable[list[str]], tokenizer, out_dir: str | Path, eos_id: int,
                  **meta: Any) -> dict:
    """Tokenize `documents` into `out_dir/tokens.npy` (+ meta.json); returns the metadata."""
    from bertforge.data.pretraining import vocab_fingerprint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, n_docs = tokenize_documents(documents, tokenizer, eos_id)
    with atomic_path(out_dir / TOKENS_NAME) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, tokens)
    info = {"tokens": int(tokens.size), "documents": n_docs, "eos_id": eos_id, "vocab_size": tokenizer.vocab_size,
            "vocab_fingerprint": vocab_fingerprint(tokenizer), "dtype": tokens.dtype.name, **meta}
    atomic_write_json(out_dir / META_NAME, info)
    return info


class PackedBlocks:
    """Map-style dataset over a token stream: item i = {"input_ids": ids[i*T:(i+1)*T]} (int64, length T)."""

    def __init__(self, tokens: np.ndarray | str | Path, block_size: int):
        if block_size < 2:
            raise BertforgeError(f"block size must be >= 2 (a block of T tokens trains T - 1 predictions), "
                                 f"got {block_size}")
        if not isinstance(tokens, np.ndarray):
            path = Path(tokens)
            path = path / TOKENS_NAME if path.is_dir() else path
            if not path.exists():
                raise FileNotFoundError(f"no token stream at {path}: build it with build_lm_data")
            tokens = np.load(path, mmap_mode="r")
        self.tokens, self.block_size = tokens, block_size
        if len(self) == 0:
            raise BertforgeError(f"the corpus has {tokens.size} tokens, fewer than one block of {block_size}: "
                                 f"give more text or a smaller --block-size")

    def __len__(self) -> int:
        return self.tokens.size // self.block_size

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} out of range [0, {len(self)})")
        T = self.block_size
        return {"input_ids": np.asarray(self.tokens[i * T:(i + 1) * T], dtype=np.int64)}


def lm_collate(examples: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Blocks -> {"input_ids": (B, T), "labels": (B, T)}: labels are the ids (the model shifts them)."""
    ids = torch.from_numpy(np.stack([e["input_ids"] for e in examples]))
    return {"input_ids": ids, "labels": ids.clone()}


def data_key(files: Sequence[Path], **params: Any) -> str:
    """A fingerprint of the corpus files (path, size, mtime) and the parameters, to reuse a tokenized stream."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for f in files:
        st = Path(f).stat()
        h.update(f"{Path(f).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
