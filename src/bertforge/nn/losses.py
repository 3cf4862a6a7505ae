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

from typing import Union

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
