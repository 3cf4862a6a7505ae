"""word2vec: skip-gram and CBOW with negative sampling, vectorised in PyTorch.

Mikolov et al. 2013a ("Efficient Estimation of Word Representations in Vector Space": CBOW and skip-gram)
and 2013b ("Distributed Representations of Words and Phrases and their Compositionality": negative
sampling, eq. 4, and subsampling of frequent words, section 2.3), with the C tool's (word2vec.c) and
gensim's choices where the papers leave a detail open:

- vocabulary: words seen at least `min_count` times, most frequent first; rarer words are dropped from
  the text *before* windows are taken (so a window reaches across them), as in word2vec.c and gensim.
- subsampling (the C tool's formula, which gensim and fastText use too, not the paper's): a word of
  relative frequency phi = count / total is kept with probability
      keep(w) = min(1, sqrt(sample / phi) + sample / phi)
  (the paper's section 2.3 keeps it with probability sqrt(sample / phi)). See `keep_probabilities`.
- dynamic window: each centre word draws its window b uniformly from 1..window (word2vec.c's
  `b = rand() % window`), which weights near contexts more.
- negative sampling: K words drawn from the unigram distribution raised to 3/4 (`ns_exponent`), through
  its cumulative table as gensim does (`negative_cdf`); a negative equal to the target is skipped.
- learning rate: plain SGD, decayed linearly from `alpha` to `min_alpha` over all epochs by the number of
  corpus words processed (gensim's schedule; word2vec.c's with min_alpha = alpha * 1e-4).
- initialisation: input vectors uniform in [-0.5/D, 0.5/D), output vectors zero (word2vec.c).

What we do differently, to vectorise (docs/word2vec.md measures what each costs or saves):
- Skip-gram follows word2vec.c's direction: the input vector of each context word c in the window of
  centre w predicts w against K negatives; the context words of one window *share* the same K negatives
  (Ji et al. 2016, "Parallelizing Word2Vec in Shared and Distributed Memory", section 3), which turns the
  2b dot products per negative into one small matrix product. CBOW draws K negatives per centre anyway.
- Updates are applied for `batch_size` centre words at once (the gradient of their summed loss; in the
  same spirit as word2vec.c's Hogwild threads, with staler reads). Centres are grouped by their drawn
  window b so a batch is a dense (N, 2b) block of context slots. A row's step within a batch is scaled
  by 1 / max(1, n / `dup_cap`), n = how often that row occurs in the batch: a very frequent word
  ("the", "of") occurs hundreds of times per batch, and the sum of hundreds of stale gradients
  overshoots and diverges where sequential SGD would have let each step see the last (see
  `_row_scale`). Rows occurring at most `dup_cap` times, i.e. nearly all words, get plain SGD.
- Jobs (slices of `chunk_words` words) run in `workers` threads that update the shared vectors without
  locks (Hogwild, like word2vec.c's and gensim's threads); see `Word2Vec.train`.
- CBOW with `cbow_mean` averages the context vectors and adds the full (not divided) error to each,
  as word2vec.c and gensim do.

The loss is tallied honestly: for each epoch the mean over trained (window, target) pairs of
-log sigma(u_c . v_w) - sum_k log sigma(-u_c . v_k) (eq. 4 negated), computed in float64 from the scores
the update used. `KeyedVectors` (most_similar / similarity / analogy, word2vec text and binary files that
gensim reads and writes) is the trained model's `wv`.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from bertforge.fileio import open_text
from bertforge.models.word2vec.keyed_vectors import KeyedVectors

# Words: runs of letters/digits, with inner apostrophes ("don't", "o'clock"); punctuation is dropped.
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split text into words with `WORD_RE` (lowercased by default): "It ran down." -> [it, ran, down]."""
    return WORD_RE.findall(text.lower() if lowercase else text)


def read_sentences(paths: str | Path | Sequence[str | Path], lowercase: bool = True,
                   whitespace: bool = False) -> Iterator[list[str]]:
    """Yield one token list per non-empty line of each file (BERT's corpus format: a sentence a line).

    `whitespace=True` splits on whitespace only (for pre-tokenised text such as text8); otherwise `tokenize`.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path}")
        with open_text(path) as f:
            for line in f:
                words = (line.lower() if lowercase else line).split() if whitespace else tokenize(line, lowercase)
                if words:
                    yield words


@dataclass
class Word2VecConfig:
    """Hyper-parameters; the defaults are gensim's `Word2Vec` defaults (CBOW, d=100, window 5, K=5)."""

    sg: bool = False  # True: skip-gram, False: CBOW
    vector_size: int = 100
    window: int = 5  # maximum distance; each centre draws b in 1..window
    negative: int = 5  # K negatives per target
    min_count: int = 5
    sample: float = 1e-3  # subsampling threshold t (0 disables)
    alpha: float = 0.025  # initial learning rate
    min_alpha: float = 1e-4  # final learning rate (linear decay)
    epochs: int = 5
    ns_exponent: float = 0.75  # negatives ~ count ** ns_exponent
    cbow_mean: bool = True  # CBOW: mean (True) or sum of the context vectors
    max_vocab_size: Optional[int] = None  # keep only the most frequent words
    batch_size: int = 512  # centre words per vectorised SGD step
    workers: int = 1  # threads running jobs in parallel (Hogwild); 1 = reproducible
    dup_cap: int = 16  # rows occurring more often in one batch get their step scaled down (see docstring)
    chunk_words: int = 65_536  # corpus words per job (subsampled and windowed at a time)
    seed: int = 1
    compute_loss: bool = True

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "min_count", "epochs", "batch_size", "chunk_words",
                     "dup_cap", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise ValueError(f"negative must be >= 1 (this implementation trains with negative sampling only), "
                             f"got {self.negative}")
        if not self.alpha > 0 or self.min_alpha < 0 or self.min_alpha > self.alpha:
            raise ValueError(f"need 0 <= min_alpha <= alpha and alpha > 0, got alpha={self.alpha}, "
                             f"min_alpha={self.min_alpha}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")


PRESETS = {
    "cbow": Word2VecConfig(),
    "skipgram": Word2VecConfig(sg=True),
}


# ---------------------------------------------------------------------------------------------
# Vocabulary, subsampling, negative-sampling table
# ---------------------------------------------------------------------------------------------


@dataclass
class Vocab:
    """Words seen at least `min_count` times, most frequent first (ties: first seen first)."""

    words: list[str]
    counts: np.ndarray  # (V,) int64
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5,
              max_size: Optional[int] = None) -> Vocab:
        counts = Counter(chain.from_iterable(sentences))  # C-level counting; keeps first-seen order
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: -counts[w])  # stable
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(f"empty vocabulary: no word occurs at least min_count={min_count} times "
                             f"(corpus has {len(counts)} distinct words)")
        return cls(kept, np.array([counts[w] for w in kept], dtype=np.int64))

    def encode(self, sentences: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor, int]:
        """Sentences -> (ids (N,), sentence index (N,), raw word count) with out-of-vocabulary words dropped."""
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        raw = int(lengths.sum())
        # map() with dict.get runs in C: about 10x faster than a Python loop over the tokens
        ids = np.fromiter(map(self.index.get, chain.from_iterable(sentences), repeat(-1)), dtype=np.int64,
                          count=raw)
        sent = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        known = ids >= 0
        return torch.from_numpy(ids[known]), torch.from_numpy(sent[known]), raw


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep w) = min(1, sqrt(t/phi) + t/phi), phi = count/total: word2vec.c's subsampling (= gensim, fastText).

    word2vec.c writes it as (sqrt(cn / (t * T)) + 1) * (t * T) / cn with T the total count of vocabulary
    words. `sample = 0` keeps every word.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    ratio = sample * counts.sum() / counts  # t / phi
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def subsample_mask(ids: Tensor, keep: Tensor, gen: Optional[torch.Generator] = None) -> Tensor:
    """(N,) bool: keep each occurrence of word w independently with probability keep[w]."""
    return torch.rand(len(ids), generator=gen) < keep[ids]


def negative_cdf(counts: np.ndarray, exponent: float = 0.75) -> Tensor:
    """Cumulative noise distribution P_n(w) = U(w)^(3/4) / Z (Mikolov et al. 2013b, section 2.2), float64 (V,).

    The "table" negatives are drawn from: word i owns the interval [cdf[i-1], cdf[i]) of [0, 1), whose
    length is exactly count_i^e / sum_j count_j^e. This is gensim's cum_table with bisection; word2vec.c
    fills a 1e8-slot array instead, which rounds each share to a multiple of 1e-8.
    """
    p = np.asarray(counts, dtype=np.float64) ** exponent
    cdf = torch.from_numpy(np.cumsum(p / p.sum()))
    cdf[-1] = 1.0
    return cdf


def draw_negatives(cdf: Tensor, shape: tuple[int, ...], gen: Optional[torch.Generator] = None) -> Tensor:
    """Word ids ~ the distribution of `cdf`: u ~ U[0, 1), the first i with u < cdf[i] (binary search)."""
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)


# ---------------------------------------------------------------------------------------------
# The SGNS loss and its gradient (one function for skip-gram and CBOW)
# ---------------------------------------------------------------------------------------------


def sgns_loss(h: Tensor, w_out: Tensor, valid: Tensor) -> Tensor:
    """L = sum over valid (i, j, k) of -log sigma(+-h_ij . w_ik): k = 0 the true target (+), k >= 1 negatives (-).

    h: (N, M, D) input vectors (skip-gram: the M context words of a window; CBOW: M = 1, the context mean),
    w_out: (N, 1+K, D) output vectors of the target and its K negatives, valid: (N, M, 1+K) 0/1 weights.
    Mikolov et al. 2013b, eq. 4, negated and summed. Reference for `sgns_grad` (tested against autograd).
    """
    s = h @ w_out.transpose(1, 2)  # (N, M, 1+K)
    sign = torch.ones_like(s)
    sign[..., 1:] = -1
    return -(torch.nn.functional.logsigmoid(sign * s) * valid).sum()


def sgns_dscores(h: Tensor, w_out: Tensor, valid: Tensor, with_loss: bool = True
                 ) -> tuple[Tensor, Optional[Tensor]]:
    """dL/ds (N, M, 1+K) of `sgns_loss` for the scores s = h . w, and the per-term losses (or None).

    With label y = 1 for the target and 0 for a negative, d(-log sigma(+-s))/ds = sigma(s) - y.
    """
    s = h @ w_out.transpose(1, 2)  # (N, M, 1+K)
    g = torch.sigmoid(s)
    g[..., 0] -= 1.0
    g.mul_(valid)
    losses = None
    if with_loss:
        s[..., 1:] = -s[..., 1:]
        losses = -torch.nn.functional.logsigmoid(s) * valid
    return g, losses


def sgns_grad(h: Tensor, w_out: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (dL/dh (N, M, D), dL/dw_out (N, 1+K, D), per-term losses (N, M, 1+K)) of `sgns_loss`.

    dL/dh = G W and dL/dW = G^T H with G = dL/dS = sigma(S) - Y, batched over N (`Word2Vec._step` does
    the same products with the learning rate folded into G).
    """
    g, losses = sgns_dscores(h, w_out, valid)
    return g @ w_out, g.transpose(1, 2) @ h, losses


@contextmanager
def _intraop_threads(n: Optional[int]):
    """Set torch's intra-op thread count for the block and restore it (None: leave it alone)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None:
            torch.set_num_threads(before)


def _row_scale(rows: Tensor, cap: int) -> Tensor:
    """1 / max(1, n_r / cap) for each entry of `rows` (n_r = occurrences of that row in the batch)."""
    n = torch.bincount(rows)[rows]  # (len(rows),)
    return cap / n.clamp(min=cap).to(torch.float32)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainProgress:
    epoch: int  # 0-based
    words_done: int  # corpus words processed so far, all epochs
    words_total: int
    alpha: float
    words_per_sec: float
    epoch_loss: float  # mean loss per trained pair so far in this epoch (nan before any)


class Word2Vec:
    """Skip-gram / CBOW with negative sampling. `Word2Vec(config).train(sentences)`; vectors in `.wv`."""

    def __init__(self, config: Optional[Word2VecConfig] = None, **overrides):
        config = config or Word2VecConfig()
        self.config = Word2VecConfig(**{**config.__dict__, **overrides}) if overrides else config
        self.vocab: Optional[Vocab] = None
        self.syn0: Optional[Tensor] = None  # (V, D) input ("word") vectors
        self.syn1neg: Optional[Tensor] = None  # (V, D) output vectors
        self.epoch_losses: list[float] = []  # mean loss per trained pair, one per epoch
        self.epoch_pairs: list[int] = []  # (window, target) pairs trained per epoch
        self.train_seconds = 0.0
        self.words_trained = 0

    # -- set-up ---------------------------------------------------------------------------------
    def build_vocab(self, sentences: Iterable[Sequence[str]]) -> Word2Vec:
        c = self.config
        self.vocab = Vocab.build(sentences, c.min_count, c.max_vocab_size)
        gen = torch.Generator().manual_seed(c.seed)
        V, D = len(self.vocab), c.vector_size
        self.syn0 = (torch.rand(V, D, generator=gen) - 0.5) / D
        self.syn1neg = torch.zeros(V, D)
        return self

    @property
    def wv(self) -> KeyedVectors:
        if self.vocab is None:
            raise ValueError("the model has no vocabulary yet: call build_vocab() or train() first")
        return KeyedVectors(self.vocab.words, self.syn0.numpy().copy(), counts=self.vocab.counts)

    # -- training -------------------------------------------------------------------------------
    def train(self, sentences: Iterable[Sequence[str]],
              progress: Optional[Callable[[TrainProgress], None]] = None) -> Word2Vec:
        """Train on `sentences` (token lists; iterated twice if the vocabulary is not built yet).

        The corpus is cut into jobs of `chunk_words` words; a job subsamples, draws windows and trains on
        its slice with its own random generator (seeded from `seed`, the epoch and the job), so a run with
        `workers=1` is reproducible. With `workers > 1` the jobs run in threads that update the shared
        vectors without locks (Hogwild, as word2vec.c and gensim do; torch releases the GIL inside its
        kernels), and torch's intra-op threads are set to 1 meanwhile (restored after), since OpenMP
        teams spinning at each kernel's barrier waste a shared CPU.
        """
        sentences = sentences if isinstance(sentences, list) else list(sentences)
        if self.vocab is None:
            self.build_vocab(sentences)
        c = self.config
        ids, sent, raw_words = self.vocab.encode(sentences)
        if len(ids) == 0:
            raise ValueError("no in-vocabulary words to train on")
        keep = torch.from_numpy(keep_probabilities(self.vocab.counts, c.sample)).to(torch.float32)
        cdf = negative_cdf(self.vocab.counts, c.ns_exponent)
        total = raw_words * c.epochs
        per_id = raw_words / len(ids)  # progress is counted in raw corpus words (OOV included), as gensim
        starts = list(range(0, len(ids), c.chunk_words))
        seeds = torch.randint(0, 2**62, (c.epochs, len(starts)), generator=torch.Generator().manual_seed(c.seed))
        jobs = [(e, k, lo) for e in range(c.epochs) for k, lo in enumerate(starts)]

        def run(job: tuple[int, int, int]) -> tuple[int, float, float, int]:
            epoch, k, lo = job
            chunk = slice(lo, lo + c.chunk_words)
            n_ids = len(ids[chunk])
            first = epoch * raw_words + lo * per_id  # words done before this job, in schedule order
            gen = torch.Generator().manual_seed(int(seeds[epoch, k]))
            loss, pairs = self._train_job(ids[chunk], sent[chunk], keep, cdf, gen,
                                          lambda f: self._alpha(first + f * n_ids * per_id, total))
            return epoch, n_ids * per_id, loss, pairs

        losses, pair_counts = [0.0] * c.epochs, [0] * c.epochs
        done, start_time = 0.0, time.perf_counter()
        with _intraop_threads(1 if c.workers > 1 else None), ThreadPoolExecutor(c.workers) as pool:
            results = pool.map(run, jobs) if c.workers > 1 else map(run, jobs)  # in job order
            for epoch, words, loss, pairs in results:
                losses[epoch] += loss
                pair_counts[epoch] += pairs
                done += words
                if progress is not None:
                    elapsed = time.perf_counter() - start_time
                    progress(TrainProgress(epoch, int(done), total, self._alpha(done, total),
                                           done / max(elapsed, 1e-9),
                                           losses[epoch] / pair_counts[epoch] if pair_counts[epoch] else math.nan))
        self.epoch_losses += [l / n if n else math.nan for l, n in zip(losses, pair_counts)]
        self.epoch_pairs += pair_counts
        self.train_seconds += time.perf_counter() - start_time
        self.words_trained += total
        return self

    def _alpha(self, words_done: float, words_total: float) -> float:
        c = self.config
        return max(c.min_alpha, c.alpha - (c.alpha - c.min_alpha) * words_done / words_total)

    def _train_job(self, ids: Tensor, sent: Tensor, keep: Tensor, cdf: Tensor, gen: torch.Generator,
                   alpha_at: Callable[[float], float]) -> tuple[float, int]:
        """Subsample, draw windows, and train on one slice; returns (loss sum, pairs trained)."""
        c, W = self.config, self.config.window
        kept = subsample_mask(ids, keep, gen)  # before windows are taken, as word2vec.c
        ids, sent = ids[kept], sent[kept]
        n = len(ids)
        if n == 0:
            return 0.0, 0
        b = torch.randint(1, W + 1, (n,), generator=gen)  # dynamic window per centre
        pos = torch.arange(n)
        # context slots ordered by offset -W..-1, +1..+W; a window of size b uses slots W-b .. W+b-1
        offsets = [o for o in range(-W, W + 1) if o != 0]
        ctx = torch.empty(n, 2 * W, dtype=torch.int64)
        ok = torch.empty(n, 2 * W, dtype=torch.bool)
        for slot, o in enumerate(offsets):
            j = (pos + o).clamp(0, n - 1)
            ctx[:, slot] = ids[j]
            ok[:, slot] = (abs(o) <= b) & (pos + o >= 0) & (pos + o < n) & (sent[j] == sent)
        # bucket the centres by window size so each batch holds exactly 2b context slots (no padding
        # waste); one gather puts the buckets side by side, then every batch is a slice
        order = torch.argsort(b, stable=True)
        ids, ctx, okf = ids[order], ctx[order], ok[order].float()
        # everything that does not depend on the vectors is drawn for the whole job at once
        neg = draw_negatives(cdf, (n, c.negative), gen)  # (n, K)
        targets = torch.cat([ids[:, None], neg], 1)  # (n, 1+K): the centre, then its K negatives
        target_ok = torch.ones(n, 1 + c.negative)
        target_ok[:, 1:] = (neg != ids[:, None]).float()  # a negative equal to the target is skipped
        sizes = torch.bincount(b, minlength=W + 1).tolist()
        first, loss_sum, pairs = 0, 0.0, 0
        for size in range(1, W + 1):
            end = first + sizes[size]
            slots = slice(W - size, W + size)
            for lo in range(first, end, c.batch_size):
                hi = min(lo + c.batch_size, end)
                loss, n_pairs = self._step(targets[lo:hi], target_ok[lo:hi], ctx[lo:hi, slots], okf[lo:hi, slots],
                                           alpha_at(lo / n))
                loss_sum += loss
                pairs += n_pairs
            first = end
        return loss_sum, pairs

    def _step(self, targets: Tensor, target_ok: Tensor, ctx: Tensor, okf: Tensor, alpha: float
              ) -> tuple[float, int]:
        """One SGD step for N centre words.

        targets (N, 1+K): the centre word then its negatives; target_ok (N, 1+K): 1, or 0 for a negative to
        skip; ctx (N, M): context word ids; okf (N, M): 1 for a real context slot, 0 for an empty one.
        Returns (loss summed over the batch, pairs trained).
        """
        c = self.config
        syn0, syn1 = self.syn0, self.syn1neg
        N, M = ctx.shape
        D = syn0.size(1)
        w_out = torch.nn.functional.embedding(targets, syn1)  # (N, 1+K, D)
        if c.sg:
            h = torch.nn.functional.embedding(ctx, syn0)  # (N, M, D): each context word predicts the centre
            valid = okf[:, :, None] * target_ok[:, None, :]  # (N, M, 1+K)
            pairs = int(okf.sum())
        else:
            n_ctx = okf.sum(1, keepdim=True)  # (N, 1)
            has_ctx = (n_ctx > 0).float()  # (N, 1)
            weights = okf / n_ctx.clamp(min=1) if c.cbow_mean else okf  # (N, M)
            # the (weighted) sum of the context vectors without materialising them: (N, 1, D)
            h = torch.nn.functional.embedding_bag(ctx, syn0, mode="sum", per_sample_weights=weights)[:, None, :]
            valid = (target_ok * has_ctx)[:, None, :]  # (N, 1, 1+K)
            pairs = int(has_ctx.sum())
        g, losses = sgns_dscores(h, w_out, valid, c.compute_loss)  # dL/ds (N, M|1, 1+K)
        rows_out, rows_in = targets.reshape(-1), ctx.reshape(-1)
        # SGD: the step is -alpha * gradient; the learning rate and the per-row duplicate scale are
        # folded into G before the products (cheaper than scaling the (rows, D) results)
        scale_out = _row_scale(rows_out, c.dup_cap).view(N, 1, -1) * -alpha
        scale_in = _row_scale(rows_in, c.dup_cap).view(N, M, 1) * -alpha
        if h.size(1) == 1:  # CBOW: an outer product, cheaper elementwise than as a batched product
            step_w = (g * scale_out).transpose(1, 2) * h  # (N, 1+K, 1) * (N, 1, D)
        else:
            step_w = (g * scale_out).transpose(1, 2) @ h  # (N, 1+K, D)
        if c.sg:
            step_h = (g * scale_in) @ w_out  # (N, M, D)
        else:  # CBOW: every context word receives the error of the combined input, undivided for the
            # mean (word2vec.c, gensim) and divided by the number of context words for the sum (gensim)
            per_ctx = okf * scale_in[:, :, 0]  # (N, M)
            if not c.cbow_mean:
                per_ctx = per_ctx / n_ctx.clamp(min=1)
            step_h = (g @ w_out) * per_ctx[:, :, None]  # (N, 1, D) -> (N, M, D)
        # scatter_add_ with an expanded index is many times faster than index_add_ on CPU
        syn1.scatter_add_(0, rows_out[:, None].expand(-1, D), step_w.reshape(-1, D))
        syn0.scatter_add_(0, rows_in[:, None].expand(-1, D), step_h.reshape(-1, D))
        return (float(losses.sum(dtype=torch.float64)) if losses is not None else 0.0), pairs
