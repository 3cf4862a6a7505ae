"""One switch for inference speed: device, precision (fp32 | bf16 | int8) and torch.compile.

    model = prepare_model(model, device="cpu", precision="bf16")
    with precision_context("cpu", "bf16"):
        out = model(**batch)

- **fp32**: the reference.
- **bf16**: `torch.autocast` with bfloat16 (the matmuls in bf16; LayerNorm, softmax and the residual
  stream in fp32). On a CPU whose oneDNN has bf16 kernels (`onednn_bf16()`) the linear layers are also
  prepacked (`prepack_bf16`): weights cast to bf16 once and stored in oneDNN's blocked layout for the
  matrix units (AMX tiles where present), the FFN's exact GELU fused into the first projection, Q/K/V as
  one matmul. Same numerics as autocast (bf16 inputs and weights, fp32 accumulation, bf16 out); the
  gain is measured by benchmarks/bench_inference.py (bf16 vs bf16-autocast). A bf16 copy of the whole
  model is no faster and puts LayerNorm in bf16, so it is not a mode.
- **int8**: dynamic quantization (`quantize_int8`): weights int8 per output channel, activations
  quantized per batch, CPU only; on x86 oneDNN's int8 matmul (`QuantizedLinear`: AMX-int8 or VNNI),
  elsewhere torch.ao's `quantize_dynamic`. The FFN output projection (`w_2`) is not quantized: its input
  (the GELU of the 4x-wide layer) has outliers that 8-bit per-tensor activations cannot hold (measured:
  docs/inference.md). Where the CPU has bf16 matrix units (`int8_with_bf16()`) what is not quantized
  runs in bf16 (prepacked, under autocast), otherwise in fp32.
- **compile**: `torch.compile(model, dynamic=True)`; optional, never required. Checkpoints saved from a
  compiled model carry no `_orig_mod.` prefix (`models/base.PreTrainedModel.checkpoint_state` strips it).
"""
from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

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
    """Move `model` to `device` in eval mode and apply `precision` and `compile` (see the module docstring).

    bf16 on a CPU and int8 replace the linear layers in place: the prepared model is for inference (its
    state_dict no longer holds those weights as nn.Linear parameters); save the model you loaded."""
    check_precision(precision)
    dev = check_device(device)
    model = model.to(dev).eval()
    if precision == "int8":
        if dev.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on the CPU only: use --precision bf16 on CUDA")
        model = quantize_int8(model)
    if precision == "bf16" and dev.type == "cpu" and onednn_bf16():
        model = prepack_bf16(model)
    if compile:
        model = torch.compile(model, dynamic=True)
    return model


@functools.cache
def onednn_bf16() -> bool:
    """Whether oneDNN has bf16 matmul kernels on this CPU (AVX-512 BW/VL/DQ or newer; AMX is the fast one).

    Honours `ONEDNN_MAX_CPU_ISA`: with `AVX2` it is False and bf16 runs through autocast alone."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def cpu_matmul_units() -> str:
    """The CPU's matrix instructions that oneDNN may use, for reports: 'amx' (AMX-bf16 and AMX-int8 tiles),
    'avx512_bf16', 'avx512_vnni', 'avx512', 'avx2' or 'other'; capped by `ONEDNN_MAX_CPU_ISA` when set."""
    import os

    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        flags = set()
    levels = [("amx", {"amx_bf16", "amx_int8", "amx_tile"}), ("avx512_bf16", {"avx512_bf16"}),
              ("avx512_vnni", {"avx512_vnni"}), ("avx512", {"avx512bw", "avx512vl", "avx512dq"}), ("avx2", {"avx2"})]
    caps = {"AVX512_CORE_AMX": "amx", "AVX512_CORE_AMX_FP16": "amx", "AVX10_1_512_AMX": "amx",
            "AVX10_1_512_AMX_FP16": "amx", "AVX512_CORE_BF16": "avx512_bf16", "AVX512_CORE_FP16": "avx512_bf16",
            "AVX10_1_512": "avx512_bf16", "AVX512_CORE_VNNI": "avx512_vnni", "AVX512_CORE": "avx512",
            "AVX2_VNNI": "avx2", "AVX2_VNNI_2": "avx2", "AVX2": "avx2"}
    names = [name for name, _ in levels]
    cap = caps.get(os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper(), "amx")
    for name, needed in levels:
        if needed <= flags and names.index(name) >= names.index(cap):
            return name
    return "other"


class PackedLinear(nn.Module):
    """y = x W^T + b on oneDNN with W cast to bf16 once and stored in its blocked layout for the matrix
    units (AMX tiles on a CPU that has them), optionally with the exact (erf) GELU fused into the epilogue.

    The numerics of `torch.autocast(bfloat16)` around an `nn.Linear`: bf16 inputs and weights, fp32
    accumulation, a bf16 output; what autocast saves is the weight cast and the reorder of every call.
    (..., in) -> (..., out), any number of rows (the packed path's N varies batch to batch).
    """

    def __init__(self, linear: nn.Linear, activation: str = "none"):
        super().__init__()
        if activation not in ("none", "gelu"):
            raise ValueError(f"activation must be 'none' or 'gelu', got {activation!r}")
        self.in_features, self.out_features, self.activation = linear.in_features, linear.out_features, activation
        weight = linear.weight.detach().to(torch.bfloat16)  # (out, in)
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(weight), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (rows, in)
        y = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, self.activation, [],
                                               "none" if self.activation == "gelu" else "")
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _identity(x: Tensor) -> Tensor:
    return x


@torch.no_grad()
def prepack_bf16(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear of `model` (in place) with a `PackedLinear`; an FFN whose activation is
    the exact GELU gets it fused into its first projection, and self-attention's Q, K and V projections
    run as one (D, 3D) matmul (`MultiHeadAttention.w_qkv`). Run the model under `precision_context(
    'cpu', 'bf16')`, which keeps LayerNorm, softmax and the residual stream in fp32 as before."""
    import torch.nn.functional as F

    from bertforge.nn.attention import MultiHeadAttention
    from bertforge.nn.transformer import PositionwiseFeedForward

    for ffn in [m for m in model.modules() if isinstance(m, PositionwiseFeedForward)]:
        if ffn.act is F.gelu and type(ffn.w_1) is nn.Linear:
            ffn.w_1, ffn.act = PackedLinear(ffn.w_1, activation="gelu"), _identity
    for attn in [m for m in model.modules() if isinstance(m, MultiHeadAttention)]:
        parts = (attn.w_q, attn.w_k, attn.w_v)
        if all(type(w) is nn.Linear and w.bias is not None for w in parts):
            fused = nn.Linear(parts[0].in_features, sum(w.out_features for w in parts))
            fused.weight.copy_(torch.cat([w.weight for w in parts]))
            fused.bias.copy_(torch.cat([w.bias for w in parts]))
            attn.w_qkv = PackedLinear(fused)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, PackedLinear(child))
    return model


class QuantizedLinear(nn.Module):
    """y = x W^T + b with int8 weights (symmetric, one scale per output channel) and the activations
    quantized to uint8 per call (one scale and zero point per tensor, from its min and max), on oneDNN's
    int8 matmul: AMX-int8 tiles where the CPU has them, VNNI otherwise. Any float in; `out_dtype` out
    (bf16 when the rest of the model runs in bf16, see `int8_with_bf16`).

    The scheme of `torch.ao`'s per-channel dynamic quantization; the kernel is oneDNN's (`onednn.qlinear_*`).
    (..., in) -> (..., out).
    """

    def __init__(self, linear: nn.Linear, out_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features, self.out_dtype = linear.in_features, linear.out_features, out_dtype
        weight = linear.weight.detach().float()  # (out, in)
        scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)  # (out,)
        qweight = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("qweight", torch.ops.onednn.qlinear_prepack(qweight, None), persistent=False)
        self.register_buffer("w_scale", scale, persistent=False)
        self.register_buffer("w_zero_point", torch.zeros(self.out_features, dtype=torch.int64), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features).float()  # (rows, in)
        qx, x_scale, x_zero_point = _quantize_uint8(rows)
        y = torch.ops.onednn.qlinear_pointwise(qx, x_scale, x_zero_point, self.qweight, self.w_scale,
                                               self.w_zero_point, self.bias, 1.0, 0, self.out_dtype, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 -> {self.out_dtype}"


def _quantize_uint8(x: Tensor) -> tuple[Tensor, float, int]:
    """x -> (uint8 codes, scale, zero point) over x's range extended to include 0 (affine, per tensor)."""
    import warnings

    with warnings.catch_warnings():  # quantized tensors carry a deprecation notice; only the codes are kept
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor_dynamic(x, torch.quint8, False)
        return q.int_repr(), float(q.q_scale()), int(q.q_zero_point())


@functools.cache
def onednn_int8() -> bool:
    """Whether oneDNN's int8 matmul runs here (an x86 CPU; AMX-int8 or VNNI make it fast)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.onednn, "qlinear_pointwise"):
        return False
    try:
        QuantizedLinear(nn.Linear(8, 8))(torch.randn(2, 8))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def int8_with_bf16() -> bool:
    """Whether `--precision int8` runs what is not quantized (attention, LayerNorm, w_2) in bf16: on a CPU
    with bf16 matrix units (AMX, AVX512-BF16) that is faster than fp32 at no accuracy cost that counts."""
    return onednn_int8() and onednn_bf16() and cpu_matmul_units() in ("amx", "avx512_bf16")


@torch.no_grad()
def quantize_int8(model: nn.Module, keep_float: tuple[str, ...] = ("w_2",)) -> nn.Module:
    """Dynamic int8 quantization of the linear layers (per-channel weights), except those whose name ends
    with one of `keep_float` (see the module docstring for why w_2 and the measured accuracy).

    On oneDNN (`onednn_int8()`: x86) the layers become `QuantizedLinear` (in place), with bf16 outputs
    and the kept layers prepacked in bf16 when `int8_with_bf16()`; elsewhere torch.ao's
    `quantize_dynamic` (fbgemm / qnnpack kernels) quantizes a copy with the same scheme, in fp32."""
    if onednn_int8():
        out_dtype = torch.bfloat16 if int8_with_bf16() else torch.float32
        for prefix, module in list(model.named_modules()):
            for name, child in list(module.named_children()):
                if type(child) is nn.Linear and not f"{prefix}.{name}".endswith(keep_float):
                    setattr(module, name, QuantizedLinear(child, out_dtype))
        return prepack_bf16(model) if int8_with_bf16() else model
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not name.endswith(keep_float)}
    with warnings.catch_warnings():  # torch.ao's notices about its planned move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def precision_context(device: str, precision: str) -> AbstractContextManager:
    """bf16 autocast for 'bf16' (and for 'int8' where `int8_with_bf16()`), nothing otherwise: fp32 runs as
    is, int8 lives in the quantized modules."""
    if precision == "bf16" or (precision == "int8" and check_device(str(device)).type == "cpu" and int8_with_bf16()):
        return torch.autocast(check_device(str(device)).type, dtype=torch.bfloat16)
    return nullcontext()


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it"):
    """A tqdm bar on stderr for a long inference loop: only when `enabled` and stderr is a terminal,
    shown after half a second (short jobs never draw one) and erased when done."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or not sys.stderr.isatty(),
                delay=0.5, leave=False, dynamic_ncols=True, file=sys.stderr)
