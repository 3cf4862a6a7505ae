"""`bertforge evaluate <task>`: score a fine-tuned model on labelled data and print the metrics as JSON.

    bertforge evaluate glue --task rte --model DIR [--split dev] [--data-dir GLUE_DIR]
    bertforge evaluate ner --model DIR --file FILE
    bertforge evaluate choice --model DIR --format commonsenseqa|copa|swag --file FILE
    bertforge evaluate classify --model DIR --file FILE
    bertforge evaluate squad --model DIR --data FILE

The tasks are `bertforge.tasks.registry.TASKS`, the table `finetune` and `predict` read too.
"""
from __future__ import annotations

import argparse
import json

from bertforge.cli import flags
from bertforge.cli.finetune import add_options, add_task_group, option_values
from bertforge.tasks.registry import TASKS, Task


def score(args: argparse.Namespace, task: Task) -> int:
    from bertforge.tasks.classification import evaluate
    from bertforge.tasks.registry import labelled_examples

    examples = labelled_examples(task.name, **option_values(args, task.options + task.eval_options))
    scores = evaluate(args.model, examples, args.batch_size, device=args.device, precision=args.precision,
                      progress=flags.show_progress(args))
    print(json.dumps({"examples": len(examples), **scores}, indent=2))
    return 0


def add_task(tasks, task: Task) -> None:
    p = tasks.add_parser(task.name, help=task.eval_help, description=task.eval_help)
    add_options(p, task.options + task.eval_options)
    flags.model(p, "a fine-tuned model directory (e.g. OUT/best of `bertforge finetune`)", required=True)
    flags.inference(p, batch=64, compile=False)
    p.set_defaults(func=lambda a: score(a, task))


def register(sub) -> None:
    from bertforge.cli.qa import add_evaluate_squad

    adders = [lambda tasks, t=t: add_task(tasks, t) for t in TASKS.values()] + [add_evaluate_squad]
    add_task_group(sub, "evaluate", "score a fine-tuned model on labelled data", __doc__.split("\n\n")[0], adders)
