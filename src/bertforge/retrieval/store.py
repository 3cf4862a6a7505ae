"""Vector stores: where passage vectors live and how the nearest ones to a question are found.

`VectorStore` is the interface an index talks to (build from vectors, search, save, load). The
default `FlatStore` is exact search with one matrix product over a numpy array on disk: right for a
laptop folder (measured in docs/retrieval.md, one core: 0.6 ms at 10k passages, 17 ms at 100k, as
fast as FAISS's exact IndexFlatIP; linear, so ~170 ms at a million). For millions of passages swap in
an approximate index — `FaissStore("HNSW32")`, or a class of your own around a vector database — by
passing `store=` to `DocumentIndex.build`: it is the one class to write.

Vectors are L2-normalised (the sentence encoder's output), so the inner product is the cosine.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

__all__ = ["FaissStore", "FlatStore", "STORES", "VectorStore", "top_k"]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first: (Q, N) scores -> (Q, k) scores, (Q, k) ids.

    argpartition finds the k best in O(N), then only those k are sorted (ties: lower id first)."""
    k = min(k, scores.shape[1])
    if k == scores.shape[1]:
        part = np.broadcast_to(np.arange(k), scores.shape).copy()
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (Q, k), unordered
    part.sort(axis=1)  # so the stable sort below breaks ties by id
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part_scores, order, axis=1), np.take_along_axis(part, order, axis=1)


class VectorStore(ABC):
    """Nearest-neighbour search over a fixed set of vectors; row i of the vectors is passage i."""

    name: str = ""  # the key in STORES, recorded in the index so `load` knows which class to use

    @abstractmethod
    def build(self, vectors: np.ndarray) -> None:
        """Index (N, D) float32 unit vectors (replacing what the store held)."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) unit queries -> (Q, k) cosine scores and (Q, k) passage ids, best first."""

    @abstractmethod
    def vectors(self) -> np.ndarray:
        """The (N, D) vectors, in passage order (an incremental re-index reuses them)."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the store's files into `folder` (a fresh folder of the index)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, options: dict) -> VectorStore:
        """Read what `save` wrote; `options` is what `options()` returned when it was saved."""

    def options(self) -> dict:
        """Constructor arguments to record in the index (e.g. the FAISS factory string)."""
        return {}

    def __len__(self) -> int:
        return int(self.vectors().shape[0])


class FlatStore(VectorStore):
    """Exact search: scores = V q, a (N, D) x (D,) product per question, then the top k.

    The matrix is saved as `vectors.npy` (float32) and memory-mapped on load, so opening an index
    costs no copy and a server that reloads it shares the pages with the OS cache."""

    name = "flat"

    def __init__(self, vectors: np.ndarray | None = None):
        self._vectors = np.zeros((0, 0), np.float32) if vectors is None else np.asarray(vectors, np.float32)

    def build(self, vectors: np.ndarray) -> None:
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if len(self._vectors) == 0 or k < 1:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return top_k(queries @ self._vectors.T, k)  # (Q, D) x (D, N) -> (Q, N)

    def vectors(self) -> np.ndarray:
        return self._vectors

    def save(self, folder: Path) -> None:
        with open(Path(folder) / "vectors.npy", "wb") as f:
            np.save(f, self._vectors)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, folder: Path, options: dict) -> FlatStore:
        return cls(np.load(Path(folder) / "vectors.npy", mmap_mode="r"))


class FaissStore(VectorStore):
    """A FAISS index (Johnson et al. 2019) by factory string: "Flat" (exact), "HNSW32" (graph, fast
    approximate search for millions of vectors in RAM), "IVF4096,PQ32" (compressed, needs training
    vectors). Needs `pip install faiss-cpu`. The raw vectors are kept beside it for re-indexing."""

    name = "faiss"

    def __init__(self, factory: str = "HNSW32", ef_search: int = 128):
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise ImportError("FaissStore needs FAISS: pip install 'bertforge[faiss]' (faiss-cpu)") from None
        self.factory, self.ef_search = factory, ef_search  # ef_search: HNSW's search breadth (recall vs speed)
        self._flat = FlatStore()
        self._index = None

    def build(self, vectors: np.ndarray) -> None:
        import faiss

        self._flat.build(vectors)
        index = faiss.index_factory(self._flat.vectors().shape[1], self.factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(self._flat.vectors())
        index.add(self._flat.vectors())
        self._index = self._tune(index)

    def _tune(self, index):
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = self.ef_search
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if self._index is None or k < 1:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        scores, ids = self._index.search(queries, k)
        return scores, ids.astype(np.int64)

    def vectors(self) -> np.ndarray:
        return self._flat.vectors()

    def options(self) -> dict:
        return {"factory": self.factory, "ef_search": self.ef_search}

    def save(self, folder: Path) -> None:
        import faiss

        self._flat.save(folder)
        faiss.write_index(self._index, str(Path(folder) / "faiss.index"))

    @classmethod
    def load(cls, folder: Path, options: dict) -> FaissStore:
        import faiss

        store = cls(**options)
        store._flat = FlatStore.load(folder, {})
        store._index = store._tune(faiss.read_index(str(Path(folder) / "faiss.index")))
        return store


STORES: dict[str, type[VectorStore]] = {FlatStore.name: FlatStore, FaissStore.name: FaissStore}
