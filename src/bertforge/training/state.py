"""What a training checkpoint holds and how it is read back (D10), and the metric curves of a run.

A checkpoint folder `checkpoint-<step>/` holds the model (`save_pretrained` layout for bertforge models,
else `model.safetensors`) and `trainer_state.pt` (optimiser, scheduler, step, data position, RNG states,
all loadable with `torch.load(weights_only=True)`). `Trainer` (train.py) writes and reads them.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

STATE_NAME = "trainer_state.pt"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete step checkpoints in `out_dir`, oldest first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := _CKPT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


RUN_FILES = ("metrics.jsonl", "loss.png", "cpu_time.json", "best")  # besides checkpoint-*/


def run_artifacts(out_dir: Path, task_files: Sequence[str] = ()) -> list[Path]:
    """What a training run wrote in `out_dir`: checkpoints, best/, the metrics log and plot, and the
    task's own `task_files` (e.g. pre-training's data/ and model/)."""
    if not out_dir.is_dir():
        return []
    named = [out_dir / name for name in (*RUN_FILES, *task_files) if (out_dir / name).exists()]
    return list_checkpoints(out_dir) + named


def claim_run_dir(out_dir: Path, overwrite: bool, task_files: Sequence[str] = ()) -> None:
    """Make `out_dir` ready for a NEW run, refusing to mix it with one already there.

    A folder holding a run (checkpoints, best/, metrics.jsonl, the task's `task_files`) is refused unless
    `overwrite`, which deletes exactly those files (nothing else of the user's). A file where a folder is expected, or a
    folder that cannot be written, is refused before any work is done.
    """
    from bertforge.errors import BertforgeError

    if out_dir.exists() and not out_dir.is_dir():
        raise BertforgeError(f"{out_dir} is a file, not a folder: choose another output folder")
    found = run_artifacts(out_dir, task_files)
    if found and not overwrite:
        last = list_checkpoints(out_dir)
        where = f" (last checkpoint: {last[-1].name})" if last else ""
        raise BertforgeError(f"{out_dir} already holds a training run{where}: continue it with --resume "
                             f"(resume=True), or start afresh with --overwrite (overwrite=True)")
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BertforgeError(f"cannot create the output folder {out_dir}: {e.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise BertforgeError(f"cannot write to the output folder {out_dir}: permission denied")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of steps after `step` from a metrics.jsonl (resuming trains them again), atomically."""
    from bertforge.fileio import atomic_write_text

    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def save_model(model: nn.Module, path: Path) -> None:
    """bertforge models (`PreTrainedModel`): `save_pretrained`; any other module: its state dict as safetensors."""
    from bertforge.models.base import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        model.save_pretrained(path)
    else:
        from safetensors.torch import save_model as st_save
        st_save(model, str(path / "model.safetensors"))


def load_model(model: nn.Module, path: Path) -> None:
    """Read back what `save_model` wrote."""
    from bertforge.models.base import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        model.load_weights(path)
        return
    from safetensors.torch import load_model as st_load
    try:
        st_load(model, str(path / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - any failure here is a bad checkpoint
        raise ValueError(f"cannot load model weights from {path}: {e}") from None


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and ints (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, _ = random.getstate()
    state = {"python": torch.tensor(internal, dtype=torch.int64), "python_version": version,
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": [int(pos), int(has_gauss), float(gauss)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"].tolist()), None))
    pos, has_gauss, gauss = state["numpy_pos"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> None:
    """Curves of a metrics.jsonl: losses (train, eval_*loss*) on the left; other eval metrics (accuracy,
    F1, ...; not perplexity) on the right when there are any. Written atomically."""
    from bertforge.errors import require

    require("matplotlib", "plots").use("Agg")
    import matplotlib.pyplot as plt

    from bertforge.fileio import atomic_path

    path = Path(metrics_path)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    if not train:
        return
    keys = sorted({k for r in records for k in r if k.startswith("eval_")})
    others = [k for k in keys if "loss" not in k and "perplexity" not in k]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(12 if others else 7, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(*zip(*train), label="train loss")
    for key in (k for k in keys if "loss" in k):
        ax.plot(*zip(*[(r["step"], r[key]) for r in records if key in r]), "o-", label=key)
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.legend(), ax.grid(alpha=0.3)
    if others:
        ax = axes[0, 1]
        for key in others:
            ax.plot(*zip(*[(r["step"], r[key]) for r in records if key in r]), "o-", label=key)
        ax.set_xlabel("step"), ax.set_ylabel("held-out metric"), ax.legend(), ax.grid(alpha=0.3)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
