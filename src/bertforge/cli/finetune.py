"""`bertforge finetune <task>`: fine-tune a pre-trained model on a downstream task (Devlin et al. 2019, 4).

    bertforge finetune glue --task rte --model PATH --out DIR [--data-dir GLUE_DIR]
    bertforge finetune ner --train FILE --dev FILE --model PATH --out DIR
    bertforge finetune choice --format commonsenseqa|copa|swag --train FILE --dev FILE --model PATH --out DIR
    bertforge finetune classify --train FILE --dev FILE --model PATH --out DIR

The best dev checkpoint is kept in DIR/best/ (HF layout + vocab.txt + finetune.json); use it with
`bertforge evaluate` and `bertforge predict`, or load it in transformers.

One task = one entry of `TASK_PARSERS`: a function that adds its parser to the `finetune` sub-parsers
(use `add_training_flags` for the shared flags) and sets `func`. To add a task (e.g. `squad`), add an entry.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Callable

from bertforge.cli.qa import add_finetune_squad

DEFAULT_GLUE = "$BERTFORGE_DATA/glue"


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """--model/--out and the hyper-parameters every fine-tuning task shares (defaults: the task's)."""
    p.add_argument("--model", type=Path, required=True, help="pre-trained model directory (config.json, "
                   "model.safetensors, vocab.txt)")
    p.add_argument("--out", type=Path, required=True, help="output directory (best model in OUT/best)")
    g = p.add_argument_group("training (defaults depend on the task)")
    g.add_argument("--epochs", type=float, default=None)
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--max-length", type=int, default=None, help="tokens per sequence (pairs: both together)")
    g.add_argument("--warmup-ratio", type=float, default=0.1)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    g.add_argument("--evals-per-epoch", type=int, default=2, help="dev evaluations per epoch")
    g.add_argument("--patience", type=int, default=3,
                   help="stop after this many evaluations without improvement (0: never stop early)")
    g.add_argument("--no-bucket", action="store_true", help="plain shuffled batches (no length bucketing; already the default for NER)")
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse bad numbers before any data is read."""
    for name in ("epochs", "lr", "batch_size", "max_length", "evals_per_epoch", "max_steps"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")


def settings_from_args(args: argparse.Namespace, defaults):
    """FinetuneSettings of the flags; epochs / lr / batch size / max length not given take the task's `defaults`."""
    from bertforge.tasks.classification import FinetuneSettings, finetune_train_config

    train = finetune_train_config(
        epochs=args.epochs or defaults.epochs, lr=args.lr or defaults.lr, max_steps=args.max_steps,
        warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay, seed=args.seed, precision=args.precision,
        patience=args.patience or None, resume=args.resume, progress=not args.quiet, device=args.device)
    return FinetuneSettings(train, batch_size=args.batch_size, max_length=args.max_length,
                            evals_per_epoch=args.evals_per_epoch, bucket=False if args.no_bucket else None)


def glue_dir(arg: str | None) -> Path:
    """--data-dir, else $BERTFORGE_DATA/glue."""
    if arg:
        return Path(arg)
    if os.environ.get("BERTFORGE_DATA"):
        return Path(os.environ["BERTFORGE_DATA"]) / "glue"
    raise ValueError("where is GLUE? pass --data-dir (the folder holding CoLA/, RTE/, ...) or set BERTFORGE_DATA")


def _train(args: argparse.Namespace, load_data: Callable) -> int:
    """Check the flags, read the data (`load_data()` -> TaskData), fine-tune, print the best dev scores."""
    import torch

    from bertforge.tasks.classification import finetune

    check_flags(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data()
    result = finetune(data, args.model, args.out, settings_from_args(args, data.defaults))
    print(json.dumps({"task": data.name, "best_dir": str(result.best_dir), "dev": result.best,
                      "train_tokens_per_s": round(result.tokens_per_s, 1)}, indent=2))
    return 0


# ---- one parser per task ------------------------------------------------------------------------

def add_glue(tasks) -> None:
    from bertforge.data.glue import GLUE_TASKS

    p = tasks.add_parser("glue", help="a GLUE task (CoLA, SST-2, MRPC, STS-B, RTE, WNLI)")
    p.add_argument("--task", required=True, choices=sorted(GLUE_TASKS))
    p.add_argument("--data-dir", default=None, help=f"GLUE folder (default {DEFAULT_GLUE})")
    add_training_flags(p)

    def run(a):
        from bertforge.tasks.classification import glue_task_data
        return _train(a, lambda: glue_task_data(a.task, glue_dir(a.data_dir)))

    p.set_defaults(func=run)


def add_ner(tasks) -> None:
    p = tasks.add_parser("ner", help="token classification from CoNLL-style files (token ... tag, IOB2)")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--dev", type=Path, required=True)
    p.add_argument("--name", default="ner", help="task name recorded in the model")
    add_training_flags(p)

    def run(a):
        from bertforge.tasks.classification import ner_task_data
        return _train(a, lambda: ner_task_data(a.train, a.dev, a.name))

    p.set_defaults(func=run)


def add_choice(tasks) -> None:
    from bertforge.tasks.classification import CHOICE_READERS

    p = tasks.add_parser("choice", help="multiple choice (CommonsenseQA / COPA JSONL, SWAG CSV)")
    p.add_argument("--format", required=True, choices=sorted(CHOICE_READERS))
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--dev", type=Path, required=True)
    add_training_flags(p)

    def run(a):
        from bertforge.tasks.classification import choice_task_data
        return _train(a, lambda: choice_task_data(a.format, a.train, a.dev))

    p.set_defaults(func=run)


def add_column_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text")
    p.add_argument("--pair-column", default="text_pair")
    p.add_argument("--label-column", default="label")


def columns(args: argparse.Namespace) -> dict[str, str]:
    return {"text_column": args.text_column, "pair_column": args.pair_column, "label_column": args.label_column}


def add_classify(tasks) -> None:
    from bertforge.models.bert.heads import PROBLEM_TYPES

    p = tasks.add_parser("classify", help="your own CSV/TSV/JSONL with text, text_pair, label columns")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--dev", type=Path, required=True)
    p.add_argument("--problem-type", choices=PROBLEM_TYPES, default=None,
                   help="default: read off the labels (lists: multi-label; non-integer numbers: regression)")
    add_column_flags(p)
    add_training_flags(p)

    def run(a):
        from bertforge.tasks.classification import classify_task_data
        return _train(a, lambda: classify_task_data(a.train, a.dev, a.problem_type, **columns(a)))

    p.set_defaults(func=run)


TASK_PARSERS: dict[str, Callable] = {"glue": add_glue, "ner": add_ner, "choice": add_choice,
                                     "classify": add_classify}

TASK_PARSERS["squad"] = add_finetune_squad  # extractive QA lives in commands/qa.py


def add_task_group(sub, name: str, help: str, description: str, parsers: dict[str, Callable]) -> None:
    """`bertforge <name> <task>`: one sub-parser per entry of `parsers` (shared by evaluate)."""
    p = sub.add_parser(name, help=help, description=description)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for add in parsers.values():
        add(tasks)


def register(sub) -> None:
    add_task_group(sub, "finetune", "fine-tune a pre-trained model on a task", __doc__.split("\n\n")[0],
                   TASK_PARSERS)
