"""`bertforge finetune <task>`: fine-tune a pre-trained model on a downstream task (Devlin et al. 2019, 4).

    bertforge finetune glue --task rte --model PATH --out DIR [--data-dir GLUE_DIR]
    bertforge finetune ner --train FILE --dev FILE --model PATH --out DIR
    bertforge finetune choice --format commonsenseqa|copa|swag --train FILE --dev FILE --model PATH --out DIR
    bertforge finetune classify --train FILE --dev FILE --model PATH --out DIR
    bertforge finetune squad --train FILE --dev FILE --model PATH --out DIR

The best dev checkpoint is kept in DIR/best/ (HF layout + vocab.txt + finetune.json); use it with
`bertforge evaluate` and `bertforge predict`, or load it in transformers. --epochs, --lr, --batch-size and
--max-seq-length default to the task's values (docs/finetuning.md).

The tasks are `bertforge.tasks.registry.TASKS` (one table for finetune, evaluate and predict); extractive
QA (`squad`) comes from `bertforge.cli.qa`.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from bertforge.cli import flags
from bertforge.tasks.registry import TASKS, Option, Task

TASK_DEFAULT = "the task's (docs/finetuning.md)"


def add_options(p: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """A registry task's options as flags (--train, --format, --text-column, ...)."""
    for o in options:
        kw = dict(required=o.required, default=o.default, help=o.help)
        if o.choices:
            kw["choices"] = o.choices
        p.add_argument(o.flag, type=Path if o.path else str, **kw)


def option_values(args: argparse.Namespace, options: Sequence[Option]) -> dict:
    return {o.name: getattr(args, o.name) for o in options}


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """--model/--out and the hyper-parameters every fine-tuning task shares (None defaults: the task's)."""
    flags.model(p, "pre-trained model directory (config.json, model.safetensors, vocab.txt)", required=True)
    flags.out(p, "output directory (best model in OUT/best, checkpoints, metrics.jsonl)")
    flags.training(p, keep_last=1, title=f"training (epochs, lr, batch size and max length: {TASK_DEFAULT})")
    flags.max_seq_length(p, None, "tokens per sequence (pairs: both together)", old_alias=True)
    p.add_argument("--evals-per-epoch", type=flags.positive_int, default=2, help="dev evaluations per epoch")
    p.add_argument("--patience", type=flags.non_negative_int, default=3,
                   help="stop after this many evaluations without improvement (0: never stop early)")
    p.add_argument("--no-bucket", action="store_true",
                   help="plain shuffled batches (no length bucketing; already the default for NER)")


def settings_from_args(args: argparse.Namespace, defaults):
    """FinetuneSettings of the flags; epochs / lr / batch size / max length not given take the task's `defaults`."""
    from bertforge.tasks.classification import FinetuneSettings, finetune_train_config

    train = finetune_train_config(**flags.train_fields(
        args, epochs=args.epochs or defaults.epochs, lr=args.lr or defaults.lr, patience=args.patience or None))
    return FinetuneSettings(train, batch_size=args.batch_size, max_length=args.max_seq_length,
                            evals_per_epoch=args.evals_per_epoch, bucket=False if args.no_bucket else None)


def train(args: argparse.Namespace, task: Task) -> int:
    """Check the output folder, read the data, fine-tune, print the best dev scores."""
    from bertforge.fileio import check_output_dir
    from bertforge.tasks.classification import finetune
    from bertforge.tasks.registry import task_data
    from bertforge.training.state import claim_run_dir

    check_output_dir(args.out)
    if not args.resume:  # a run already there is refused before the data is read
        claim_run_dir(args.out, args.overwrite)
    data = task_data(task.name, **option_values(args, task.options + task.train_options))
    result = finetune(data, args.model, args.out, settings_from_args(args, data.defaults))
    print(json.dumps({"task": data.name, "best_dir": str(result.best_dir), "dev": result.best,
                      "train_tokens_per_s": round(result.tokens_per_s, 1)}, indent=2))
    return 0


def add_task(tasks, task: Task) -> None:
    p = tasks.add_parser(task.name, help=task.help, description=task.help)
    add_options(p, task.options + task.train_options)
    add_training_flags(p)
    p.set_defaults(func=lambda a: train(a, task))


def add_task_group(sub, name: str, help: str, description: str, adders: Sequence[Callable]) -> None:
    """`bertforge <name> <task>`: one sub-parser per adder (shared by evaluate)."""
    p = sub.add_parser(name, help=help, description=description)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    for add in adders:
        add(tasks)


def register(sub) -> None:
    from bertforge.cli.qa import add_finetune_squad

    adders = [lambda tasks, t=t: add_task(tasks, t) for t in TASKS.values()] + [add_finetune_squad]
    add_task_group(sub, "finetune", "fine-tune a pre-trained model on a task", __doc__.split("\n\n")[0], adders)
