"""One switch for inference speed: device, precision (fp32 | bf16 | int8) and torch.compile.

    model = prepare_model(model, device="cpu", precision="bf16")
    with precision_context("cpu", "bf16"):
        out = model(**batch)

- **fp32**: the reference.
- **bf16**: `torch.autocast` with bfloat16: the matmuls run in bf16 (AMX / tensor cores), LayerNorm,
  softmax and the residual stream stay fp32. A bf16 copy of the weights was measured too (QA windows
  of XQuAD-en, MiniLM, 1 thread): no faster than autocast on this CPU (4.68 s vs 4.65 s) and it puts
  LayerNorm in bf16, so autocast is the mode (docs/inference.md has the accuracy cost).
- **int8**: dynamic quantization (`quantize_int8`): weights int8 per output channel, activations
  quantized per batch, CPU only. The FFN output projection (`w_2`) stays fp32: its input (the GELU of
  the 4x-wide layer) has outliers that 8-bit per-tensor activations cannot hold. Measured on 200 corpus
  sentences with all-MiniLM-L6-v2 (cosine of the sentence vectors to fp32): all layers per tensor (the
  usual recipe) mean 0.934 / min 0.886; per channel 0.974 / 0.944; per channel without w_2 0.987 / 0.973.
- **compile**: `torch.compile(model, dynamic=True)`; optional, never required. Checkpoints saved from a
  compiled model carry no `_orig_mod.` prefix (checkpoint.save strips it).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def check_device(device: str) -> torch.device:
    """A torch.device for 'cpu' / 'cuda' / 'cuda:N' / 'auto' (the GPU when there is one), with a clear
    error when CUDA is absent."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} was asked for but no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    return dev


def prepare_model(model: nn.Module, device: str = "cpu", precision: str = "fp32", compile: bool = False
                  ) -> nn.Module:
    """Move `model` to `device` in eval mode and apply `precision` (int8: quantize) and `compile`."""
    check_precision(precision)
    dev = check_device(device)
    model = model.to(dev).eval()
    if precision == "int8":
        if dev.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on the CPU only: use --precision bf16 on CUDA")
        model = quantize_int8(model)
    if compile:
        model = torch.compile(model, dynamic=True)
    return model


def quantize_int8(model: nn.Module, keep_fp32: tuple[str, ...] = ("w_2",)) -> nn.Module:
    """Dynamic int8 quantization of the linear layers (per-channel weights), except those whose name ends
    with one of `keep_fp32` (see the module docstring for why w_2 and the measured accuracy)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not name.endswith(keep_fp32)}
    with warnings.catch_warnings():  # torch.ao's notices about its planned move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def precision_context(device: str, precision: str) -> ContextManager:
    """bf16 autocast for 'bf16', nothing otherwise (fp32 runs as is; int8 lives in the quantized modules)."""
    if precision == "bf16":
        return torch.autocast(check_device(str(device)).type, dtype=torch.bfloat16)
    return nullcontext()


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it"):
    """A tqdm bar on stderr for a long inference loop: only when `enabled` and stderr is a terminal,
    shown after half a second (short jobs never draw one) and erased when done."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or not sys.stderr.isatty(),
                delay=0.5, leave=False, dynamic_ncols=True, file=sys.stderr)
