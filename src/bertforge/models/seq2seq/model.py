"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017, section 3, figure 1).

    memory = Encoder(PE(Embed_src(x) * sqrt(d_model)))                        (sections 3.1, 3.4, 3.5)
    h      = Decoder(PE(Embed_tgt(y_<t) * sqrt(d_model)), memory)              masked self-attn + cross-attn
    p(y_t | y_<t, x) = softmax(h W_out)                                        (section 3.4)

Built from `bertforge.nn` (one attention, D3). Optional shared source/target vocabulary (one
embedding matrix) and the output projection tied to the target embedding (section 3.4: "we share the
same weight matrix between the two embedding layers and the pre-softmax linear transformation").
Post-LN by default, pre-LN by `norm_first=True` (D4). Decoding (greedy, beam) lives in `decoding.py`.

Shapes: B batch, S source length, T target length, D d_model, V target vocabulary.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from bertforge.models.base import CONFIG_NAME, WEIGHTS_NAME, PreTrainedModel  # noqa: F401 - re-exported
from bertforge.nn import (
    Decoder,
    Encoder,
    KVCache,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    combine_masks,
    look_ahead_mask,
    padding_mask,
)
from bertforge.nn.losses import label_smoothed_cross_entropy

MODEL_TYPE = "bertforge-seq2seq"


@dataclass
class Seq2SeqConfig:
    """Hyper-parameters of the encoder-decoder Transformer (Vaswani et al. 2017, table 3)."""

    src_vocab_size: int = 32000
    tgt_vocab_size: int = 32000
    d_model: int = 512
    num_encoder_layers: int = 6  # N
    num_decoder_layers: int = 6
    num_heads: int = 8  # h; d_k = d_v = d_model / h
    d_ff: int = 2048
    dropout: float = 0.1  # P_drop: sub-layer outputs and the embedding + PE sums (section 5.4)
    attn_dropout: float = 0.0  # on attention probabilities; not in the paper (tensor2tensor's base: 0)
    activation: str = "relu"
    max_position: int = 1024  # rows of the sinusoidal table
    layer_norm_eps: float = 1e-5
    norm_first: bool = False  # D4: post-LN as in the paper
    share_embeddings: bool = False  # one vocabulary for both languages: src and tgt embeddings are one matrix
    tie_output: bool = True  # pre-softmax linear = target embedding matrix (section 3.4)
    label_smoothing: float = 0.1  # epsilon_ls (section 5.4)
    pad_token_id: int = 0
    bos_token_id: int = 2  # [CLS] in a BERT vocabulary starts every target
    eos_token_id: int = 3  # [SEP] ends every source and target
    attn_implementation: str = "sdpa"  # D3

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary, got src_vocab_size {self.src_vocab_size} "
                             f"!= tgt_vocab_size {self.tgt_vocab_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_encoder_layers", "num_decoder_layers",
                     "num_heads", "d_ff", "max_position"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Seq2SeqConfig:
        """A named preset (see `SEQ2SEQ_PRESETS`) with field overrides (D9)."""
        if name not in SEQ2SEQ_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(SEQ2SEQ_PRESETS)}")
        return cls(**{**SEQ2SEQ_PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Seq2SeqConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"model_type"})
        if unknown:
            raise ValueError(f"unknown Seq2SeqConfig fields: {unknown}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, path: str | Path) -> Seq2SeqConfig:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no config.json at {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(d).__name__}")
        if d.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{path}: model_type is {d.get('model_type')!r}, expected {MODEL_TYPE!r}")
        return cls.from_dict(d)


SEQ2SEQ_PRESETS: dict[str, dict[str, Any]] = {
    # Vaswani et al. 2017, table 3: base (65M parameters with a 37k shared vocabulary) and big (213M).
    "transformer-base": dict(d_model=512, num_encoder_layers=6, num_decoder_layers=6, num_heads=8, d_ff=2048,
                             dropout=0.1),
    "transformer-big": dict(d_model=1024, num_encoder_layers=6, num_decoder_layers=6, num_heads=16, d_ff=4096,
                            dropout=0.3),
    # Multi30k on a CPU: 3+3 layers of d_model 256 (the size the usual Multi30k tutorials train).
    "small": dict(d_model=256, num_encoder_layers=3, num_decoder_layers=3, num_heads=4, d_ff=1024, dropout=0.1),
    # Toy copy/reverse tasks and tests: a few thousand parameters per layer, trains in seconds.
    "tiny": dict(d_model=64, num_encoder_layers=2, num_decoder_layers=2, num_heads=4, d_ff=128, dropout=0.0,
                 max_position=256),
}


@dataclass
class Seq2SeqOutput:
    logits: Tensor  # (B, T, V) next-token scores
    loss: Optional[Tensor] = None  # label-smoothed cross-entropy per non-pad target token
    nll_loss: Optional[Tensor] = None  # plain cross-entropy per token (for perplexity), no smoothing
    num_tokens: Optional[Tensor] = None  # non-pad target tokens in the batch


def new_caches(num_layers: int) -> list[tuple[KVCache, KVCache]]:
    """One (self-attention, cross-attention) cache pair per decoder layer for incremental decoding."""
    return [(KVCache(), KVCache(static=True)) for _ in range(num_layers)]


class Seq2SeqTransformer(PreTrainedModel):
    """Encoder-decoder Transformer (Vaswani et al. 2017, figure 1).

    forward(input_ids, attention_mask, decoder_input_ids, labels) -> Seq2SeqOutput with `.loss`, so the
    shared training loop can call `model(**batch)`. `labels` are the decoder inputs shifted left
    (y_1..y_n, EOS), with -100 at padding.
    """

    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_token_id, scale=True)
        self.tgt_embed = (self.src_embed if c.share_embeddings else
                          TokenEmbedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_token_id, scale=True))
        self.positions = SinusoidalPositionalEncoding(c.d_model, c.max_position, c.dropout)
        layer = dict(num_heads=c.num_heads, d_ff=c.d_ff, dropout=c.dropout, attn_dropout=c.attn_dropout,
                     activation=c.activation, eps=c.layer_norm_eps, norm_first=c.norm_first,
                     implementation=c.attn_implementation)
        self.encoder = Encoder(c.num_encoder_layers, c.d_model, **layer)
        self.decoder = Decoder(c.num_decoder_layers, c.d_model, **layer)
        self.output_projection = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform linear layers (as the Annotated Transformer and fairseq); embeddings N(0, d^-1/2).

        With embeddings of std d^-1/2, the sqrt(d_model) scaling gives token vectors of unit scale, the
        same as the positional encoding's; a tied output projection then starts with logits of O(1).
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for emb in {id(e): e for e in (self.src_embed, self.tgt_embed)}.values():
            nn.init.normal_(emb.weight, std=self.config.d_model ** -0.5)
            with torch.no_grad():
                emb.weight[self.config.pad_token_id].zero_()
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_output:
            self.output_projection.weight = self.tgt_embed.weight

    # ---- the two halves ------------------------------------------------------------------------
    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """(B, S) source ids -> memory (B, S, D). attention_mask (B, S): 1 = token, 0 = padding."""
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        x = self.positions(self.src_embed(input_ids))  # (B, S, D)
        memory, _, _ = self.encoder(x, padding_mask(attention_mask))
        return memory

    def decode(self, decoder_input_ids: Tensor, memory: Tensor, attention_mask: Optional[Tensor] = None,
               decoder_attention_mask: Optional[Tensor] = None,
               caches: Optional[list[tuple[KVCache, KVCache]]] = None) -> Tensor:
        """Decoder hidden states (B, T, D) for target ids (B, T) given memory (B, S, D).

        attention_mask (B, S) is the *source* padding mask used by cross-attention. With `caches`
        (from `new_caches`) only the new positions are passed: their K, V are appended to the cache,
        positions continue from the cache length, and cross-attention K, V are computed once.
        """
        past = len(caches[0][0]) if caches is not None else 0
        T = decoder_input_ids.size(1)
        y = self.positions(self.tgt_embed(decoder_input_ids), offset=past)  # (B, T, D)
        # Masked self-attention (section 3.2.3): position t sees positions <= t only.
        self_mask = look_ahead_mask(T, past + T, device=y.device)  # (T, past+T)
        if decoder_attention_mask is not None:
            self_mask = combine_masks(self_mask, padding_mask(decoder_attention_mask))
        memory_mask = padding_mask(attention_mask) if attention_mask is not None else None  # (B, 1, 1, S)
        h, _ = self.decoder(y, memory, self_mask, memory_mask, caches=caches)
        return h

    def project(self, hidden: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, V) logits (the pre-softmax linear transformation)."""
        return self.output_projection(hidden)

    def forward(self, input_ids: Tensor, decoder_input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                decoder_attention_mask: Optional[Tensor] = None, labels: Optional[Tensor] = None
                ) -> Seq2SeqOutput:
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        memory = self.encode(input_ids, attention_mask)
        logits = self.project(self.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask))
        out = Seq2SeqOutput(logits=logits)
        if labels is not None:
            out.loss, out.nll_loss, out.num_tokens = label_smoothed_cross_entropy(
                logits, labels, epsilon=self.config.label_smoothing, return_parts=True)
        return out

    # ---- checkpoints ---------------------------------------------------------------------------
