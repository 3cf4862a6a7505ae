"""`bertforge predict`: run a fine-tuned classifier, tagger or multiple-choice model on new inputs.

The model folder says what it does (its finetune.json / architecture); inputs fit that kind:

    bertforge predict --model DIR --text "A man plays." [--pair "Someone plays music."]     # classifier
    bertforge predict --model DIR --text "Alex lives in Paris"                              # tagger: words
    bertforge predict --model DIR --text "Where do you keep milk?" --choices fridge oven    # multiple choice
    bertforge predict --model DIR --input FILE [--output preds.jsonl]

FILE: classifier: .csv/.tsv/.jsonl with a text (and text_pair) column, or .txt, one text per line;
tagger: .txt, one whitespace-tokenised sentence per line, or a CoNLL file; multiple choice: a
CommonsenseQA / COPA JSONL or SWAG CSV (--format). One JSON line per input is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertforge.cli.finetune import add_column_flags, columns


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict with a fine-tuned classifier / tagger / multiple-choice model",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a fine-tuned model directory (e.g. OUT/best)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one input: a text, a sentence to tag, or a multiple-choice context")
    src.add_argument("--input", type=Path, help="a file of inputs (see above)")
    p.add_argument("--pair", help="the second text of a pair (classifier)")
    p.add_argument("--choices", nargs="+", help="the candidate answers (multiple choice with --text)")
    p.add_argument("--format", default=None, help="multiple-choice file format: commonsenseqa, copa, swag")
    add_column_flags(p)
    p.add_argument("--output", type=Path, default=None, help="write JSON lines here (default: stdout)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=run)


def _lines(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"no input file at {path}")
    lines = [x.strip() for x in path.read_text(encoding="utf-8-sig").splitlines() if x.strip()]
    if not lines:
        raise ValueError(f"{path} holds no input")
    return lines


def read_inputs(kind: str, args: argparse.Namespace) -> list:
    """The inputs as the examples of the model's kind (labels, if any, are ignored)."""
    from bertforge.data.choice import ChoiceExample
    from bertforge.data.classify import TextExample, read_classification_file
    from bertforge.data.ner import TaggedSentence, read_conll

    if kind == "sequence":
        if args.text is not None:
            return [TextExample(args.text, args.pair)]
        if args.input.suffix.lower() == ".txt":
            return [TextExample(x) for x in _lines(args.input)]
        return read_classification_file(args.input, require_label=False, **columns(args))
    if kind == "token":
        if args.text is not None:
            return [TaggedSentence(args.text.split())]
        if args.input.suffix.lower() == ".txt":
            return [TaggedSentence(x.split()) for x in _lines(args.input)]
        return read_conll(args.input)
    if args.text is not None:
        if not args.choices or len(args.choices) < 2:
            raise ValueError("a multiple-choice model needs --choices with at least two answers")
        return [ChoiceExample(args.text, list(args.choices))]
    if args.format is None:
        raise ValueError("--input with a multiple-choice model needs --format commonsenseqa|copa|swag")
    from bertforge.tasks.classification import read_choice
    return read_choice(args.format, args.input)


def _record(kind: str, example, prediction) -> dict:
    if kind == "sequence":
        return {"text": example.text, "text_pair": example.text_pair, "prediction": prediction}
    if kind == "token":
        return {"words": example.words, "tags": prediction}
    return {"context": example.context, "choices": example.choices, "prediction": prediction,
            "answer": example.choices[prediction]}


def run(args: argparse.Namespace) -> int:
    import torch

    from bertforge.tasks.classification import predict, task_info

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    info = task_info(args.model)
    examples = read_inputs(info["kind"], args)
    predictions = predict(args.model, examples, args.batch_size)
    lines = [json.dumps(_record(info["kind"], e, p), ensure_ascii=False) for e, p in zip(examples, predictions)]
    if args.output is None:
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        from bertforge.fileio import atomic_write_text
        atomic_write_text(args.output, "\n".join(lines) + "\n")
    return 0
