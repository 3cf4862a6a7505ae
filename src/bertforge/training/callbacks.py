"""Trainer callbacks: small objects the one loop calls at fixed points, instead of subclasses and wrapper loops.

    trainer = Trainer(model, config, loader, callbacks=[CpuBudget(3600)])

Hooks (all optional; each gets the Trainer): `on_train_begin`, `on_step_end(record)` (after each
optimiser step; return True to stop: the Trainer then writes a checkpoint, so a resumed run continues
exactly), `on_log(record)`, `on_evaluate(metrics)`, `on_save(path)`, `on_train_end`. `Trainer` always
adds `default_callbacks()`: heap trimming on CPU and the loss plot.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from bertforge.fileio import atomic_write_json

if TYPE_CHECKING:
    from bertforge.training.trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> Optional[bool]: ...

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_save(self, trainer: Trainer, path: Path) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class TrimHeap(Callback):
    """On a CPU, give glibc's free heap pages back to the OS at every log (see `release_free_memory`)."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.device.type == "cpu":
            from bertforge.training.trainer import release_free_memory

            release_free_memory()


class PlotMetrics(Callback):
    """Redraw out_dir/loss.png from metrics.jsonl at every checkpoint (rank 0; skipped with one warning
    when matplotlib, an optional extra, is not installed)."""

    warned = False

    def on_save(self, trainer: Trainer, path: Path) -> None:
        from bertforge.errors import BertforgeError
        from bertforge.training.state import plot_metrics

        try:
            plot_metrics(trainer.out_dir / "metrics.jsonl", trainer.out_dir / "loss.png")
        except BertforgeError as e:  # matplotlib is optional: the run goes on without its picture
            if not self.warned:
                logging.getLogger("bertforge").warning("no loss.png: %s", e)
                self.warned = True


class CpuBudget(Callback):
    """Stop once the run has used `seconds` of process CPU time, counted across resumes in
    out_dir/cpu_time.json (a fair budget on a shared machine, where wall time depends on the neighbours)."""

    FILE = "cpu_time.json"

    def __init__(self, seconds: float):
        if seconds <= 0:
            raise ValueError(f"the CPU budget must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.before, self.start = 0.0, time.process_time()

    def used(self) -> float:
        return self.before + time.process_time() - self.start

    def on_train_begin(self, trainer: Trainer) -> None:
        path = trainer.out_dir / self.FILE
        self.before = json.loads(path.read_text())["cpu_s"] if trainer.config.resume and path.exists() else 0.0
        self.start = time.process_time()

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> Optional[bool]:
        return self.used() >= self.seconds

    def on_save(self, trainer: Trainer, path: Path) -> None:
        atomic_write_json(trainer.out_dir / self.FILE, {"cpu_s": self.used()})


def default_callbacks() -> list[Callback]:
    return [TrimHeap(), PlotMetrics()]
