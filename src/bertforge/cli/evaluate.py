"""`bertforge evaluate <task>`: score a fine-tuned model on labelled data and print the metrics as JSON.

    bertforge evaluate glue --task rte --model DIR [--split dev] [--data-dir GLUE_DIR]
    bertforge evaluate ner --model DIR --file FILE
    bertforge evaluate choice --model DIR --format commonsenseqa|copa|swag --file FILE
    bertforge evaluate classify --model DIR --file FILE

One task = one entry of `EVALUATORS` (a function adding its parser); to add one (e.g. `squad`), add an entry.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from bertforge.cli.qa import add_evaluate_squad

from bertforge.cli.finetune import add_column_flags, add_task_group, columns, glue_dir


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="a fine-tuned model directory (e.g. OUT/best)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _score(args: argparse.Namespace, examples: list) -> int:
    import torch

    from bertforge.tasks.classification import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    if not examples or any(getattr(e, "label", 0) is None or getattr(e, "tags", 0) is None for e in examples):
        raise ValueError("evaluation needs labelled examples (this split/file has none)")
    print(json.dumps({"examples": len(examples), **evaluate(args.model, examples, args.batch_size)}, indent=2))
    return 0


def add_glue(tasks) -> None:
    from bertforge.data.glue import GLUE_TASKS

    p = tasks.add_parser("glue", help="a GLUE task's dev (or train) split")
    p.add_argument("--task", required=True, choices=sorted(GLUE_TASKS))
    p.add_argument("--split", choices=("train", "dev"), default="dev")
    p.add_argument("--data-dir", default=None, help="GLUE folder (default $BERTFORGE_DATA/glue)")
    _common(p)

    def run(a):
        from bertforge.data.glue import read_glue
        return _score(a, read_glue(a.task, a.split, glue_dir(a.data_dir)))

    p.set_defaults(func=run)


def add_ner(tasks) -> None:
    p = tasks.add_parser("ner", help="a CoNLL-style file (entity-level P/R/F1)")
    p.add_argument("--file", type=Path, required=True)
    _common(p)

    def run(a):
        from bertforge.data.ner import read_conll
        return _score(a, read_conll(a.file))

    p.set_defaults(func=run)


def add_choice(tasks) -> None:
    from bertforge.tasks.classification import CHOICE_READERS

    p = tasks.add_parser("choice", help="multiple choice (accuracy)")
    p.add_argument("--format", required=True, choices=sorted(CHOICE_READERS))
    p.add_argument("--file", type=Path, required=True)
    _common(p)

    def run(a):
        from bertforge.tasks.classification import read_choice
        return _score(a, read_choice(a.format, a.file))

    p.set_defaults(func=run)


def add_classify(tasks) -> None:
    p = tasks.add_parser("classify", help="your own CSV/TSV/JSONL with text, text_pair, label")
    p.add_argument("--file", type=Path, required=True)
    add_column_flags(p)
    _common(p)

    def run(a):
        from bertforge.data.classify import read_classification_file
        return _score(a, read_classification_file(a.file, **columns(a)))

    p.set_defaults(func=run)


EVALUATORS: dict[str, Callable] = {"glue": add_glue, "ner": add_ner, "choice": add_choice,
                                   "classify": add_classify}

EVALUATORS["squad"] = add_evaluate_squad  # extractive QA lives in commands/qa.py


def register(sub) -> None:
    add_task_group(sub, "evaluate", "score a fine-tuned model on labelled data", __doc__.split("\n\n")[0],
                   EVALUATORS)
