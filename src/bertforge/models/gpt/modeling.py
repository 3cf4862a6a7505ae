"""GPT: a decoder-only Transformer language model (Radford et al. 2018, "Improving Language Understanding by
Generative Pre-Training"; 2019, "Language Models are Unsupervised Multitask Learners" = GPT-2).

    h_0 = W_e[u] + W_p[position]                                  token + learned position embeddings
    h_l = block(h_{l-1}),  l = 1..N                               pre-LN blocks under the look-ahead mask
    P(u_t | u_<t) = softmax(LayerNorm(h_N) W_e^T)                 output tied to the token embedding

A block is bertforge's `EncoderLayer` with `norm_first=True` (GPT-2, section 2.3: "layer normalization
was moved to the input of each sub-block ... and an additional layer normalization was added after the
final self-attention block"): x + Attn(LN(x)), then x + FFN(LN(x)). What makes it a *decoder* is the
look-ahead mask (position t attends to positions <= t, `look_ahead_mask`), not a different layer: the
stack below is the same `Encoder` class BERT uses ("encoder" there means "no cross-attention"), so
there is one attention and one layer stack in the package. The original Transformer's decoder layer has
a second, cross-attention sub-layer; a decoder-only model has no encoder to attend to.

BERT vs GPT in one line each (Devlin et al. 2019, figure 3): BERT sees both sides of every position and
learns by filling masked blanks; GPT sees only the left side and learns by predicting the next token,
so it can continue a text one token at a time (`generation.py`).

HF parity: on the same weights `GPTLMHeadModel` gives `transformers.GPT2LMHeadModel`'s logits and loss
(tests/models/gpt/test_gpt.py); `checkpoint.py` maps names and Conv1D layouts both ways.

Shapes: B batch, T new positions, P past (cached) positions, D n_embd, V vocabulary, H heads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertforge.data import IGNORE_INDEX  # noqa: F401 - re-exported
from bertforge.errors import BertforgeError
from bertforge.models.base import PreTrainedModel
from bertforge.models.gpt.config import GPTConfig
from bertforge.nn import (
    Encoder,
    KVCache,
    LearnedPositionEmbedding,
    MultiHeadAttention,
    TokenEmbedding,
    combine_masks,
    look_ahead_mask,
    padding_mask,
)
from bertforge.nn.losses import linear_cross_entropy


@dataclass
class GPTOutput:
    last_hidden_state: Tensor  # (B, T, D), after the final LayerNorm
    hidden_states: Optional[tuple[Tensor, ...]] = None  # embeddings + each block's output, if asked
    attentions: Optional[tuple[Tensor, ...]] = None  # (B, H, T, P+T) per layer, if asked


@dataclass
class CausalLMOutput:
    logits: Optional[Tensor]  # (B, T, V)
    loss: Optional[Tensor] = None  # mean next-token cross-entropy over the predicted positions
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


def new_caches(config: GPTConfig) -> list[KVCache]:
    """One empty self-attention `KVCache` per block, for incremental decoding."""
    return [KVCache() for _ in range(config.n_layer)]


def default_position_ids(attention_mask: Optional[Tensor], past: int, length: int, device: torch.device) -> Tensor:
    """Positions of the `length` new tokens: (1, T) = past..past+T-1, or from the mask with left padding.

    With left padding the first *real* token is position 0 (as HF's generate): mask row [0 0 1 1 1] ->
    positions [0 0 0 1 2] (padding gets 0; it is never attended to). The mask covers past + new keys.
    """
    if attention_mask is None:
        return torch.arange(past, past + length, device=device).unsqueeze(0)
    pos = attention_mask.long().cumsum(-1) - 1  # (B, P+T)
    return pos.clamp(min=0)[:, -length:]


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean of -log P(u_t | u_<t) over t: logits at t are scored against labels at t + 1 (HF's shift).

    labels (B, T) are usually the input ids themselves; -100 marks positions not to predict (padding).
    Worked example, T = 4, ids [a b c d]: logits at a, b, c predict b, c, d; the logits at d predict
    nothing (the next block's first token is not in this block) and are dropped.
    """
    if labels.shape != logits.shape[:2]:
        raise BertforgeError(f"labels {tuple(labels.shape)} must have the shape of input_ids "
                             f"{tuple(logits.shape[:2])}")
    shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))  # ((B*(T-1)), V)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=IGNORE_INDEX)


class GPTPreTrainedModel(PreTrainedModel):
    """Init, checkpoints in HF GPT-2's layout (the `PreTrainedModel` hooks), attention switching."""

    config_class = GPTConfig
    config: GPTConfig

    def init_weights(self) -> None:
        """GPT-2's initialisation (Radford et al. 2019, section 2.3; HF `_init_weights`): N(0, 0.02) for
        weights and embeddings, zero biases, LayerNorm (1, 0), and the projections that write into the
        residual stream (attention W_O, FFN W_2) scaled by 1/sqrt(2 N): N blocks add 2 N such terms."""
        std = self.config.initializer_range
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                scale = 1 / math.sqrt(2 * self.config.n_layer) if name.endswith(("w_o", "ffn.w_2")) else 1.0
                nn.init.normal_(m.weight, std=std * scale)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ---- checkpoints: HF GPT-2 names both ways (from_pretrained / save_pretrained come from the base) ----
    def checkpoint_state(self, dtype: Optional[torch.dtype] = None) -> dict[str, Tensor]:
        from bertforge.models.gpt.checkpoint import hf_checkpoint_state

        return hf_checkpoint_state(self, dtype)

    def config_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "architectures": [
            "GPT2LMHeadModel" if isinstance(self, GPTLMHeadModel) else "GPT2Model"]}

    def load_weights(self, path: str | Path) -> None:
        """Read a folder written here or by HF (`GPT2LMHeadModel` / `GPT2Model`), with clear mismatch errors."""
        from bertforge.models.gpt.checkpoint import load_state_into, read_state_dict

        load_state_into(self, read_state_dict(path))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Also accepts HF GPT-2 state dicts (`hf_model.state_dict()`, a saved model.safetensors); a tied
        `lm_head.weight` may be absent (it is the token embedding). Returns torch's missing/unexpected keys."""
        from bertforge.models.gpt.checkpoint import _adapt_prefix, hf_to_ours, is_hf_state_dict

        state = dict(state_dict)
        if is_hf_state_dict(state):
            state = _adapt_prefix(hf_to_ours(state), dict(nn.Module.state_dict(self)))
        result = super().load_state_dict(state, strict=False, assign=assign)
        tied = {"lm_head.weight"} if self.config.tie_word_embeddings else set()
        if strict and ([k for k in result.missing_keys if k not in tied] or result.unexpected_keys):
            raise RuntimeError(f"state dict does not fit {type(self).__name__}: missing "
                               f"{[k for k in result.missing_keys if k not in tied]}, "
                               f"unexpected {result.unexpected_keys}")
        if hasattr(self, "tie_weights"):
            self.tie_weights()
        return result

    def set_attn_implementation(self, implementation: str) -> None:
        """'sdpa' (fast) or 'eager' (explicit; needed for output_attentions), D3."""
        if implementation not in ("sdpa", "eager"):
            raise BertforgeError(f"attn_implementation must be 'sdpa' or 'eager', got {implementation!r}")
        self.config.attn_implementation = implementation
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.implementation = implementation


class GPTModel(GPTPreTrainedModel):
    """Embeddings + N pre-LN blocks under the look-ahead mask + the final LayerNorm (HF `GPT2Model`)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = TokenEmbedding(config.vocab_size, config.n_embd)  # W_e (V, D)
        self.wpe = LearnedPositionEmbedding(config.n_positions, config.n_embd)  # W_p (n_positions, D)
        self.drop = nn.Dropout(config.embd_pdrop)
        # The decoder-only stack: self-attention blocks, pre-LN, with the final LayerNorm (GPT-2's ln_f).
        self.blocks = Encoder(config.n_layer, config.n_embd, num_heads=config.n_head, d_ff=config.d_ff,
                              dropout=config.resid_pdrop, attn_dropout=config.attn_pdrop,
                              activation=config.activation_function, eps=config.layer_norm_epsilon,
                              norm_first=True, implementation=config.attn_implementation)
        self.init_weights()

    def _check(self, input_ids: Tensor, attention_mask: Optional[Tensor], past: int) -> None:
        if input_ids.dim() != 2:
            raise BertforgeError(f"input_ids must be (batch, seq_len), got shape {tuple(input_ids.shape)}")
        if input_ids.size(1) == 0:
            raise BertforgeError("input_ids is empty: give at least one token")
        if int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0:
            raise BertforgeError(f"token id out of range [0, {self.config.vocab_size}): the tokenizer's "
                                 f"vocabulary does not match this model")
        total = past + input_ids.size(1)
        if total > self.config.n_positions:
            raise BertforgeError(f"{total} positions exceed the context window of {self.config.n_positions} "
                                 f"(n_positions): shorten the input")
        if attention_mask is not None and attention_mask.shape != (input_ids.size(0), total):
            raise BertforgeError(f"attention_mask must be (batch, past + new) = {(input_ids.size(0), total)}, "
                                 f"got {tuple(attention_mask.shape)}")

    def forward(
        self,
        input_ids: Tensor,  # (B, T) token ids
        attention_mask: Optional[Tensor] = None,  # (B, P+T) 1 = real token, 0 = padding (left padding)
        position_ids: Optional[Tensor] = None,  # (B|1, T); default: see default_position_ids
        caches: Optional[list[KVCache]] = None,  # from new_caches(): incremental decoding
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> GPTOutput:
        past = len(caches[0]) if caches else 0
        self._check(input_ids, attention_mask, past)
        if output_attentions and self.config.attn_implementation != "eager":
            raise BertforgeError("output_attentions=True needs the explicit attention path: call "
                                 "model.set_attn_implementation('eager') first (D3)")
        B, T = input_ids.shape
        if position_ids is None:
            position_ids = default_position_ids(attention_mask, past, T, input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))  # (B, T, D)
        # Look-ahead (D2): new query i (absolute position P + i) may attend to keys 0..P+i.
        mask = look_ahead_mask(T, past + T, device=input_ids.device)  # (T, P+T)
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            mask = combine_masks(mask, padding_mask(attention_mask))  # (B, 1, T, P+T)
        x, hidden, attentions = self.blocks(x, mask, output_hidden_states, output_attentions, caches=caches)
        return GPTOutput(last_hidden_state=x, hidden_states=tuple(hidden) if output_hidden_states else None,
                         attentions=tuple(attentions) if output_attentions else None)


class GPTLMHeadModel(GPTPreTrainedModel):
    """`GPTModel` + the language-model head: logits = h W_e^T (tied, no bias); HF `GPT2LMHeadModel`.

    forward(input_ids, attention_mask, labels=input_ids) -> CausalLMOutput(logits (B, T, V), loss): the
    loss is the mean next-token cross-entropy (see `causal_lm_loss`; exp(loss) is the perplexity).

    Training (module in train mode, labels given) computes the loss with `linear_cross_entropy`: the same
    number, without materialising the (B, T, V) logits, which for a small model with a 30522-word
    vocabulary is most of a step's memory traffic. `logits` is then None; pass `return_logits=True`
    to get them anyway (the loss is then computed from them, as HF does).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = GPTModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.init_weights()
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,  # (B, T), usually input_ids; -100 = not predicted
        caches: Optional[list[KVCache]] = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_logits: Optional[bool] = None,  # default: yes, unless training with labels (see above)
    ) -> CausalLMOutput:
        out = self.transformer(input_ids, attention_mask, position_ids, caches, output_hidden_states,
                               output_attentions)
        h = out.last_hidden_state  # (B, T, D)
        if return_logits is None:
            return_logits = labels is None or not self.training
        logits, loss = None, None
        if return_logits:
            logits = self.lm_head(h)  # (B, T, V)
            loss = causal_lm_loss(logits, labels) if labels is not None else None
        elif labels is not None:
            if labels.shape != input_ids.shape:
                raise BertforgeError(f"labels {tuple(labels.shape)} must have the shape of input_ids "
                                     f"{tuple(input_ids.shape)}")
            # Position t predicts label t + 1 (the shift of causal_lm_loss), fused with the projection.
            loss = linear_cross_entropy(h[:, :-1].reshape(-1, h.size(-1)), self.lm_head.weight,
                                        labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        return CausalLMOutput(logits=logits, loss=loss, hidden_states=out.hidden_states, attentions=out.attentions)
