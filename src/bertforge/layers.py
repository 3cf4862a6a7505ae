"""The Transformer's parts, named as in the notes and in "Attention Is All You Need" (Vaswani et al. 2017).

Embeddings and positional encodings (section 3.4-3.5), scaled dot-product and multi-head attention
(section 3.2), masks (D2), the position-wise feed-forward network (section 3.3), residual + LayerNorm
(section 3.1, post-LN by default; pre-LN by flag, D4), encoder and decoder layers and stacks.

Shapes in comments: B batch, T/Q/K sequence lengths (query, key), D d_model, H heads, Dh d_k = D / H.
Masks are boolean "may attend" tensors broadcastable to (B, H, Q, K) (D2).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Embeddings and positional encodings
# ---------------------------------------------------------------------------------------------


class TokenEmbedding(nn.Embedding):
    """Token id -> vector: the embedding matrix (vocab_size, d_model) used as a look-up table.

    With `scale=True` the output is multiplied by sqrt(d_model), as in Vaswani et al. section 3.4.
    """

    def __init__(self, vocab_size: int, d_model: int, padding_idx: Optional[int] = None, scale: bool = False):
        super().__init__(vocab_size, d_model, padding_idx=padding_idx)
        self.scale = math.sqrt(d_model) if scale else 1.0

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) -> (B, T, D)
        x = super().forward(ids)
        return x * self.scale if self.scale != 1.0 else x


def sinusoidal_positional_encoding(max_len: int, d_model: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).

    Vaswani et al. 2017, section 3.5. Returns (max_len, d_model). An odd d_model gets one more sine.
    """
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (L, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = pos / torch.pow(10000.0, two_i / d_model)  # (L, ceil(D/2))
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding (no parameters) to token embeddings, then dropout."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # (B, T, D) -> (B, T, D)
        T = x.size(1)
        if offset + T > self.pe.size(0):
            raise ValueError(f"sequence of length {offset + T} exceeds max_len {self.pe.size(0)}")
        return self.dropout(x + self.pe[offset : offset + T].to(x.dtype))


class LearnedPositionEmbedding(nn.Embedding):
    """BERT's learned absolute positions: a (max_position_embeddings, D) table indexed by position."""

    def forward(self, position_ids: Tensor) -> Tensor:  # (B|1, T) -> (B|1, T, D)
        if position_ids.numel() and int(position_ids.max()) >= self.num_embeddings:
            raise ValueError(
                f"position {int(position_ids.max())} is out of range: this model has "
                f"{self.num_embeddings} positions (max sequence length)"
            )
        return super().forward(position_ids)


class SegmentEmbedding(nn.Embedding):
    """BERT's segment (token-type) embedding: sentence A = 0, sentence B = 1 (Devlin et al. 3.2)."""


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
            qkv = packing.unpack(torch.cat([self.w_q(x), self.w_k(x), self.w_v(x)], dim=-1))  # (B, T, 3D)
            q, k, v = (self._split_heads(t) for t in qkv.chunk(3, dim=-1))
            out, probs = scaled_dot_product_attention(
                q, k, v, packing.mask if mask is None else mask,
                dropout_p=self.dropout if self.training else 0.0,
                need_weights=need_weights, implementation=self.implementation)
            out = packing.pack(out.transpose(1, 2)).flatten(1)  # (N, D)
            return self.w_o(out), probs
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


# ---------------------------------------------------------------------------------------------
# Feed-forward, residual + LayerNorm, layers and stacks
# ---------------------------------------------------------------------------------------------

_ACT = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf) GELU, as in BERT
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2, applied to each position alike (Vaswani et al. 3.3).

    ReLU in the original Transformer, GELU in BERT; inner size d_ff (2048 / 3072).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if activation not in _ACT:
            raise ValueError(f"activation must be one of {sorted(_ACT)}, got {activation!r}")
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.act = _ACT[activation]
        self.dropout = nn.Dropout(dropout)  # inside the FFN (the Annotated Transformer's place); 0 in BERT

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        return self.w_2(self.dropout(self.act(self.w_1(x))))


class ResidualLayerNorm(nn.Module):
    """Residual connection + dropout + LayerNorm around a sub-layer (Vaswani et al. 5.4; D4).

    post-LN (default, both papers): LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN (norm_first=True):       x + Dropout(Sublayer(LayerNorm(x)))
    """

    def __init__(self, d_model: int, dropout: float = 0.0, eps: float = 1e-5, norm_first: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer) -> Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention, then the position-wise FFN, each wrapped in residual + LayerNorm."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, attn_dropout: float = 0.1,
                 activation: str = "relu", eps: float = 1e-5, norm_first: bool = False,
                 implementation: str = "sdpa"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, attn_dropout, implementation=implementation)
        self.attn_sublayer = ResidualLayerNorm(d_model, dropout, eps, norm_first)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, activation)
        self.ffn_sublayer = ResidualLayerNorm(d_model, dropout, eps, norm_first)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, need_weights: bool = False,
                packing: Optional[Packing] = None) -> tuple[Tensor, Optional[Tensor]]:
        """(B, T, D) -> (B, T, D), probs; or (N, D) -> (N, D) with `packing`."""
        probs = None

        def attend(h: Tensor) -> Tensor:
            nonlocal probs
            out, probs = self.self_attn(h, mask=mask, need_weights=need_weights, packing=packing)
            return out

        x = self.attn_sublayer(x, attend)
        x = self.ffn_sublayer(x, self.ffn)
        return x, probs


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention (K, V from the encoder output), then the FFN."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, attn_dropout: float = 0.1,
                 activation: str = "relu", eps: float = 1e-5, norm_first: bool = False,
                 implementation: str = "sdpa"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, attn_dropout, implementation=implementation)
        self.self_attn_sublayer = ResidualLayerNorm(d_model, dropout, eps, norm_first)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, attn_dropout, implementation=implementation)
        self.cross_attn_sublayer = ResidualLayerNorm(d_model, dropout, eps, norm_first)
        self.ffn = PositionwiseFeedForward(d_model, d_ff, activation)
        self.ffn_sublayer = ResidualLayerNorm(d_model, dropout, eps, norm_first)

    def forward(
        self,
        x: Tensor,  # (B, Q, D) target so far
        memory: Tensor,  # (B, S, D) encoder output
        self_mask: Optional[Tensor] = None,  # look-ahead (& target padding), (.., Q, Q+past)
        memory_mask: Optional[Tensor] = None,  # source padding, (B, 1, 1, S)
        self_cache: Optional[KVCache] = None,
        cross_cache: Optional[KVCache] = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Returns (B, Q, D), self-attention probs, cross-attention probs (probs only if need_weights)."""
        probs: dict[str, Optional[Tensor]] = {}

        def self_attend(h: Tensor) -> Tensor:
            out, probs["self"] = self.self_attn(h, mask=self_mask, need_weights=need_weights, cache=self_cache)
            return out

        def cross_attend(h: Tensor) -> Tensor:
            out, probs["cross"] = self.cross_attn(h, context=memory, mask=memory_mask,
                                                  need_weights=need_weights, cache=cross_cache)
            return out

        x = self.self_attn_sublayer(x, self_attend)
        x = self.cross_attn_sublayer(x, cross_attend)
        x = self.ffn_sublayer(x, self.ffn)
        return x, probs["self"], probs["cross"]


class Encoder(nn.Module):
    """A stack of N identical `EncoderLayer`s (a final LayerNorm when pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, **layer_kwargs) for _ in range(num_layers))
        norm_first = layer_kwargs.get("norm_first", False)
        self.final_norm = nn.LayerNorm(d_model, eps=layer_kwargs.get("eps", 1e-5)) if norm_first else None

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, output_hidden_states: bool = False,
                output_attentions: bool = False, packing: Optional[Packing] = None
                ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Returns (last hidden (B, T, D), [input, after layer 1, ...] if asked, [probs per layer] if asked).

        With `packing`, x and the hidden states are (N, D) real tokens (see `Packing`)."""
        hidden, attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                hidden.append(x)
            x, probs = layer(x, mask, need_weights=output_attentions, packing=packing)
            if output_attentions:
                attentions.append(probs)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if output_hidden_states:
            hidden.append(x)
        return x, hidden, attentions


class Decoder(nn.Module):
    """A stack of N identical `DecoderLayer`s (a final LayerNorm when pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, **layer_kwargs) for _ in range(num_layers))
        norm_first = layer_kwargs.get("norm_first", False)
        self.final_norm = nn.LayerNorm(d_model, eps=layer_kwargs.get("eps", 1e-5)) if norm_first else None

    def forward(self, x: Tensor, memory: Tensor, self_mask: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None, caches: Optional[list[tuple[KVCache, KVCache]]] = None,
                output_attentions: bool = False) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Returns (B, Q, D) and, if asked, [(self probs, cross probs) per layer]."""
        attentions = []
        for i, layer in enumerate(self.layers):
            self_cache, cross_cache = caches[i] if caches is not None else (None, None)
            x, p_self, p_cross = layer(x, memory, self_mask, memory_mask, self_cache, cross_cache,
                                       need_weights=output_attentions)
            if output_attentions:
                attentions.append((p_self, p_cross))
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, attentions
