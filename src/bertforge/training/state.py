"""What a training checkpoint holds and how it is read back (D10), and the metric curves of a run.

A checkpoint folder `checkpoint-<step>/` holds the model (`save_pretrained` layout for bertforge models,
else `model.safetensors`) and `trainer_state.pt` (optimiser, scheduler, step, data position, RNG states,
all loadable with `torch.load(weights_only=True)`). `Trainer` (train.py) writes and reads them.
"""
from __future__ import annotations

import json
import random
import re
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
    import matplotlib
    matplotlib.use("Agg")
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
