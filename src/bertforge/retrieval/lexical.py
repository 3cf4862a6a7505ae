"""BM25, the lexical half of the hybrid retriever (Robertson & Zaragoza 2009, "The Probabilistic
Relevance Framework: BM25 and Beyond"), through the maintained `bm25s` library (Lù 2024).

    score(q, d) = sum over query terms t of  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

with Lucene's idf = ln(1 + (N - df + 0.5) / (df + 0.5)), k1 = 1.5, b = 0.75 (bm25s' defaults; the
variants are compared by Kamphuis et al. 2020, "Which BM25 Do You Mean?"). Text is lower-cased, split
into words of 2+ letters/digits, English stop words dropped, and Snowball-stemmed (PyStemmer), so
"running" in a question matches "runs" in a passage. Words BM25 has never seen score nothing; a
passage that shares no word with the question is not returned at all (score 0 is no evidence).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["BM25Index"]


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    """BM25 over the passages' texts; row i is passage i (as in the vector store)."""

    identity = {"library": "bm25s", "method": "lucene", "k1": 1.5, "b": 0.75, "stopwords": "en",
                "stemmer": "snowball-english"}

    def __init__(self, retriever, n_docs: int):
        self.retriever, self.n_docs = retriever, n_docs
        self.stemmer = _stemmer()

    @classmethod
    def build(cls, texts: Sequence[str]) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25(k1=cls.identity["k1"], b=cls.identity["b"], method=cls.identity["method"])
        tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
        retriever.index(tokens, show_progress=False)
        return cls(retriever, len(texts))

    def _tokenize(self, queries: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(queries), stopwords="en", stemmer=self.stemmer, show_progress=False,
                              return_ids=False)

    def search(self, queries: Sequence[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query: (scores, ids) of its k best passages with a score > 0, best first."""
        out = []
        empty = (np.zeros(0, np.float32), np.zeros(0, np.int64))
        k = min(k, self.n_docs)
        for tokens in self._tokenize(queries):
            if not tokens or k < 1:
                out.append(empty)
                continue
            ids, scores = self.retriever.retrieve([tokens], k=k, show_progress=False)
            ids, scores = ids[0].astype(np.int64), scores[0].astype(np.float32)
            keep = scores > 0
            out.append((scores[keep], ids[keep]))
        return out

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(folder)), n_docs)
