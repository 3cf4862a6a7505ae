"""A data loader whose position can be saved: exact resume (D10) and DDP sharding in one small class.

`ResumableLoader(dataset, batch_size, collate_fn)` walks a map-style dataset (`len` + `[i]`) in a
seeded permutation that is a pure function of (seed, epoch): epoch e visits
`torch.randperm(len(dataset), generator=seed + e)`. Its position is (epoch, batches consumed), so
`state_dict()` is three integers and a resumed loader yields exactly the batches the stopped one
would have yielded next.

Randomness inside batching (dynamic masking, D7) must be reproducible too. A `collate_fn` that accepts
a `seeds` keyword receives one integer per example, a hash of (seed, epoch, dataset index): the
masking of an example then depends neither on the batch it lands in nor on the number of processes,
so 1 process with batch 2B and 2 processes with batch B see the same masked examples.

Under DDP (`world_size > 1`) each rank takes every `world_size`-th index of the permutation, after
padding it (by wrapping around) to a multiple of `world_size`, as `torch.utils.data.DistributedSampler`
does; the union of the ranks' batch k is the single-process batch k of size `world_size * batch_size`.
Rank and world size are read when iterating (process group, else torchrun's RANK / WORLD_SIZE), so the
loader may be built before the Trainer joins the process group.
"""
from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

import numpy as np
import torch


def default_collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack a list of dicts of equal-shaped arrays/numbers into a dict of tensors."""
    if not examples or not isinstance(examples[0], dict):
        raise TypeError("default_collate expects a non-empty list of dicts; pass your own collate_fn")
    return {k: torch.as_tensor(np.stack([np.asarray(e[k]) for e in examples])) for k in examples[0]}


def example_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for (seed, epoch, index), independent of batching and rank."""
    ss = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index])
    lo, hi = (int(x) for x in ss.generate_state(2, dtype=np.uint32))
    return (lo | hi << 32) >> 1


class ResumableLoader:
    """Batches of `dataset` in a seeded per-epoch order, with a saveable position (see module doc).

    Iterating yields the rest of the current epoch; the next `iter()` starts the next epoch.
    `len(loader)` is the number of batches per epoch on this rank.
    """

    def __init__(self, dataset: Sequence, batch_size: int, collate_fn: Callable = default_collate,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty: nothing to load")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither (then they are read at iteration time)")
        if rank is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.dataset, self.batch_size, self.collate_fn = dataset, batch_size, collate_fn
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self._rank, self._world_size = rank, world_size
        try:
            self._wants_seeds = "seeds" in inspect.signature(collate_fn).parameters
        except (TypeError, ValueError):
            self._wants_seeds = False
        self.epoch, self.batch_index = 0, 0  # the position: batches of `epoch` already yielded

    # ---- DDP: rank and world size from the process group, else torchrun's environment ----------
    @staticmethod
    def _process_group() -> tuple[int, int]:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else self._process_group()[0]

    @property
    def world_size(self) -> int:
        return self._world_size if self._world_size is not None else self._process_group()[1]

    # ---- order -----------------------------------------------------------------------------
    def _rank_indices(self, epoch: int) -> list[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        else:
            order = list(range(n))
        per_rank = math.ceil(n / self.world_size)
        order += order[: per_rank * self.world_size - n]  # pad by wrapping (DistributedSampler)
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        per_rank = math.ceil(len(self.dataset) / self.world_size)
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        if self.batch_index >= len(self):  # the previous epoch was finished: start the next
            self.epoch, self.batch_index = self.epoch + 1, 0
        epoch, indices = self.epoch, self._rank_indices(self.epoch)
        while self.batch_index < len(self):
            idx = indices[self.batch_index * self.batch_size:(self.batch_index + 1) * self.batch_size]
            examples = [self.dataset[i] for i in idx]
            if self._wants_seeds:
                batch = self.collate_fn(examples, seeds=[example_seed(self.seed, epoch, i) for i in idx])
            else:
                batch = self.collate_fn(examples)
            self.batch_index += 1
            yield batch

    # ---- position --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed,
                "world_size": self.world_size, "dataset_len": len(self.dataset)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("dataset_len", len(self.dataset)) != len(self.dataset):
            raise ValueError(f"cannot resume the data position: the checkpoint's dataset had "
                             f"{state['dataset_len']} examples, this one has {len(self.dataset)}")
        if state.get("world_size", self.world_size) != self.world_size:
            raise ValueError(f"cannot resume the data position exactly: the checkpoint was written with "
                             f"{state['world_size']} processes, this run has {self.world_size}")
        self.epoch, self.batch_index, self.seed = state["epoch"], state["batch_index"], state["seed"]
