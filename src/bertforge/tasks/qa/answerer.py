"""Answer questions about a text: the main job (Devlin et al. 2019, section 4.2; D6).

    from bertforge.tasks.qa.answerer import QuestionAnswerer
    qa = QuestionAnswerer()                       # the shipped model (bertforge/assets/qa-minilm)
    qa.answer("Who wrote it?", context, top_k=1)  # -> [Answer(text, probability, start, end, ...)]

A context of any length is cut into overlapping windows (`QAWindows`, D6), the
windows of all questions are run in length-sorted batches (padding trimmed per batch), and spans are
decoded over all windows with the n-best / max-context rules of `tasks.qa.decode`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from bertforge.data.squad import QAWindows, SquadExample, collate, length_bucketed_batches
from bertforge.inference import (
    PRECISIONS,
    check_device,
    check_precision,
    precision_context,
    prepare_model,
    progress_bar,
)
from bertforge.models.bert.heads import BertForQuestionAnswering
from bertforge.tasks.qa.decode import QAPredictions, decode_spans
from bertforge.tokenizer.tokenizer import Tokenizer, check_fits

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "assets" / "qa-minilm"
NULL_THRESHOLD_KEY = "null_threshold"  # config.json: the calibrated SQuAD 2.0 null-odds threshold (D6)
__all__ = ["Answer", "DEFAULT_MODEL", "PRECISIONS", "QAResult", "QuestionAnswerer", "load_qa_model",
           "sentence_around"]


@dataclass
class Answer:
    text: str
    probability: float  # softmax over the question's n-best span scores
    start: int  # character offsets into the context, end-exclusive
    end: int
    score: float  # start logit + end logit
    sentence: str = ""  # the sentence around the answer, the answer marked **like this**

    def to_dict(self) -> dict:
        return asdict(self)


def sentence_around(context: str, start: int, end: int, max_chars: int = 300) -> str:
    """The sentence(s) containing context[start:end], with the answer marked **...**."""
    left = max((m.end() for m in re.finditer(r"[.!?]\s+|\n", context[:start])), default=0)
    m = re.search(r"[.!?](\s|$)|\n", context[end:])
    right = end + (m.start() + 1 if m else len(context) - end)
    left = max(left, start - max_chars)
    right = min(right, end + max_chars)
    return (context[left:start] + "**" + context[start:end] + "**" + context[end:right]).strip()


def load_qa_model(model_dir: str | Path, device: str = "cpu", precision: str = "fp32", compile: bool = False
                  ) -> tuple[BertForQuestionAnswering, Tokenizer]:
    """Load a QA model and its tokenizer; refuse a checkpoint without a trained QA head."""
    model_dir = Path(model_dir)
    check_precision(precision)
    check_device(device)
    if not model_dir.is_dir():
        hint = (" (the shipped model is missing: reinstall bertforge or train one with "
                "`bertforge finetune squad`)" if model_dir == DEFAULT_MODEL else "")
        raise FileNotFoundError(f"model directory {model_dir} does not exist{hint}")
    model = BertForQuestionAnswering.from_pretrained(model_dir)
    if model.load_report.initialized:
        raise ValueError(f"{model_dir} has no question-answering head ({', '.join(model.load_report.initialized)} "
                         "missing): fine-tune it first with `bertforge finetune squad --model "
                         f"{model_dir} ...`")
    tokenizer = Tokenizer.from_pretrained(model_dir)
    check_fits(tokenizer, model.config, model_dir)
    return prepare_model(model, device, precision, compile), tokenizer


class QuestionAnswerer:
    """Extractive QA over contexts of any length, batched; see the module docstring."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL, device: str = "cpu", precision: str = "fp32",
                 batch_size: int = 32, windows: QAWindows = QAWindows(), max_answer_length: int = 30,
                 n_best_size: int = 20,
                 model: Optional[BertForQuestionAnswering] = None, tokenizer: Optional[Tokenizer] = None,
                 compile: bool = False, null_threshold: Optional[float] = None, always_answer: bool = False,
                 progress: bool = False):
        """Load `model_dir`, or use an in-memory `model` and `tokenizer` (evaluation during training).

        `precision` and `compile` are described in `bertforge.inference`. `null_threshold`: say "no
        answer" when null score - best span score exceeds it (D6); None takes the model's calibrated
        threshold (config.json `null_threshold`), if any; a model without one always answers.
        `always_answer` keeps the best span even when the null answer wins. `progress`: a bar on a
        terminal over the windows of a long job (bertforge.inference.progress_bar)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if model is None or tokenizer is None:
            model, tokenizer = load_qa_model(model_dir, device, precision, compile)
        positions = model.config.max_position_embeddings
        if windows.max_seq_length > positions:
            raise ValueError(f"windows of {windows.max_seq_length} tokens are longer than the {positions} positions "
                             f"of the model: use --max-seq-length {positions} or less")
        self.model, self.tokenizer = model, tokenizer
        self.device, self.precision, self.batch_size = str(check_device(device)), precision, batch_size
        self.progress = progress
        self.windows, self.max_answer_length, self.n_best_size = windows, max_answer_length, n_best_size
        if null_threshold is None:
            null_threshold = model.config.extra.get(NULL_THRESHOLD_KEY)
        self.null_threshold = None if null_threshold is None else float(null_threshold)
        self.always_answer = always_answer

    def features(self, examples: Sequence[SquadExample]) -> list:
        return self.windows.features(examples, self.tokenizer)

    def predict(self, examples: Sequence[SquadExample], version_2_with_negative: bool = False,
                null_threshold: float = 0.0, n_best_size: Optional[int] = None) -> QAPredictions:
        """Decode answers (and n-best lists, null odds) for SQuAD examples."""
        features = self.features(examples)
        starts, ends = self.logits(features)
        return decode_spans(examples, features, starts, ends, n_best_size=n_best_size or self.n_best_size,
                            max_answer_length=self.max_answer_length,
                            version_2_with_negative=version_2_with_negative, null_threshold=null_threshold)

    @torch.inference_mode()
    def logits(self, features: Sequence) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Start and end logits of every feature (trimmed to its length), in the features' order."""
        starts: list[Optional[torch.Tensor]] = [None] * len(features)
        ends: list[Optional[torch.Tensor]] = [None] * len(features)
        with progress_bar(len(features), "reading", self.progress, unit="window") as bar:
            for idx in length_bucketed_batches(features, self.batch_size):
                batch = collate([features[k] for k in idx])
                with precision_context(self.device, self.precision):
                    out = self.model(**{k: batch[k].to(self.device) for k in
                                        ("input_ids", "attention_mask", "token_type_ids")})
                # bertforge heads return logits=(start, end); HF's QA models start_logits / end_logits
                s, e = out.logits if hasattr(out, "logits") else (out.start_logits, out.end_logits)
                s, e = s.float().cpu(), e.float().cpu()
                for row, k in enumerate(idx):
                    n = len(features[k].input_ids)
                    starts[k], ends[k] = s[row, :n], e[row, :n]
                bar.update(len(idx))
        return starts, ends  # type: ignore[return-value]

    def ask_many(self, questions: Sequence[str], contexts: Sequence[str] | str, top_k: int = 1
                 ) -> list[QAResult]:
        """Answer each question about its context (one context for all when a single string is given).

        With a calibrated null threshold (the shipped model has one) a question whose null score wins
        gets no answers (`answers == []`) unless `always_answer`. `no_answer_probability` is
        sigmoid(null_odds - threshold): 0.5 at the calibrated threshold and above 0.5 exactly when the
        text is judged not to hold the answer (D6); 0.0 for a model without a threshold. (The null's share
        of the n-best softmax would disagree with the decision whenever the threshold is not 0.)
        """
        if isinstance(contexts, str):
            contexts = [contexts] * len(questions)
        if len(contexts) != len(questions):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        for q, c in zip(questions, contexts):
            if not isinstance(q, str) or not isinstance(c, str):
                raise TypeError("questions and contexts must be str")
            if not q.strip():
                raise ValueError("the question is empty")
            if not c.strip():
                raise ValueError("the context is empty")
        examples = [SquadExample(qas_id=str(i), question=q, context=c, answers=[], is_impossible=False)
                    for i, (q, c) in enumerate(zip(questions, contexts))]
        with_null = self.null_threshold is not None
        decoded = self.predict(examples, version_2_with_negative=with_null,
                               null_threshold=self.null_threshold or 0.0, n_best_size=max(self.n_best_size, top_k))
        return [self._result(ex, decoded, top_k) for ex in examples]

    def _result(self, ex: SquadExample, decoded: QAPredictions, top_k: int) -> QAResult:
        nbest = decoded.nbest.get(ex.qas_id, [])
        margin = decoded.null_odds.get(ex.qas_id, -math.inf) - (self.null_threshold or 0.0)  # > 0: null wins
        null_p = 0.0 if self.null_threshold is None else 1.0 / (1.0 + math.exp(-min(max(margin, -700.0), 700.0)))
        no_answer = self.null_threshold is not None and not self.always_answer and margin > 0
        answers = []
        for entry in [e for e in nbest if e.get("char_start") is not None][:0 if no_answer else top_k]:
            s, e = entry["char_start"], entry["char_end"]
            answers.append(Answer(text=entry["text"], probability=float(entry["probability"]), start=s, end=e,
                                  score=float(entry["start_logit"] + entry["end_logit"]),
                                  sentence=sentence_around(ex.context, s, e)))
        return QAResult(question=ex.question, answers=answers, no_answer_probability=null_p)

    def answer_many(self, questions: Sequence[str], contexts: Sequence[str] | str, top_k: int = 1
                    ) -> list[list[Answer]]:
        """The answers of `ask_many`, one list per question ([] = no answer in the text)."""
        return [r.answers for r in self.ask_many(questions, contexts, top_k)]

    def ask(self, question: str, context: str, top_k: int = 1) -> QAResult:
        """One question about one context: answers (best first) and the no-answer probability."""
        return self.ask_many([question], [context], top_k)[0]

    def answer(self, question: str, context: str, top_k: int = 1) -> list[Answer]:
        """The `top_k` best answers to one question about one context, best first ([] = none)."""
        return self.ask(question, context, top_k).answers


@dataclass
class QAResult:
    """One question's outcome: `answers` best first ([] = the text does not answer it) and the model's
    probability that there is no answer (the null span's share of the n-best softmax, D6)."""

    question: str
    answers: list[Answer]
    no_answer_probability: float = 0.0

    def to_dict(self) -> dict:
        return {"question": self.question, "answers": [a.to_dict() for a in self.answers],
                "no_answer_probability": self.no_answer_probability}
