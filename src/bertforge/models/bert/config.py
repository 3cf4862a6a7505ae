"""Dataclass configs with named presets (D9).

`BertConfig` uses the field names of HF's `config.json`, so a checkpoint directory moves both ways
between bertforge and HF transformers (D5). Unknown keys in a `config.json` (``architectures``,
``id2label``, ...) are kept in `extra` and written back on save.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertforge.fileio import atomic_write_json
from bertforge.nn.transformer import ACTIVATION_FUNCTIONS

ACTIVATIONS = tuple(ACTIVATION_FUNCTIONS)  # the names nn.transformer knows
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class BertConfig:
    """Hyper-parameters of a BERT encoder (Devlin et al. 2019, section 3)."""

    vocab_size: int = 30522
    hidden_size: int = 768  # d_model
    num_hidden_layers: int = 12  # N
    num_attention_heads: int = 12  # h; d_k = d_model / h
    intermediate_size: int = 3072  # d_ff
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02
    attn_implementation: str = "sdpa"  # D3: "sdpa" (fast) or "eager" (explicit, can return probabilities)
    norm_first: bool = False  # D4: post-LN by default
    extra: dict[str, Any] = field(default_factory=dict)  # other config.json keys, preserved

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): d_k = d_model / h"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {self.attn_implementation!r}"
            )
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be a token id in [0, {self.vocab_size}), got {self.pad_token_id}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ---- presets -------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BertConfig:
        """A named preset (`bert-base`, `bert-large`, `minilm-l6`, `small`, `tiny`) with overrides."""
        if name not in BERT_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(BERT_PRESETS)}")
        return cls(**{**BERT_PRESETS[name], **overrides})

    # ---- config.json ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        _check_types(cls, known)
        extra = {**d.get("extra", {}), **{k: v for k, v in d.items() if k not in names and k != "extra"}}
        if "_attn_implementation" in extra and "attn_implementation" not in known:
            extra.pop("_attn_implementation")
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(self.extra)
        d.setdefault("model_type", "bert")
        return d

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no config.json at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(d).__name__}")
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"{path}: model_type is {d.get('model_type')!r}, expected 'bert'")
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())


_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _check_types(cls: type, values: dict[str, Any]) -> None:
    """config.json values must have their field's type (an int where an int goes: no "12", no 12.5, no true)."""
    for f in dataclasses.fields(cls):
        kinds = _JSON_TYPES.get(str(f.type))
        if kinds is None or f.name not in values:
            continue
        v = values[f.name]
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise ValueError(f"{f.name} must be {_TYPE_NAMES[str(f.type)]}, got {v!r}")


BERT_PRESETS: dict[str, dict[str, Any]] = {
    # Devlin et al. 2019, section 3: BERT-BASE (L=12, H=768, A=12) and BERT-LARGE (L=24, H=1024, A=16).
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
    # all-MiniLM-L6-v2 / nreimers/MiniLM-L6-H384-uncased.
    "minilm-l6": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    # Trains on a laptop CPU (the pre-training benchmark's "small config").
    "small": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    # For tests: a few thousand parameters per layer.
    "tiny": dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=128),
}
