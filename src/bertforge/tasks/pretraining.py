"""Pre-training BERT (Devlin et al. 2019, section 3.1): masked LM + next-sentence prediction on a corpus.

    from bertforge.tasks.pretraining import PretrainConfig, pretrain, pretrain_train_defaults
    result = pretrain(PretrainConfig(train=pretrain_train_defaults(out_dir="runs/mine", max_steps=200),
                                     corpus=["my_texts/"], preset="tiny"))
    result.model_dir, result.last_eval        # runs/mine/model (HF layout + vocab.txt), held-out MLM/NSP

The recipe: a tokenizer (a given vocab.txt, one trained on the corpus, or bert-base-uncased's); the
corpus cut into documents and written as shards of NSP pairs (D8) or packed rows (`nsp=False`, RoBERTa
style) under `<out>/data`, rebuilt only when the corpus or the data options change; dynamic masking
per batch (D7); the shared loop (D10) with periodic checkpoints, exact `resume` and a held-out
evaluation. The initial weights are drawn after seeding with `train.seed`: the same config gives the
same losses. Under `torchrun`, rank 0 prepares the vocabulary and the data and the others wait.

`load_mlm` reads a pre-training output back for `fill-mask` (models/bert/pretraining.fill_mask).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import torch

from bertforge.data.pretraining import MaskingConfig
from bertforge.errors import BertforgeError
from bertforge.training.trainer import TrainConfig

DEFAULT_CORPUS = "pretraining_corpus.txt"  # in bertforge/assets
PRETRAIN_FILES = ("model", "data", "tokenizer", "trained_vocab.txt")  # what a run writes besides the loop's

logger = logging.getLogger("bertforge")


def default_corpus() -> Path:
    """The bundled 300 KB corpus (public-domain text, blank lines between documents)."""
    return Path(str(resources.files("bertforge") / "assets" / DEFAULT_CORPUS))


def pretrain_train_defaults(**fields: Any) -> TrainConfig:
    """The shared loop's settings for pre-training: 500 steps at 5e-4 with 6% warm-up (the small config
    learns on a CPU in minutes), evaluation and checkpoints every 100 steps; `fields` override."""
    defaults = dict(out_dir="runs/pretrain", max_steps=500, lr=5e-4, warmup_ratio=0.06, weight_decay=0.01,
                    eval_every=100, save_every=100, keep_last=2, log_every=10, seed=0)
    return TrainConfig(**{**defaults, **fields})


@dataclass
class PretrainConfig:
    """A pre-training run: the shared loop's settings (`train`; its out_dir is the run folder) and what
    is pre-training's own (corpus, vocabulary, model size, data and masking)."""

    train: TrainConfig = field(default_factory=pretrain_train_defaults)
    corpus: Optional[Sequence[str | Path]] = None  # files or folders of .txt; None: the bundled corpus
    eval_corpus: Optional[Sequence[str | Path]] = None  # None: every 20th document of the corpus is held out
    preset: str = "small"  # BertConfig preset: tiny, small, minilm-l6, bert-base, bert-large
    init_from: Optional[str | Path] = None  # start from this checkpoint folder instead of random weights
    vocab: Optional[str | Path] = None  # vocab.txt or a folder holding one; None: bert-base-uncased's
    train_vocab: Optional[int] = None  # train a WordPiece vocabulary of this size on the corpus instead
    cased: bool = False
    max_seq_length: int = 128
    batch_size: int = 32  # per process
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    nsp: bool = True  # False: packed rows, masked LM only
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    eval_batches: int = 20

    def __post_init__(self) -> None:
        if self.vocab is not None and self.train_vocab is not None:
            raise BertforgeError("give a vocabulary (vocab) or a size to train one (train_vocab), not both")
        for name in ("max_seq_length", "batch_size", "dupe_factor", "eval_batches"):
            if getattr(self, name) < 1:
                raise BertforgeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_seq_length < 8:
            raise BertforgeError(f"max_seq_length must be >= 8 (room for [CLS] A [SEP] B [SEP]), got "
                                 f"{self.max_seq_length}")
        if not 0 <= self.short_seq_prob <= 1:
            raise BertforgeError(f"short_seq_prob must be between 0 and 1, got {self.short_seq_prob}")


@dataclass
class PretrainResult:
    model_dir: Path  # <out>/model: weights, config.json, vocab.txt
    log: list[dict[str, Any]]  # the loop's records (loss per logged step, held-out metrics)
    last_eval: Optional[dict[str, Any]]  # the last held-out evaluation, if any

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.log if "loss" in r]


# ---------------------------------------------------------------------------------------------
# Vocabulary and data
# ---------------------------------------------------------------------------------------------


def load_tokenizer(out: Path, corpus: Sequence[Path], vocab: Optional[str | Path] = None,
                   train_vocab: Optional[int] = None, cased: bool = False, resume: bool = False):
    """The run's tokenizer: `vocab`, one of `train_vocab` tokens trained on `corpus`, the resumed run's,
    or bert-base-uncased's; refused when it differs from the one the run in `out` started with."""
    from bertforge.data.pretraining import vocab_fingerprint
    from bertforge.tokenizer.tokenizer import Tokenizer

    saved = out / "tokenizer"
    if vocab:
        path = Path(vocab)
        tok = Tokenizer.from_pretrained(path) if path.is_dir() else Tokenizer.from_vocab(path, lowercase=not cased)
    elif train_vocab:
        if resume and (saved / "vocab.txt").exists():
            tok = Tokenizer.from_pretrained(saved)
        else:
            from bertforge.tokenizer.tokenizer import train_vocab as train

            vocab_path = train([str(c) for c in corpus], train_vocab, out / "trained_vocab.txt", lowercase=not cased)
            tok = Tokenizer.from_vocab(vocab_path, lowercase=not cased)
    elif resume and (saved / "vocab.txt").exists():
        tok = Tokenizer.from_pretrained(saved)
    else:
        from bertforge.models.bert.checkpoint import minilm_path

        try:
            tok = Tokenizer.from_pretrained(minilm_path())  # bert-base-uncased's 30522-token vocabulary
        except FileNotFoundError as e:
            raise FileNotFoundError(f"no default vocabulary ({e}); pass --vocab PATH or --train-vocab SIZE") from None
    if (saved / "vocab.txt").exists():
        prev = Tokenizer.from_pretrained(saved)
        if vocab_fingerprint(prev) != vocab_fingerprint(tok):
            raise ValueError(f"the vocabulary ({tok.vocab_size} tokens) does not match the one this run in {out} was "
                             f"started with ({prev.vocab_size} tokens, {saved / 'vocab.txt'}): use the same --vocab, "
                             f"or a new --out")
    return tok


def _corpus_key(files: list[Path], **params: Any) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build_or_reuse_data(config: PretrainConfig, tok, out: Path, files: list[Path],
                        eval_files: Optional[list[Path]]):
    """Shards for training and evaluation in `out/data`, rebuilt only when the corpus or the parameters change."""
    from bertforge.data.pretraining import PretrainingDataset, build_pretraining_data, hold_out_documents

    params = dict(max_seq_length=config.max_seq_length, short_seq_prob=config.short_seq_prob, nsp=config.nsp,
                  dupe_factor=config.dupe_factor, seed=config.train.seed)
    key = _corpus_key(files + (eval_files or []), held_out=bool(eval_files), lowercase=tok.lowercase,
                      vocab=tok.vocab_size, **params)
    data = out / "data"
    stamp = data / "key.txt"
    if not (stamp.exists() and stamp.read_text() == key):
        if config.train.resume and stamp.exists():
            raise ValueError(f"the corpus or data options differ from the run being resumed in {out}: resume with "
                             f"the same --corpus and options, or start a new --out")
        train_docs, eval_docs = hold_out_documents(files, eval_files, min_documents=2 if config.nsp else 1)
        build_pretraining_data(train_docs, tok, data / "train", **params)
        build_pretraining_data(eval_docs, tok, data / "eval", **params)
        stamp.write_text(key)
    return PretrainingDataset(data / "train"), PretrainingDataset(data / "eval")


def claim_pretrain_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in `out` before any work; `overwrite` deletes what a run wrote there."""
    from bertforge.fileio import check_output_dir
    from bertforge.training.state import claim_run_dir

    check_output_dir(out)
    if not resume:
        claim_run_dir(out, overwrite, PRETRAIN_FILES)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def build_model(config: PretrainConfig, vocab_size: int):
    """BertForPreTraining (or BertForMaskedLM without NSP): `init_from`'s weights, else a preset drawn at
    random from the current torch seed."""
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.pretraining import BertForMaskedLM, BertForPreTraining

    cls = BertForPreTraining if config.nsp else BertForMaskedLM
    if config.init_from:
        model = cls.from_pretrained(config.init_from)
        if model.config.vocab_size != vocab_size:
            raise ValueError(f"--init-from {config.init_from} has a vocabulary of {model.config.vocab_size}, the "
                             f"tokenizer {vocab_size}: pass that model's vocab.txt with --vocab")
        if model.config.max_position_embeddings < config.max_seq_length:
            raise BertforgeError(f"--max-seq-length {config.max_seq_length} is longer than the "
                                 f"{model.config.max_position_embeddings} positions of --init-from "
                                 f"{config.init_from}: use at most {model.config.max_position_embeddings}")
        return model
    overrides: dict[str, Any] = dict(vocab_size=vocab_size)
    if BertConfig.preset(config.preset).max_position_embeddings < config.max_seq_length:
        overrides["max_position_embeddings"] = config.max_seq_length
    return cls(BertConfig.preset(config.preset, **overrides))


def pretrain(config: PretrainConfig, log: Callable[[str], None] = print) -> PretrainResult:
    """Run (or resume) a pre-training as configured; see the module docstring."""
    from bertforge.data.loader import ResumableLoader
    from bertforge.data.pretraining import PretrainingCollator, PretrainingDataset, corpus_files
    from bertforge.models.bert.pretraining import evaluate_pretraining
    from bertforge.tokenizer.tokenizer import Tokenizer
    from bertforge.training.trainer import Trainer, init_distributed, unwrap

    cfg = config.train
    out = Path(cfg.out_dir)
    files = corpus_files(config.corpus) if config.corpus else [default_corpus()]
    eval_files = corpus_files(config.eval_corpus) if config.eval_corpus else None
    rank, world_size = init_distributed()  # under torchrun: rank 0 prepares vocab and data, the others wait
    if rank == 0:
        claim_pretrain_dir(out, cfg.resume, cfg.overwrite)
        out.mkdir(parents=True, exist_ok=True)
        tok = load_tokenizer(out, files, config.vocab, config.train_vocab, config.cased, cfg.resume)
        train_ds, eval_ds = build_or_reuse_data(config, tok, out, files, eval_files)
        tok.save_pretrained(out / "tokenizer")
        log(f"data: {len(train_ds)} training / {len(eval_ds)} held-out instances of <= {config.max_seq_length} "
            f"tokens ({train_ds.meta['documents']} documents), vocabulary {tok.vocab_size}"
            + (f"; {world_size} processes" if world_size > 1 else ""))
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            tok = Tokenizer.from_pretrained(out / "tokenizer")
            train_ds, eval_ds = PretrainingDataset(out / "data" / "train"), PretrainingDataset(out / "data" / "eval")

    torch.manual_seed(cfg.seed)  # the initial weights are a function of the seed: same seed, same losses
    model = build_model(config, tok.vocab_size)
    m = config.masking
    collate = PretrainingCollator(tok, m, nsp=config.nsp, seed=cfg.seed)
    loader = ResumableLoader(train_ds, config.batch_size, collate, seed=cfg.seed)
    eval_collate = PretrainingCollator(tok, MaskingConfig(rate=m.rate, static=True, whole_word=m.whole_word),
                                       seed=1234, nsp=config.nsp)
    eval_n, bs = min(len(eval_ds), config.eval_batches * config.batch_size), config.batch_size

    def eval_fn(model_: torch.nn.Module) -> dict[str, float]:
        batches = (eval_collate([eval_ds[i] for i in range(s, min(s + bs, eval_n))]) for s in range(0, eval_n, bs))
        return evaluate_pretraining(model_, batches)

    if rank == 0:
        log(f"model: {type(model).__name__} {config.init_from or config.preset}, "
            f"{model.num_parameters() / 1e6:.1f}M parameters")
    trainer = Trainer(model, cfg, loader, eval_fn=eval_fn, save_hook=tok.save_pretrained)
    if rank == 0 and cfg.resume and trainer.step >= trainer.max_steps:
        log(f"already at step {trainer.step} of {trainer.max_steps}: nothing to do (raise --max-steps)")
    records = trainer.train()
    final = out / "model"
    if trainer.is_main:
        unwrap(trainer.model).save_pretrained(final)
        tok.save_pretrained(final)
    evals = [r for r in records if "eval_mlm_loss" in r]
    return PretrainResult(final, records, evals[-1] if evals else None)


# ---------------------------------------------------------------------------------------------
# Reading a pre-trained model back
# ---------------------------------------------------------------------------------------------


def load_mlm(model_dir: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a pre-training output: a folder with config.json, weights and vocab.txt
    (or the run's tokenizer/ beside it); refused when it has no masked-LM head or the vocabulary does not fit."""
    from bertforge.inference import check_device
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.pretraining import BertForMaskedLM, BertForPreTraining
    from bertforge.tokenizer.tokenizer import Tokenizer, check_fits

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist")
    vocab_dir = path if (path / "vocab.txt").exists() else path.parent / "tokenizer"
    if not (vocab_dir / "vocab.txt").exists():
        raise FileNotFoundError(f"no vocab.txt in {path}")
    arch = BertConfig.from_json(path / "config.json").extra.get("architectures") or ["BertForPreTraining"]
    cls = BertForMaskedLM if arch[0] == "BertForMaskedLM" else BertForPreTraining
    model = cls.from_pretrained(path)
    if any(k.startswith("cls.predictions") for k in model.load_report.initialized):
        raise ValueError(f"{path} has no masked-LM head (cls.predictions.*): it is not a pre-training checkpoint")
    tok = Tokenizer.from_pretrained(vocab_dir)
    check_fits(tok, model.config, path)
    return model.to(check_device(device)).eval(), tok
