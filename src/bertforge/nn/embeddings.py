"""Token embeddings and positional encodings (Vaswani et al. 2017, sections 3.4-3.5; Devlin et al. 2019, 3.2)."""
from __future__ import annotations

import math
from typing import Optional

import torch
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
