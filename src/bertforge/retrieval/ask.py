"""Ask a folder: retrieve the passages that may hold the answer, read them, answer with the source.

    from bertforge.retrieval import DocumentIndex, ask_docs
    from bertforge.tasks.qa.answerer import QuestionAnswerer
    index, qa = DocumentIndex.build("notes/"), QuestionAnswerer()
    for a in ask_docs(qa, index, "When was the lab founded?", top_k=3):
        print(a.text, a.probability, f"{a.file}:{a.line}", a.sentence)
    # [] means: no answer in these documents

The retriever-reader recipe of DrQA (Chen et al. 2017, "Reading Wikipedia to Answer Open-Domain
Questions"): the index proposes `top_passages` passages; the QA model reads all of them in one batch
(`QuestionAnswerer.answer_many`); the spans of all passages then compete on one score:

    score = reader score (start logit + end logit) - RANK_PENALTY * ln(rank of its passage)

DrQA ranks by the reader score alone; a reader trained on single paragraphs is over-confident on
passages that do not hold the answer, and with it F1 fell as more passages were read (SQuAD-dev
folder, XQuAD-en questions: 50.3 at K=1, 39.5 at K=5, 28.3 at K=20). Mixing in the retriever's
belief, as BERTserini does (Yang et al. 2019: a linear mix of the BM25 and reader scores), fixes it:
with the penalty 3 (tuned on half of the XQuAD articles, 2-10 tried) F1 is 51.6 at K=5 and at K=20.
The top passage gets no penalty (ln 1 = 0); the 5th loses 4.8 logits. docs/retrieval.md has the table.

`probability` is the softmax of that score over every candidate span of every passage read (the
reader's n-best of each, duplicates from overlapping passages merged), so it is comparable across
passages, unlike the per-passage probability of `answer_many`.

**No answer.** A reader with a null score (SQuAD 2.0 training) may return no span for a passage: that
passage contributes nothing. When no passage has a span, or the best span's score is below
`min_score`, the result is [] ("no answer in these documents"). The shipped reader has no null score
and answers almost anything with confidence, so the floor can only be a compromise. Measured with the
SQuAD-dev folder at K=5 (docs/retrieval.md), refused at a floor of 3 / 4 / 5: answerable XQuAD
questions 0.6 / 1.9 / 4.8 % (F1 -0.1 / -0.4 / -1.0), the same questions with their paragraph removed
from the folder 5.3 / 11.9 / 23.6 %, off-topic COVID-QA questions 17 / 25 / 41 %. The default, 3,
costs almost nothing on answerable questions; `min_score=None` turns it off. By default
(`min_score="auto"`) the floor applies only to a reader without a calibrated null threshold: a model
that has one (config.json `null_threshold`, see `QuestionAnswerer`) decides for itself, and a reader
asked to `always_answer` gets no floor either.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

from bertforge.errors import BertforgeError
from bertforge.retrieval.chunking import Passage
from bertforge.retrieval.index import DocumentIndex

__all__ = ["DEFAULT_MIN_SCORE", "DocAnswer", "NO_ANSWER", "ask_docs", "ask_docs_many", "read_passages"]

NO_ANSWER = "no answer in these documents"
DEFAULT_MIN_SCORE = 3.0  # ranking score below which there is no answer, for a reader without a null score
AUTO = "auto"  # min_score: DEFAULT_MIN_SCORE, or no floor when the reader has its own null threshold


def _floor(answerer, min_score: Optional[float] | str) -> Optional[float]:
    """The score floor to apply: `min_score`, or for "auto" DEFAULT_MIN_SCORE unless the reader decides
    "no answer" itself (a calibrated null threshold) or was told to always answer."""
    if min_score != AUTO:
        return min_score  # type: ignore[return-value]
    if getattr(answerer, "null_threshold", None) is not None or getattr(answerer, "always_answer", False):
        return None
    return DEFAULT_MIN_SCORE
POOL = 20  # spans kept per passage for the cross-passage softmax (the reader's n-best size)
RANK_PENALTY = 3.0  # logits per unit of ln(passage rank); see the module docstring


@dataclass
class DocAnswer:
    """An answer found in the folder: `text` is the file's text[start:end], at `file`:`line`."""

    text: str
    probability: float  # softmax over all candidate spans of all passages read
    file: str  # relative to the indexed folder
    line: int  # 1-based line of the answer's start (within `page` for a PDF)
    sentence: str  # the sentence around the answer, the answer marked **like this** (white space runs collapsed)
    start: int  # character offsets into the file's text, end-exclusive
    end: int
    score: float  # the ranking score: reader's start + end logit - RANK_PENALTY * ln(passage rank)
    page: Optional[int] = None  # PDF page (1-based), None for other files
    passage: Optional[Passage] = None  # the passage it was read from, with its retrieval score

    @property
    def location(self) -> str:
        return f"{self.file}:p{self.page}:{self.line}" if self.page is not None else f"{self.file}:{self.line}"

    def to_dict(self) -> dict:
        return asdict(self)


def _locate(passage: Passage, offset: int) -> tuple[int, Optional[int]]:
    """(line, page) of `offset` (into passage.text) in the file: the passage's own line plus the newlines
    before the offset; a form feed inside the passage starts a new PDF page (lines restart at 1)."""
    before = passage.text[:offset]
    if passage.page is not None and "\f" in before:
        return before.count("\n", before.rindex("\f")) + 1, passage.page + before.count("\f")
    return passage.line + before.count("\n"), passage.page


def _softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def read_passages(answerer, questions: Sequence[str], hits: Sequence[Sequence[Passage]], top_k: int = 1,
                  min_score: Optional[float] | str = AUTO) -> list[list[DocAnswer]]:
    """The reader half: read each question's retrieved passages (`hits[i]`, best first) in one batch
    and rank the spans of all of them (see the module docstring). [] for a question = no answer."""
    min_score = _floor(answerer, min_score)
    pairs = [(qi, rank, p) for qi, ps in enumerate(hits) for rank, p in enumerate(ps, start=1)]
    read = answerer.answer_many([questions[qi] for qi, _, _ in pairs], [p.text for _, _, p in pairs],
                                top_k=max(top_k, POOL)) if pairs else []
    candidates: list[dict[tuple[str, int, int], DocAnswer]] = [{} for _ in questions]
    for (qi, rank, passage), answers in zip(pairs, read):
        for a in answers:  # [] when the reader finds no answer in this passage
            line, page = _locate(passage, a.start)
            found = DocAnswer(text=a.text, probability=0.0, file=passage.file, line=line,
                              sentence=" ".join(a.sentence.split()), start=passage.start + a.start,
                              end=passage.start + a.end, score=a.score - RANK_PENALTY * math.log(rank), page=page,
                              passage=passage)
            key = (found.file, found.start, found.end)  # overlapping passages propose the same span twice
            if key not in candidates[qi] or candidates[qi][key].score < found.score:
                candidates[qi][key] = found
    results = []
    for pool in candidates:
        ranked = sorted(pool.values(), key=lambda a: a.score, reverse=True)
        if not ranked or (min_score is not None and ranked[0].score < min_score):
            results.append([])
            continue
        for a, p in zip(ranked, _softmax([a.score for a in ranked])):
            a.probability = p
        results.append(ranked[:top_k])
    return results


def ask_docs_many(answerer, index: DocumentIndex, questions: Sequence[str], top_k: int = 1, top_passages: int = 5,
                  min_score: Optional[float] | str = AUTO, mode: str = "hybrid") -> list[list[DocAnswer]]:
    """`ask_docs` for many questions: one retrieval batch, one reading batch for all (question, passage) pairs."""
    if isinstance(questions, str):
        raise TypeError("ask_docs_many() takes a list of questions, not one str")
    if top_k < 1 or top_passages < 1:
        raise BertforgeError(f"top_k and top_passages must be >= 1, got {top_k} and {top_passages}")
    return read_passages(answerer, questions, index.search_many(questions, top_passages, mode), top_k, min_score)


def ask_docs(answerer, index: DocumentIndex, question: str, top_k: int = 1, top_passages: int = 5,
             min_score: Optional[float] | str = AUTO, mode: str = "hybrid") -> list[DocAnswer]:
    """The `top_k` best answers to `question` from the index's documents, best first; [] when there is
    no answer in these documents. `answerer` is a `QuestionAnswerer`; `mode`: hybrid, vector or bm25."""
    if not isinstance(question, str):
        raise TypeError("ask_docs() takes one question (str); use ask_docs_many for a list")
    return ask_docs_many(answerer, index, [question], top_k, top_passages, min_score, mode)[0]
