"""`bertforge predict`: run a fine-tuned classifier, tagger or multiple-choice model on new inputs.

The model folder says what it does (its finetune.json / architecture); inputs fit that kind:

    bertforge predict --model DIR --text "A man plays." [--pair "Someone plays music."]     # classifier
    bertforge predict --model DIR --text "Alex lives in Paris"                              # tagger: words
    bertforge predict --model DIR --text "Where do you keep milk?" --choices fridge oven    # multiple choice
    bertforge predict --model DIR --input FILE [--out preds.jsonl]

FILE: classifier: .csv/.tsv/.jsonl with a text (and text_pair) column, or .txt, one text per line;
tagger: .txt, one whitespace-tokenised sentence per line, or a CoNLL file; multiple choice: a
CommonsenseQA / COPA JSONL or SWAG CSV (--format). Blank lines of a .txt are skipped. One JSON line per
input is written (each with its input); --out FILE.json writes one JSON array instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from bertforge.cli import flags
from bertforge.cli.finetune import add_options
from bertforge.tasks.registry import COLUMNS, FORMAT

OUT_SUFFIXES = (".jsonl", ".json")


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict with a fine-tuned classifier / tagger / multiple-choice model",
                       description=__doc__)
    flags.model(p, "a fine-tuned model directory (e.g. OUT/best of `bertforge finetune`)", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one input: a text, a sentence to tag, or a multiple-choice context")
    src.add_argument("--input", type=Path, help="a file of inputs (see above)")
    p.add_argument("--pair", help="the second text of a pair (classifier)")
    p.add_argument("--choices", nargs="+", help="the candidate answers (multiple choice with --text)")
    add_options(p, [replace(FORMAT, help="multiple-choice file format (with --input)", required=False)])
    add_options(p, COLUMNS)
    flags.out(p, "write the predictions here: .jsonl (one JSON line each) or .json (one array); "
                 "default: JSON lines on stdout", required=False, metavar="FILE")
    flags.alias(p, "--output", "out", type=Path)
    flags.encoding(p)
    flags.inference(p, batch=64, compile=False)
    p.set_defaults(func=run)


def _record(kind: str, example, prediction) -> dict:
    if kind == "sequence":
        return {"text": example.text, "text_pair": example.text_pair, "prediction": prediction}
    if kind == "token":
        return {"words": example.words, "tags": prediction}
    return {"context": example.context, "choices": example.choices, "prediction": prediction,
            "answer": example.choices[prediction]}


def run(args: argparse.Namespace) -> int:
    from bertforge.fileio import atomic_write_text, check_output_file
    from bertforge.tasks.classification import predict, task_info
    from bertforge.tasks.registry import read_inputs

    if args.out is not None:
        check_output_file(args.out, OUT_SUFFIXES)
    info = task_info(args.model)
    examples = read_inputs(info["kind"], text=args.text, path=args.input, pair=args.pair, choices=args.choices,
                           format=args.format, encoding=args.encoding, text_column=args.text_column,
                           pair_column=args.pair_column, label_column=args.label_column)
    predictions = predict(args.model, examples, args.batch_size, device=args.device, precision=args.precision,
                          progress=flags.show_progress(args))
    records = [_record(info["kind"], e, p) for e, p in zip(examples, predictions)]
    if args.out is not None and args.out.suffix.lower() == ".json":
        atomic_write_text(args.out, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
        return 0
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(args.out, text)
    return 0
