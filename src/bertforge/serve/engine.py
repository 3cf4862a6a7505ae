"""The models a server answers with, and one function per request kind that runs a whole group at once.

    engine = Engine.load(model_dir=None, embed_model=None, mlm_model=None, docs_index=None)
    engine.qa_batch([QAJob("Who wrote it?", context, top_k=3), ...])  # -> one list of answers per job

Every `*_batch` function takes the jobs the batcher grouped and returns one JSON-ready result per job, in
order. They reuse the library: `QuestionAnswerer.answer_many` (all windows of all questions in
length-sorted batches), `SentenceEncoder.encode`, `fill_mask`, `viz.model_attentions`, and the document
index's `ask_docs_many` / `ask_docs`. Nothing here is thread-safe on purpose: the batcher's one worker is
the only caller.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any, Optional

from bertforge.errors import BertforgeError

log = logging.getLogger("bertforge.serve")

__all__ = ["AttentionJob", "DocsBackend", "DocsJob", "EmbedJob", "Engine", "MaskJob", "QAJob", "load_docs"]

# Fields of a document answer the API returns (the agreed interface of bertforge.retrieval, plus the
# optional ones a newer index gives: page, score, and the passage the answer was read from).
DOC_FIELDS = ("text", "probability", "file", "line", "sentence", "start", "end")


@dataclass
class QAJob:
    question: str
    context: str
    top_k: int = 1


@dataclass
class DocsJob:
    question: str
    top_k: int = 1
    top_passages: int = 5


@dataclass
class EmbedJob:
    sentences: list[str]


@dataclass
class MaskJob:
    text: str
    top_k: int = 5


@dataclass
class AttentionJob:
    text: str
    max_tokens: int = 64


@dataclass
class DocsBackend:
    """A loaded document index and the functions that answer from it (bertforge.retrieval's, or a test's)."""

    index: Any
    ask: Callable[..., list]  # ask_docs(answerer, index, question, top_k=, top_passages=) -> [result]
    ask_many: Optional[Callable[..., list]] = None  # ask_docs_many(answerer, index, questions, ...) -> [[result]]
    path: str = ""

    def answer(self, answerer, questions: list[str], top_k: int, top_passages: int) -> list[list]:
        if self.ask_many is not None:
            return self.ask_many(answerer, self.index, questions, top_k=top_k, top_passages=top_passages)
        return [self.ask(answerer, self.index, q, top_k=top_k, top_passages=top_passages) for q in questions]


def load_docs(index_path: str | Path, device: str = "cpu") -> DocsBackend:
    """Open a document index with bertforge.retrieval, imported only now: a clear error when it is absent."""
    try:
        retrieval = importlib.import_module("bertforge.retrieval")
    except ModuleNotFoundError as e:
        if e.name in ("bertforge.retrieval", "bertforge"):
            raise BertforgeError("--docs needs bertforge.retrieval (document indexes), which this installation "
                                 "does not have: update bertforge, or serve without --docs and paste the "
                                 "text into the page") from None
        raise BertforgeError(f"--docs needs the package {e.name!r}, which is not installed: "
                             f"pip install {e.name}") from None
    load = retrieval.DocumentIndex.load
    index = load(index_path, device=device) if _accepts(load, "device") else load(index_path)
    return DocsBackend(index=index, ask=retrieval.ask_docs, ask_many=getattr(retrieval, "ask_docs_many", None),
                       path=str(index_path))


def _accepts(fn: Callable, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def doc_answer_to_dict(result: Any) -> dict:
    """The JSON of one document answer: the agreed fields, page/score when given, the passage when known."""
    out = {name: getattr(result, name) for name in DOC_FIELDS}
    out["file"] = str(out["file"])
    for name in ("page", "score"):
        if getattr(result, name, None) is not None:
            out[name] = getattr(result, name)
    passage = getattr(result, "passage", None)
    if passage is not None and hasattr(passage, "text") and hasattr(passage, "start"):
        # lets the page show the answer highlighted in its passage: text[start - passage.start : ...]
        out["passage"] = {"text": passage.text, "start": passage.start, "line": getattr(passage, "line", None)}
    return out


def _by(jobs: Sequence, key: Callable) -> Iterator[tuple[Any, list[int]]]:
    """Indices of `jobs` grouped by `key` (jobs with the same key run in one library call)."""
    order = sorted(range(len(jobs)), key=lambda i: key(jobs[i]))
    for k, idx in groupby(order, key=lambda i: key(jobs[i])):
        yield k, list(idx)


# Why a feature is off when nothing more specific is known, and how to turn it on.
OFF = {
    "embed": "no sentence-embedding model is served: restart with `bertforge serve --embed-model DIR`",
    "fill-mask": "no masked-LM model is served (the QA model has no MLM head): restart with "
                 "`bertforge serve --mlm-model DIR`, DIR a `bertforge pretrain` output",
    "docs": "no document index is served: restart with `bertforge serve --docs INDEX`",
}


@dataclass
class Engine:
    """The served models; `None` for a feature that is off (its endpoint answers 503 and says why)."""

    qa: Any  # QuestionAnswerer
    encoder: Any = None  # SentenceEncoder for /api/embed
    mlm: Optional[tuple] = None  # (BertForMaskedLM or BertForPreTraining, Tokenizer) for /api/fill-mask
    docs: Optional[DocsBackend] = None
    names: dict[str, str] = field(default_factory=dict)  # feature -> what serves it (for /api/info)
    off_reasons: dict[str, str] = field(default_factory=dict)  # feature -> why it is off, when not OFF's reason

    def why_off(self, feature: str) -> Optional[str]:
        """None when `feature` (embed, fill-mask, docs) is served, else why not and how to turn it on."""
        served = {"embed": self.encoder, "fill-mask": self.mlm, "docs": self.docs}[feature]
        return None if served is not None else self.off_reasons.get(feature, OFF[feature])

    @classmethod
    def load(cls, model_dir: Optional[str | Path] = None, embed_model: Optional[str | Path] = None,
             embed: bool = True, mlm_model: Optional[str | Path] = None, docs_index: Optional[str | Path] = None,
             device: str = "cpu", precision: str = "fp32", batch_size: int = 32, compile: bool = False) -> Engine:
        """Load every model once. The embedding model defaults to all-MiniLM-L6-v2 when it is installed."""
        from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

        qa = QuestionAnswerer(model_dir or DEFAULT_MODEL, device=device, precision=precision,
                              batch_size=batch_size, compile=compile)
        engine = cls(qa=qa, names={"qa": str(model_dir or DEFAULT_MODEL)})
        if not embed:
            engine.off_reasons["embed"] = "the server was started with --no-embed"
        else:
            engine.encoder, name, why = _load_encoder(embed_model, device, precision, batch_size)
            if why:
                engine.off_reasons["embed"] = why
            else:
                engine.names["embed"] = name
        if mlm_model is not None:
            from bertforge.tasks.pretraining import load_mlm

            model, tokenizer = load_mlm(mlm_model)
            engine.mlm = (model.to(device).eval(), tokenizer)
            engine.names["fill-mask"] = str(mlm_model)
        if docs_index is not None:
            engine.docs = load_docs(docs_index, device)
            engine.names["docs"] = str(docs_index)
        return engine

    # ---- one function per request kind: a group of jobs -> one result per job -------------------

    def qa_batch(self, jobs: Sequence[QAJob]) -> list[dict]:
        """All questions of the group in one `ask_many` call per distinct top_k (so every answer list is
        exactly the one-by-one answer list). Each result: {"answers": [...] ([] = no answer),
        "no_answer_probability": the model's, or None when the QA model has no notion of it}."""
        results: list[Optional[dict]] = [None] * len(jobs)
        for top_k, idx in _by(jobs, lambda j: j.top_k):
            questions, contexts = [jobs[i].question for i in idx], [jobs[i].context for i in idx]
            if hasattr(self.qa, "ask_many"):
                found = [(r.answers, r.no_answer_probability) for r in self.qa.ask_many(questions, contexts, top_k)]
            else:  # an answerer without null scores
                found = [(answers, None) for answers in self.qa.answer_many(questions, contexts, top_k=top_k)]
            for i, (answers, null_p) in zip(idx, found):
                results[i] = {"answers": [a.to_dict() for a in answers], "no_answer_probability": null_p}
        return results  # type: ignore[return-value]

    def docs_batch(self, jobs: Sequence[DocsJob]) -> list[list[dict]]:
        """Questions over the document index: one retrieval + reading call per distinct (top_k, passages)."""
        assert self.docs is not None, "the app checks that a document index is served"
        results: list[Optional[list[dict]]] = [None] * len(jobs)
        for (top_k, passages), idx in _by(jobs, lambda j: (j.top_k, j.top_passages)):
            found = self.docs.answer(self.qa, [jobs[i].question for i in idx], top_k, passages)
            for i, answers in zip(idx, found):
                results[i] = [doc_answer_to_dict(a) for a in answers]
        return results  # type: ignore[return-value]

    def embed_batch(self, jobs: Sequence[EmbedJob]) -> list[list[list[float]]]:
        """All sentences of all jobs in one `encode` call (it sorts them by length), split back per job."""
        flat = [s for job in jobs for s in job.sentences]
        vectors = self.encoder.encode(flat).tolist()
        out, at = [], 0
        for job in jobs:
            out.append(vectors[at: at + len(job.sentences)])
            at += len(job.sentences)
        return out

    def fill_mask_batch(self, jobs: Sequence[MaskJob]) -> list[list[dict]]:
        """Each text alone (`fill_mask` takes one); a [MASK]-less text raises ValueError -> HTTP 400."""
        import torch

        from bertforge.models.bert.pretraining import fill_mask

        model, tokenizer = self.mlm
        out = []
        with torch.inference_mode():
            for job in jobs:
                masks = fill_mask(model, tokenizer, job.text, top_k=job.top_k)
                out.append([{"mask": m, "candidates": [{"token": t, "probability": p} for t, p in cands]}
                            for m, cands in enumerate(masks)])
        return out

    def attention_batch(self, jobs: Sequence[AttentionJob]) -> list[dict]:
        """Attention probabilities of the served QA model's encoder for each text (`viz.model_attentions`)."""
        from bertforge.viz import model_attentions

        out = []
        with self._eager_attention() as encoder:
            for job in jobs:
                tokens, att = model_attentions(encoder, self.qa.tokenizer, job.text, max_length=job.max_tokens)
                full = len(self.qa.tokenizer.tokenize(job.text)) + 2  # + [CLS] [SEP]
                out.append({"tokens": tokens, "attentions": att.double().numpy().round(4).tolist(),
                            "layers": int(att.shape[0]), "heads": int(att.shape[1]), "truncated": full > len(tokens)})
        return out

    @contextmanager
    def _eager_attention(self) -> Iterator[Any]:
        """The QA model's encoder on the explicit attention path (D3: only it returns probabilities), put
        back on its own path afterwards so the QA requests keep the fast kernel."""
        model = getattr(self.qa.model, "_orig_mod", self.qa.model)  # under torch.compile
        encoder = model.bert
        before = encoder.config.attn_implementation
        try:
            yield encoder
        finally:
            encoder.set_attn_implementation(before)


def _load_encoder(model: Optional[str | Path], device: str, precision: str, batch_size: int
                  ) -> tuple[Any, str, str]:
    """(encoder, its name, "") or (None, "", why it is off) when the default weights are not installed."""
    from bertforge.tasks.embedding import SentenceEncoder

    if model is None:
        from bertforge.models.bert.checkpoint import minilm_path

        try:
            model = minilm_path()
        except FileNotFoundError as e:
            return None, "", f"no sentence-embedding model: {e} (or pass --embed-model DIR)"
    return SentenceEncoder(model, device=device, precision=precision, batch_size=batch_size), str(model), ""
