"""BERT (Devlin et al. 2019): embeddings + a Transformer encoder stack + pooler, and the one way to put a
task head on it.

`BertModel` reproduces HF `transformers.BertModel` on the same weights (tested to 1e-5 on MiniLM).
Our module names are the notes' (`self_attn.w_q`, `ffn.w_1`, ...); `checkpoint.py` maps them to HF's
parameter names on load and save, so checkpoints move both ways (D5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from bertforge.models.base import PreTrainedModel
from bertforge.models.bert.config import BertConfig
from bertforge.nn import Encoder, LearnedPositionEmbedding, Packing, SegmentEmbedding, TokenEmbedding, padding_mask


@dataclass
class BertOutput:
    last_hidden_state: Tensor  # (B, T, D)
    pooler_output: Optional[Tensor] = None  # (B, D), tanh(W [CLS] + b)
    hidden_states: Optional[tuple[Tensor, ...]] = None  # embeddings + each layer's output, if asked
    attentions: Optional[tuple[Tensor, ...]] = None  # (B, H, T, T) per layer, if asked
    attention_mask: Optional[Tensor] = None  # (B, T) the input's mask: which positions are real tokens


class BertEmbeddings(nn.Module):
    """E = LayerNorm(token + learned position + segment embedding), then dropout (Devlin et al. 3.2)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        D = config.hidden_size
        self.word_embeddings = TokenEmbedding(config.vocab_size, D, padding_idx=config.pad_token_id)
        self.position_embeddings = LearnedPositionEmbedding(config.max_position_embeddings, D)
        self.token_type_embeddings = SegmentEmbedding(config.type_vocab_size, D)
        self.LayerNorm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None, packing: Optional[Packing] = None) -> Tensor:
        """(B, T) -> (B, T, D); with `packing`, (N, D) for the real tokens only."""
        B, T = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device).expand(B, T)  # (B, T)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if packing is not None:
            input_ids, token_type_ids, position_ids = (packing.pack(t) for t in (input_ids, token_type_ids,
                                                                                 position_ids.expand(B, T)))
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertPooler(nn.Module):
    """pooled = tanh(W h_[CLS] + b): the sentence vector used by NSP and classification heads."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: Tensor) -> Tensor:  # (B, T, D) -> (B, D)
        return torch.tanh(self.dense(hidden[:, 0]))


class BertPreTrainedModel(PreTrainedModel):
    """Shared by `BertModel` and every task head: init, config, and checkpoints in the HF layout (D5).

    A head subclass holds the encoder as `self.bert` (so its parameters are named `bert.*` as in HF)
    and its own layers beside it; `from_pretrained` loads a base checkpoint into a head model and
    initialises the head (reported in `load_report`), or a head checkpoint into a base model (head
    weights ignored). Checkpoints carry HF's parameter names, so they load in transformers too.
    """

    config_class = BertConfig
    config: BertConfig

    def init_weights(self) -> None:
        """BERT's initialisation: normal(0, initializer_range) for weights, zeros for biases, LN = (1, 0)."""
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
                if m.padding_idx is not None:
                    with torch.no_grad():
                        m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def load_weights(self, path: str | Path) -> None:
        """HF- or bertforge-named weights (safetensors or a weights-only .bin); see `load_state_into`."""
        from bertforge.models.bert.checkpoint import load_state_into, read_state_dict

        self.load_report = load_state_into(self, read_state_dict(path))

    def checkpoint_state(self, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
        from bertforge.models.bert.checkpoint import to_hf_key

        return {to_hf_key(k): v for k, v in super().checkpoint_state(dtype).items()}

    def save_pretrained(self, path: str | Path, dtype: Optional[torch.dtype] = None) -> None:
        """config.json (with HF's `architectures`) + model.safetensors with HF parameter names, atomically."""
        self.config.extra["architectures"] = [type(self).__name__]
        if dtype is not None:
            self.config.extra["torch_dtype"] = str(dtype).removeprefix("torch.")
        super().save_pretrained(path, dtype)

    def set_attn_implementation(self, implementation: str) -> None:
        """Switch every attention layer between 'sdpa' and 'eager' (D3)."""
        from bertforge.nn import MultiHeadAttention

        if implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {implementation!r}")
        self.config.attn_implementation = implementation
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.implementation = implementation


class BertModel(BertPreTrainedModel):
    """The BERT encoder: embeddings, N post-LN encoder layers with GELU FFNs, and the pooler."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = Encoder(
            config.num_hidden_layers, config.hidden_size,
            num_heads=config.num_attention_heads, d_ff=config.intermediate_size,
            dropout=config.hidden_dropout_prob, attn_dropout=config.attention_probs_dropout_prob,
            activation=config.hidden_act, eps=config.layer_norm_eps, norm_first=config.norm_first,
            implementation=config.attn_implementation,
        )
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.init_weights()

    def forward(
        self,
        input_ids: Tensor,  # (B, T) token ids
        attention_mask: Optional[Tensor] = None,  # (B, T) 1 = real token, 0 = padding
        token_type_ids: Optional[Tensor] = None,  # (B, T) segment A = 0, B = 1
        position_ids: Optional[Tensor] = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        unpad: Optional[bool] = None,
    ) -> BertOutput:
        """`unpad` runs the token-wise layers on the real tokens only (`Packing`); by default it is on
        when the batch has padding (outputs at padding positions are then zeros, not HF's values)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape "
                             f"{tuple(input_ids.shape)}")
        if input_ids.numel() and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
            raise ValueError(f"token id out of range [0, {self.config.vocab_size}): the tokenizer's vocabulary "
                             f"does not match this model")
        if output_attentions and self.config.attn_implementation != "eager":
            raise ValueError("output_attentions=True needs the explicit attention path: call "
                             "model.set_attn_implementation('eager') first (D3)")
        # A mask of all ones masks nothing: drop it, so attention takes SDPA's unmasked (fastest) kernel.
        has_padding = attention_mask is not None and not bool(attention_mask.bool().all())
        packing = Packing(attention_mask) if has_padding and (unpad or unpad is None) else None
        x = self.embeddings(input_ids, token_type_ids, position_ids, packing)  # (B, T, D) or (N, D)
        mask = padding_mask(attention_mask) if has_padding else None  # (B, 1, 1, T)
        x, hidden, attentions = self.encoder(x, mask, output_hidden_states, output_attentions, packing)
        if packing is not None:
            x, hidden = packing.unpack(x), [packing.unpack(h) for h in hidden]
        return BertOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            attention_mask=attention_mask,
        )


def mean_pool(last_hidden_state: Tensor, attention_mask: Tensor, normalize: bool = True) -> Tensor:
    """Sentence embedding as in sentence-transformers: mean over real tokens, then L2-normalised.

    (B, T, D), (B, T) -> (B, D)
    """
    m = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    emb = (last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(emb, p=2, dim=-1) if normalize else emb
