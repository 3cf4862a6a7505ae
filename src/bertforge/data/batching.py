"""Batches for fine-tuning: unpadded features padded to the batch's longest member, and a length-bucketed
training order.

Features are dicts of plain lists (`input_ids`, `token_type_ids`, optional `labels`), one list per choice
for multiple choice. `pad_collate` turns a list of them into tensors: (B, T), or (B, C, T), padded only to
the longest sequence in the batch. `BucketedLoader` orders each epoch so similar lengths share a batch:
little compute is spent on padding, and the order is still a pure function of (seed, epoch), so a resumed
run continues exactly (it is a `bertforge.data.loader.ResumableLoader`).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Optional

import torch

from bertforge.data import IGNORE_INDEX
from bertforge.data.loader import ResumableLoader


def length_sorted_batches(lengths: Sequence[int], batch_size: int, seed: Optional[int] = None) -> list[list[int]]:
    """Indices in batches of similar length, shortest first, so each batch pads only to its own longest:
    the one length-sorted batching of inference (classification, QA, embedding, translation) and of
    QA training. Ties keep input order, or a seeded random order when `seed` is given.

    Example: lengths [5, 2, 9, 2], batch_size 2 -> [[1, 3], [0, 2]]. Scatter results back by index.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed) if seed is not None else None
    order = sorted(range(len(lengths)), key=lambda k: (lengths[k], rng.random() if rng else k))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def feature_length(feature: dict[str, Any]) -> int:
    """Tokens in the feature's (longest) sequence."""
    ids = feature["input_ids"]
    return max(len(s) for s in ids) if ids and isinstance(ids[0], list) else len(ids)


def pad_collate(features: list[dict[str, Any]], pad_token_id: int = 0, pad_labels: bool = False
                ) -> dict[str, torch.Tensor]:
    """Unpadded features -> tensors padded to the batch's longest sequence: (B, T), or (B, C, T) when
    `input_ids` holds one list per choice. attention_mask marks real tokens; per-token labels (if
    `pad_labels`) are padded with -100."""
    nested = isinstance(features[0]["input_ids"][0], list)
    T = max(feature_length(f) for f in features)

    def pad(rows: list[list[int]], value: int) -> list[list[int]]:
        return [r + [value] * (T - len(r)) for r in rows]

    def field_(key: str, value: int, fn=lambda r: r) -> torch.Tensor:
        if nested:
            return torch.tensor([pad([fn(r) for r in f[key]], value) for f in features])
        return torch.tensor(pad([fn(f[key]) for f in features], value))

    batch = {"input_ids": field_("input_ids", pad_token_id),
             "token_type_ids": field_("token_type_ids", 0),
             "attention_mask": field_("input_ids", 0, lambda r: [1] * len(r))}
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        batch["labels"] = torch.tensor(pad(labels, IGNORE_INDEX) if pad_labels else labels)
    return batch


class BucketedLoader(ResumableLoader):
    """`ResumableLoader` whose per-epoch order groups similar lengths: the seeded permutation is cut into
    chunks of `bucket_batches` batches, each chunk sorted by length, and the full batches shuffled (the
    last, partial batch stays last). Still a pure function of (seed, epoch): resume stays exact."""

    def __init__(self, dataset: Sequence, lengths: Sequence[int], batch_size: int, bucket_batches: int = 50,
                 **kwargs: Any):
        super().__init__(dataset, batch_size, **kwargs)
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(dataset)} examples")
        self.lengths, self.bucket_batches = list(lengths), bucket_batches

    def _rank_indices(self, epoch: int) -> list[int]:
        order = super()._rank_indices(epoch)
        if not self.shuffle:
            return order
        bs, chunk = self.batch_size, self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for i in range(0, len(order), chunk):
            part = sorted(order[i:i + chunk], key=self.lengths.__getitem__)
            batches += [part[j:j + bs] for j in range(0, len(part), bs)]
        tail = [batches.pop()] if len(batches[-1]) < bs else []
        perm = torch.randperm(len(batches), generator=torch.Generator().manual_seed(self.seed + epoch + 1))
        return [i for b in [batches[k] for k in perm.tolist()] + tail for i in b]
