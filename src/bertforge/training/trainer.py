"""The one training loop (D10), for pre-training and every fine-tuning task alike.

Use it like this::

    from bertforge.training.trainer import TrainConfig, Trainer
    from bertforge.data.loader import ResumableLoader

    loader = ResumableLoader(dataset, batch_size=32, collate_fn=my_collate, seed=0)  # yields dicts
    def evaluate(model) -> dict[str, float]:       # optional; called on rank 0 in eval mode, no grad
        return {"accuracy": ...}
    config = TrainConfig(out_dir="runs/x", epochs=3, lr=5e-5, warmup_ratio=0.1, eval_every=200,
                         metric_for_best="accuracy", patience=3)
    trainer = Trainer(model, config, loader, eval_fn=evaluate,
                      save_hook=tokenizer.save_pretrained)  # optional: more files in each checkpoint
    trainer.train()                                # returns the list of logged metric records

The contract:
- The model's `forward(**batch)` returns an object with `.loss` (bertforge heads return `HeadOutput`):
  a batch is a dict of tensors whose keys are the model's keyword arguments, labels included.
- The loader yields such dicts. A `ResumableLoader` (bertforge.data.loader) makes resume exact and shards the
  data under DDP; any other iterable works but cannot resume its position (a warning says so).
- **Loss convention.** `.loss` is a mean over its micro-batch. With gradient accumulation (and DDP), each
  micro-batch's loss is weighted by its number of examples (dim 0), so the step's gradient is the
  gradient of the mean over all examples of the accumulated (and all-reduced) batch: 2 micro-batches of
  B/2 give the same step as one batch of B. For token-level losses (MLM) this is exact when micro-batches
  hold equal numbers of target tokens and an example-weighted average otherwise, as in HF's Trainer.
- AdamW with decay groups (no weight decay on biases and LayerNorm weights: every parameter with fewer
  than 2 dimensions); the optimiser and scheduler step once per accumulated batch; gradients are
  clipped to `clip_grad_norm`; `precision='bf16'` runs forward passes under autocast.
- Out-dir layout: `metrics.jsonl` (one JSON record per log / eval), `loss.png`, `checkpoint-<step>/`
  (model: `save_pretrained` layout for bertforge models, else `model.safetensors`; `trainer_state.pt`:
  optimiser, scheduler, step, data position, RNG states), `best/` when `metric_for_best` is set.
  Checkpoints are written to a temporary folder and renamed: a crash never leaves a half checkpoint.
- `resume=True` continues from the newest `checkpoint-*`: losses are the same as in an uninterrupted run.
- DDP: launch with `torchrun --nproc_per_node=N script.py`; the Trainer joins the process group (gloo on
  CPU, nccl on GPU), wraps the model, and only rank 0 logs and writes. Batch size is per process.
- A non-finite loss raises `NonFiniteLossError` before the optimiser step (the last checkpoint is intact).
- `Trainer.__init__` seeds python, numpy and torch with `config.seed` (dropout); build the model before.
- Pieces for custom loops: `train(until_step=k)` stops early (time-sliced jobs), `train_step(micro_batches)`
  does one optimiser step, `forward_backward(micro_batches)` only accumulates gradients, `evaluate()`,
  `save_checkpoint()`, `resume(path)`; `param_groups(model, wd)`, `plot_metrics(jsonl, png)`, `unwrap(model)`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from bertforge.errors import BertforgeError
from bertforge.inference import precision_context
from bertforge.training.callbacks import Callback, default_callbacks
from bertforge.training.schedules import SCHEDULES, make_scheduler
from bertforge.training.state import (
    STATE_NAME,
    claim_run_dir,
    list_checkpoints,
    load_model,
    plot_metrics,
    rng_state,
    save_model,
    set_rng_state,
    truncate_metrics,
)

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError", "init_distributed", "param_groups", "unwrap",
           "list_checkpoints", "plot_metrics", "STATE_NAME"]

logger = logging.getLogger("bertforge")



class NonFiniteLossError(ValueError):
    """The loss became NaN or inf; training stopped before the parameters were touched."""


@dataclass
class TrainConfig:
    """Everything the loop needs; batch size is the loader's business."""

    out_dir: str = "runs/train"
    max_steps: Optional[int] = None  # optimiser steps; default: epochs * steps per epoch
    epochs: float = 1.0
    lr: float = 1e-4  # peak learning rate (the factor for 'noam')
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-6  # BERT's
    warmup_steps: Optional[int] = None  # if None: warmup_ratio * max_steps
    warmup_ratio: float = 0.0
    schedule: str = "linear"  # 'linear' | 'constant' | 'noam'
    noam_d_model: Optional[int] = None
    clip_grad_norm: Optional[float] = 1.0
    grad_accum_steps: int = 1
    precision: str = "fp32"  # 'fp32' | 'bf16' (autocast)
    eval_every: int = 0  # steps; 0 = only at the end (if eval_fn is given)
    save_every: int = 0  # steps; 0 = only at the end
    keep_last: int = 2  # step checkpoints kept (best/ is separate)
    log_every: int = 10
    metric_for_best: Optional[str] = None  # a key of eval_fn's result
    greater_is_better: bool = True
    patience: Optional[int] = None  # stop after this many evals without improvement
    seed: int = 0
    resume: bool = False  # continue the run in out_dir from its newest checkpoint
    overwrite: bool = False  # delete a run already in out_dir (without resume or overwrite it is refused)
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:1' ...
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {self.keep_last}")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: continue the run, or start it afresh")


def init_distributed() -> tuple[int, int]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU.

    Returns (rank, world_size); (0, 1) in a plain process. Safe to call more than once, so a script can
    call it first (e.g. to let rank 0 alone prepare the data) and the Trainer again.
    """
    dist = torch.distributed
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the OS (glibc `malloc_trim`); False where there is no glibc.

    Varied-shape CPU training fragments glibc's heap; with the oneDNN cache bounded (see
    `bertforge/__init__.py`) trimming every `log_every` steps keeps the resident set flat: a bf16 linear
    layer run forward and backward on 300 different batch sizes ended at 1,022 MB without trimming and
    536 MB with it, at the same speed (MALLOC_MMAP_THRESHOLD_=65536 also held 537 MB but ran 40% slower).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices (weights, embeddings), none on biases and LayerNorm weights (ndim < 2)."""
    params = [p for p in model.parameters() if p.requires_grad]  # shared (tied) parameters appear once
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


class Trainer:
    """Runs `config` on `model` over `train_loader`; see the module docstring for the contract."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_loader: Iterable[dict[str, Any]],
                 eval_fn: Optional[Callable[[nn.Module], dict[str, float]]] = None,
                 save_hook: Optional[Callable[[Path], None]] = None, callbacks: Sequence[Callback] = ()):
        self.config, self.loader, self.eval_fn, self.save_hook = config, train_loader, eval_fn, save_hook
        self.callbacks = default_callbacks() + list(callbacks)
        self.out_dir = Path(config.out_dir)
        self._init_distributed()
        if self.is_main and not config.resume:
            claim_run_dir(self.out_dir, config.overwrite)
        random.seed(config.seed), np.random.seed(config.seed), torch.manual_seed(config.seed)
        self.model = model.to(self.device)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        kw = {"fused": True} if self.device.type in ("cuda", "cpu") else {}
        self.optimizer = torch.optim.AdamW(param_groups(unwrap(self.model), config.weight_decay), lr=config.lr,
                                           betas=config.adam_betas, eps=config.adam_eps, **kw)
        self.max_steps = config.max_steps or self._steps_from_epochs()
        warmup = config.warmup_steps if config.warmup_steps is not None else round(config.warmup_ratio
                                                                                   * self.max_steps)
        self.scheduler = make_scheduler(self.optimizer, config.schedule, warmup, self.max_steps, config.noam_d_model)
        self.step = 0
        self.best_metric: Optional[float] = None
        self.evals_without_improvement = 0
        self.log: list[dict[str, Any]] = []
        # Throughput of training alone (evaluation and checkpoint writing excluded), over this process's calls.
        self.train_tokens, self.train_seconds, self.train_cpu_seconds = 0, 0.0, 0.0
        if config.resume:
            self.resume()

    # ---- setup ---------------------------------------------------------------------------------
    def _init_distributed(self) -> None:
        self.rank, self.world_size = init_distributed()
        dev = self.config.device
        if dev == "auto":
            dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def _steps_from_epochs(self) -> int:
        try:
            n = len(self.loader)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError("the loader has no len(): set TrainConfig.max_steps") from None
        return max(1, math.ceil(self.config.epochs * n / self.config.grad_accum_steps))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- one optimiser step --------------------------------------------------------------------
    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def forward_backward(self, micro_batches: list[dict[str, Any]]) -> float:
        """Accumulate the gradient of the example-weighted mean loss over the micro-batches (and ranks).

        Returns that mean loss (identical on every rank). Raises NonFiniteLossError on NaN/inf.
        """
        weights = torch.tensor([float(_num_examples(b)) for b in micro_batches], dtype=torch.float64)
        total = weights.sum()
        if self.world_size > 1:
            total = total.to(self.device)
            torch.distributed.all_reduce(total)
            total = total.cpu()
        # DDP averages gradients over ranks, hence the world_size factor: sum_r sum_i w_i L_i / total.
        scale = weights * self.world_size / total
        autocast = precision_context(str(self.device), self.config.precision)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = self.model.no_sync() if self.world_size > 1 and not last else nullcontext()
            with sync:
                with autocast:
                    out = self.model(**self._to_device(batch))
                if getattr(out, "loss", None) is None:
                    raise TypeError(f"{type(unwrap(self.model)).__name__}.forward(**batch) returned no loss: "
                                    f"does the batch carry the labels? (keys: {sorted(batch)})")
                loss = out.loss.float()
                (loss * float(scale[i])).backward()
            loss_sum += loss.detach().double() * weights[i].item()
        if self.world_size > 1:
            torch.distributed.all_reduce(loss_sum)
        mean = float(loss_sum / total.item())
        if not math.isfinite(mean):
            last = list_checkpoints(self.out_dir)
            raise NonFiniteLossError(
                f"loss is {mean} at step {self.step + 1}: training stopped before the update. Last good "
                f"checkpoint: {last[-1] if last else 'none'}. Try a lower lr, fp32, or check the batch.")
        return mean

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """forward/backward over the micro-batches, clip, AdamW step, scheduler step."""
        self.model.train()
        lr = self.scheduler.get_last_lr()[0]
        loss = self.forward_backward(micro_batches)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.config.clip_grad_norm:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.clip_grad_norm))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"loss": loss, "lr": lr, "grad_norm": grad_norm}

    # ---- the loop ------------------------------------------------------------------------------
    def _micro_batches(self) -> Iterator[dict[str, Any]]:
        while True:  # epochs
            empty = True
            for batch in self.loader:
                empty = False
                yield batch
            if empty:
                raise ValueError("the training loader yielded no batch")

    def train(self, until_step: Optional[int] = None) -> list[dict[str, Any]]:
        """Train to `max_steps` (or stop early at `until_step`, e.g. to time-slice a job). Returns the log."""
        cfg = self.config
        stop = min(self.max_steps, until_step or self.max_steps)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._callback("on_train_begin")
        bar = None
        if self.is_main and cfg.progress and self.step < stop:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        stream, window, tokens, window_s = self._micro_batches(), [], 0, 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        stopped_early = False
        while self.step < stop and not stopped_early:
            micro = [next(stream) for _ in range(cfg.grad_accum_steps)]
            step_tokens = sum(_num_tokens(b) for b in micro) * self.world_size
            record = self.train_step(micro)
            tokens += step_tokens
            self.train_tokens += step_tokens
            window.append(record["loss"])
            if bar is not None:
                bar.update(1)
            stopped_early = bool(self._callback("on_step_end", record))
            step_s = time.perf_counter() - t0  # training time only: logging, evaluation and saving excluded
            window_s += step_s
            self.train_seconds += step_s
            self.train_cpu_seconds += time.process_time() - c0
            if self.step % cfg.log_every == 0 or self.step == stop or stopped_early:
                record.update(loss=sum(window) / len(window), tokens_per_s=tokens / max(window_s, 1e-9),
                              elapsed_s=round(self.train_seconds, 1))
                self._log({"step": self.step, **record, **self._epoch()})
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                    tok_s=f"{record['tokens_per_s']:.0f}")
                self._callback("on_log", record)
                window, tokens, window_s = [], 0, 0.0
            at_end = self.step == self.max_steps
            if self.eval_fn is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or at_end):
                stopped_early = self.evaluate() or stopped_early
            if (cfg.save_every and self.step % cfg.save_every == 0) or at_end or stopped_early \
                    or self.step == stop:
                self.save_checkpoint()
            t0, c0 = time.perf_counter(), time.process_time()
        if bar is not None:
            bar.close()
        self._callback("on_train_end")
        return self.log

    def _callback(self, hook: str, *args: Any) -> bool:
        """Call `hook` on every callback (rank 0 only for writing hooks); True if any asked to stop."""
        if hook in ("on_save", "on_log", "on_evaluate") and not self.is_main:
            return False
        return any([bool(getattr(cb, hook)(self, *args)) for cb in self.callbacks])

    def _epoch(self) -> dict[str, Any]:
        state = getattr(self.loader, "state_dict", None)
        if state is None:
            return {}
        s = state()
        return {"epoch": round(s["epoch"] + s["batch_index"] / max(1, len(self.loader)), 4)}

    def evaluate(self) -> bool:
        """Run eval_fn on rank 0, log it, keep `best/`; returns True when patience is exhausted."""
        cfg, metrics = self.config, [None]
        if self.is_main:
            model = unwrap(self.model)
            model.eval()
            with torch.no_grad():
                metrics[0] = {k: float(v) for k, v in self.eval_fn(model).items()}
            model.train()
        if self.world_size > 1:
            torch.distributed.broadcast_object_list(metrics, src=0)
        result = metrics[0]
        self._log({"step": self.step, **{f"eval_{k}": v for k, v in result.items()}})
        self._callback("on_evaluate", result)
        if cfg.metric_for_best is None:
            return False
        if cfg.metric_for_best not in result:
            raise ValueError(f"metric_for_best={cfg.metric_for_best!r} is not among the eval metrics {sorted(result)}")
        value = result[cfg.metric_for_best]
        better = self.best_metric is None or (value > self.best_metric if cfg.greater_is_better
                                              else value < self.best_metric)
        if better:
            self.best_metric, self.evals_without_improvement = value, 0
            if self.is_main:
                self._write_checkpoint(self.out_dir / "best")
        else:
            self.evals_without_improvement += 1
        return cfg.patience is not None and self.evals_without_improvement >= cfg.patience

    def _log(self, record: dict[str, Any]) -> None:
        self.log.append(record)
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        loader_state = self.loader.state_dict() if hasattr(self.loader, "state_dict") else None
        return {"step": self.step, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "loader": loader_state, "rng": rng_state(),
                "best_metric": self.best_metric, "evals_without_improvement": self.evals_without_improvement,
                "config": asdict(self.config), "world_size": self.world_size}

    def _write_checkpoint(self, final: Path) -> None:
        """Write model + trainer state into a temporary folder, then swap it in with renames.

        A failed write (disk full, permissions) removes the temporary folder and raises one clear
        `BertforgeError`: the previous checkpoints are untouched and `resume` still works from them."""
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            save_model(unwrap(self.model), tmp)
            if self.save_hook is not None:  # e.g. the tokenizer beside the weights (D5)
                self.save_hook(tmp)
            torch.save(self._state(), tmp / STATE_NAME)
            for f in (p for p in tmp.rglob("*") if p.is_file()):  # a save_hook may write sub-folders
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
            shutil.rmtree(tmp, ignore_errors=True)
            kept = list_checkpoints(self.out_dir)
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise BertforgeError(f"could not write checkpoint {final} ({reason}); the last complete one, "
                                 f"{kept[-1] if kept else 'none'}, is intact: free some space and rerun with "
                                 f"--resume") from None
        old = final.with_name(f".{final.name}.old")
        if final.exists():  # only `best/` is ever replaced; step checkpoints are new names
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def save_checkpoint(self) -> Optional[Path]:
        """checkpoint-<step>/ (rank 0; other ranks write their RNG state beside it); keep the last k."""
        path = self.out_dir / f"checkpoint-{self.step}"
        if self.world_size > 1:  # each rank's RNG (dropout) state, so a DDP resume is exact too
            torch.distributed.barrier()
            if not self.is_main:
                torch.save(rng_state(), self.out_dir / f"rng-rank{self.rank}-{self.step}.pt")
            torch.distributed.barrier()
        if not self.is_main:
            return None
        if not path.exists():
            self._write_checkpoint(path)
            for r in range(1, self.world_size):
                os.replace(self.out_dir / f"rng-rank{r}-{self.step}.pt", path / f"rng-rank{r}.pt")
        for old in list_checkpoints(self.out_dir)[:-self.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        self._callback("on_save", path)
        return path

    def resume(self, path: Optional[str | Path] = None) -> None:
        """Restore model, optimiser, scheduler, RNG and data position from `path` or the newest checkpoint."""
        if path is None:
            found = list_checkpoints(self.out_dir)
            if not found:
                logger.warning("resume: no checkpoint in %s, starting from scratch", self.out_dir)
                return
            path = found[-1]
        path = Path(path)
        try:
            state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"cannot resume: {path / STATE_NAME} is missing") from None
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file
            raise ValueError(f"cannot resume: {path / STATE_NAME} is corrupt ({e})") from None
        if state.get("world_size", 1) != self.world_size:
            logger.warning("resume: checkpoint written with %s processes, running with %s: not exact",
                           state.get("world_size"), self.world_size)
        load_model(unwrap(self.model), path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as e:
            raise ValueError(f"cannot resume from {path}: the optimiser state does not fit this model ({e})") from None
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best_metric = state["step"], state["best_metric"]
        self.evals_without_improvement = state["evals_without_improvement"]
        if state["loader"] is not None and hasattr(self.loader, "load_state_dict"):
            self.loader.load_state_dict(state["loader"])
        else:
            logger.warning("resume: the loader's position was not restored (use bertforge.data.loader.ResumableLoader)")
        rng = state["rng"] if self.rank == 0 else torch.load(path / f"rng-rank{self.rank}.pt", weights_only=True)
        set_rng_state(rng)
        if self.is_main:  # the steps after this checkpoint will be trained (and logged) again
            truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
        logger.info("resumed from %s at step %d", path, self.step)


def _num_examples(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if torch.is_tensor(v) and v.dim() > 0:
            return v.size(0)
    raise TypeError("a batch must be a dict holding at least one tensor with a batch dimension")


def _num_tokens(batch: dict[str, Any]) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    if "input_ids" in batch:
        return batch["input_ids"].numel()
    return _num_examples(batch)
