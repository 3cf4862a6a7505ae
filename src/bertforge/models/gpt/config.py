"""`GPTConfig`: the hyper-parameters of a decoder-only Transformer, with HF `GPT2Config`'s field names (D9).

The names are GPT-2's (`n_embd`, `n_layer`, `n_head`, ...), so a `config.json` written here is read by
`transformers.GPT2Config` and one written by HF is read here (D5). Keys this model does not use
(`summary_*`, `use_cache`, ...) are kept in `extra` and written back; the two GPT-2 options that change
the arithmetic in a way this model does not implement (`scale_attn_weights=False`,
`scale_attn_by_inverse_layer_idx=True`) are refused with a clear error instead of being ignored.

Presets, smallest first (d_k = n_embd / n_head):

    name        n_layer  n_embd  n_head  n_positions  about (with a 30522-word vocabulary)
    tiny              2      64       4          128    2.1M (tests, the copy task)
    small             4     256       4          256    11M  (BERT's "small" shape: the side-by-side runs)
    medium            6     384       6          512    22M  (MiniLM-L6's shape)
    gpt2-small       12     768      12         1024    110M (Radford et al. 2019's smallest; vocab 50257)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bertforge.errors import BertforgeError
from bertforge.fileio import atomic_write_json
from bertforge.nn.transformer import ACTIVATION_FUNCTIONS

MODEL_TYPE = "gpt2"
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
# GPT-2 options whose non-default value changes the arithmetic; we implement the defaults only.
_UNSUPPORTED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT (Radford et al. 2018, section 3.1; 2019, section 2.3)."""

    vocab_size: int = 50257
    n_positions: int = 1024  # context window: rows of the learned position table
    n_embd: int = 768  # d_model
    n_layer: int = 12  # N blocks
    n_head: int = 12  # h; d_k = n_embd / n_head
    n_inner: Optional[int] = None  # d_ff; None = 4 * n_embd (GPT-2)
    activation_function: str = "gelu_new"  # GPT-2's tanh approximation of GELU
    resid_pdrop: float = 0.1  # dropout on each sub-layer's output
    embd_pdrop: float = 0.1  # dropout on token + position embeddings
    attn_pdrop: float = 0.1  # dropout on attention probabilities
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bos_token_id: int = 50256  # prepended to prompts; GPT-2: <|endoftext|>; bertforge's LMs: [SEP]
    eos_token_id: int = 50256  # ends a document; generation stops there
    pad_token_id: Optional[int] = None  # for batched generation; None = eos_token_id
    tie_word_embeddings: bool = True  # lm_head.weight is wte.weight (Press & Wolf 2017)
    attn_implementation: str = "sdpa"  # D3
    extra: dict[str, Any] = field(default_factory=dict)  # other config.json keys, preserved

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise BertforgeError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                                 f"d_k = d_model / h; pick n_head among the divisors of {self.n_embd}")
        if self.activation_function not in ACTIVATION_FUNCTIONS:
            raise BertforgeError(f"activation_function must be one of {sorted(ACTIVATION_FUNCTIONS)}, "
                                 f"got {self.activation_function!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise BertforgeError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, "
                                 f"got {self.attn_implementation!r}")
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) <= 0:
                raise BertforgeError(f"{name} must be positive, got {getattr(self, name)}")
        for name, default in _UNSUPPORTED.items():
            if self.extra.get(name, default) != default:
                raise BertforgeError(f"config {name}={self.extra[name]!r} is not supported by bertforge's GPT "
                                     f"(only GPT-2's default {default!r})")

    @property
    def d_ff(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def pad_id(self) -> int:
        """The id written into padding positions (never attended to, never predicted)."""
        return self.pad_token_id if self.pad_token_id is not None else self.eos_token_id

    # ---- presets -------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """A named preset (see the module docstring) with field overrides, e.g. vocab_size."""
        if name not in GPT_PRESETS:
            raise BertforgeError(f"unknown GPT preset {name!r}; choose one of {list(GPT_PRESETS)}")
        return cls(**{**GPT_PRESETS[name], **overrides})

    # ---- config.json ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {**d.get("extra", {}), **{k: v for k, v in d.items() if k not in names and k != "extra"}}
        extra.pop("_attn_implementation", None)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(self.extra)
        d["model_type"] = MODEL_TYPE
        return d

    @classmethod
    def from_json(cls, path: str | Path) -> GPTConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no config.json at {path}: is this a model folder?") from None
        except json.JSONDecodeError as e:
            raise BertforgeError(f"{path} is not valid JSON: {e}") from None
        if d.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise BertforgeError(f"{path}: model_type is {d.get('model_type')!r}, expected {MODEL_TYPE!r} "
                                 f"(a GPT language model; BERT models load with the BERT commands)")
        return cls.from_dict(d)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())


GPT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, n_positions=128),
    "small": dict(n_layer=4, n_embd=256, n_head=4, n_positions=256),
    "medium": dict(n_layer=6, n_embd=384, n_head=6, n_positions=512),
    # Radford et al. 2019, table 2: the smallest GPT-2 (117M as published, 124M with the 50257 vocabulary).
    "gpt2-small": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257),
}
