"""Learning-rate schedules (D10) as multipliers of the base learning rate, for `torch.optim.lr_scheduler.LambdaLR`.

`step` is the number of optimiser steps already taken (0 for the first step), as in HF's schedules:
- linear (BERT, Devlin et al. A.2): lr * step / warmup during warm-up, then linear decay to 0 at `total`;
- constant: lr after a linear warm-up;
- noam (Vaswani et al. 2017, eq. 3): lr = factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) with s = step + 1;
  the base lr is the `factor` (the Annotated Transformer uses 1.0 to 2.0).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

SCHEDULES = ("linear", "constant", "noam")


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def constant_warmup(step: int, warmup: int, total: int) -> float:
    return step / warmup if step < warmup else 1.0


def noam(step: int, warmup: int, total: int, d_model: int) -> float:
    s = step + 1
    return d_model ** -0.5 * min(s ** -0.5, s * max(1, warmup) ** -1.5)


def lr_lambda(name: str, warmup: int, total: int, d_model: int | None = None) -> Callable[[int], float]:
    """The multiplier function of schedule `name` (one of SCHEDULES)."""
    if name == "linear":
        return partial(linear_warmup_decay, warmup=warmup, total=total)
    if name == "constant":
        return partial(constant_warmup, warmup=warmup, total=total)
    if name == "noam":
        if not d_model:
            raise ValueError("the noam schedule needs d_model (TrainConfig.noam_d_model)")
        return partial(noam, warmup=warmup, total=total, d_model=d_model)
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup: int, total: int,
                   d_model: int | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(name, warmup, total, d_model))
