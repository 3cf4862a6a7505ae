"""The Transformer's parts, named as in the notes and in "Attention Is All You Need" (Vaswani et al. 2017).

- `embeddings`: token embeddings, sinusoidal and learned positional encodings, segment embeddings (3.4-3.5)
- `attention`: padding and look-ahead masks (D2), packing, scaled dot-product and multi-head attention (3.2, D3)
- `transformer`: position-wise feed-forward (3.3), residual + LayerNorm (3.1, D4), encoder/decoder layers and stacks
- `losses`: label-smoothed cross-entropy (3.4 of the Transformer paper's training section)

Every name is importable from `bertforge.nn` directly.
"""
from bertforge.nn.attention import (
                                    KVCache,
                                    MultiHeadAttention,
                                    Packing,
                                    combine_masks,
                                    look_ahead_mask,
                                    padding_mask,
                                    scaled_dot_product_attention,
)
from bertforge.nn.embeddings import (
                                    LearnedPositionEmbedding,
                                    SegmentEmbedding,
                                    SinusoidalPositionalEncoding,
                                    TokenEmbedding,
                                    sinusoidal_positional_encoding,
)
from bertforge.nn.transformer import (
                                    Decoder,
                                    DecoderLayer,
                                    Encoder,
                                    EncoderLayer,
                                    PositionwiseFeedForward,
                                    ResidualLayerNorm,
)

__all__ = ["KVCache", "MultiHeadAttention", "Packing", "combine_masks", "look_ahead_mask", "padding_mask",
           "scaled_dot_product_attention", "LearnedPositionEmbedding", "SegmentEmbedding",
           "SinusoidalPositionalEncoding", "TokenEmbedding", "sinusoidal_positional_encoding", "Decoder",
           "DecoderLayer", "Encoder", "EncoderLayer", "PositionwiseFeedForward", "ResidualLayerNorm"]
