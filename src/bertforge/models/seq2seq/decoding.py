"""Decoding a `Seq2SeqTransformer`: greedy and beam search, batched, with or without the key/value cache.

Both produce a sentence one token at a time (Vaswani et al. 2017, section 3: "at each step the model is
auto-regressive, consuming the previously generated symbols as additional input"). With the cache
(`use_cache=True`) each step feeds only the newest token: the self-attention K, V of earlier positions
are kept per layer and the cross-attention K, V of the source are computed once, so a step costs one
position instead of a re-run of the whole prefix. `use_cache=False` re-runs the prefix; the two give the
same tokens (tested). Finished sentences leave the batch, so late steps only compute what is left.

Beam search (as in fairseq / tensor2tensor; Vaswani et al. section 6.1 used beam 4, alpha 0.6): keep
`beam_size` live hypotheses per sentence; each step expands them to their 2*beam_size best
continuations; an EOS continuation ranked within the top beam_size ends a hypothesis, scored
log p(Y|X) / lp(Y) with the GNMT length penalty lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14);
the best beam_size non-EOS continuations stay live. A sentence stops when beam_size hypotheses have
ended (`early_stopping=True`), or, with `early_stopping=False`, when no live hypothesis can still beat
the worst ended one. Beam size 1 is greedy decoding.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from bertforge.models.seq2seq.model import Seq2SeqTransformer, new_caches


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016); alpha = 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def default_max_new_tokens(attention_mask: Tensor, max_position: int) -> int:
    """A budget for the longest target: 1.5 x the longest source + 10, within the position table."""
    src_len = int(attention_mask.sum(dim=1).max())
    return min(int(1.5 * src_len) + 10, max_position - 1)


class _Stepper:
    """Runs the decoder for the next position of every live row, with or without the KV cache."""

    def __init__(self, model: Seq2SeqTransformer, memory: Tensor, attention_mask: Tensor, use_cache: bool):
        self.model, self.memory, self.attention_mask = model, memory, attention_mask
        self.caches = new_caches(len(model.decoder.layers)) if use_cache else None

    def log_probs(self, ys: Tensor) -> Tensor:
        """(R, t) tokens so far -> (R, V) log p(next token | prefix, source)."""
        new = ys[:, -1:] if self.caches is not None else ys  # cached: only the newest position
        h = self.model.decode(new, self.memory, self.attention_mask, caches=self.caches)  # (R, t|1, D)
        return self.model.project(h[:, -1]).float().log_softmax(dim=-1)

    def select(self, rows: Tensor) -> None:
        """Keep (and reorder) rows: beams that survive, sentences not yet finished."""
        self.memory = self.memory.index_select(0, rows)
        self.attention_mask = self.attention_mask.index_select(0, rows)
        if self.caches is not None:
            for self_cache, cross_cache in self.caches:
                self_cache.reorder(rows)
                cross_cache.reorder(rows)


def _prepare(model: Seq2SeqTransformer, input_ids: Tensor, attention_mask: Optional[Tensor],
             max_new_tokens: Optional[int]) -> tuple[Tensor, Tensor, int]:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, src_len), got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = input_ids.ne(model.config.pad_token_id)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(attention_mask, model.config.max_position)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return model.encode(input_ids, attention_mask), attention_mask, max_new_tokens


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                  max_new_tokens: Optional[int] = None, use_cache: bool = True) -> list[list[int]]:
    """Pick argmax_y p(y | y_<t, x) at every step until EOS. Returns token ids per sentence (no BOS/EOS)."""
    was_training = model.training
    model.eval()
    c = model.config
    memory, attention_mask, max_new_tokens = _prepare(model, input_ids, attention_mask, max_new_tokens)
    B = input_ids.size(0)
    stepper = _Stepper(model, memory, attention_mask, use_cache)
    ys = torch.full((B, 1), c.bos_token_id, dtype=torch.long, device=input_ids.device)  # (b, t)
    alive = torch.arange(B)  # sentence index of each live row
    out: list[list[int]] = [[] for _ in range(B)]
    for _ in range(max_new_tokens):
        next_tok = stepper.log_probs(ys).argmax(dim=-1)  # (b,)
        ys = torch.cat([ys, next_tok[:, None]], dim=1)
        done = next_tok.eq(c.eos_token_id)
        if bool(done.any()):
            for r in done.nonzero().flatten().tolist():
                out[int(alive[r])] = ys[r, 1:-1].tolist()
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            ys, alive = ys[keep], alive[keep.cpu()]
            stepper.select(keep)
    else:  # the budget ran out: the unfinished rows end here
        for r, i in enumerate(alive.tolist()):
            out[i] = ys[r, 1:].tolist()
    model.train(was_training)
    return out


@torch.no_grad()
def beam_search(model: Seq2SeqTransformer, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                beam_size: int = 5, alpha: float = 0.6, max_new_tokens: Optional[int] = None,
                use_cache: bool = True, early_stopping: bool = True) -> list[list[int]]:
    """Beam search (see the module docstring). Returns the best hypothesis per sentence (no BOS/EOS)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    c = model.config
    K, V = beam_size, c.tgt_vocab_size
    if 2 * K > V:
        raise ValueError(f"beam_size {K} is too large for a vocabulary of {V} (need 2 * beam_size <= vocab)")
    if alpha < 0:
        raise ValueError(f"length penalty alpha must be >= 0, got {alpha}")
    was_training = model.training
    model.eval()
    memory, attention_mask, max_new_tokens = _prepare(model, input_ids, attention_mask, max_new_tokens)
    B, device = input_ids.size(0), input_ids.device
    # Every sentence starts with K copies of itself; only beam 0 is live at first (others score -inf).
    stepper = _Stepper(model, memory.repeat_interleave(K, dim=0), attention_mask.repeat_interleave(K, dim=0),
                       use_cache)
    ys = torch.full((B * K, 1), c.bos_token_id, dtype=torch.long, device=device)  # (b*K, t)
    scores = torch.full((B, K), float("-inf"), device=device)  # (b, K) log p of each live hypothesis
    scores[:, 0] = 0.0
    alive = torch.arange(B)  # sentence index of each live sentence
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]  # (normalised score, ids)
    best_possible_lp = length_penalty(max_new_tokens, alpha)  # lp grows with length (alpha >= 0)

    for step in range(max_new_tokens):
        b = alive.numel()
        log_p = stepper.log_probs(ys).view(b, K, V)
        cand = (scores.unsqueeze(-1) + log_p).view(b, K * V)  # (b, K*V) score of every continuation
        top_scores, top_idx = cand.topk(2 * K, dim=1)  # (b, 2K), best first
        beam, tok = top_idx // V, top_idx % V  # which hypothesis it extends, with which token
        is_eos = tok.eq(c.eos_token_id)
        # EOS within the top K ends a hypothesis (its length counts the EOS).
        lp = length_penalty(step + 1, alpha)
        for i, r in is_eos[:, :K].nonzero().tolist():
            if top_scores[i, r] > float("-inf"):
                row = i * K + int(beam[i, r])
                finished[int(alive[i])].append((float(top_scores[i, r]) / lp, ys[row, 1:].tolist()))
        # The K best non-EOS continuations stay live (at most K of the 2K are EOS: one per hypothesis).
        rank = torch.arange(2 * K, device=device).expand(b, 2 * K) + is_eos * (2 * K)
        pick = rank.argsort(dim=1)[:, :K]  # (b, K)
        scores = top_scores.gather(1, pick)
        rows = (torch.arange(b, device=device) * K).unsqueeze(1) + beam.gather(1, pick)  # (b, K) rows of ys
        next_tok = tok.gather(1, pick)

        # A sentence is done when K hypotheses ended (and, without early stopping, no live one can win).
        done = []
        for i in range(b):
            hyps = finished[int(alive[i])]
            ok = len(hyps) >= K
            if ok and not early_stopping:
                ok = min(s for s, _ in sorted(hyps, reverse=True)[:K]) >= float(scores[i, 0]) / best_possible_lp
            done.append(ok)
        keep = torch.tensor([not d for d in done], dtype=torch.bool)
        if not bool(keep.any()):
            break
        rows, next_tok, scores = rows[keep.to(device)], next_tok[keep.to(device)], scores[keep.to(device)]
        alive = alive[keep]
        rows = rows.flatten()
        ys = torch.cat([ys.index_select(0, rows), next_tok.reshape(-1, 1)], dim=1)
        stepper.select(rows)
    else:  # the budget ran out: live hypotheses compete with the ended ones as they are
        lp = length_penalty(max_new_tokens, alpha)
        for i in range(alive.numel()):
            for k in range(K):
                if scores[i, k] > float("-inf"):
                    finished[int(alive[i])].append((float(scores[i, k]) / lp, ys[i * K + k, 1:].tolist()))
    model.train(was_training)
    return [max(hyps, key=lambda h: h[0])[1] for hyps in finished]
