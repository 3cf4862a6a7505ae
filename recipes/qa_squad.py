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

from bertforge.fileio import atomic_write_json

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
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    {"sweep": cmd_sweep, "train": cmd_train}[args.stage](args)


if __name__ == "__main__":
    sys.exit(main())
