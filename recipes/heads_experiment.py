"""The notes' question, by experiment: "will more heads find more correlations?" (docs/heads.md).

    python recipes/heads_experiment.py --out runs/heads            # the full run (~60 CPU-minutes, resumable)
    python recipes/heads_experiment.py --out runs/heads --stage report --img-dir docs/img
    python recipes/heads_experiment.py --short --out /tmp/heads    # a tiny end-to-end check (the test suite's)

Design (equal compute): the same small BERT (d_model 128, 2 layers, d_ff 512; no dropout) is trained
with h in {1, 2, 4, 8, 16} heads, so d_k = 128 / h shrinks as h grows, and everything else is fixed:
the same masked-LM data (the shared corpus, a WordPiece vocabulary of 8000 trained on it, rows of 64
tokens, dynamic 15% masking), the same 1200 steps of 32 rows, the same optimiser and schedule, seeds
{0, 1, 2}. (A pilot at 300 and 500 steps left every h on the unigram plateau -- held-out loss 6.6-6.7
nats, no head worth more than 0.01 nats -- so nothing about heads could be seen; at 1200 steps, about
2 CPU-minutes per model, the loss is ~0.5 nats below the unigram baseline and heads matter.)
The FLOPs do not depend on h: the Q, K, V, O projections are D x D for any h, and the
attention scores cost T^2 x d_k x h = T^2 x D. Each trained model is then

1. scored on held-out masked LM (heldout.txt, static masks): loss and accuracy;
2. looked at (`bertforge.analysis.heads`): attention entropy of every head, and the role each head
   mainly plays -- previous / next token, itself, [CLS], [SEP], punctuation (Clark et al. 2019;
   Voita et al. 2019);
3. pruned one head at a time (Michel et al. 2019): the change of held-out MLM loss without each head,
   and with only the best head of a layer kept;
4. fine-tuned on SST-2 (8000 training sentences, 1 epoch, the same for every model) and scored on the
   full dev set, then pruned one head at a time again (dev accuracy change).

The real all-MiniLM-L6-v2 (6 layers x 12 heads, trained by others at a scale we cannot afford here) gets
steps 2-3 on STS-B dev pairs: its score is the Spearman correlation of cosine similarities with the gold
scores (what that model is for), and each head's importance is the change of that score.

Every finished unit is appended to `<out>/results.jsonl` at once, so an interrupted run loses at most
one unit and `--stage all` (the default) continues where it stopped. Run it beside other jobs with
`nohup nice -n 10 ... &`; it uses one thread (`--threads`).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

CORPUS_FILES = ("austen.txt", "novels.txt", "sotu.txt", "wiki.txt")


@dataclass
class Settings:
    heads: tuple[int, ...] = (1, 2, 4, 8, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    d_model: int = 128
    layers: int = 2
    d_ff: int = 512
    seq: int = 64
    batch: int = 32
    steps: int = 1200
    lr: float = 2e-3
    vocab_size: int = 8000
    train_docs: Optional[int] = None  # None: the whole corpus
    eval_docs: Optional[int] = None  # of heldout.txt
    eval_rows: int = 512  # held-out MLM rows for the headline loss
    ablation_rows: int = 256  # rows per ablation evaluation (a subset of the above)
    analysis_rows: int = 128  # rows whose attention maps are analysed
    sst2_train: int = 8000
    sst2_dev: Optional[int] = None  # None: all 872
    sst2_lr: float = 5e-4
    sst2_epochs: float = 1.0
    minilm_pairs: int = 300  # STS-B dev pairs
    minilm_layers: Optional[int] = None  # ablate heads of the first k layers only (None: all)


FULL = Settings()
SHORT = Settings(heads=(1, 2, 4), seeds=(0,), d_model=32, layers=1, d_ff=64, seq=32, batch=8, steps=12,
                 lr=3e-3, vocab_size=400, train_docs=12, eval_docs=2, eval_rows=32, ablation_rows=16,
                 analysis_rows=8, sst2_train=48, sst2_dev=32, sst2_epochs=1.0, minilm_pairs=12, minilm_layers=1)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def prepare(out: Path, data_dir: Path, s: Settings):
    """Vocabulary and masked-LM shards, built once per `out` (reused on resume)."""
    import itertools

    from bertforge.data.pretraining import PretrainingDataset, build_pretraining_data, read_documents
    from bertforge.tokenizer.tokenizer import Tokenizer
    from bertforge.tokenizer.training import train_vocab

    corpus = data_dir / "corpus"
    train_files = [corpus / f for f in CORPUS_FILES]
    vocab = out / "vocab.txt"
    if not vocab.exists():
        if s.train_docs is None:
            train_vocab([str(f) for f in train_files], s.vocab_size, vocab)
        else:
            docs = itertools.islice(read_documents(train_files), s.train_docs)
            train_vocab((" ".join(d) for d in docs), s.vocab_size, vocab)
    tok = Tokenizer.from_vocab(vocab)
    for split, files, n in (("train", train_files, s.train_docs), ("eval", [corpus / "heldout.txt"], s.eval_docs)):
        if not (out / "data" / split / "meta.json").exists():
            docs = read_documents(files)
            docs = list(itertools.islice(docs, n)) if n is not None else docs
            build_pretraining_data(docs, tok, out / "data" / split, max_seq_length=s.seq, nsp=False, seed=0)
    return tok, PretrainingDataset(out / "data" / "train"), PretrainingDataset(out / "data" / "eval")


def eval_batches(tok, ds, rows: int, batch: int = 64) -> list[dict[str, torch.Tensor]]:
    """Held-out rows with static masks (the same masks for every model and evaluation)."""
    from bertforge.data.pretraining import MaskingConfig, PretrainingCollator

    collate = PretrainingCollator(tok, MaskingConfig(static=True), seed=1234, nsp=False)
    n = min(rows, len(ds))
    return [collate([ds[i] for i in range(a, min(a + batch, n))]) for a in range(0, n, batch)]


def mlm_loss(model, batches) -> float:
    from bertforge.models.bert.pretraining import evaluate_pretraining

    return evaluate_pretraining(model, batches)["mlm_loss"]


# ---------------------------------------------------------------------------------------------
# One unit: (h, seed)
# ---------------------------------------------------------------------------------------------


def train_mlm(tok, train_ds, h: int, seed: int, s: Settings, run_dir: Path):
    from bertforge.data.loader import ResumableLoader
    from bertforge.data.pretraining import MaskingConfig, PretrainingCollator
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.pretraining import BertForMaskedLM
    from bertforge.training.trainer import TrainConfig, Trainer

    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=s.d_model, num_hidden_layers=s.layers,
                        num_attention_heads=h, intermediate_size=s.d_ff, max_position_embeddings=s.seq,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    loader = ResumableLoader(train_ds, s.batch, PretrainingCollator(tok, MaskingConfig(), nsp=False), seed=seed)
    cfg = TrainConfig(out_dir=str(run_dir), max_steps=s.steps, lr=s.lr, warmup_ratio=0.05, seed=seed,
                      progress=False, log_every=max(1, s.steps // 10), keep_last=1)
    t, c = time.perf_counter(), time.process_time()
    log = Trainer(model, cfg, loader).train()
    return model, log, time.perf_counter() - t, time.process_time() - c


def attention_summary(model, tok, batches) -> list[dict]:
    from bertforge.analysis.heads import attention_report, punctuation_ids

    model.set_attn_implementation("eager")
    try:
        rows = [{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]} for b in batches]
        return attention_report(model, rows, tok.cls_token_id, tok.sep_token_id, punctuation_ids(tok))
    finally:
        model.set_attn_implementation("sdpa")


def finetune_sst2(model_dir: Path, data_dir: Path, out_dir: Path, seed: int, s: Settings) -> dict[str, Any]:
    """SST-2 on a fixed subset; returns dev accuracy and the per-head accuracy change without each head."""
    from bertforge.analysis.heads import ablate_each_head
    from bertforge.tasks.classification import (
        KINDS,
        FinetuneSettings,
        evaluate_features,
        finetune,
        finetune_train_config,
        glue_task_data,
        load_finetuned,
    )

    data = glue_task_data("sst2", data_dir / "glue")
    train = list(data.train)
    random.Random(0).shuffle(train)
    data = replace(data, train=train[:s.sst2_train], dev=data.dev[:s.sst2_dev] if s.sst2_dev else data.dev)
    settings = FinetuneSettings(train=finetune_train_config(epochs=s.sst2_epochs, lr=s.sst2_lr, seed=seed,
                                                            patience=None, progress=False, log_every=50),
                                batch_size=32, max_length=s.seq, evals_per_epoch=1)
    result = finetune(data, model_dir, out_dir, settings)
    model, tok, _ = load_finetuned(result.best_dir)
    config = model.config
    features, aux = KINDS["sequence"].featurize(tok, data.dev, s.seq, config)

    def accuracy() -> float:
        return evaluate_features(model, "sequence", features, aux, data.dev, config)["accuracy"]

    base, delta = ablate_each_head(model, accuracy)
    return {"sst2_accuracy": base, "sst2_ablation": delta.tolist(), "sst2_train_seconds": result.train_seconds}


def run_unit(h: int, seed: int, tok, train_ds, eval_ds, out: Path, data_dir: Path, s: Settings) -> dict[str, Any]:
    from bertforge.analysis.heads import ablate_each_head, keep_one_head_per_layer

    run_dir = out / "units" / f"h{h}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    model, log, wall, cpu = train_mlm(tok, train_ds, h, seed, s, run_dir)
    batches = eval_batches(tok, eval_ds, s.eval_rows)
    ablation = eval_batches(tok, eval_ds, s.ablation_rows)
    from bertforge.models.bert.pretraining import evaluate_pretraining

    held = evaluate_pretraining(model, batches)
    roles = attention_summary(model, tok, eval_batches(tok, eval_ds, s.analysis_rows))
    base, delta = ablate_each_head(model, lambda: mlm_loss(model, ablation))
    one_head = keep_one_head_per_layer(model, lambda: mlm_loss(model, ablation), delta)
    model_dir = run_dir / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    record = {"h": h, "seed": seed, "d_k": s.d_model // h, "mlm_loss": held["mlm_loss"],
              "mlm_accuracy": held["mlm_accuracy"], "train_loss_last": log[-1]["loss"] if log else None,
              "train_seconds": wall, "train_cpu_seconds": cpu, "ablation_base_loss": base,
              "mlm_ablation": delta.tolist(), "keep_one_head_per_layer": one_head.tolist(), "layers": roles}
    record.update(finetune_sst2(model_dir, data_dir, run_dir / "sst2", seed, s))
    for sub in run_dir.glob("checkpoint-*"):  # keep the final models, drop the trainer states
        shutil.rmtree(sub, ignore_errors=True)
    shutil.rmtree(run_dir / "sst2", ignore_errors=True)
    return record


def done_units(path: Path) -> set[tuple[int, int]]:
    if not path.exists():
        return set()
    return {(r["h"], r["seed"]) for r in map(json.loads, path.read_text().splitlines()) if r.get("h")}


def append_record(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


# ---------------------------------------------------------------------------------------------
# The real MiniLM
# ---------------------------------------------------------------------------------------------


def minilm_stage(out: Path, data_dir: Path, s: Settings) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from bertforge.analysis.heads import ablate_each_head, attention_modules, keep_one_head_per_layer
    from bertforge.data.glue import glue_task, read_glue
    from bertforge.tasks.embedding import SentenceEncoder

    path = out / "minilm.json"
    if path.exists():
        return json.loads(path.read_text())
    pairs = read_glue(glue_task("stsb"), "dev", data_dir / "glue")[:s.minilm_pairs]
    enc = SentenceEncoder()
    gold = [float(p.label) for p in pairs]
    a_texts, b_texts = [p.text for p in pairs], [p.text_pair for p in pairs]

    def spearman() -> float:
        va, vb = enc.encode(a_texts), enc.encode(b_texts)
        return float(spearmanr((va * vb).sum(1).numpy(), gold).statistic)

    model = enc.model
    L, H = len(attention_modules(model)), attention_modules(model)[0].num_heads
    t = time.process_time()
    if s.minilm_layers is None:
        base, delta = ablate_each_head(model, spearman)
        one_head = keep_one_head_per_layer(model, spearman, delta, higher_is_better=True).tolist()
    else:  # short mode: only the first layers' heads
        from bertforge.analysis.heads import masked_heads

        base, delta = spearman(), torch.zeros(L, H)
        for l in range(s.minilm_layers):
            for h in range(H):
                gates = torch.ones(L, H)
                gates[l, h] = 0
                with masked_heads(model, gates):
                    delta[l, h] = spearman() - base
        one_head = None
    roles = minilm_roles(enc, a_texts + b_texts)
    result = {"pairs": len(pairs), "spearman": base, "ablation": delta.tolist(), "keep_one_head_per_layer": one_head,
              "layers": roles, "cpu_seconds": time.process_time() - t}
    path.write_text(json.dumps(result))
    return result


def minilm_roles(enc, texts: list[str]) -> list[dict]:
    from bertforge.analysis.heads import attention_report, punctuation_ids

    tok, model = enc.tokenizer, enc.model
    batch = tok.encode_batch(texts[:64], max_length=64, truncation=True, padding=True, return_tensors="pt")
    model.set_attn_implementation("eager")
    try:
        rows = [{"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}]
        return attention_report(model, rows, tok.cls_token_id, tok.sep_token_id, punctuation_ids(tok))
    finally:
        model.set_attn_implementation("sdpa")


# ---------------------------------------------------------------------------------------------
# Report: the table and the pictures
# ---------------------------------------------------------------------------------------------


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def summarise(records: list[dict]) -> list[dict[str, Any]]:
    """One row per h: means and spreads over seeds, and head statistics pooled over seeds and layers."""
    from bertforge.analysis.heads import ROLES, main_role

    rows = []
    for h in sorted({r["h"] for r in records}):
        rs = [r for r in records if r["h"] == h]
        row: dict[str, Any] = {"h": h, "d_k": rs[0]["d_k"], "seeds": len(rs)}
        for key in ("mlm_loss", "mlm_accuracy", "sst2_accuracy", "train_cpu_seconds"):
            row[key] = _mean_std([r[key] for r in rs])
        entropies = [e for r in rs for layer in r["layers"] for e in layer["entropy"]]
        row["entropy"] = _mean_std(entropies)
        counts = {role: 0 for role in ROLES} | {"none": 0}
        heads = 0
        for r in rs:
            for layer in r["layers"]:
                for role in main_role({k: torch.tensor(layer[f"argmax_{k}"]) for k in ROLES}):
                    counts[role or "none"] += 1
                    heads += 1
        row["roles"] = {k: v / heads for k, v in counts.items()}
        mlm_drop = [d for r in rs for layer in r["mlm_ablation"] for d in layer]
        sst_drop = [d for r in rs for layer in r["sst2_ablation"] for d in layer]
        row["mlm_ablation_max"] = _mean_std([max(d for layer in r["mlm_ablation"] for d in layer) for r in rs])
        row["mlm_ablation_median"] = float(np.median(mlm_drop))
        row["harmless_share"] = float(np.mean([d < 0.01 for d in mlm_drop]))  # < 0.01 nats worse without it
        row["sst2_ablation_min"] = _mean_std([min(d for layer in r["sst2_ablation"] for d in layer) for r in rs])
        row["sst2_harmless_share"] = float(np.mean([d > -0.005 for d in sst_drop]))
        row["keep_one"] = _mean_std([max(r["keep_one_head_per_layer"]) for r in rs])
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    pm = lambda ms, f="{:.3f}": f"{f.format(ms[0])} ± {f.format(ms[1])}"  # noqa: E731
    lines = ["| h | d_k | held-out MLM loss | MLM accuracy | SST-2 dev accuracy | mean head entropy (nats) | "
             "heads mainly on prev / next / self / [CLS] / [SEP] / punct / none | worst single-head removal "
             "(MLM loss +) | heads removable at < 0.01 nats | only best head per layer (MLM loss +) | CPU s |",
             "| " + " | ".join(["---"] * 11) + " |"]
    for r in rows:
        roles = " / ".join(f"{100 * r['roles'][k]:.0f}%" for k in
                           ("previous", "next", "self", "[CLS]", "[SEP]", "punctuation", "none"))
        lines.append(f"| {r['h']} | {r['d_k']} | {pm(r['mlm_loss'])} | {pm(r['mlm_accuracy'])} | "
                     f"{pm(r['sst2_accuracy'])} | {pm(r['entropy'], '{:.2f}')} | {roles} | "
                     f"{pm(r['mlm_ablation_max'])} | {100 * r['harmless_share']:.0f}% | {pm(r['keep_one'])} | "
                     f"{r['train_cpu_seconds'][0]:.0f} |")
    return "\n".join(lines)


def plots(records: list[dict], rows: list[dict], minilm: Optional[dict], img_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bertforge.analysis.heads import ROLES, main_role

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    hs = [r["h"] for r in rows]

    # 1. Quality vs h: MLM loss and SST-2 accuracy, every seed and the mean.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "mlm_loss", "held-out MLM loss (lower is better)"),
                           (axes[1], "sst2_accuracy", "SST-2 dev accuracy")):
        for r in records:
            ax.plot(r["h"], r[key], "o", color="tab:blue", alpha=0.4)
        ax.errorbar(hs, [r[key][0] for r in rows], yerr=[r[key][1] for r in rows], color="black", capsize=4,
                    marker="s", label="mean ± std over seeds")
        ax.set_xscale("log", base=2), ax.set_xticks(hs, [str(h) for h in hs])
        ax.set_xlabel("heads h (d_model fixed: d_k = d_model / h)"), ax.set_ylabel(label), ax.grid(alpha=0.3)
        ax.legend()
    written.append(_save(fig, img_dir / "heads_quality.png"))

    # 2. What the heads do: entropy of every head, and the share of heads per main role.
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ent = [[e for r in records if r["h"] == h for layer in r["layers"] for e in layer["entropy"]] for h in hs]
    axes[0].boxplot(ent, tick_labels=[str(h) for h in hs])
    axes[0].set_xlabel("heads h"), axes[0].set_ylabel("attention entropy per head (nats)"), axes[0].grid(alpha=0.3)
    bottom = np.zeros(len(hs))
    for role in (*ROLES, "none"):
        share = np.array([r["roles"][role] for r in rows])
        axes[1].bar([str(h) for h in hs], share, bottom=bottom, label=role)
        bottom += share
    axes[1].set_xlabel("heads h"), axes[1].set_ylabel("share of heads whose main role is ...")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    written.append(_save(fig, img_dir / "heads_roles.png"))

    # 3. Pruning one head at a time: how much worse is the model without each head?
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "mlm_ablation", "MLM loss change without the head (+ = worse)"),
                           (axes[1], "sst2_ablation", "SST-2 accuracy change without the head (- = worse)")):
        data = [[d for r in records if r["h"] == h for layer in r[key] for d in layer] for h in hs]
        ax.boxplot(data, tick_labels=[str(h) for h in hs])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("heads h"), ax.set_ylabel(label), ax.grid(alpha=0.3)
    written.append(_save(fig, img_dir / "heads_pruning.png"))

    # 4. The real MiniLM: importance of each of its 72 heads, and their roles.
    if minilm is not None:
        delta = np.array(minilm["ablation"])
        fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1.1, 1]})
        im = axes[0].imshow(delta, cmap="RdBu", vmin=-abs(delta).max(), vmax=abs(delta).max())
        axes[0].set_xlabel("head"), axes[0].set_ylabel("layer")
        axes[0].set_title(f"STS-B Spearman change without the head (base {minilm['spearman']:.3f})")
        fig.colorbar(im, ax=axes[0], shrink=0.8)
        labels = {"previous": "P", "next": "N", "self": "S", "[CLS]": "C", "[SEP]": "E", "punctuation": ".",
                  None: ""}
        for l, layer in enumerate(minilm["layers"]):
            for h, role in enumerate(main_role({k: torch.tensor(layer[f"argmax_{k}"]) for k in ROLES})):
                axes[0].text(h, l, labels[role], ha="center", va="center", fontsize=8)
        ent = np.array([layer["entropy"] for layer in minilm["layers"]])
        im2 = axes[1].imshow(ent, cmap="viridis")
        axes[1].set_xlabel("head"), axes[1].set_ylabel("layer"), axes[1].set_title("attention entropy (nats)")
        fig.colorbar(im2, ax=axes[1], shrink=0.8)
        written.append(_save(fig, img_dir / "heads_minilm.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def report(out: Path, img_dir: Path) -> str:
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
    minilm = json.loads((out / "minilm.json").read_text()) if (out / "minilm.json").exists() else None
    rows = summarise(records)
    table = markdown_table(rows)
    plots(records, rows, minilm, img_dir)
    text = table
    if minilm is not None:
        d = np.array(minilm["ablation"])
        text += (f"\n\nMiniLM (STS-B dev, {minilm['pairs']} pairs): Spearman {minilm['spearman']:.4f}; without one "
                 f"head: worst {d.min():+.4f}, best {d.max():+.4f}, median {np.median(d):+.4f}; "
                 f"{int((d > -0.005).sum())} of {d.size} heads cost less than 0.005")
        if minilm.get("keep_one_head_per_layer"):
            text += "; only the best head kept in one layer: " + ", ".join(
                f"L{l}: {v:+.3f}" for l, v in enumerate(minilm["keep_one_head_per_layer"]))
    (out / "table.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    return text


# ---------------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="experiment folder (results.jsonl, units/, minilm.json)")
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                   help="the shared data folder (corpus/, glue/)")
    p.add_argument("--short", action="store_true", help="tiny sizes, a few steps: checks the pipeline end to end")
    p.add_argument("--stage", choices=("all", "train", "minilm", "report"), default="all", help="what to run")
    p.add_argument("--img-dir", type=Path, default=None, help="where the PNGs go (default: <out>/img)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = SHORT if args.short else FULL
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(asdict(s)))
    results = out / "results.jsonl"
    if args.stage in ("all", "train"):
        tok, train_ds, eval_ds = prepare(out, args.data, s)
        for seed in s.seeds:  # seed-major: an interrupted run still has every h
            for h in s.heads:
                if (h, seed) in done_units(results):
                    continue
                t = time.time()
                record = run_unit(h, seed, tok, train_ds, eval_ds, out, args.data, s)
                append_record(results, record)
                print(f"h={h:2d} seed={seed}: MLM loss {record['mlm_loss']:.3f}, "
                      f"accuracy {record['mlm_accuracy']:.3f}, SST-2 {record['sst2_accuracy']:.3f} "
                      f"({time.time() - t:.0f} s)", flush=True)
    if args.stage in ("all", "minilm"):
        m = minilm_stage(out, args.data, s)
        print(f"MiniLM: STS-B Spearman {m['spearman']:.4f} on {m['pairs']} pairs", flush=True)
    if args.stage in ("all", "report"):
        print(report(out, args.img_dir or out / "img"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
