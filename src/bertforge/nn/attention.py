"""Masks (D2), packing, scaled dot-product and multi-head attention (Vaswani et al. 2017, section 3.2; D3).

Shapes: B batch, Q/K query/key lengths, D d_model, H heads, Dh d_k = D / H. Masks are boolean
"may attend" tensors broadcastable to (B, H, Q, K).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Masks (D2): boolean, True = may attend, broadcastable to (B, H, Q, K)
# ---------------------------------------------------------------------------------------------


def padding_mask(attention_mask: Tensor) -> Tensor:
    """(B, K) with 1 for real tokens, 0 for padding -> (B, 1, 1, K) bool: queries may attend to real keys."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, seq_len), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


def look_ahead_mask(q_len: int, k_len: Optional[int] = None, device: Optional[torch.device] = None) -> Tensor:
    """(Q, K) bool lower-triangular mask: query i may attend to keys j <= i + (K - Q).

    With a KV cache the Q new queries are the last Q of K positions, hence the offset K - Q.
    """
    k_len = q_len if k_len is None else k_len
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=k_len - q_len)


def combine_masks(*masks: Optional[Tensor]) -> Optional[Tensor]:
    """AND of the given masks (None means no constraint)."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


class Packing:
    """No work on padding: the real tokens of a padded batch, packed into one (N, D) matrix.

    Token-wise layers (embeddings, projections, FFN, LayerNorm) run on the N real tokens only, as in
    MosaicBERT / ModernBERT; attention, which mixes positions, scatters Q, K, V back to (B, T, ...)
    and runs with the padding mask. `pack` and `unpack` are a gather and a scatter by the mask.
    """

    def __init__(self, attention_mask: Tensor):  # (B, T), 1 = real token
        self.batch, self.seq_len = attention_mask.shape
        self.index = attention_mask.reshape(-1).nonzero().squeeze(1)  # (N,) flat positions of real tokens
        self.mask = padding_mask(attention_mask)  # (B, 1, 1, T)

    def pack(self, x: Tensor) -> Tensor:  # (B, T, ...) -> (N, ...)
        return x.reshape(self.batch * self.seq_len, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: Tensor) -> Tensor:  # (N, ...) -> (B, T, ...), zeros at padding
        out = x.new_zeros(self.batch * self.seq_len, *x.shape[1:])
        out.index_copy_(0, self.index, x)
        return out.view(self.batch, self.seq_len, *x.shape[1:])


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
    implementation: str = "sdpa",
) -> tuple[Tensor, Optional[Tensor]]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V  (Vaswani et al. 2017, eq. 1).

    q: (B, H, Q, Dh), k and v: (B, H, K, Dh), mask: bool broadcastable to (B, H, Q, K), True = may attend.
    Returns (output (B, H, Q, Dh), probabilities (B, H, Q, K) or None).

    Two paths (D3): "eager" computes the softmax explicitly and can return the probabilities; "sdpa"
    calls torch's fused kernel. Asking for probabilities requires "eager" (no silent fallback).
    A query row that may attend to nothing yields zeros, never NaN (D2): such rows are let attend
    everywhere (so the softmax is finite) and their output is zeroed afterwards.
    """
    empty_rows = None
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"attention mask must be bool (True = may attend), got {mask.dtype}")
        has_key = mask.any(dim=-1, keepdim=True)  # (B|1, H|1, Q|1, 1)
        if not bool(has_key.all()):
            empty_rows = ~has_key
            mask = mask | empty_rows

    if implementation == "sdpa":
        if need_weights:
            raise ValueError(
                "attention probabilities need the explicit path: set attn_implementation='eager' "
                "(the fused SDPA kernel does not return them)"
            )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        probs = None
    elif implementation == "eager":
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, H, Q, K)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=-1)
        if empty_rows is not None:
            probs = probs.masked_fill(empty_rows, 0.0)
        out = F.dropout(probs, p=dropout_p) @ v if dropout_p > 0 else probs @ v  # (B, H, Q, Dh)
        probs = probs if need_weights else None
    else:
        raise ValueError(f"unknown attention implementation {implementation!r}; use 'sdpa' or 'eager'")

    if empty_rows is not None:
        out = out.masked_fill(empty_rows, 0.0)
    return out, probs


class KVCache:
    """Keys and values of past positions for incremental decoding (one per attention layer).

    Self-attention appends the new position's K, V each step; cross-attention (`static=True`)
    computes the encoder's K, V once and reuses them.
    """

    def __init__(self, static: bool = False):
        self.static = static
        self.k: Optional[Tensor] = None  # (B, H, K, Dh)
        self.v: Optional[Tensor] = None

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k is None or self.static:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def reorder(self, index: Tensor) -> None:
        """Select batch rows (beam search keeps the surviving hypotheses)."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W_O, head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i).

    Vaswani et al. 2017, section 3.2.2. The h heads share one (D, D) projection per role, split into
    h slices of d_k = D / h (no per-head copies). Self-attention when `context` is None; otherwise
    cross-attention with K and V from `context` (the encoder output).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 implementation: str = "sdpa"):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.implementation = implementation
        # Q, K and V projections as one (D, 3D) matmul, set by bertforge.inference.prepack_bf16 (inference).
        self.w_qkv: Optional[nn.Module] = None

    def _self_qkv(self, x: Tensor) -> Tensor:  # (..., D) -> (..., 3D): [Q | K | V] of self-attention
        if self.w_qkv is not None:
            return self.w_qkv(x)
        return torch.cat([self.w_q(x), self.w_k(x), self.w_v(x)], dim=-1)

    def _split_heads(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, Dh)
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.d_k).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        context: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
        need_weights: bool = False,
        cache: Optional[KVCache] = None,
        packing: Optional[Packing] = None,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """x: (B, Q, D) queries; context: (B, K, D) or None; returns ((B, Q, D), probs (B, H, Q, K) or None).

        With `packing` (self-attention only), x is (N, D) real tokens and so is the output.
        """
        if packing is not None:
            if context is not None or cache is not None:
                raise ValueError("packed (unpadded) attention is for self-attention without a cache")
            qkv = packing.unpack(self._self_qkv(x))  # (B, T, 3D)
            q, k, v = (self._split_heads(t) for t in qkv.chunk(3, dim=-1))
            out, probs = scaled_dot_product_attention(
                q, k, v, packing.mask if mask is None else mask,
                dropout_p=self.dropout if self.training else 0.0,
                need_weights=need_weights, implementation=self.implementation)
            out = packing.pack(out.transpose(1, 2)).flatten(1)  # (N, D)
            return self.w_o(out), probs
        if context is None and cache is None and self.w_qkv is not None:  # self-attention, fused projections
            q, k, v = (self._split_heads(t) for t in self.w_qkv(x).chunk(3, dim=-1))
            out, probs = scaled_dot_product_attention(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0,
                                                      need_weights=need_weights, implementation=self.implementation)
            B, _, Q, _ = out.shape
            return self.w_o(out.transpose(1, 2).reshape(B, Q, self.num_heads * self.d_k)), probs
        q = self._split_heads(self.w_q(x))
        if cache is not None and cache.static and cache.k is not None:
            k, v = cache.k, cache.v  # cross-attention: encoder K, V computed on the first step
        else:
            src = x if context is None else context
            k, v = self._split_heads(self.w_k(src)), self._split_heads(self.w_v(src))
            if cache is not None:
                k, v = cache.update(k, v)
        out, probs = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout if self.training else 0.0,
            need_weights=need_weights, implementation=self.implementation,
        )
        B, _, Q, _ = out.shape
        out = out.transpose(1, 2).reshape(B, Q, self.num_heads * self.d_k)  # concat heads: (B, Q, D)
        return self.w_o(out), probs
