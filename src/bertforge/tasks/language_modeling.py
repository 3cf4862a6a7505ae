"""Language modelling with a GPT: train on a corpus, measure held-out perplexity, write text, fill a blank.

- `train_language_model(settings)`: corpus -> token stream (`bertforge.data.language_modeling`) -> the
  shared loop (`Trainer`: bf16, exact resume, DDP under torchrun, checkpoints) -> `<out>/model` (HF GPT-2
  layout + vocab.txt), `metrics.jsonl`, `loss.png`, `perplexity.png`.
- `evaluate_lm(model, blocks)`: held-out next-token loss, perplexity = exp(loss), top-1 accuracy.
- `complete(model, tokenizer, prompts)`: text in, text out (left-padded batches, stop strings, streaming
  with `TextStreamer`); sampling itself lives in `bertforge.models.gpt.generation`.
- `gpt_fill_blank` / `score_texts`: the notes call language modelling "predicting words in a blank";
  BERT fills a blank from both sides in one pass (`fill_mask`), GPT reads left to right, so it can
  either guess the blank from the left context alone or try each candidate and keep the most likely
  whole sentence (docs/gpt.md shows both).

Prompts start with the model's `bos_token_id`: with a BERT vocabulary that is [SEP], the token that ends
every document in the training stream, so a prompt reads as the start of a new document (GPT-2 does the
same with <|endoftext|>).
"""
from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor

from bertforge.errors import BertforgeError
from bertforge.models.gpt.config import GPTConfig
from bertforge.models.gpt.generation import generate
from bertforge.models.gpt.modeling import GPTLMHeadModel

logger = logging.getLogger("bertforge")

BLANK = "[MASK]"


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_lm(model: GPTLMHeadModel, blocks: Sequence[dict[str, Any]], batch_size: int = 8,
                device: Optional[torch.device] = None) -> dict[str, float]:
    """Token-weighted held-out next-token loss, perplexity (exp of it) and top-1 accuracy over `blocks`.

    Logits are formed one block at a time ((T, V), not (B, T, V)), so a 30522-word vocabulary is cheap.
    """
    if len(blocks) == 0:
        raise BertforgeError("no held-out block to evaluate: the held-out text is shorter than one block")
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    nll, correct, n = 0.0, 0, 0
    for start in range(0, len(blocks), batch_size):
        ids = torch.stack([torch.as_tensor(blocks[i]["input_ids"]) for i in
                           range(start, min(start + batch_size, len(blocks)))]).to(device)  # (B, T)
        hidden = model.transformer(ids).last_hidden_state  # (B, T, D)
        for h, y in zip(hidden, ids):
            logits = model.lm_head(h[:-1]).float()  # (T-1, V): position t predicts t + 1
            nll += float(F.cross_entropy(logits, y[1:], reduction="sum"))
            correct += int((logits.argmax(-1) == y[1:]).sum())
            n += y.numel() - 1
    model.train(was_training)
    loss = nll / n
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / n}


def plot_perplexity(metrics_path: str | Path, png_path: str | Path) -> bool:
    """Held-out perplexity against steps (log scale) from a metrics.jsonl; False when there is none yet."""
    from bertforge.errors import require

    require("matplotlib", "plots").use("Agg")
    import matplotlib.pyplot as plt

    from bertforge.fileio import atomic_path

    path = Path(metrics_path)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    points = [(r["step"], r["eval_perplexity"]) for r in records if "eval_perplexity" in r]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*zip(*points), "o-")
    ax.set_yscale("log")
    ax.set_xlabel("step"), ax.set_ylabel("held-out perplexity"), ax.grid(alpha=0.3, which="both")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class LMTrainSettings:
    """A `train-lm` run. `train` is the shared loop's TrainConfig (out_dir, steps, lr, precision, ...)."""

    corpus: list[Path]
    train: Any  # bertforge.training.trainer.TrainConfig
    tokenizer: Any  # bertforge.tokenizer.Tokenizer
    eval_corpus: Optional[list[Path]] = None  # None: every 20th document is held out
    preset: str = "small"
    block_size: Optional[int] = None  # None: the preset's context window
    dropout: Optional[float] = None  # None: the preset's (GPT-2's 0.1)
    batch_size: int = 16
    eval_blocks: int = 64
    overwrite: bool = False
    config_overrides: dict[str, Any] = field(default_factory=dict)


LM_ARTEFACTS = ("model", "data", "perplexity.png")  # a run besides the Trainer's files (tokenizer/ is rewritten)


def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder (the Trainer's `claim_run_dir`, with train-lm's own files:
    the tokenized data, the final model); `overwrite` deletes them."""
    from bertforge.training.state import claim_run_dir

    if resume:
        out.mkdir(parents=True, exist_ok=True)
        return
    claim_run_dir(out, overwrite, LM_ARTEFACTS)


def build_or_reuse_data(settings: LMTrainSettings, out: Path, resume: bool) -> tuple[Path, Path, dict]:
    """Tokenize the corpus into out/data/{train,eval}, unless the same corpus and vocabulary already are."""
    from bertforge.data.language_modeling import build_lm_data, data_key
    from bertforge.data.pretraining import hold_out_documents, vocab_fingerprint

    tok = settings.tokenizer
    key = data_key(settings.corpus + (settings.eval_corpus or []), held_out=bool(settings.eval_corpus),
                   vocab=vocab_fingerprint(tok), lowercase=tok.lowercase)
    data = out / "data"
    stamp = data / "key.txt"
    if not (stamp.exists() and stamp.read_text() == key):
        if resume and stamp.exists():
            raise BertforgeError(f"the corpus or vocabulary differ from the run being resumed in {out}: resume "
                                 f"with the same --corpus and vocabulary, or start a new --out")
        train_docs, eval_docs = hold_out_documents(settings.corpus, settings.eval_corpus)
        build_lm_data(train_docs, tok, data / "train", tok.sep_token_id)
        build_lm_data(eval_docs, tok, data / "eval", tok.sep_token_id)
        stamp.write_text(key)
    meta = json.loads((data / "train" / "meta.json").read_text())
    return data / "train", data / "eval", meta


def lm_config(settings: LMTrainSettings) -> GPTConfig:
    """The preset, sized to the tokenizer, with [SEP] as begin/end of text and [PAD] for padding."""
    tok = settings.tokenizer
    overrides: dict[str, Any] = dict(vocab_size=tok.vocab_size, bos_token_id=tok.sep_token_id,
                                     eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    preset = GPTConfig.preset(settings.preset)
    if settings.block_size and settings.block_size > preset.n_positions:
        overrides["n_positions"] = settings.block_size
    if settings.dropout is not None:
        overrides.update(resid_pdrop=settings.dropout, embd_pdrop=settings.dropout, attn_pdrop=settings.dropout)
    return GPTConfig.preset(settings.preset, **{**overrides, **settings.config_overrides})


def train_language_model(settings: LMTrainSettings) -> dict[str, Any]:
    """Run (or resume) a training; returns {"model_dir", "log", "data", "last_eval"}. See the module doc."""
    from bertforge.data.language_modeling import PackedBlocks, lm_collate
    from bertforge.data.loader import ResumableLoader
    from bertforge.training.trainer import Trainer, init_distributed, unwrap

    cfg = settings.train
    out = Path(cfg.out_dir)
    rank, world = init_distributed()  # under torchrun: rank 0 prepares the data, the others wait
    if rank == 0:
        prepare_out_dir(out, cfg.resume, settings.overwrite)
        settings.tokenizer.save_pretrained(out / "tokenizer")
        build_or_reuse_data(settings, out, cfg.resume)
    if world > 1:
        torch.distributed.barrier()
    meta = json.loads((out / "data" / "train" / "meta.json").read_text())
    config = lm_config(settings)
    block = settings.block_size or config.n_positions
    train_ds = PackedBlocks(out / "data" / "train", block)
    eval_ds = PackedBlocks(out / "data" / "eval", block)
    eval_blocks = [eval_ds[i] for i in range(min(len(eval_ds), settings.eval_blocks))]
    torch.manual_seed(cfg.seed)  # the initial weights are a function of the seed: same seed, same run
    model = GPTLMHeadModel(config)
    if rank == 0:
        print(f"data: {meta['tokens']:,} training tokens ({meta['documents']} documents) = {len(train_ds):,} "
              f"blocks of {block}; held-out {len(eval_blocks)} blocks; vocabulary {config.vocab_size}"
              + (f"; {world} processes" if world > 1 else ""))
        print(f"model: GPT {settings.preset}, {model.num_parameters() / 1e6:.1f}M parameters "
              f"({config.n_layer} layers, d_model {config.n_embd}, {config.n_head} heads)")
    loader = ResumableLoader(train_ds, settings.batch_size, lm_collate, seed=cfg.seed)
    trainer = Trainer(model, cfg, loader, eval_fn=lambda m: evaluate_lm(m, eval_blocks),
                      save_hook=settings.tokenizer.save_pretrained)
    if rank == 0 and cfg.resume and trainer.step >= trainer.max_steps:
        print(f"already at step {trainer.step} of {trainer.max_steps}: nothing to do (raise --max-steps)")
    log = trainer.train()
    result: dict[str, Any] = {"model_dir": out / "model", "log": log, "data": meta, "last_eval": None}
    if trainer.is_main:
        unwrap(trainer.model).save_pretrained(out / "model")
        settings.tokenizer.save_pretrained(out / "model")
        plot_perplexity(out / "metrics.jsonl", out / "perplexity.png")
        evals = [r for r in log if "eval_perplexity" in r]
        result["last_eval"] = evals[-1] if evals else None
    return result


# ---------------------------------------------------------------------------------------------
# Text in, text out
# ---------------------------------------------------------------------------------------------


def load_lm(model_dir: str | Path) -> tuple[GPTLMHeadModel, Any]:
    """(model, tokenizer) from a folder with config.json, model.safetensors and vocab.txt (train-lm's model/)."""
    from bertforge.tokenizer.tokenizer import Tokenizer

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist (train one with `bertforge train-lm`)")
    if not (path / "vocab.txt").exists():
        raise FileNotFoundError(f"no vocab.txt in {path}: the tokenizer is saved beside the weights by train-lm")
    model = GPTLMHeadModel.from_pretrained(path)
    tok = Tokenizer.from_pretrained(path)
    if tok.vocab_size != model.config.vocab_size:
        raise BertforgeError(f"vocab.txt has {tok.vocab_size} tokens but the model {model.config.vocab_size}")
    return model, tok


def check_prompts(prompts: Sequence[str]) -> None:
    """An empty prompt is an error (docs/gpt.md): there is nothing to continue."""
    if not prompts:
        raise BertforgeError("no prompt given")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise BertforgeError("the prompt is empty: give some text for the model to continue")


def encode_prompts(tokenizer, prompts: Sequence[str], bos_id: Optional[int], pad_id: int) -> tuple[Tensor, Tensor]:
    """Prompts -> left-padded (B, T) ids and attention mask, each row starting with `bos_id`."""
    check_prompts(prompts)
    rows = []
    for p in prompts:
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(p))
        rows.append(([bos_id] if bos_id is not None else []) + ids)
    T = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (T - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """Text up to the earliest stop string (excluded), and whether one was found."""
    cuts = [text.index(s) for s in stop_strings if s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


class TextStreamer:
    """Prints a single row's new text as it is generated (`generate(..., streamer=TextStreamer(tok))`).

    WordPiece decoding can change the end of the text when the next token arrives ("hello" + "." gives
    "hello."; "don" + "'" + "t" gives "don't"), so only text before the last space is printed, plus,
    with stop strings, nothing that could be the start of one; `end()` prints the rest, cut at a stop.
    """

    def __init__(self, tokenizer, stop_strings: Sequence[str] = (), file: Optional[TextIO] = None):
        self.tokenizer, self.stop_strings = tokenizer, list(stop_strings)
        self.file = file if file is not None else sys.stdout  # looked up now: sys.stdout may be replaced
        self.ids: list[int] = []
        self.shown = ""
        self.hold = max((len(s) for s in self.stop_strings), default=1) - 1
        self.stopped = False

    def put(self, tokens: Tensor) -> None:
        if tokens.numel() != 1:
            raise BertforgeError("TextStreamer streams one prompt at a time; generate batches without it")
        if self.stopped:
            return
        self.ids.append(int(tokens.flatten()[0]))
        text, self.stopped = cut_at_stop(self.tokenizer.decode(self.ids), self.stop_strings)
        safe = len(text) if self.stopped else min(len(text) - self.hold, text.rfind(" "))
        self._show(text[:max(safe, 0)])

    def _show(self, text: str) -> None:
        if text.startswith(self.shown) and len(text) > len(self.shown):
            self.file.write(text[len(self.shown):])
            self.file.flush()
            self.shown = text

    def end(self) -> None:
        text, _ = cut_at_stop(self.tokenizer.decode(self.ids), self.stop_strings)
        self._show(text)
        self.file.write("\n")
        self.file.flush()


def complete(model: GPTLMHeadModel, tokenizer, prompts: str | Sequence[str], max_new_tokens: int = 50,
             stop_strings: Sequence[str] = (), stream: bool = False, file: Optional[TextIO] = None,
             **sampling: Any) -> list[str]:
    """Continue each prompt; returns the new text of each (cut at the first stop string, without it).

    `sampling`: do_sample, temperature, top_k, top_p, repetition_penalty, seed, use_cache (see
    `bertforge.models.gpt.generation.generate`). `stream=True` prints the text as it comes (one prompt).
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    c = model.config
    ids, mask = encode_prompts(tokenizer, prompts, c.bos_token_id, c.pad_id)
    streamer = TextStreamer(tokenizer, stop_strings, file) if stream else None
    if streamer is not None and len(prompts) > 1:
        raise BertforgeError("streaming shows one prompt at a time: give one prompt, or do not stream")
    seq = generate(model, ids, mask, max_new_tokens=max_new_tokens, stop_strings=stop_strings,
                   tokenizer=tokenizer, streamer=streamer, **sampling)
    prompt_len = min(ids.size(1), c.n_positions - max_new_tokens)  # generate cuts long prompts from the left
    texts = []
    for row in seq[:, prompt_len:].tolist():
        if c.eos_token_id in row:
            row = row[:row.index(c.eos_token_id)]
        texts.append(cut_at_stop(tokenizer.decode(row), stop_strings)[0])
    return texts


# ---------------------------------------------------------------------------------------------
# "Predicting words in a blank" with a left-to-right model
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def score_texts(model: GPTLMHeadModel, tokenizer, texts: Sequence[str]) -> list[float]:
    """log P(text) = sum_t log P(u_t | u_<t) of each text after the bos token (natural log)."""
    c = model.config
    ids, mask = encode_prompts(tokenizer, texts, c.bos_token_id, c.pad_id)
    model.eval()
    logits = model(ids, attention_mask=mask, return_logits=True).logits.float()  # (B, T, V)
    logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    scored = mask[:, :-1] * mask[:, 1:]  # a real token predicted from a real position (not bos from padding)
    return (logp * scored).sum(-1).tolist()


@torch.no_grad()
def gpt_fill_blank(model: GPTLMHeadModel, tokenizer, text: str, candidates: Optional[Sequence[str]] = None,
                   top_k: int = 5) -> dict[str, list[tuple[str, float]]]:
    """Two ways for GPT to fill the [MASK] in `text`.

    "left": P(token | words before the blank), the top_k tokens: what GPT predicts *at* the blank
    without seeing what follows. "rescored" (with `candidates`): each candidate put in the blank and the
    whole sentence scored; probabilities renormalised over the candidates (uses the right context too,
    at the cost of one pass per candidate).
    """
    if text.count(BLANK) != 1:
        raise BertforgeError(f"write exactly one {BLANK} where the word is missing, got {text.count(BLANK)}")
    left, right = text.split(BLANK)
    model.eval()
    c = model.config
    ids, _ = encode_prompts(tokenizer, [left if left.strip() else "."], c.bos_token_id, c.pad_id)
    if not left.strip():
        ids = ids[:, :1]  # only the bos token
    probs = model(ids, return_logits=True).logits[0, -1].float().softmax(-1)
    top = probs.topk(top_k)
    result = {"left": [(tokenizer.convert_ids_to_tokens(int(i)), float(p)) for p, i in zip(top.values, top.indices)]}
    if candidates:
        scores = torch.tensor(score_texts(model, tokenizer, [f"{left}{w}{right}" for w in candidates]))
        p = scores.softmax(0)
        order = p.argsort(descending=True).tolist()
        result["rescored"] = [(candidates[i], float(p[i])) for i in order]
    return result
