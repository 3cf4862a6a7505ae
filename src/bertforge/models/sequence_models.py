"""Sequence models from the notes, built by counting, and attention as a learned mask.

The notes (after Brandon Rohrer, "Transformers from Scratch", e2eml.school) build up to attention in steps:

1. first-order Markov model: P(next | most recent word), a transition matrix counted from text;
2. second-order model: P(next | the two most recent words);
3. second-order model *with skips*: every pair (an earlier word, the most recent word) is a *feature*
   whose row of the transition matrix holds its votes for the next word; the prediction sums the rows
   of the active features ("feature voting");
4. masking: most features vote the same for every continuation (weight 0.5 / 0.5) and only blur the
   decision; zeroing all but the informative ones sharpens 4-vs-5 into 1-vs-0. Choosing which features
   to keep is what attention does (softmax(QK^T) picks rows of a mask matrix).

The notes' example is two equally likely sentences, where the word after `ran` depends on a word eight
places back:

    Check the program log and find out whether it ran please.
    Check the battery log and find out whether it ran down please.

`OneLayerAttentionLM` then shows that a single attention head trained on these two sentences learns that
mask by itself: from `ran` it attends to `battery` / `program`.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertforge.nn import MultiHeadAttention, look_ahead_mask

NOTES_SENTENCES = (
    "Check the program log and find out whether it ran please.",
    "Check the battery log and find out whether it ran down please.",
)

Feature = tuple[str, str]  # (an earlier word, the most recent word)


def words(sentence: str) -> list[str]:
    """The notes' units: words with their case, punctuation dropped ("ran please." -> [ran, please])."""
    return re.findall(r"[A-Za-z0-9']+", sentence)


def _normalise(counts: Mapping[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {w: n / total for w, n in counts.items()}


class MarkovModel:
    """Order-n Markov model by counting: P(next | the n most recent words) (n = 1: first order)."""

    def __init__(self, sentences: Iterable[str | Sequence[str]], order: int = 1):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        for s in sentences:
            toks = words(s) if isinstance(s, str) else list(s)
            for t in range(order - 1, len(toks) - 1):
                counts[tuple(toks[t - order + 1:t + 1])][toks[t + 1]] += 1
        self.transitions = {ctx: _normalise(c) for ctx, c in counts.items()}  # row -> {next: probability}

    def predict(self, prefix: str | Sequence[str]) -> dict[str, float]:
        """P(next word | the last `order` words of prefix); {} when that context was never seen."""
        toks = words(prefix) if isinstance(prefix, str) else list(prefix)
        if len(toks) < self.order:
            raise ValueError(f"a order-{self.order} model needs at least {self.order} words, got {toks}")
        return dict(self.transitions.get(tuple(toks[-self.order:]), {}))


class SkipSecondOrderModel:
    """Second-order model with skips: features (earlier word, most recent word) vote for the next word.

    A feature's row holds the distribution of the next word over the training positions where that
    feature was active (each earlier word counted once per position), so its weights sum to 1 and a
    feature seen before `down` and `please` alike votes 0.5 / 0.5.
    """

    def __init__(self, sentences: Iterable[str | Sequence[str]]):
        counts: dict[Feature, Counter] = defaultdict(Counter)
        vocab: dict[str, None] = {}
        for s in sentences:
            toks = words(s) if isinstance(s, str) else list(s)
            vocab.update(dict.fromkeys(toks))
            for t in range(len(toks) - 1):
                for earlier in dict.fromkeys(toks[:t]):
                    counts[(earlier, toks[t])][toks[t + 1]] += 1
        self.vocab = list(vocab)
        self.features: list[Feature] = list(counts)
        self.weights = {f: _normalise(c) for f, c in counts.items()}  # feature -> {next word: vote}

    def active_features(self, prefix: str | Sequence[str]) -> list[Feature]:
        """The features of a prefix: (w, last) for each distinct earlier word w."""
        toks = words(prefix) if isinstance(prefix, str) else list(prefix)
        if not toks:
            raise ValueError("empty prefix")
        return [(w, toks[-1]) for w in dict.fromkeys(toks[:-1])]

    def votes(self, prefix: str | Sequence[str], mask: Optional[Mapping[Feature, float] | Iterable[Feature]] = None
              ) -> dict[str, float]:
        """Sum of the active features' rows, each times its mask value (mask: features kept, or weights).

        No mask = all ones. A mask given as a set of features keeps those (1) and zeroes the rest (0).
        Every vocabulary word is in the result (most get 0).
        """
        if mask is not None and not isinstance(mask, Mapping):
            mask = dict.fromkeys(mask, 1.0)
        total = dict.fromkeys(self.vocab, 0.0)
        for f in self.active_features(prefix):
            m = 1.0 if mask is None else float(mask.get(f, 0.0))
            for w, v in self.weights.get(f, {}).items():
                total[w] += m * v
        return total

    def predict(self, prefix: str | Sequence[str], mask=None) -> str:
        """The word with the most votes."""
        v = self.votes(prefix, mask)
        return max(v, key=v.get)

    def matrices(self, prefix: str | Sequence[str]) -> tuple[Tensor, Tensor, list[Feature]]:
        """The same computation as matrices: activity a (F,) and transition matrix T (F, V); votes = a @ T."""
        T = torch.tensor([[self.weights[f].get(w, 0.0) for w in self.vocab] for f in self.features])
        active = set(self.active_features(prefix))
        a = torch.tensor([1.0 if f in active else 0.0 for f in self.features])
        return a, T, self.features


def pair_feature_layer(vocab: Sequence[str], pairs: Sequence[Feature]) -> tuple[Tensor, Tensor]:
    """The notes' hand-built feature-creation layer: ReLU(W x + b) turns "words seen" into pair features.

    x is a multi-hot vector over `vocab` (1 for each word seen). For feature (a, r): weight +1 on a and r,
    -1 on the first word of every other pair, bias -1; so the feature is 1 exactly when a and r were seen
    (and no rival word), and ReLU clears the negative values (the notes' "battery, ran" = 1, "program,
    ran" = -1 -> 0). Returns W (P, V) and b (P,).
    """
    index = {w: i for i, w in enumerate(vocab)}
    W = torch.zeros(len(pairs), len(vocab))
    for p, (a, r) in enumerate(pairs):
        for other, _ in pairs:
            if other != a:
                W[p, index[other]] = -1.0
        W[p, index[a]] = 1.0
        W[p, index[r]] = 1.0
    return W, -torch.ones(len(pairs))


# ---------------------------------------------------------------------------------------------
# Attention learns the mask
# ---------------------------------------------------------------------------------------------


def _encode(sentences: Sequence[str | Sequence[str]], vocab: list[str]) -> tuple[Tensor, Tensor]:
    """Token ids (S, T) padded at the end, and next-word targets (S, T) with -100 where there is none."""
    toks = [words(s) if isinstance(s, str) else list(s) for s in sentences]
    T = max(len(t) for t in toks)
    ids = torch.zeros(len(toks), T, dtype=torch.int64)
    targets = torch.full((len(toks), T), -100, dtype=torch.int64)
    for i, t in enumerate(toks):
        ids[i, :len(t)] = torch.tensor([vocab.index(w) for w in t])
        targets[i, :len(t) - 1] = ids[i, 1:len(t)]
    return ids, targets


class AttentionMask(nn.Module):
    """Attention choosing which skip features vote: the notes' mask, learned instead of set by hand.

    The votes are the counted rows of `SkipSecondOrderModel` and stay fixed; only the mask is learned.
    At position t the query is the most recent word w_t, the keys are the earlier words w_j (j < t), and

        p_tj = softmax_j(q(w_t) . k(w_j) / sqrt(d))          (a soft mask over the features (w_j, w_t))
        P(next | w_1..w_t) = sum_j p_tj * votes[(w_j, w_t)]   (a mixture of the features' rows)

    With all p_tj equal this is the unmasked vote divided by the number of features (4/9 vs 5/9 for the
    notes' sentences); maximising the likelihood drives the mask towards the informative features.
    """

    def __init__(self, skip_model: SkipSecondOrderModel, d_k: int = 8, seed: int = 0):
        super().__init__()
        self.vocab = list(skip_model.vocab)
        V = len(self.vocab)
        votes = torch.zeros(V, V, V)  # votes[earlier, recent] = that feature's row over next words
        for (a, r), row in skip_model.weights.items():
            for w, v in row.items():
                votes[self.vocab.index(a), self.vocab.index(r), self.vocab.index(w)] = v
        self.register_buffer("votes", votes)
        gen = torch.Generator().manual_seed(seed)
        self.w_q = nn.Parameter(torch.randn(V, d_k, generator=gen) * 0.1)  # query embedding of each word
        self.w_k = nn.Parameter(torch.randn(V, d_k, generator=gen) * 0.1)  # key embedding of each word

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """ids (B, T) -> next-word probabilities (B, T, V), mask p (B, T, T) (row t over earlier j < t)."""
        q, k = self.w_q[ids], self.w_k[ids]  # (B, T, d_k)
        scores = q @ k.transpose(1, 2) / k.size(-1) ** 0.5  # (B, T, T)
        earlier = look_ahead_mask(ids.size(1), device=ids.device).tril(-1)  # j < t
        p = scores.masked_fill(~earlier, float("-inf")).softmax(-1).nan_to_num(0.0)  # row 0 has no features
        rows = self.votes[ids[:, None, :], ids[:, :, None]]  # (B, T, T, V): votes of feature (w_j, w_t)
        return (p.unsqueeze(-1) * rows).sum(2), p


def train_attention_mask(sentences: Sequence[str] = NOTES_SENTENCES, d_k: int = 8, steps: int = 300,
                         lr: float = 0.1, seed: int = 0) -> tuple[AttentionMask, list[float]]:
    """Fit the mask by maximum likelihood of each next word (positions with at least one feature). Adam."""
    model = AttentionMask(SkipSecondOrderModel(sentences), d_k, seed)
    ids, targets = _encode(sentences, model.vocab)
    targets[:, 0] = -100  # the first word's successor has no feature to vote for it
    keep = targets != -100
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        probs, _ = model(ids)
        p_true = probs[keep].gather(1, targets[keep][:, None]).squeeze(1)
        loss = -p_true.clamp(min=1e-12).log().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@torch.no_grad()
def mask_from(model: AttentionMask, prefix: str | Sequence[str]) -> dict[Feature, float]:
    """The learned mask for a prefix: weight of each feature (earlier word, last word)."""
    toks = words(prefix) if isinstance(prefix, str) else list(prefix)
    _, p = model(torch.tensor([[model.vocab.index(w) for w in toks]]))
    out: dict[Feature, float] = {}
    for w, v in zip(toks[:-1], p[0, -1, :-1].tolist()):
        out[(w, toks[-1])] = out.get((w, toks[-1]), 0.0) + v
    return out


class OneLayerAttentionLM(nn.Module):
    """End to end: embeddings -> one causal self-attention head -> (+ the word itself) -> next-word logits.

    No positional encoding: like the skip model it sees the most recent word and an unordered set of
    earlier words. Attention, values and output are all learned, so the model only has to *tell the two
    sentences apart*; attending to one of `battery` / `program` suffices, and it usually does just that.
    """

    def __init__(self, vocab_size: int, d_model: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.attn = MultiHeadAttention(d_model, 1, implementation="eager")
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """ids (B, T) -> next-word logits (B, T, V), attention probabilities (B, T, T)."""
        x = self.embed(ids)  # (B, T, D)
        mask = look_ahead_mask(ids.size(1), device=ids.device)  # (T, T): earlier words and itself
        a, probs = self.attn(x, mask=mask, need_weights=True)
        return self.out(x + a), probs[:, 0]


def train_attention_lm(sentences: Sequence[str] = NOTES_SENTENCES, d_model: int = 16, steps: int = 300,
                       lr: float = 0.05, seed: int = 0) -> tuple[OneLayerAttentionLM, list[str], list[float]]:
    """Fit `OneLayerAttentionLM` (cross-entropy of every next word, full batch, Adam); deterministic per seed."""
    vocab = list(dict.fromkeys(w for s in sentences for w in (words(s) if isinstance(s, str) else s)))
    with torch.random.fork_rng(devices=[]):  # the layers initialise from the global generator; leave it as it was
        torch.manual_seed(seed)
        model = OneLayerAttentionLM(len(vocab), d_model)
    ids, targets = _encode(sentences, vocab)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        logits, _ = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, vocab, losses
