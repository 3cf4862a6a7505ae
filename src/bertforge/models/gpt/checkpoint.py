"""GPT checkpoints in HF GPT-2's layout (D5): config.json + model.safetensors with `GPT2LMHeadModel`'s names.

Our modules carry the notes' names and bertforge's parts; HF GPT-2 carries OpenAI's. Two differences
beyond renaming:

1. **Fused Q, K, V.** GPT-2 has one `attn.c_attn` projecting to [Q | K | V] (width 3D); bertforge's
   `MultiHeadAttention` has `w_q`, `w_k`, `w_v`. Loading cuts `c_attn` into three; saving concatenates.
2. **Conv1D is a transposed Linear.** OpenAI's `Conv1D` stores its weight as (in, out) and computes
   x @ W + b; `nn.Linear` stores (out, in) and computes x @ W^T + b. Every projection weight is
   transposed on the way in and out. Example, n_embd = 768: HF `attn.c_attn.weight` is (768, 2304);
   ours are three (768, 768) matrices, `w_q.weight = c_attn.weight[:, :768].T`.

    ours (GPTLMHeadModel)                                    HF GPT2LMHeadModel
    transformer.wte / transformer.wpe                        transformer.wte / transformer.wpe
    transformer.blocks.layers.{i}.attn_sublayer.norm         transformer.h.{i}.ln_1
    transformer.blocks.layers.{i}.self_attn.w_q|w_k|w_v      transformer.h.{i}.attn.c_attn   (fused, transposed)
    transformer.blocks.layers.{i}.self_attn.w_o              transformer.h.{i}.attn.c_proj   (transposed)
    transformer.blocks.layers.{i}.ffn_sublayer.norm          transformer.h.{i}.ln_2
    transformer.blocks.layers.{i}.ffn.w_1 / ffn.w_2          transformer.h.{i}.mlp.c_fc / mlp.c_proj (transposed)
    transformer.blocks.final_norm                            transformer.ln_f
    lm_head (tied to wte: not written)                       lm_head (tied to wte)

A base `GPTModel` checkpoint has the same names without `transformer.` (HF `GPT2Model`); either loads
into either class. Old HF checkpoints' attention-mask buffers (`attn.bias`, `attn.masked_bias`) are
skipped. A checkpoint that does not fit gets a `CheckpointMismatchError` naming every offending key.
"""
from __future__ import annotations

import re
from typing import Optional

import torch
from torch import Tensor

from bertforge.models.bert.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointMismatchError, read_state_dict

__all__ = ["hf_to_ours", "ours_to_hf", "is_hf_state_dict", "load_state_into", "hf_checkpoint_state", "read_state_dict",
           "CheckpointMismatchError", "CONFIG_NAME", "WEIGHTS_NAME"]

# Renames inside one block, (ours, HF); `transposed` marks Conv1D weights.
_BLOCK = [  # (our sub-name, HF sub-name, transposed weight)
    ("attn_sublayer.norm.", "ln_1.", False),
    ("self_attn.w_o.", "attn.c_proj.", True),
    ("ffn_sublayer.norm.", "ln_2.", False),
    ("ffn.w_1.", "mlp.c_fc.", True),
    ("ffn.w_2.", "mlp.c_proj.", True),
]
_QKV = ("w_q", "w_k", "w_v")
_OURS_BLOCK = re.compile(r"^(transformer\.)?blocks\.layers\.(\d+)\.(.+)$")
_HF_BLOCK = re.compile(r"^(transformer\.)?h\.(\d+)\.(.+)$")
_HF_BUFFERS = re.compile(r"\.attn\.(bias|masked_bias)$")


def is_hf_state_dict(state: dict[str, Tensor]) -> bool:
    """True when the keys are HF GPT-2's (`h.0.attn.c_attn.weight`), False for bertforge's."""
    return any(_HF_BLOCK.match(k) for k in state) or any(k.endswith("ln_f.weight") for k in state)


def _t(w: Tensor, transposed: bool) -> Tensor:
    return w.t().contiguous() if transposed and w.dim() == 2 else w


def hf_to_ours(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF GPT-2 names and Conv1D layouts -> bertforge names and nn.Linear layouts."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _HF_BUFFERS.search(key):
            continue
        m = _HF_BLOCK.match(key)
        if m is None:
            key = re.sub(r"^(transformer\.)?ln_f\.", r"\1blocks.final_norm.", key)
            out[key] = value
            continue
        prefix, i, rest = m.group(1) or "", m.group(2), m.group(3)
        base = f"{prefix}blocks.layers.{i}."
        if rest.startswith("attn.c_attn."):  # (D, 3D) weight / (3D,) bias -> three Linears
            kind = rest[len("attn.c_attn."):]
            if value.shape[-1] % 3:
                raise CheckpointMismatchError(f"{key}: fused Q|K|V of width {value.shape[-1]} is not divisible by 3")
            for name, part in zip(_QKV, value.chunk(3, dim=-1)):
                out[f"{base}self_attn.{name}.{kind}"] = _t(part, kind == "weight")
            continue
        for ours, hf, transposed in _BLOCK:
            if rest.startswith(hf):
                kind = rest[len(hf):]
                out[base + ours + kind] = _t(value, transposed and kind == "weight")
                break
        else:
            out[base + rest] = value  # unknown: reported as unexpected by the loader
    return out


def ours_to_hf(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """bertforge names and nn.Linear layouts -> HF GPT-2 names and Conv1D layouts (Q, K, V fused)."""
    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("_orig_mod.")  # torch.compile wrapper
        m = _OURS_BLOCK.match(key)
        if m is None:
            out[re.sub(r"^(transformer\.)?blocks\.final_norm\.", r"\1ln_f.", key)] = value
            continue
        prefix, i, rest = m.group(1) or "", m.group(2), m.group(3)
        base = f"{prefix}h.{i}."
        qm = re.match(r"^self_attn\.(w_q|w_k|w_v)\.(weight|bias)$", rest)
        if qm:
            qkv.setdefault(f"{base}attn.c_attn.{qm.group(2)}", {})[qm.group(1)] = value
            continue
        for ours, hf, transposed in _BLOCK:
            if rest.startswith(ours):
                kind = rest[len(ours):]
                out[base + hf + kind] = _t(value, transposed and kind == "weight")
                break
        else:
            out[base + rest] = value
    for key, parts in qkv.items():
        if set(parts) != set(_QKV):
            raise CheckpointMismatchError(f"{key}: need w_q, w_k and w_v, got {sorted(parts)}")
        kind = key.rsplit(".", 1)[1]
        out[key] = torch.cat([_t(parts[n], kind == "weight") for n in _QKV], dim=-1)
    return out


def _adapt_prefix(state: dict[str, Tensor], expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """Add or drop `transformer.` so a base checkpoint loads into an LM model and vice versa."""
    model_prefixed = any(k.startswith("transformer.") for k in expected)
    ckpt_prefixed = any(k.startswith("transformer.") for k in state)
    if model_prefixed and not ckpt_prefixed:
        return {(k if k == "lm_head.weight" else f"transformer.{k}"): v for k, v in state.items()}
    if ckpt_prefixed and not model_prefixed:
        return {k.removeprefix("transformer."): v for k, v in state.items() if k != "lm_head.weight"}
    return state


def load_state_into(model: torch.nn.Module, state: dict[str, Tensor]) -> None:
    """Load HF- or bertforge-named tensors into `model` (a GPTModel or GPTLMHeadModel); strict, with a
    `CheckpointMismatchError` listing missing, unexpected and misshapen keys (in HF's names)."""
    if is_hf_state_dict(state):
        state = hf_to_ours(state)
    expected = dict(torch.nn.Module.state_dict(model))
    state = _adapt_prefix(state, expected)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", True) else set()
    missing = [k for k in expected if k not in state and k not in tied]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        lines = [f"checkpoint does not match {type(model).__name__} ({model.config.n_layer} layers, "
                 f"n_embd {model.config.n_embd}, vocab {model.config.vocab_size}):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        lines.append("  (is config.json the one written with these weights?)")
        raise CheckpointMismatchError("\n".join(lines))
    with torch.no_grad():
        for k, v in state.items():
            if k in tied and k in expected and hasattr(model, "tie_weights"):
                continue  # tied: wte is the one stored matrix
            expected[k].copy_(v.to(expected[k].dtype))
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def hf_checkpoint_state(model: torch.nn.Module, dtype: Optional[torch.dtype] = None) -> dict[str, Tensor]:
    """What `save_pretrained` writes: HF GPT-2 names and layouts, CPU tensors, the tied `lm_head.weight`
    left out (HF's own convention; `transformers.GPT2LMHeadModel.from_pretrained(path)` re-ties it)."""
    state = {k: v.detach().to("cpu") for k, v in torch.nn.Module.state_dict(model).items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    tensors = {}
    for k, v in ours_to_hf(state).items():
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()
    return tensors
