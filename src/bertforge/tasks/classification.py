"""Fine-tuning (Devlin et al. 2019, section 4): start from pre-trained weights, add a small head, train
everything on the task's labelled data, keep the checkpoint with the best dev score.

Three kinds of task share one recipe and differ only in featurisation, decoding and scoring:

- `sequence`: one label or score per sentence / pair (GLUE, the user's CSV/JSONL) -> BertForSequenceClassification
- `token`:    one tag per word (CoNLL-2003, WNUT-17)                               -> BertForTokenClassification
- `choice`:   pick one of C continuations (CommonsenseQA, COPA, SWAG)               -> BertForMultipleChoice

A `TaskData` names the examples, labels, headline metric and default hyper-parameters; the `*_task_data`
functions build one per data source. `finetune()` trains on the shared loop (`bertforge.training.trainer.Trainer`),
evaluating on dev a few times per epoch, stopping early when the metric stops improving, keeping
`<out>/best/` (HF layout + vocab.txt + finetune.json). `evaluate()` and `predict()` take such a folder.

Speed: batches are padded only to their own longest member (and the encoder skips the padding), and
with `bucket=True` the training order is length-bucketed (`bertforge.data.batching`): shuffled, cut into
chunks of 50 batches, each chunk sorted by length, the batches shuffled again -- similar lengths share a
batch, so little compute goes to padding. Bucketing is the default for sentence, pair and choice tasks,
not for token classification: on CoNLL-2003 (2,000 sentences, 2 epochs) it cost 2-4 entity-F1 points on
each of 3 seeds against plain shuffled batches, which match HF's scores (docs/finetuning.md).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from bertforge.data.batching import BucketedLoader, feature_length, length_sorted_batches, pad_collate
from bertforge.data.choice import CHOICE_READERS, ChoiceExample, encode_choices, read_choice  # noqa: F401
from bertforge.data.classify import (
    TextExample,
    encode_label,
    encode_text_examples,
    label_kind,
    label_list,
    read_classification_file,
)
from bertforge.data.glue import glue_task, read_glue
from bertforge.data.loader import ResumableLoader
from bertforge.data.ner import TaggedSentence, encode_tagged, read_conll, tag_list, word_predictions
from bertforge.fileio import atomic_write_json
from bertforge.metrics.classification import (
    accuracy,
    classification_scores,
    entity_scores,
    multilabel_scores,
    pearson_spearman,
)
from bertforge.models.bert.checkpoint import load_state_into, read_state_dict
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.heads import (
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertWithClassifier,
    id2label,
    label2id,
    set_labels,
)
from bertforge.tokenizer.tokenizer import Tokenizer
from bertforge.training.state import claim_run_dir
from bertforge.training.trainer import TrainConfig, Trainer

TASK_FILE = "finetune.json"


# ---------------------------------------------------------------------------------------------
# Task definitions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hyper:
    """Per-task defaults; the BERT paper's grid (A.3) is lr {5e-5, 3e-5, 2e-5}, batch {16, 32}, 2-4 epochs.
    Small sets (RTE, MRPC, STS-B) get more epochs: a few hundred steps are too few to converge."""

    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128


DEFAULTS: dict[str, Hyper] = {
    "cola": Hyper(epochs=3, lr=5e-5, batch_size=32, max_length=64),
    "sst2": Hyper(epochs=2, lr=3e-5, batch_size=32, max_length=64),
    "mrpc": Hyper(epochs=5, lr=5e-5, batch_size=32, max_length=128),
    "stsb": Hyper(epochs=5, lr=5e-5, batch_size=32, max_length=128),
    "rte": Hyper(epochs=5, lr=5e-5, batch_size=16, max_length=128),
    "wnli": Hyper(epochs=3, lr=2e-5, batch_size=32, max_length=128),
    "ner": Hyper(epochs=3, lr=5e-5, batch_size=32, max_length=128),
    "choice": Hyper(epochs=3, lr=5e-5, batch_size=16, max_length=64),
    "classify": Hyper(epochs=3, lr=5e-5, batch_size=32, max_length=128),
}


@dataclass
class TaskData:
    """A fine-tuning task: examples, label names (index order; [] for choice), problem type, metric."""

    name: str
    kind: str  # 'sequence' | 'token' | 'choice'
    train: Optional[list]
    dev: list
    labels: list[str] = field(default_factory=list)
    problem_type: str = "single_label_classification"
    metric: str = "accuracy"  # headline dev metric, greater is better
    defaults: Hyper = Hyper()


def glue_task_data(task: str, data_dir: str | Path) -> TaskData:
    t = glue_task(task)
    labels = list(t.labels) if t.labels is not None else ["LABEL_0"]
    return TaskData(t.name, "sequence", read_glue(t, "train", data_dir), read_glue(t, "dev", data_dir),
                    labels, t.problem_type, t.metric, DEFAULTS[t.name])


def ner_task_data(train: str | Path, dev: str | Path, name: str = "ner") -> TaskData:
    tr, dv = read_conll(train), read_conll(dev)
    return TaskData(name, "token", tr, dv, tag_list(tr + dv), metric="f1", defaults=DEFAULTS["ner"])


def choice_task_data(fmt: str, train: str | Path, dev: str | Path) -> TaskData:
    return TaskData(fmt, "choice", read_choice(fmt, train), read_choice(fmt, dev), defaults=DEFAULTS["choice"])


def classify_task_data(train: str | Path, dev: str | Path, problem_type: Optional[str] = None,
                       **columns: str) -> TaskData:
    """The user's CSV/JSONL (`text`, `text_pair`, `label`); the problem type is read off the labels."""
    tr, dv = read_classification_file(train, **columns), read_classification_file(dev, **columns)
    kind = problem_type or label_kind([e.label for e in tr])
    labels = label_list([e.label for e in tr + dv], kind)
    metric = {"regression": "spearman", "multi_label_classification": "micro_f1"}.get(kind, "accuracy")
    return TaskData("classify", "sequence", tr, dv, labels, kind, metric, DEFAULTS["classify"])


# ---------------------------------------------------------------------------------------------
# Kinds: featurise, decode logits into predictions, score predictions
# ---------------------------------------------------------------------------------------------

def _problem(config: BertConfig) -> str:
    return config.extra.get("problem_type") or "single_label_classification"


class SequenceKind:
    head = BertForSequenceClassification
    pad_labels = False

    @staticmethod
    def featurize(tok: Tokenizer, examples: list[TextExample], max_length: int, config: BertConfig):
        return encode_text_examples(tok, examples, max_length, _problem(config), label2id(config)), None

    @staticmethod
    def decode(logits: list[np.ndarray], aux: Any, config: BertConfig, examples: list) -> list:
        names, kind = id2label(config), _problem(config)
        if kind == "regression":
            return [float(x[0]) for x in logits]
        if kind == "multi_label_classification":
            return [[names[i] for i in np.flatnonzero(x > 0)] for x in logits]  # sigmoid(x) > 0.5
        return [names[int(np.argmax(x))] for x in logits]

    @staticmethod
    def score(pred: list, examples: list[TextExample], config: BertConfig) -> dict[str, float]:
        kind, ids = _problem(config), label2id(config)
        if kind == "regression":
            ref = [float(e.label) for e in examples]
            return {**pearson_spearman(pred, ref), "mse": float(np.mean((np.asarray(pred) - ref) ** 2))}
        if kind == "multi_label_classification":
            return multilabel_scores(np.array([encode_label(p, kind, ids) for p in pred]),
                                     np.array([encode_label(e.label, kind, ids) for e in examples]))
        ref = [encode_label(e.label, kind, ids) for e in examples]
        return classification_scores([ids[p] for p in pred], ref, len(ids))


class TokenKind:
    head = BertForTokenClassification
    pad_labels = True

    @staticmethod
    def featurize(tok: Tokenizer, examples: list[TaggedSentence], max_length: int, config: BertConfig):
        return encode_tagged(tok, examples, max_length, label2id(config))  # (features, word_ids)

    @staticmethod
    def decode(logits: list[np.ndarray], word_ids: list, config: BertConfig, examples: list) -> list[list[str]]:
        names = id2label(config)
        return [word_predictions(w, x.argmax(-1), len(e.words), names)
                for x, w, e in zip(logits, word_ids, examples)]

    @staticmethod
    def score(pred: list[list[str]], examples: list[TaggedSentence], config: BertConfig) -> dict[str, float]:
        return entity_scores(pred, [e.tags for e in examples])


class ChoiceKind:
    head = BertForMultipleChoice
    pad_labels = False

    @staticmethod
    def featurize(tok: Tokenizer, examples: list[ChoiceExample], max_length: int, config: BertConfig):
        return encode_choices(tok, examples, max_length), None

    @staticmethod
    def decode(logits: list[np.ndarray], aux: Any, config: BertConfig, examples: list) -> list[int]:
        return [int(np.argmax(x)) for x in logits]

    @staticmethod
    def score(pred: list[int], examples: list[ChoiceExample], config: BertConfig) -> dict[str, float]:
        return {"accuracy": accuracy(pred, [e.label for e in examples])}


KINDS = {"sequence": SequenceKind, "token": TokenKind, "choice": ChoiceKind}
ARCHITECTURE_KIND = {k.head.__name__: name for name, k in KINDS.items()}


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def predict_logits(model: torch.nn.Module, features: list[dict[str, Any]], batch_size: int = 64,
                   pad_token_id: int = 0, precision: str = "fp32", progress: bool = False) -> list[np.ndarray]:
    """Logits per example, in input order: (L,), (C,) or (T_i, L) for tokens (padding cut off).
    Batches are formed in length order, so each is padded as little as possible. `progress`: a bar on a
    terminal (bertforge.inference.progress_bar)."""
    from bertforge.inference import precision_context, progress_bar

    model.eval()
    device = next(model.parameters()).device
    out: list[Optional[np.ndarray]] = [None] * len(features)
    with progress_bar(len(features), "predicting", progress, unit="example") as bar:
        for idx in length_sorted_batches([feature_length(f) for f in features], batch_size):
            batch = pad_collate([{k: v for k, v in features[i].items() if k != "labels"} for i in idx], pad_token_id)
            with precision_context(str(device), precision):
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
            for row, i in zip(logits, idx):  # token logits (T, L): cut the batch's padding
                out[i] = row[:feature_length(features[i])] if row.ndim == 2 else row
            bar.update(len(idx))
    return out  # type: ignore[return-value]


def evaluate_features(model, kind: str, features, aux, examples, config: BertConfig, batch_size: int = 64,
                      pad_token_id: int = 0, precision: str = "fp32", progress: bool = False) -> dict[str, float]:
    logits = predict_logits(model, features, batch_size, pad_token_id, precision, progress)
    pred = KINDS[kind].decode(logits, aux, config, examples)
    return KINDS[kind].score(pred, examples, config)


# ---------------------------------------------------------------------------------------------
# Fine-tune, evaluate, predict
# ---------------------------------------------------------------------------------------------

def finetune_train_config(**fields: Any) -> TrainConfig:
    """The shared loop's settings for fine-tuning, BERT's defaults (Devlin et al. A.3: linear warm-up over
    10% of the steps then linear decay, AdamW wd 0.01) plus early stopping after 3 evaluations without
    improvement and one step checkpoint kept; `fields` override any of them (epochs, lr, precision, ...)."""
    defaults = dict(warmup_ratio=0.1, weight_decay=0.01, seed=42, patience=3, keep_last=1)
    return TrainConfig(**{**defaults, **fields})


@dataclass
class FinetuneSettings:
    """A fine-tuning run: the shared loop's settings (`train`; None: `finetune_train_config` with the task's
    epochs and lr) and what is fine-tuning's own. batch_size / max_length None: the task's (`Hyper`)."""

    train: Optional[TrainConfig] = None
    batch_size: Optional[int] = None
    max_length: Optional[int] = None
    evals_per_epoch: int = 2
    bucket: Optional[bool] = None  # length-bucketed batches; None: yes except for token classification
    eval_batch_size: int = 64

    def resolve(self, defaults: Hyper) -> FinetuneSettings:
        train = self.train or finetune_train_config(epochs=defaults.epochs, lr=defaults.lr)
        return replace(self, train=train, batch_size=self.batch_size or defaults.batch_size,
                       max_length=self.max_length or defaults.max_length)


@dataclass
class FinetuneResult:
    best_dir: Path
    best: dict[str, float]  # dev metrics of the kept checkpoint
    log: list[dict[str, Any]]
    train_tokens: int = 0  # real (non-padding) tokens trained on
    train_seconds: float = 0.0  # wall time of training, evaluation and checkpoint writing excluded
    train_cpu_seconds: float = 0.0  # the same span in this process's CPU time (robust on a shared machine)

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / max(self.train_seconds, 1e-9)

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.train_tokens / max(self.train_cpu_seconds, 1e-9)


def check_max_length(max_length: int, config: BertConfig, where: str | Path) -> None:
    """Refuse sequences longer than the model's position embeddings, with the model's limit."""
    if max_length > config.max_position_embeddings:
        raise ValueError(f"a max length of {max_length} tokens is more than the {config.max_position_embeddings} "
                         f"positions of the model in {where}: use --max-seq-length {config.max_position_embeddings} "
                         f"or less")


def _task_config(model_path: Path, data: TaskData) -> BertConfig:
    config = BertConfig.from_json(model_path / "config.json")
    if data.kind != "choice":
        set_labels(config, data.labels, data.problem_type if data.kind == "sequence" else None)
    config.extra["finetuning_task"] = data.name
    return config


def build_model(model_path: str | Path, data: TaskData) -> BertWithClassifier:
    """The task's head on the pre-trained encoder at `model_path` (head newly initialised)."""
    model_path = Path(model_path)
    if not model_path.is_dir():
        raise FileNotFoundError(f"model directory {model_path} does not exist")
    model = KINDS[data.kind].head(_task_config(model_path, data))
    model.load_report = load_state_into(model, read_state_dict(model_path))
    return model


def loader_for(features: list[dict[str, Any]], kind: str, batch_size: int, seed: int, bucket: bool,
               pad_token_id: int = 0) -> ResumableLoader:
    collate = partial(pad_collate, pad_token_id=pad_token_id, pad_labels=KINDS[kind].pad_labels)
    if bucket:
        return BucketedLoader(features, [feature_length(f) for f in features], batch_size,
                              collate_fn=collate, seed=seed)
    return ResumableLoader(features, batch_size, collate_fn=collate, seed=seed)


def finetune(data: TaskData, model_path: str | Path, out_dir: str | Path,
             settings: Optional[FinetuneSettings] = None, model: Optional[torch.nn.Module] = None
             ) -> FinetuneResult:
    """Fine-tune on `data.train`, evaluate on `data.dev`, keep the best checkpoint in `<out_dir>/best/`.

    `model` overrides the model built from `model_path` (the benchmark passes HF's classes here);
    the tokenizer always comes from `model_path`.
    """
    if not data.train:
        raise ValueError(f"task {data.name!r} has no training examples")
    s = (settings or FinetuneSettings()).resolve(data.defaults)
    model_path, out_dir = Path(model_path), Path(out_dir)
    if model is None and (model_path / "config.json").is_file():
        check_max_length(s.max_length, BertConfig.from_json(model_path / "config.json"), model_path)
    if not s.train.resume:  # refuse to mix with a run already there before any work
        claim_run_dir(out_dir, s.train.overwrite)
    tok = Tokenizer.from_pretrained(model_path)
    if model is None:
        torch.manual_seed(s.train.seed)  # the head's initialisation
        model = build_model(model_path, data)
    config = _task_config(model_path, data)
    kind = KINDS[data.kind]
    train_features, _ = kind.featurize(tok, data.train, s.max_length, config)
    dev_features, dev_aux = kind.featurize(tok, data.dev, s.max_length, config)
    bucket = s.bucket if s.bucket is not None else data.kind != "token"
    loader = loader_for(train_features, data.kind, s.batch_size, s.train.seed, bucket, tok.pad_token_id)

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        return evaluate_features(m, data.kind, dev_features, dev_aux, data.dev, config, s.eval_batch_size,
                                 tok.pad_token_id, s.train.precision)

    train_config = replace(s.train, out_dir=str(out_dir), metric_for_best=data.metric, greater_is_better=True,
                           eval_every=(every := max(1, math.ceil(len(loader) / s.evals_per_epoch))),
                           save_every=s.train.save_every or every)  # a checkpoint at each evaluation: resumable
    info = {"task": data.name, "kind": data.kind, "metric": data.metric, "max_length": s.max_length}

    def save_hook(path: Path) -> None:  # each checkpoint can be evaluated and used on its own (D5)
        tok.save_pretrained(path)
        atomic_write_json(path / TASK_FILE, info)

    trainer = Trainer(model, train_config, loader, eval_fn=eval_fn, save_hook=save_hook)
    log = trainer.train()
    best_dir = out_dir / "best"
    evals = [r for r in log if f"eval_{data.metric}" in r]
    best = max(evals, key=lambda r: r[f"eval_{data.metric}"]) if evals else {}
    best = {k[5:]: v for k, v in best.items() if k.startswith("eval_")}
    if best_dir.is_dir():
        atomic_write_json(best_dir / TASK_FILE, {**info, "dev": best})
    return FinetuneResult(best_dir, best, log, trainer.train_tokens, trainer.train_seconds,
                          trainer.train_cpu_seconds)


def task_info(model_dir: str | Path) -> dict[str, Any]:
    """What a fine-tuned folder does: its finetune.json, or (an HF folder) the kind read off its architecture."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    config = BertConfig.from_json(model_dir / "config.json")
    info = json.loads((model_dir / TASK_FILE).read_text(encoding="utf-8")) if (model_dir / TASK_FILE).exists() else {}
    if not isinstance(info, dict) or not isinstance(info.get("max_length", 1), int):
        raise ValueError(f"{model_dir / TASK_FILE} is not a fine-tuning record (a JSON object with kind, max_length)")
    arch = (config.extra.get("architectures") or [""])[0]
    kind = info.get("kind") or ARCHITECTURE_KIND.get(arch)
    if kind not in KINDS:
        raise ValueError(f"{model_dir} is not a fine-tuned classifier (architectures: {arch or 'none'}; "
                         f"expected one of {sorted(ARCHITECTURE_KIND)})")
    info["kind"] = kind
    info.setdefault("max_length", min(512, config.max_position_embeddings))
    info["max_length"] = min(info["max_length"], config.max_position_embeddings)
    return info


def load_finetuned(model_dir: str | Path, device: str = "cpu", precision: str = "fp32"
                   ) -> tuple[BertWithClassifier, Tokenizer, dict[str, Any]]:
    """A fine-tuned folder (ours, or HF's with a vocab.txt) -> (model on `device` in `precision`, tokenizer,
    task info); a vocab.txt that does not fit the model is refused."""
    from bertforge.inference import prepare_model
    from bertforge.tokenizer.tokenizer import check_fits

    info = task_info(model_dir)
    model, tok = KINDS[info["kind"]].head.from_pretrained(model_dir), Tokenizer.from_pretrained(model_dir)
    check_fits(tok, model.config, model_dir, exact=False)
    return prepare_model(model, device, precision), tok, info


def evaluate(model_dir: str | Path, examples: list, batch_size: int = 64, device: str = "cpu",
             precision: str = "fp32", progress: bool = False) -> dict[str, float]:
    """Score a fine-tuned model on labelled examples of its kind."""
    model, tok, info = load_finetuned(model_dir, device, precision)
    kind = KINDS[info["kind"]]
    features, aux = kind.featurize(tok, examples, info["max_length"], model.config)
    return evaluate_features(model, info["kind"], features, aux, examples, model.config, batch_size,
                             tok.pad_token_id, precision, progress)


def predict(model_dir: str | Path, examples: list, batch_size: int = 64, device: str = "cpu",
            precision: str = "fp32", progress: bool = False) -> list:
    """Predictions for new inputs: label names / scores / label lists, tag lists, or choice indices."""
    model, tok, info = load_finetuned(model_dir, device, precision)
    features, aux = KINDS[info["kind"]].featurize(tok, examples, info["max_length"], model.config)
    logits = predict_logits(model, features, batch_size, tok.pad_token_id, precision, progress)
    return KINDS[info["kind"]].decode(logits, aux, model.config, examples)
