"""Position-wise feed-forward (3.3), residual + LayerNorm (3.1; D4), encoder and decoder layers and stacks
(Vaswani et al. 2017)."""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from bertforge.nn.attention import KVCache, MultiHeadAttention, Packing

# ---------------------------------------------------------------------------------------------
# Feed-forward, residual + LayerNorm, layers and stacks
# ---------------------------------------------------------------------------------------------

ACTIVATION_FUNCTIONS = {
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
        if activation not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_FUNCTIONS)}, got {activation!r}")
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.act = ACTIVATION_FUNCTIONS[activation]
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
                packing: Optional[Packing] = None, cache: Optional[KVCache] = None
                ) -> tuple[Tensor, Optional[Tensor]]:
        """(B, T, D) -> (B, T, D), probs; or (N, D) -> (N, D) with `packing`.

        With `cache` (a decoder-only model: this layer under a look-ahead mask is GPT's block), the
        new positions' K, V are appended to it and the queries attend to past + new keys."""
        probs = None

        def attend(h: Tensor) -> Tensor:
            nonlocal probs
            out, probs = self.self_attn(h, mask=mask, need_weights=need_weights, packing=packing, cache=cache)
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
                output_attentions: bool = False, packing: Optional[Packing] = None,
                caches: Optional[list[KVCache]] = None) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Returns (last hidden (B, T, D), [input, after layer 1, ...] if asked, [probs per layer] if asked).

        With `packing`, x and the hidden states are (N, D) real tokens (see `Packing`). With `caches`
        (one `KVCache` per layer; incremental decoding of a decoder-only model) x holds the new positions."""
        if caches is not None and len(caches) != len(self.layers):
            raise ValueError(f"got {len(caches)} KV caches for {len(self.layers)} layers: one per layer")
        hidden, attentions = [], []
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                hidden.append(x)
            x, probs = layer(x, mask, need_weights=output_attentions, packing=packing,
                             cache=caches[i] if caches is not None else None)
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
