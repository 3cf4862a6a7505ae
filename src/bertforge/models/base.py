"""One checkpoint protocol for every model family (D5): a folder with config.json + model.safetensors.

    model = MyModel.from_pretrained("runs/x/best")      # config.json -> config_class -> model -> weights
    model.save_pretrained("runs/x/copy", dtype=torch.float16)
    model.num_parameters()

A family subclasses `PreTrainedModel`, sets `config_class` (a dataclass config with `from_json`,
`from_dict`, `to_dict`) and builds itself from a config in `__init__(config)`. It may override the two
name hooks: `checkpoint_state()` (what is written, e.g. BERT renames to HF's parameter names) and
`load_weights(path)` (how a folder is read back, e.g. BERT maps HF names and initialises a missing head).
The defaults store the module's own names, tied matrices once, and load strictly. The Trainer saves and
resumes any `PreTrainedModel` through these same two hooks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from bertforge.fileio import atomic_path, atomic_write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class PreTrainedModel(nn.Module):
    """Base of every bertforge model: config + checkpoints (see the module docstring)."""

    config_class: ClassVar[type]
    config: Any

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters counted once (a tied matrix is one parameter)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def tie_weights(self) -> None:
        """Re-tie shared matrices after loading (families with tied embeddings override this)."""

    # ---- writing ---------------------------------------------------------------------------------
    def checkpoint_state(self, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
        """name -> CPU tensor to write; a tied matrix appears once, under its first name."""
        tensors: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for name, value in self.state_dict().items():
            ptr = value.untyped_storage().data_ptr()
            if ptr in seen and value.numel():
                continue
            seen.add(ptr)
            value = value.detach().to("cpu")
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[name.removeprefix("_orig_mod.")] = value.contiguous().clone()
        return tensors

    def config_dict(self) -> dict[str, Any]:
        """What config.json holds."""
        return self.config.to_dict()

    def save_pretrained(self, path: str | Path, dtype: Optional[torch.dtype] = None) -> None:
        """Write path/config.json + path/model.safetensors, each atomically (a crash leaves the old files)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = self.checkpoint_state(dtype)
        with atomic_path(path / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        atomic_write_json(path / CONFIG_NAME, self.config_dict())

    # ---- reading ---------------------------------------------------------------------------------
    def load_weights(self, path: str | Path) -> None:
        """Load path/model.safetensors into this model (names and shapes must match exactly)."""
        from safetensors.torch import load_model

        weights = Path(path) / WEIGHTS_NAME
        if not weights.exists():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
        try:
            load_model(self, str(weights), strict=True)
        except Exception as e:  # noqa: BLE001 - a truncated file, wrong names or shapes: one clear message
            raise ValueError(f"{weights} does not fit {type(self).__name__} ({path / CONFIG_NAME}): {e}") from None
        self.tie_weights()

    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides: Any):
        """Build the model from path/config.json (fields overridable) and load its weights; eval mode."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory {path} does not exist (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
        config = cls.config_class.from_json(path / CONFIG_NAME)
        if config_overrides:
            config = cls.config_class.from_dict({**config.to_dict(), **config_overrides})
        model = cls(config)
        model.load_weights(path)
        return model.eval()
