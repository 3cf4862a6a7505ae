"""Translation end to end: a `Translator` (model + tokenizers: text in, text out) and the training recipe.

The recipe (Vaswani et al. 2017, section 5): WordPiece vocabulary trained on the training text (joint
for both languages by default, with shared embeddings and a tied output projection, section 3.4);
batches of about `max_tokens` padded tokens; Adam(0.9, 0.98, eps 1e-9) without weight decay; the
Noam schedule lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) (eq. 3); label
smoothing 0.1; the shared training loop (`bertforge.training.trainer.Trainer`: checkpoints, exact resume, DDP).
A run can be capped by CPU seconds (`cpu_budget_s`): it trains in slices and stops once the process
CPU time, carried across resumes in `cpu_time.json`, reaches the budget.

Model directory: config.json + model.safetensors (Seq2SeqTransformer) and src_tokenizer/ +
tgt_tokenizer/ (vocab.txt + tokenizer_config.json); the run folder and each of its checkpoints
(`checkpoint-N/`, `best/`) is one.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch

from bertforge.data.batching import length_sorted_batches
from bertforge.data.translation import (
    TOY_SYMBOLS,
    TokenBatchLoader,
    TranslationCollator,
    decode_ids,
    encode_pairs,
    encode_text,
    exact_match,
    multi30k,
    parallel_files,
    read_parallel,
    toy_pairs,
)
from bertforge.fileio import atomic_write_text
from bertforge.metrics.bleu import BleuResult, corpus_bleu
from bertforge.models.seq2seq.decoding import beam_search, greedy_decode
from bertforge.models.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer
from bertforge.training.trainer import TrainConfig, Trainer

logger = logging.getLogger("bertforge")

SRC_TOKENIZER, TGT_TOKENIZER = "src_tokenizer", "tgt_tokenizer"


class Translator:
    """A trained `Seq2SeqTransformer` with its source and target tokenizers."""

    def __init__(self, model: Seq2SeqTransformer, src_tokenizer: Any, tgt_tokenizer: Any):
        self.model, self.src_tokenizer, self.tgt_tokenizer = model.eval(), src_tokenizer, tgt_tokenizer
        c = model.config
        if (src_tokenizer.vocab_size, tgt_tokenizer.vocab_size) != (c.src_vocab_size, c.tgt_vocab_size):
            raise ValueError(f"tokenizer vocabularies ({src_tokenizer.vocab_size}, {tgt_tokenizer.vocab_size}) do "
                             f"not match the model's ({c.src_vocab_size}, {c.tgt_vocab_size})")
        self.collate = TranslationCollator(c.pad_token_id, c.bos_token_id, c.eos_token_id)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Translator:
        """Load a model directory (or a checkpoint inside a run folder, tokenizers one level up)."""
        from bertforge.tokenizer.tokenizer import Tokenizer

        path = Path(path)
        model = Seq2SeqTransformer.from_pretrained(path)
        home = path if (path / SRC_TOKENIZER).is_dir() else path.parent
        if not (home / SRC_TOKENIZER).is_dir() or not (home / TGT_TOKENIZER).is_dir():
            raise FileNotFoundError(f"no {SRC_TOKENIZER}/ and {TGT_TOKENIZER}/ in {path} or {path.parent}")
        return cls(model, Tokenizer.from_pretrained(home / SRC_TOKENIZER),
                   Tokenizer.from_pretrained(home / TGT_TOKENIZER))

    def save_pretrained(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.src_tokenizer.save_pretrained(Path(path) / SRC_TOKENIZER)
        self.tgt_tokenizer.save_pretrained(Path(path) / TGT_TOKENIZER)

    def translate_ids(self, sources: Sequence[list[int]], beam_size: int = 1, alpha: float = 0.6,
                      batch_size: int = 64, use_cache: bool = True) -> list[list[int]]:
        """Source id lists (no specials) -> target id lists, in batches of similar length."""
        out: list[list[int]] = [[] for _ in sources]
        max_src = self.model.config.max_position - 1
        device = next(self.model.parameters()).device
        for idx in length_sorted_batches([len(s) for s in sources], batch_size):
            batch = {k: v.to(device) for k, v in self.collate.source([sources[i][:max_src - 1] for i in idx]).items()}
            if beam_size == 1:
                hyps = greedy_decode(self.model, **batch, use_cache=use_cache)
            else:
                hyps = beam_search(self.model, **batch, beam_size=beam_size, alpha=alpha, use_cache=use_cache)
            for i, h in zip(idx, hyps):
                out[i] = h
        return out

    def translate(self, sentences: Sequence[str], beam_size: int = 1, alpha: float = 0.6, batch_size: int = 64,
                  use_cache: bool = True) -> list[str]:
        """Sentences -> detokenised translations (greedy when beam_size is 1)."""
        if isinstance(sentences, str):
            raise TypeError("translate takes a list of sentences, not one string")
        sources = [encode_text(self.src_tokenizer, s) for s in sentences]
        ids = self.translate_ids(sources, beam_size, alpha, batch_size, use_cache)
        return [decode_ids(self.tgt_tokenizer, h) for h in ids]

    def bleu(self, sources: Sequence[str], references: Sequence[str], **kwargs: Any) -> tuple[BleuResult, list[str]]:
        hyps = self.translate(sources, **kwargs)
        return corpus_bleu(hyps, references), hyps


# ---------------------------------------------------------------------------------------------
# Training recipe
# ---------------------------------------------------------------------------------------------


def translation_train_defaults(**fields: Any) -> TrainConfig:
    """The shared loop's settings for the Transformer (Vaswani et al. 2017, 5.3): Adam(0.9, 0.98, eps 1e-9),
    no weight decay, the Noam schedule (lr is its factor) with 1,000 warm-up steps; `fields` override."""
    defaults = dict(out_dir="runs/translation", epochs=10.0, lr=1.0, weight_decay=0.0, adam_betas=(0.9, 0.98),
                    adam_eps=1e-9, warmup_steps=1000, schedule="noam", eval_every=500, save_every=200,
                    progress=False, log_every=25)
    return TrainConfig(**{**defaults, **fields})


@dataclass
class TranslationTrainConfig:
    """A translation run: the shared loop's settings (`train`; its out_dir is the model folder) and what is
    translation's own (data, vocabulary, model preset, batching by tokens, a CPU budget)."""

    train: TrainConfig = field(default_factory=translation_train_defaults)
    src_lang: str = "de"
    tgt_lang: str = "en"
    data_dir: Optional[str] = None  # Multi30K layout or <split>.<lang> files; None with a toy task
    task: Optional[str] = None  # 'copy' | 'reverse': the toy task instead of real data
    preset: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 8000
    joint_vocab: bool = True  # one vocabulary (and embedding matrix) for both languages
    lowercase: bool = False  # cased: sacreBLEU scores cased output
    max_len: int = 100  # drop training pairs longer than this (tokens)
    max_tokens: int = 2048  # padded tokens per batch
    cpu_budget_s: Optional[float] = None  # stop once the run has used this much process CPU time
    eval_sentences: int = 300  # validation sentences decoded (greedy) for the BLEU printed during training
    toy_train: int = 10000  # toy task sizes
    toy_test: int = 500


def _toy_tokenizer(out: Path, num_symbols: int):
    from bertforge.tokenizer.tokenizer import SPECIAL_TOKENS, Tokenizer

    path = out / "toy_vocab.txt"
    atomic_write_text(path, "".join(t + "\n" for t in list(SPECIAL_TOKENS) + TOY_SYMBOLS[:num_symbols]))
    return Tokenizer.from_vocab(path, lowercase=True)


def build_tokenizers(cfg: TranslationTrainConfig, train_pairs: Sequence[tuple[str, str]], out: Path):
    """Train WordPiece vocabularies on the training text (joint, or one per language)."""
    from bertforge.tokenizer.tokenizer import Tokenizer, train_vocab

    def train(texts: list[str], name: str) -> Any:
        path = train_vocab(iter(texts), vocab_size=cfg.vocab_size, out_path=out / f"{name}_vocab.txt",
                           lowercase=cfg.lowercase)
        return Tokenizer.from_vocab(path, lowercase=cfg.lowercase)

    if cfg.joint_vocab:
        tok = train([s for s, _ in train_pairs] + [t for _, t in train_pairs], "joint")
        return tok, tok
    return train([s for s, _ in train_pairs], cfg.src_lang), train([t for _, t in train_pairs], cfg.tgt_lang)


def load_splits(cfg: TranslationTrainConfig) -> dict[str, list[tuple[str, str]]]:
    """train / val / test sentence pairs: the toy task, Multi30K (val, test2016) or <split>.<lang> files."""
    if cfg.task is not None:
        seed = cfg.train.seed
        return {"train": toy_pairs(cfg.task, cfg.toy_train, seed=seed),
                "val": toy_pairs(cfg.task, 200, seed=seed + 1),
                "test": toy_pairs(cfg.task, cfg.toy_test, seed=seed + 2)}
    if cfg.data_dir is None:
        raise ValueError("give --data DIR (parallel files) or a toy --task copy|reverse")
    data = Path(cfg.data_dir)
    if (data / "task1" / "raw").is_dir():
        return {"train": multi30k("train", cfg.src_lang, cfg.tgt_lang, data),
                "val": multi30k("val", cfg.src_lang, cfg.tgt_lang, data),
                "test": multi30k("test2016", cfg.src_lang, cfg.tgt_lang, data)}
    splits = {"train": read_parallel(*parallel_files(data, "train", cfg.src_lang, cfg.tgt_lang))}
    for name, candidates in (("val", ("val", "valid", "dev")), ("test", ("test",))):
        for cand in candidates:
            try:
                splits[name] = read_parallel(*parallel_files(data, cand, cfg.src_lang, cfg.tgt_lang))
                break
            except FileNotFoundError:
                continue
    return splits


def train_translation(cfg: TranslationTrainConfig, log: Callable[[str], None] = print) -> Translator:
    """Train a translation model as configured; write it (and its tokenizers) to cfg.train.out_dir."""
    from bertforge.training.callbacks import Callback, CpuBudget
    from bertforge.training.state import claim_run_dir

    out, seed = Path(cfg.train.out_dir), cfg.train.seed
    if not cfg.train.resume:  # refuse to mix with a run already there before any work
        claim_run_dir(out, cfg.train.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(cfg)
    if cfg.task is not None:
        src_tok = tgt_tok = _toy_tokenizer(out, 10)
    elif cfg.train.resume and (out / SRC_TOKENIZER).is_dir():
        from bertforge.tokenizer.tokenizer import Tokenizer
        src_tok = Tokenizer.from_pretrained(out / SRC_TOKENIZER)
        tgt_tok = Tokenizer.from_pretrained(out / TGT_TOKENIZER)
    else:
        t0 = time.perf_counter()
        src_tok, tgt_tok = build_tokenizers(cfg, splits["train"], out)
        log(f"vocabulary: {src_tok.vocab_size} (src) / {tgt_tok.vocab_size} (tgt) WordPieces "
            f"in {time.perf_counter() - t0:.0f}s")
    src_tok.save_pretrained(out / SRC_TOKENIZER)
    tgt_tok.save_pretrained(out / TGT_TOKENIZER)
    if src_tok.pad_token_id != tgt_tok.pad_token_id:
        raise ValueError("source and target vocabularies must give [PAD] the same id")

    t0 = time.perf_counter()
    train_examples = encode_pairs(splits["train"], src_tok, tgt_tok, max_len=cfg.max_len)
    log(f"data: {len(train_examples)} training pairs (of {len(splits['train'])}; longer than {cfg.max_len} tokens "
        f"dropped), encoded in {time.perf_counter() - t0:.0f}s")
    model_cfg = Seq2SeqConfig.preset(
        cfg.preset, src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
        share_embeddings=src_tok is tgt_tok, pad_token_id=tgt_tok.pad_token_id,
        bos_token_id=tgt_tok.cls_token_id, eos_token_id=tgt_tok.sep_token_id, **cfg.model_overrides)
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(model_cfg)
    log(f"model: {cfg.preset} {model_cfg.num_encoder_layers}+{model_cfg.num_decoder_layers} layers, d_model "
        f"{model_cfg.d_model}, {model_cfg.num_heads} heads, d_ff {model_cfg.d_ff}, {model.num_parameters():,} "
        f"parameters; {torch.get_num_threads()} thread(s)")
    collate = TranslationCollator(model_cfg.pad_token_id, model_cfg.bos_token_id, model_cfg.eos_token_id)
    loader = TokenBatchLoader(train_examples, cfg.max_tokens, collate, seed=seed)

    val = splits.get("val", [])[:cfg.eval_sentences]

    def evaluate(m: Seq2SeqTransformer) -> dict[str, float]:
        translator = Translator(m, src_tok, tgt_tok)
        result, hyps = translator.bleu([s for s, _ in val], [t for _, t in val])
        metrics = {"bleu": result.score}
        if cfg.task is not None:
            metrics["exact_match"] = exact_match(hyps, [t for _, t in val])
        return metrics

    train_cfg = replace(cfg.train, noam_d_model=model_cfg.d_model, metric_for_best="bleu" if val else None)

    def save_tokenizers(path: Path) -> None:  # each checkpoint is a complete model directory
        src_tok.save_pretrained(path / SRC_TOKENIZER)
        tgt_tok.save_pretrained(path / TGT_TOKENIZER)

    class Report(Callback):  # a line per log record, for a terminal or a log file
        def on_log(self, trainer, record) -> None:
            log(f"step {trainer.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                                      if isinstance(v, float)))

    budget = [CpuBudget(cfg.cpu_budget_s)] if cfg.cpu_budget_s is not None else []
    trainer = Trainer(model, train_cfg, loader, eval_fn=evaluate if val else None, save_hook=save_tokenizers,
                      callbacks=[Report(), *budget])
    log(f"training: {trainer.max_steps} steps max ({len(loader)} batches of <= {cfg.max_tokens} tokens per epoch), "
        f"{train_cfg.schedule} schedule, warmup {train_cfg.warmup_steps}" + (
            f", CPU budget {cfg.cpu_budget_s:.0f}s" if cfg.cpu_budget_s else ""))
    trainer.train()
    if budget and trainer.step < trainer.max_steps:
        log(f"CPU budget reached: {budget[0].used():.0f}s at step {trainer.step}")
    translator = Translator(model, src_tok, tgt_tok)
    translator.save_pretrained(out)
    log(f"saved the final model to {out}")
    return translator
