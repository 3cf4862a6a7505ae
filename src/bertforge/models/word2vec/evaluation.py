"""Intrinsic evaluation of word vectors: word-similarity Spearman and Google analogy accuracy.

- WordSim-353 (Finkelstein et al. 2002) and SimLex-999 (Hill et al. 2015): Spearman's rank correlation
  between human similarity scores and the cosine of the two words' vectors, over pairs whose words are
  both in the (first `restrict_vocab` words of the) vocabulary; pairs with unknown words are skipped and
  counted (`oov_ratio`). Scores are compared case-insensitively.
- Google analogies (Mikolov et al. 2013a, questions-words.txt, 19,544 questions in 14 sections):
  "a b c d" is right when d is the nearest word to unit(b) - unit(a) + unit(c) among the `restrict_vocab`
  most frequent words (30,000 as customary), a, b and c excluded (3CosAdd). Questions with a word
  outside that vocabulary are skipped.

These are gensim's `evaluate_word_pairs` / `evaluate_word_analogies` definitions, and the tests check
that we get gensim's numbers on the same vectors. The files are read from any path, by default from the
copies the `gensim` package ships in `gensim/test/test_data` (found without importing gensim).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from bertforge.fileio import read_text
from bertforge.metrics.classification import pearson, rankdata, spearman  # noqa: F401 - re-exported
from bertforge.models.word2vec.keyed_vectors import KeyedVectors

GENSIM_FILES = {"wordsim": "wordsim353.tsv", "simlex": "simlex999.txt", "analogies": "questions-words.txt"}


def gensim_test_file(name: str) -> Path:
    """Path of an evaluation file shipped by gensim (wordsim353.tsv, simlex999.txt, questions-words.txt)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: gensim is not installed (pip install gensim, a dev dependency), "
                                f"or give the file's path")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in this gensim installation; give the file's path")
    return path


def _lookup(kv: KeyedVectors, restrict_vocab: Optional[int], case_insensitive: bool) -> dict[str, int]:
    """Word -> row for the first `restrict_vocab` words; case-insensitive keeps the most frequent variant."""
    n = len(kv) if restrict_vocab is None else min(restrict_vocab, len(kv))
    words = kv.words[:n]
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}
    out: dict[str, int] = {}
    for i, w in enumerate(words):
        out.setdefault(w.upper(), i)
    return out


@dataclass
class PairResult:
    spearman: float
    pearson: float
    pairs: int  # pairs scored
    oov_pairs: int  # pairs skipped for an unknown word

    @property
    def oov_ratio(self) -> float:
        return self.oov_pairs / max(1, self.pairs + self.oov_pairs)


def evaluate_word_pairs(kv: KeyedVectors, path: str | Path, restrict_vocab: Optional[int] = 300_000,
                        case_insensitive: bool = True, delimiter: str = "\t") -> PairResult:
    """Spearman / Pearson between gold similarity and cosine, over in-vocabulary pairs ('#' lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word-pair file not found: {path}")
    index = _lookup(kv, restrict_vocab, case_insensitive)
    unit = kv.unit_vectors
    gold, model, oov = [], [], 0
    for line in read_text(path).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(delimiter)
        if len(parts) != 3:
            raise ValueError(f"{path}: expected 'word1{delimiter}word2{delimiter}score', got {line!r}")
        a, b, score = parts
        if case_insensitive:
            a, b = a.upper(), b.upper()
        if a not in index or b not in index:
            oov += 1
            continue
        gold.append(float(score))
        model.append(float(unit[index[a]] @ unit[index[b]]))
    if len(gold) < 2:
        raise ValueError(f"{path}: fewer than two pairs with both words in the vocabulary")
    return PairResult(spearman(gold, model), pearson(gold, model), len(gold), oov)


@dataclass
class AnalogyResult:
    correct: int
    total: int  # questions answered (all four words in the restricted vocabulary)
    oov_questions: int
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (correct, total)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def evaluate_analogies(kv: KeyedVectors, path: str | Path, restrict_vocab: int = 30_000,
                       case_insensitive: bool = True, batch: int = 1024) -> AnalogyResult:
    """3CosAdd accuracy on a questions-words.txt style file (': section' lines, then 'a b c d')."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"analogy file not found: {path}")
    index = _lookup(kv, restrict_vocab, case_insensitive)
    questions: list[tuple[int, int, int, int]] = []
    section_of: list[str] = []
    section, oov = "", 0
    sections: dict[str, tuple[int, int]] = {}
    for line in read_text(path).splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
            sections.setdefault(section, (0, 0))
            continue
        if not line.strip():
            continue
        words = line.split()
        if len(words) != 4:
            raise ValueError(f"{path}: expected four words per question, got {line!r}")
        if case_insensitive:
            words = [w.upper() for w in words]
        if any(w not in index for w in words):
            oov += 1
            continue
        questions.append(tuple(index[w] for w in words))
        section_of.append(section)
    n = min(restrict_vocab, len(kv))
    unit = kv.unit_vectors[:n].astype(np.float32)  # (n, D)
    q = np.array(questions, dtype=np.int64).reshape(-1, 4)
    hits = np.zeros(len(q), dtype=bool)
    for lo in range(0, len(q), batch):
        a, b, c, d = q[lo:lo + batch].T
        query = unit[b] - unit[a] + unit[c]  # mean of the three up to a factor, as gensim's most_similar
        query /= np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
        sims = query @ unit.T  # (batch, n)
        rows = np.arange(len(a))
        for excluded in (a, b, c):
            sims[rows, excluded] = -np.inf
        hits[lo:lo + batch] = sims.argmax(1) == d
    for s, hit in zip(section_of, hits):
        c_, t_ = sections[s]
        sections[s] = (c_ + int(hit), t_ + 1)
    return AnalogyResult(int(hits.sum()), len(q), oov, sections)


@dataclass
class EvalReport:
    wordsim: Optional[PairResult]
    simlex: Optional[PairResult]
    analogies: Optional[AnalogyResult]

    def lines(self) -> list[str]:
        out = []
        for name, r in (("WordSim-353", self.wordsim), ("SimLex-999", self.simlex)):
            if r is not None:
                out.append(f"{name}: Spearman {r.spearman:.4f} (Pearson {r.pearson:.4f}) on {r.pairs} pairs, "
                           f"{r.oov_pairs} skipped (unknown words)")
        if self.analogies is not None:
            a = self.analogies
            out.append(f"Google analogies: accuracy {a.accuracy:.4f} ({a.correct}/{a.total}), "
                       f"{a.oov_questions} skipped (unknown words)")
        return out


def evaluate_all(kv: KeyedVectors, wordsim: Optional[str | Path] = None, simlex: Optional[str | Path] = None,
                 analogies: Optional[str | Path] = None, restrict_vocab: int = 30_000) -> EvalReport:
    """All three benchmarks; a file not given is taken from gensim's test data."""
    ws = evaluate_word_pairs(kv, wordsim or gensim_test_file(GENSIM_FILES["wordsim"]))
    sl = evaluate_word_pairs(kv, simlex or gensim_test_file(GENSIM_FILES["simlex"]))
    an = evaluate_analogies(kv, analogies or gensim_test_file(GENSIM_FILES["analogies"]), restrict_vocab)
    return EvalReport(ws, sl, an)
