"""bertforge: the Transformer and BERT from first principles.

The public API is imported lazily: `import bertforge` loads no torch; the first use of a name loads
its module.

    from bertforge import BertModel, Tokenizer, QuestionAnswerer
    qa = QuestionAnswerer()                                   # the shipped QA model
    qa.ask("Who wrote it?", text).answers

The one documented import-time side effect: ONEDNN_PRIMITIVE_CACHE_CAPACITY defaults to 32 (below).
"""
from __future__ import annotations

import importlib
import os as _os
from typing import Any

# oneDNN keeps up to 1,024 compiled matmul primitives, one per input shape, each with its own buffers;
# with varied-length bf16 batches on a CPU every batch brings new shapes and a SQuAD fine-tuning run grew
# to 12.7 GB and was OOM-killed. 32 bounds it at no speed cost (docs/inference.md has the measurement).
# Read when oneDNN first compiles a primitive; a value the user set wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")

# name -> module that defines it
_PUBLIC = {
    "BertConfig": "bertforge.models.bert.config",
    "BertModel": "bertforge.models.bert.modeling",
    "BertForQuestionAnswering": "bertforge.models.bert.heads",
    "BertForSequenceClassification": "bertforge.models.bert.heads",
    "BertForTokenClassification": "bertforge.models.bert.heads",
    "BertForMultipleChoice": "bertforge.models.bert.heads",
    "BertForPreTraining": "bertforge.models.bert.pretraining",
    "BertForMaskedLM": "bertforge.models.bert.pretraining",
    "GPTConfig": "bertforge.models.gpt.config",
    "GPTLMHeadModel": "bertforge.models.gpt.modeling",
    "Seq2SeqConfig": "bertforge.models.seq2seq.model",
    "Seq2SeqTransformer": "bertforge.models.seq2seq.model",
    "Word2Vec": "bertforge.models.word2vec.model",
    "Tokenizer": "bertforge.tokenizer.tokenizer",
    "QuestionAnswerer": "bertforge.tasks.qa.answerer",
    "SentenceEncoder": "bertforge.tasks.embedding",
    "Translator": "bertforge.tasks.translation",
    "DocumentIndex": "bertforge.retrieval.index",
    "TrainConfig": "bertforge.training.trainer",
    "Trainer": "bertforge.training.trainer",
    "BertforgeError": "bertforge.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'bertforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
