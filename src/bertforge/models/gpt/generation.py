"""Writing with a GPT: one token at a time, each drawn from P(u_t | u_<t) (Radford et al. 2019, section 2).

    prompt ids -> logits of the next token -> [repetition penalty] -> [temperature] -> [top-k] -> [top-p]
               -> argmax (greedy) or a draw from the softmax -> append -> repeat

The processors run in HF `generate`'s order, with its meanings:

- **repetition penalty** (Keskar et al. 2019, CTRL, section 4.1): a token already in the row (prompt or
  generated) gets its logit divided by `penalty` when positive, multiplied when negative; 1.0 = off.
- **temperature** T: logits / T. T < 1 sharpens, T > 1 flattens. **T = 0 means greedy** (argmax; the
  convention of the OpenAI API and llama.cpp, and the limit T -> 0); T < 0 is an error.
- **top-k** (Fan et al. 2018): keep the k most likely tokens; None or 0 = off.
- **top-p** / nucleus (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
  probabilities sum to >= p, so the token that crosses p stays. Must be in (0, 1]; 1.0 = off.
  Worked example: probabilities [0.5, 0.3, 0.15, 0.05], p = 0.7 -> keep 0.5 and 0.3 (0.5 < 0.7 <= 0.8).

Decoding ends for a row at `eos_token_id` or when its new text contains one of `stop_strings` (HF's
`stop_strings`; needs the `tokenizer`); finished rows are filled with `pad_token_id` until every row is
done or `max_new_tokens` is reached. The result is HF's: (B, T_prompt + steps) ids, prompt included.

**The KV cache** (`use_cache=True`): the first step runs the whole prompt and keeps every layer's K, V
(`KVCache`); each later step feeds only the newest token, whose query attends to the cached keys, so a
step costs one position instead of the whole prefix. Same tokens as without the cache (tested).

**Batches** use *left* padding: row [pad pad a b c] with attention_mask [0 0 1 1 1]. The next token of
every row is then read at the same (last) column; positions count real tokens only (`a` is position
0), so a padded row computes exactly what it computes alone. Right-padded input is refused.

**Bad input.** An empty prompt (no token) is an error: give at least the `bos_token_id` to write
unconditionally. A prompt longer than the context window minus `max_new_tokens` is **cut from the
left** (the most recent tokens are kept) with a warning; `max_new_tokens` >= the window is an error.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional, Protocol

import torch
from torch import Tensor

from bertforge.errors import BertforgeError
from bertforge.models.gpt.modeling import GPTLMHeadModel, new_caches

logger = logging.getLogger("bertforge")


class Streamer(Protocol):
    """Receives each step's new tokens, (B,) ids (pad for finished rows), then `end()` once."""

    def put(self, tokens: Tensor) -> None: ...

    def end(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Logit processors: (B, V) scores -> (B, V) scores
# ---------------------------------------------------------------------------------------------


def apply_repetition_penalty(logits: Tensor, context: Tensor, context_mask: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on every token present in the row's real (mask = 1) context tokens."""
    if penalty == 1.0:
        return logits
    counts = torch.zeros_like(logits, dtype=torch.long).scatter_add_(1, context, context_mask.long())  # (B, V)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(counts > 0, penalised, logits)


def top_k_filter(logits: Tensor, k: Optional[int]) -> Tensor:
    """Keep the k largest scores per row (ties at the k-th value kept); the rest become -inf."""
    if not k or k >= logits.size(-1):
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: Optional[float]) -> Tensor:
    """Nucleus: keep the most likely tokens until their probability mass reaches p (see module doc)."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
    drop_sorted = mass_before >= p  # the first token (mass_before 0) always stays
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def check_sampling(temperature: float, top_k: Optional[int], top_p: Optional[float],
                   repetition_penalty: float, max_new_tokens: int) -> None:
    """Raise a `BertforgeError` that says how to fix each out-of-range setting."""
    if not temperature >= 0:  # also catches NaN
        raise BertforgeError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise BertforgeError(f"top_k must be >= 1 (or 0/None for no limit), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise BertforgeError(f"top_p must be in (0, 1] (1 = no nucleus filtering), got {top_p}")
    if not repetition_penalty > 0:
        raise BertforgeError(f"repetition_penalty must be > 0 (1 = off, > 1 discourages repeats), "
                             f"got {repetition_penalty}")
    if max_new_tokens < 1:
        raise BertforgeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def next_tokens(logits: Tensor, context: Tensor, context_mask: Tensor, *, do_sample: bool, temperature: float,
                top_k: Optional[int], top_p: Optional[float], repetition_penalty: float,
                generator: Optional[torch.Generator]) -> Tensor:
    """(B, V) next-token logits -> (B,) chosen ids, through the processors in HF's order."""
    scores = apply_repetition_penalty(logits.float(), context, context_mask, repetition_penalty)
    if not do_sample or temperature == 0:
        return scores.argmax(dim=-1)
    scores = top_p_filter(top_k_filter(scores / temperature, top_k), top_p)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _fit_context(input_ids: Tensor, attention_mask: Tensor, max_new_tokens: int, n_positions: int
                 ) -> tuple[Tensor, Tensor]:
    """Cut the prompt from the left so prompt + max_new_tokens fits the window (see module doc)."""
    if max_new_tokens >= n_positions:
        raise BertforgeError(f"max_new_tokens={max_new_tokens} does not fit the context window of {n_positions} "
                             f"tokens with any prompt: use at most {n_positions - 1}")
    room = n_positions - max_new_tokens
    if input_ids.size(1) > room:
        longest = int(attention_mask.sum(dim=1).max())
        if longest > room:
            logger.warning("prompt of %d tokens + %d new tokens exceeds the context window of %d: keeping the "
                           "last %d prompt tokens", longest, max_new_tokens, n_positions, room)
        input_ids, attention_mask = input_ids[:, -room:], attention_mask[:, -room:]  # left-padded: last column real
    return input_ids, attention_mask


def _check_prompt(input_ids: Tensor, attention_mask: Tensor) -> None:
    if input_ids.dim() != 2:
        raise BertforgeError(f"input_ids must be (batch, prompt_len), got shape {tuple(input_ids.shape)}")
    if input_ids.size(1) == 0 or input_ids.size(0) == 0:
        raise BertforgeError("the prompt is empty: give at least one token (the bos_token_id to write from nothing)")
    if attention_mask.shape != input_ids.shape:
        raise BertforgeError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids "
                             f"{tuple(input_ids.shape)}")
    if not bool(attention_mask.any(dim=1).all()):
        raise BertforgeError("a prompt in the batch has no real token (its attention_mask is all 0)")
    if not bool(attention_mask[:, -1].bool().all()):
        raise BertforgeError("batched prompts must be left-padded (padding first, attention_mask ending in 1): "
                             "the next token of every row is read at the last column")


@torch.no_grad()
def generate(
    model: GPTLMHeadModel,
    input_ids: Tensor,  # (B, T) prompt ids, left-padded
    attention_mask: Optional[Tensor] = None,  # (B, T) 1 = real token; default: all real
    max_new_tokens: int = 50,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    repetition_penalty: float = 1.0,
    eos_token_id: Optional[int] = -1,  # -1: the model's config; None: never stop early
    pad_token_id: Optional[int] = None,  # default: the config's pad (or eos) id
    seed: Optional[int] = None,  # sampling: same seed, same text
    use_cache: bool = True,
    stop_strings: Sequence[str] = (),
    tokenizer: Any = None,  # with .decode(ids): needed for stop_strings
    streamer: Optional[Streamer] = None,
) -> Tensor:
    """Continue each prompt; returns (B, T' + steps) ids (T' <= T if the prompt was cut to fit)."""
    config = model.config
    check_sampling(temperature, top_k, top_p, repetition_penalty, max_new_tokens)
    if stop_strings and tokenizer is None:
        raise BertforgeError("stop_strings need the tokenizer (to decode the new tokens): pass tokenizer=...")
    if any(not s for s in stop_strings):
        raise BertforgeError("stop_strings must be non-empty strings")
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)
    attention_mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)).long()
    _check_prompt(input_ids, attention_mask)
    input_ids, attention_mask = _fit_context(input_ids, attention_mask, max_new_tokens, config.n_positions)
    eos = config.eos_token_id if eos_token_id == -1 else eos_token_id
    pad = config.pad_id if pad_token_id is None else pad_token_id
    generator = None
    if do_sample and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    was_training = model.training
    model.eval()
    B, prompt_len = input_ids.shape
    seq, mask = input_ids, attention_mask
    caches = new_caches(config) if use_cache else None
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        feed = seq if caches is None or step == 0 else seq[:, -1:]  # cached: only the newest token
        hidden = model.transformer(feed, attention_mask=mask, caches=caches).last_hidden_state  # (B, T|1, D)
        logits = model.lm_head(hidden[:, -1])  # (B, V): only the last position is needed (HF's logits_to_keep=1)
        tok = next_tokens(logits, seq, mask, do_sample=do_sample, temperature=temperature, top_k=top_k,
                          top_p=top_p, repetition_penalty=repetition_penalty, generator=generator)
        tok = tok.masked_fill(finished, pad)  # (B,)
        seq = torch.cat([seq, tok[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        if streamer is not None:
            streamer.put(tok)
        if eos is not None:
            finished |= tok.eq(eos)
        if stop_strings:
            for r in (~finished).nonzero().flatten().tolist():
                text = tokenizer.decode(seq[r, prompt_len:].tolist())
                if any(s in text for s in stop_strings):
                    finished[r] = True
        if bool(finished.all()):
            break
    if streamer is not None:
        streamer.end()
    model.train(was_training)
    return seq
