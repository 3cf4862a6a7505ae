"""Static word vectors: look-up, cosine similarity, nearest neighbours, analogies, and word2vec files.

`KeyedVectors` mirrors the part of gensim's class of that name that learners use: `most_similar`,
`similarity`, `analogy` (3CosAdd, Mikolov et al. 2013c "Linguistic Regularities in Continuous Space Word
Representations": b - a + c on unit vectors), and `save_word2vec_format` / `load_word2vec_format` in the
C tool's text and binary formats, which gensim reads and writes:

    text:   "V D\\n" then V lines "word x_1 x_2 ... x_D\\n"
    binary: "V D\\n" then V records b"word " + D little-endian float32 (word2vec.c adds b"\\n" after each
            record, gensim does not; the reader accepts both)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np

from bertforge.fileio import atomic_path

WordOrVector = Union[str, np.ndarray]


class KeyedVectors:
    """Words and their vectors (V, D), most frequent word first when they come from training."""

    def __init__(self, words: Sequence[str], vectors: np.ndarray, counts: Optional[np.ndarray] = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"need one vector per word: {len(words)} words, vectors of shape {vectors.shape}")
        self.words = list(words)
        self.vectors = vectors
        self.counts = counts
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("duplicate words in the vocabulary")
        self._unit: Optional[np.ndarray] = None

    # -- look-up --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.get_index(word)]

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def get_index(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"word {word!r} not in vocabulary ({len(self)} words)") from None

    @property
    def unit_vectors(self) -> np.ndarray:
        """Rows scaled to length 1 (zero rows stay zero); cached."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.maximum(norms, 1e-12)
        return self._unit

    # -- similarity -----------------------------------------------------------------------------
    def similarity(self, w1: str, w2: str) -> float:
        """cos(w1, w2) = u . v / (|u| |v|)."""
        u = self.unit_vectors
        return float(u[self.get_index(w1)] @ u[self.get_index(w2)])

    def most_similar(self, positive: WordOrVector | Iterable[WordOrVector] = (),
                     negative: WordOrVector | Iterable[WordOrVector] = (), topn: int = 10,
                     restrict_vocab: Optional[int] = None) -> list[tuple[str, float]]:
        """Words nearest (cosine) to the mean of the unit positive vectors minus the unit negative ones.

        As gensim: the query is unit(mean(+unit(p) ..., -unit(n) ...)); the given words are excluded;
        `restrict_vocab` searches only the first (most frequent) words.
        """
        positive = [positive] if isinstance(positive, (str, np.ndarray)) else list(positive)
        negative = [negative] if isinstance(negative, (str, np.ndarray)) else list(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word")
        parts, exclude = [], set()
        for sign, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                if isinstance(item, str):
                    i = self.get_index(item)
                    exclude.add(i)
                    parts.append(sign * self.unit_vectors[i])
                else:
                    v = np.asarray(item, dtype=np.float32)
                    if v.shape != (self.vector_size,):
                        raise ValueError(f"query vector must have shape ({self.vector_size},), got {v.shape}")
                    parts.append(sign * v / max(float(np.linalg.norm(v)), 1e-12))
        query = np.mean(parts, axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        limit = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        sims = self.unit_vectors[:limit] @ query  # (limit,)
        order = np.argsort(-sims, kind="stable")
        return [(self.words[i], float(sims[i])) for i in order[: topn + len(exclude)] if i not in exclude][:topn]

    def analogy(self, a: str, b: str, c: str, topn: int = 1,
                restrict_vocab: Optional[int] = None) -> list[tuple[str, float]]:
        """a is to b as c is to ?  (man : king :: woman : queen) = most_similar(positive=[b, c], negative=[a])."""
        return self.most_similar(positive=[b, c], negative=[a], topn=topn, restrict_vocab=restrict_vocab)

    # -- files ----------------------------------------------------------------------------------
    def save_word2vec_format(self, path: str | Path, binary: bool = False) -> None:
        """Write the word2vec text or binary format (atomically), in vocabulary order."""
        for w in self.words:
            if not w or any(ch.isspace() for ch in w):
                raise ValueError(f"word {w!r} cannot be written in word2vec format (empty or has whitespace)")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(f"{len(self)} {self.vector_size}\n".encode())
            vectors = self.vectors.astype("<f4")
            for w, v in zip(self.words, vectors):
                if binary:
                    f.write(w.encode("utf-8") + b" " + v.tobytes() + b"\n")
                else:  # %.9g round-trips float32 exactly
                    f.write((w + " " + " ".join(f"{x:.9g}" for x in v) + "\n").encode("utf-8"))

    @classmethod
    def load_word2vec_format(cls, path: str | Path, binary: Optional[bool] = None,
                             limit: Optional[int] = None) -> KeyedVectors:
        """Read the word2vec text or binary format; `binary=None` detects which; `limit` keeps the first words."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"word vectors file not found: {path}")
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", errors="replace").split()
            if len(header) != 2 or not all(h.isdigit() for h in header):
                raise ValueError(f"{path}: not a word2vec file (first line must be 'vocab_size vector_size', "
                                 f"got {' '.join(header)!r})")
            V, D = int(header[0]), int(header[1])
            if limit is not None:
                V = min(V, limit)
            body_start = f.tell()
            if binary is None:
                binary = not _looks_like_text(f.read(4096), D)
                f.seek(body_start)
            words, vectors = [], np.empty((V, D), dtype=np.float32)
            for i in range(V):
                if binary:
                    word = _read_binary_word(f, path, i)
                    raw = f.read(4 * D)
                    if len(raw) != 4 * D:
                        raise ValueError(f"{path}: file ends inside the vector of word {i + 1} of {V}")
                    vectors[i] = np.frombuffer(raw, dtype="<f4")
                else:
                    line = f.readline()
                    parts = line.decode("utf-8", errors="strict").rstrip("\n").rstrip().split(" ")
                    if len(parts) != D + 1:
                        raise ValueError(f"{path}: line {i + 2} has {len(parts) - 1} numbers, expected {D}")
                    word = parts[0]
                    vectors[i] = np.array(parts[1:], dtype=np.float32)
                words.append(word)
        return cls(words, vectors)


def _looks_like_text(head: bytes, dim: int) -> bool:
    """True when the first record parses as 'word x_1 .. x_D' in UTF-8."""
    line = head.split(b"\n", 1)[0]
    try:
        parts = line.decode("utf-8").split()
        [float(x) for x in parts[1:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return len(parts) == dim + 1 or (len(parts) > 1 and b"\n" not in head)


def _read_binary_word(f, path: Path, i: int) -> str:
    chars = bytearray()
    while True:
        ch = f.read(1)
        if not ch:
            raise ValueError(f"{path}: file ends inside word {i + 1}")
        if ch == b" ":
            break
        if ch != b"\n" or chars:  # skip the newline word2vec.c writes after each vector
            chars += ch
    try:
        return chars.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: word {i + 1} is not valid UTF-8") from None
