"""Hybrid retrieval: merge the ranked lists of BM25 and of the vector store into one.

Two ways, both measured on the SQuAD-dev folder (docs/retrieval.md):

- **Reciprocal rank fusion** (Cormack, Clarke & Buettcher 2009): score(d) = sum over lists of
  1 / (k + rank(d)), rank 1-based, k = 60; a passage missing from a list gets nothing from it. It
  needs no score scale and no tuning: only ranks count.
- **Convex combination** (Bruch, Gai & Ingber 2023, "An Analysis of Fusion Functions for Hybrid
  Retrieval"): score(d) = w * norm(cosine) + (1 - w) * norm(bm25), each list min-max normalised over
  its own candidates (missing -> 0). One weight to tune.

Worked example of RRF (k = 60): BM25 ranks [a, b], vectors rank [b, c]:
    a: 1/61 = 0.01639   b: 1/62 + 1/61 = 0.03252   c: 1/62 = 0.01613   ->  [b, a, c]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RRF_K", "convex_fusion", "reciprocal_rank_fusion"]

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """[(id, fused score)] best first, from ranked id lists (best first). Ties: the lower id first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[int(doc)] = fused.get(int(doc), 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _min_max(scores: np.ndarray) -> np.ndarray:
    lo, hi = float(scores.min()), float(scores.max())
    return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)


def convex_fusion(lists: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float]
                  ) -> list[tuple[int, float]]:
    """[(id, fused score)] best first from (scores, ids) lists, each min-max normalised, mixed by `weights`."""
    fused: dict[int, float] = {}
    for (scores, ids), w in zip(lists, weights):
        if len(ids) == 0:
            continue
        for doc, s in zip(ids.tolist(), _min_max(np.asarray(scores, np.float64)).tolist()):
            fused[doc] = fused.get(doc, 0.0) + w * s
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
