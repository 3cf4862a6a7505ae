"""Tiny models and data files for the command-line tests: every command runs end to end in a second.

`make_models(root)` writes randomly initialised models (a BERT encoder, a QA model, a masked-LM
pre-training output, a sentence classifier, a tagger, a multiple-choice model, a translation model) with
one small vocabulary, and the data files the commands read. The answers are arbitrary; what the tests
check is that every code path runs and fails cleanly.
"""
from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Optional

WORDS = ("the cat sat on a mat dog ran in park paris is capital of france who what where when good bad "
         "film plot was superb awful alice lives bob").split()
VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?"] + WORDS
POSITIONS = 512  # the tiny models' max_position_embeddings (BERT's): longer requests must be refused


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) + "." for _ in range(n)]


def _save_vocab(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


def _bert(cls, path: Path, **extra) -> Path:
    from bertforge.models.bert.config import BertConfig

    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), max_position_embeddings=POSITIONS,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config.extra.update(extra)
    cls(config).save_pretrained(path)
    _save_vocab(path)
    return path


def _classifier(cls, path: Path, kind: str, labels: Optional[list[str]], max_length: int = 32) -> Path:
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.heads import set_labels

    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), max_position_embeddings=POSITIONS)
    if labels:
        set_labels(config, labels, "single_label_classification" if kind == "sequence" else None)
    cls(config).save_pretrained(path)
    _save_vocab(path)
    (path / "finetune.json").write_text(json.dumps({"task": kind, "kind": kind, "max_length": max_length}))
    return path


def _translator(path: Path) -> Path:
    from bertforge.models.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer
    from bertforge.tasks.translation import Translator
    from bertforge.tokenizer.tokenizer import Tokenizer

    tok = Tokenizer(VOCAB)
    config = Seq2SeqConfig.preset("tiny", src_vocab_size=len(VOCAB), tgt_vocab_size=len(VOCAB), max_position=32,
                                  bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    Translator(Seq2SeqTransformer(config), tok, tok).save_pretrained(path)
    return path


def _gpt(path: Path) -> Path:
    from bertforge.models.gpt.config import GPTConfig
    from bertforge.models.gpt.modeling import GPTLMHeadModel

    sep = VOCAB.index("[SEP]")
    GPTLMHeadModel(GPTConfig.preset("tiny", vocab_size=len(VOCAB), bos_token_id=sep, eos_token_id=sep,
                                    pad_token_id=0)).save_pretrained(path)
    _save_vocab(path)
    return path


def _data(root: Path) -> dict[str, Path]:
    """The data files: a corpus, classification JSONL, CoNLL, CommonsenseQA JSONL, SQuAD JSON, vectors."""
    files: dict[str, Path] = {}
    sents = _sentences(60, 0)
    files["corpus"] = root / "corpus.txt"
    files["corpus"].write_text("\n\n".join("\n".join(sents[i:i + 4]) for i in range(0, 60, 4)) + "\n")
    files["sentences"] = root / "sentences.txt"
    files["sentences"].write_text("\n".join(sents[:5]) + "\n")
    files["classify"] = root / "labelled.jsonl"
    files["classify"].write_text("".join(json.dumps({"text": s, "label": "pos" if "good" in s else "neg"}) + "\n"
                                         for s in sents[:24]))
    files["conll"] = root / "ner.conll"
    files["conll"].write_text("\n\n".join("\n".join(f"{w} {'B-PER' if w in ('alice', 'bob') else 'O'}"
                                                    for w in s.rstrip('.').split()) for s in sents[:12]) + "\n")
    files["choice"] = root / "choice.jsonl"
    files["choice"].write_text("".join(json.dumps({
        "id": str(i), "answerKey": "A", "question": {"stem": s, "choices": [
            {"label": "A", "text": "cat"}, {"label": "B", "text": "dog"}, {"label": "C", "text": "park"}]}}) + "\n"
        for i, s in enumerate(sents[:8])))
    context = " ".join(sents[:6])
    files["squad"] = root / "squad.json"
    files["squad"].write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": context, "qas": [{"id": "q1", "question": "who lives in paris?",
                                     "answers": [{"text": context.split()[0], "answer_start": 0}]}]}]}]}))
    files["vectors"] = root / "vectors.txt"
    files["vectors"].write_text(f"{len(WORDS)} 4\n" + "".join(f"{w} {i % 3} {i % 5} {i % 7} {i % 2}\n"
                                                             for i, w in enumerate(WORDS, 1)))
    files["docs"] = root / "docs"
    files["docs"].mkdir()
    for i in range(3):
        (files["docs"] / f"note{i}.txt").write_text(" ".join(sents[i * 5:(i + 1) * 5]) + "\n")
    files["pairs"] = root / "pairs.tsv"
    files["pairs"].write_text("".join(f"{a}\t{b}\t{(i % 10) / 1.0}\n" for i, (a, b) in
                                      enumerate(zip(WORDS, WORDS[1:]))))
    return files


def make_models(root: Path) -> dict[str, Path]:
    """Every tiny model and data file the CLI tests use, under `root`, by name."""
    import torch

    from bertforge.models.bert.heads import (
        BertForMultipleChoice,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
    )
    from bertforge.models.bert.modeling import BertModel
    from bertforge.models.bert.pretraining import BertForPreTraining

    torch.manual_seed(0)
    paths = {
        "bert": _bert(BertModel, root / "bert"),
        "qa": _bert(BertForQuestionAnswering, root / "qa"),
        "mlm": _bert(BertForPreTraining, root / "mlm"),
        "classifier": _classifier(BertForSequenceClassification, root / "classifier", "sequence", ["neg", "pos"]),
        "tagger": _classifier(BertForTokenClassification, root / "tagger", "token", ["O", "B-PER"]),
        "chooser": _classifier(BertForMultipleChoice, root / "chooser", "choice", None),
        "translator": _translator(root / "translator"),
        "gpt": _gpt(root / "gpt"),
    }
    return {**paths, **_data(root)}


# ---- running a command in this process ------------------------------------------------------------

class Run:
    """What a command did: exit status, stdout, stderr."""

    def __init__(self, status: int, out: str, err: str):
        self.status, self.out, self.err = status, out, err

    def __repr__(self) -> str:
        return f"Run(status={self.status}, err={self.err[-600:]!r})"


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


@contextmanager
def _stdin(data: Optional[bytes]) -> Iterator[None]:
    import sys

    saved = sys.stdin
    sys.stdin = _Stdin(io.BytesIO(data or b""), encoding="utf-8") if data is not None else _Tty()
    try:
        yield
    finally:
        sys.stdin = saved


class _Tty(io.StringIO):
    def isatty(self) -> bool:  # an interactive terminal: commands must not wait on it
        return True


def run(argv: list[str], stdin: Optional[bytes] = None, cwd: Optional[Path] = None) -> Run:
    """`bertforge argv...` in this process (fast: torch is loaded once); stdin as bytes (None: a terminal).
    An exception that escapes `main` (a bug: the real command would print a traceback) propagates."""
    import torch

    from bertforge.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    threads, here = torch.get_num_threads(), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with _stdin(stdin), redirect_stdout(out), redirect_stderr(err):
            status = main([str(a) for a in argv])
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return Run(status, out.getvalue(), err.getvalue())


def tree(root: Path) -> set[str]:
    """Every path under `root` (files and folders), relative: what a failed run must leave as it found it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
