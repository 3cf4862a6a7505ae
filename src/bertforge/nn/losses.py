"""Training losses. Label-smoothed cross-entropy (Szegedy et al. 2016, section 7; Vaswani et al. 2017, 5.4).

The smoothed target puts 1 - eps on the true token and spreads eps uniformly over all K classes:

    q'(k) = (1 - eps) * [k == y] + eps / K
    loss  = -sum_k q'(k) log p(k) = (1 - eps) * (-log p(y)) + eps * mean_k(-log p(k))

log p comes from `log_softmax` of the logits, which is finite for finite logits: no probability is
ever rounded to 0 and then logged (the Annotated Transformer's KLDivLoss gets away with 0 * log 0 only
because PyTorch defines it as 0). Positions whose label is `ignore_index` (padding) contribute nothing
and are not counted in the mean. This is the same quantity as
`F.cross_entropy(..., label_smoothing=eps)`; written out so the formula is visible and testable.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def label_smoothed_cross_entropy(
    logits: Tensor,  # (..., K) unnormalised scores
    labels: Tensor,  # (...) class ids, `ignore_index` at padding
    epsilon: float = 0.1,
    ignore_index: int = -100,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Union[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Label-smoothed cross-entropy, averaged ("mean") or summed ("sum") over non-ignored positions.

    With `return_parts=True` returns (smoothed loss, plain NLL, number of counted tokens), the NLL
    reduced the same way (its exp is the perplexity). A batch with no counted token gives loss 0.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match: "
                         "expected logits (..., num_classes) and labels (...)")
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    log_p = F.log_softmax(logits.float(), dim=-1)  # (..., K), finite
    keep = labels.ne(ignore_index)  # (...)
    safe_labels = labels.masked_fill(~keep, 0)  # any valid index; these positions are zeroed below
    nll = -log_p.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)  # -log p(y), (...)
    uniform = -log_p.mean(dim=-1)  # mean_k -log p(k) = sum_k (1/K)(-log p(k)), (...)
    loss = (1.0 - epsilon) * nll + epsilon * uniform
    loss, nll = loss.masked_fill(~keep, 0.0).sum(), nll.masked_fill(~keep, 0.0).sum()
    n = keep.sum()
    if reduction == "mean":
        denom = n.clamp(min=1)
        loss, nll = loss / denom, nll / denom
    return (loss, nll, n) if return_parts else loss


# ---------------------------------------------------------------------------------------------
# Cross-entropy of a linear projection, chunked: the language-model head without its (N, V) logits
# ---------------------------------------------------------------------------------------------

_CHUNK_ELEMENTS = 1 << 23  # logits per chunk: 8M floats = 32 MB (274 rows of a 30522-word vocabulary)


class _LinearCrossEntropy(torch.autograd.Function):
    """mean_i CE(h_i W^T, y_i), with the gradients computed chunk by chunk during the forward pass.

    For the N rows of a chunk: z = h W^T (N, V); loss_i = logsumexp(z_i) - z_i[y_i];
    dL/dz = (softmax(z) - onehot(y)) / n_valid; dL/dh = dL/dz W; dL/dW += (dL/dz)^T h.
    Backward only multiplies the stored gradients by the incoming scalar.
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, labels: Tensor, ignore_index: int, dtype: torch.dtype,
                chunk: int) -> Tensor:
        keep = labels.ne(ignore_index)  # (N,)
        n_valid = keep.sum().clamp(min=1).to(torch.float32)
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        w = weight.to(dtype)  # (V, D) in the compute dtype (bf16 under autocast)
        grad_h = torch.empty_like(hidden) if need_grad else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), chunk):
            h = hidden[start:start + chunk].to(dtype)  # (n, D)
            y, k = labels[start:start + chunk], keep[start:start + chunk]
            z = (h @ w.t()).float()  # (n, V) logits, fp32 for the softmax
            safe_y = y.masked_fill(~k, 0)
            z_y = z.gather(1, safe_y[:, None]).squeeze(1)  # (n,) the target's logit
            m = z.amax(dim=-1, keepdim=True)  # (n, 1) for a stable exp
            e = z.sub_(m).exp_()  # exp(z - m), in place of z
            denom = e.sum(dim=-1)  # (n,)
            total += ((m.squeeze(1) + denom.log() - z_y) * k).sum()  # logsumexp(z) - z_y
            if need_grad:
                scale = k.to(e.dtype) / n_valid  # (n,) ignored rows: 0
                p = e.mul_((scale / denom)[:, None])  # softmax(z) * scale
                p[torch.arange(p.size(0), device=p.device), safe_y] -= scale
                g = p.to(dtype)
                grad_h[start:start + chunk] = (g @ w).to(hidden.dtype)
                grad_w += g.t() @ h  # (V, D), accumulated in fp32
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None, None, None


def linear_cross_entropy(hidden: Tensor, weight: Tensor, labels: Tensor, ignore_index: int = -100,
                         chunk_rows: Optional[int] = None) -> Tensor:
    """F.cross_entropy(hidden @ weight.T, labels) without materialising the (N, V) logits.

    hidden (N, D), weight (V, D) (a language-model head, e.g. the tied token embedding), labels (N,)
    with `ignore_index` for positions not to predict. Returns the mean over the counted positions (0 if
    none). Under CPU/CUDA autocast the matmuls run in the autocast dtype and the softmax in fp32, like
    autocast's own `cross_entropy`. Equal to the unfused formula (tests/models/gpt/test_gpt.py); what it saves is
    memory traffic: the unfused head writes (N, V) logits, an fp32 copy, their log-softmax and a
    gradient of the same size, e.g. 4 x 500 MB for a 16 x 256 batch and a 30522-word vocabulary, which
    on a CPU costs more than the matmul itself. (The same idea as Liger Kernel's fused linear
    cross-entropy and Wijmans et al. 2024, "Cut Your Losses in Large-Vocabulary Language Models".)
    """
    if hidden.dim() != 2 or labels.shape != hidden.shape[:1] or weight.dim() != 2 or weight.size(1) != hidden.size(1):
        raise ValueError(f"expected hidden (N, D), weight (V, D), labels (N,); got {tuple(hidden.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(labels.shape)}")
    device_type = hidden.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    chunk = chunk_rows or max(1, _CHUNK_ELEMENTS // weight.size(0))
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, labels, ignore_index, dtype, chunk)
