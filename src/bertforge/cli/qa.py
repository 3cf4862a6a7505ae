"""`bertforge qa "question" --context TEXT | --context-file PATH | --docs DIR|INDEX | < stdin`: answer questions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertforge.cli import flags


def register(sub) -> None:
    p = sub.add_parser("qa", help="answer questions about a text (extractive QA)",
                       description="Answer questions about a text with an extractive QA model "
                                   "(default: the model shipped with bertforge).")
    p.add_argument("question", nargs="*", help="one or more questions (or use --questions-file)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--context", help="the text to answer from")
    src.add_argument("--context-file", type=Path, help="read the text from a file")
    src.add_argument("--docs", type=Path, metavar="DIR|INDEX", help="answer from a folder of documents (indexed, or "
                     "refreshed, first) or from an index built by `bertforge index`; docs/retrieval.md")
    p.add_argument("--top-passages", type=flags.positive_int, default=5,
                   help="with --docs: passages retrieved and read per question")
    p.add_argument("--questions-file", type=Path, help="one question per line")
    flags.model(p, "a QA model directory (default: the shipped model)")
    flags.top_k(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per question")
    flags.qa_windows(p)
    p.add_argument("--max-answer-length", type=flags.positive_int, default=30, help="longest answer, in tokens")
    p.add_argument("--always-answer", action="store_true",
                   help="give the best span even when the model finds no answer in the text")
    flags.encoding(p)
    flags.inference(p)
    p.set_defaults(func=run)


def windows(args: argparse.Namespace):
    """The QAWindows of the --max-seq-length / --max-query-length / --window-overlap flags."""
    from bertforge.data.squad import QAWindows

    return QAWindows(args.max_seq_length, args.max_query_length, args.window_overlap)


def _read_text(path: Path, encoding: str) -> str:
    from bertforge.fileio import read_text

    try:
        return read_text(path, encoding)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None


def _answerer(args: argparse.Namespace):
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

    return QuestionAnswerer(args.model or DEFAULT_MODEL, device=args.device, precision=args.precision,
                            batch_size=args.batch_size, windows=windows(args),
                            max_answer_length=args.max_answer_length, compile=args.compile,
                            always_answer=getattr(args, "always_answer", False),
                            progress=flags.show_progress(args))


def run(args: argparse.Namespace) -> int:
    questions = list(args.question)
    if args.questions_file:
        questions += [q.strip() for q in _read_text(args.questions_file, args.encoding).splitlines() if q.strip()]
    if not questions:
        raise ValueError("no question given: pass one as an argument or use --questions-file")
    if args.docs is not None:
        from bertforge.cli.index import answer_from_docs

        return answer_from_docs(args, questions, _answerer)
    if args.context is not None:
        context = args.context
    elif args.context_file is not None:
        context = _read_text(args.context_file, args.encoding)
    elif not sys.stdin.isatty():
        from bertforge.fileio import read_stdin

        context = read_stdin(args.encoding)
    else:
        raise ValueError("no context given: use --context TEXT, --context-file PATH or pipe it on stdin")

    qa = _answerer(args)
    for result in qa.ask_many(questions, context, top_k=args.top_k):
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
            continue
        print(f"Q: {result.question}")
        if not result.answers:
            print(f"   The text does not contain an answer (no-answer probability "
                  f"{result.no_answer_probability:.2f}; --always-answer shows the best span anyway).")
        for rank, a in enumerate(result.answers, 1):
            print(f"   {rank}. {a.text!r}  p={a.probability:.3f}  chars {a.start}-{a.end}")
            print(f"      {a.sentence}")
    return 0


def add_finetune_squad(tasks) -> None:
    """`bertforge finetune squad --model PATH --train FILE... [--dev FILE] --out DIR`."""
    p = tasks.add_parser("squad", help="extractive QA on SQuAD-format JSON (v1.1, v2.0, COVID-QA)")
    flags.model(p, "a BERT directory (the QA head is initialised if absent)", required=True)
    p.add_argument("--train", type=Path, nargs="+", required=True, help="SQuAD-format training file(s)")
    p.add_argument("--dev", type=Path, default=None, help="dev file: best checkpoint by F1 (optional)")
    flags.out(p, "output directory: the model, its tokenizer and OUT/run (checkpoints, metrics)")
    flags.training(p, epochs=2.0, lr=1e-4, batch=32, precision="bf16")
    p.add_argument("--negatives-per-question", type=_negatives, default=1,
                   help="answer-less windows kept per question (-1: all, as HF)")
    p.add_argument("--eval-every", type=flags.non_negative_int, default=0,
                   help="steps between dev evaluations (0: at the end)")
    p.add_argument("--version-2-with-negative", action="store_true", help="SQuAD 2.0 (unanswerable questions)")
    flags.qa_windows(p)

    def run(a: argparse.Namespace) -> int:
        from bertforge.fileio import check_output_dir
        from bertforge.tasks.qa.train import QATrainConfig, finetune_squad

        check_output_dir(a.out)
        cfg = QATrainConfig(train=train_config(a, eval_every=a.eval_every), windows=windows(a),
                            batch_size=a.batch_size, version_2_with_negative=a.version_2_with_negative,
                            negatives_per_question=None if a.negatives_per_question < 0 else a.negatives_per_question)
        finetune_squad(a.model, a.train, a.dev, a.out, cfg)
        print(f"saved the fine-tuned model to {a.out}")
        return 0

    p.set_defaults(func=run)


def train_config(a: argparse.Namespace, **fields):
    """The TrainConfig of `flags.training`'s flags (a task's defaults come in through the flag defaults)."""
    from bertforge.training.trainer import TrainConfig

    return TrainConfig(**flags.train_fields(a, **fields))


def _negatives(text: str) -> int:
    """-1 (all) or a count >= 0."""
    value = flags.integer(text)
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be >= -1 (-1: all), got {text}")
    return value


def add_evaluate_squad(tasks) -> None:
    """`bertforge evaluate squad --model DIR --data FILE [--out DIR]`: EM/F1 JSON + predictions files."""
    p = tasks.add_parser("squad", help="EM/F1 (SQuAD v1.1, or v2.0 with HasAns/NoAns) of a QA model")
    flags.model(p, "a QA model directory (default: the shipped model)")
    p.add_argument("--data", type=Path, required=True, help="SQuAD-format JSON")
    flags.out(p, "write predictions.json, nbest_predictions.json, results.json here", required=False)
    p.add_argument("--null-threshold", type=flags.number, default=None, help="SQuAD 2.0: predict no answer when "
                   "null score - best span score > this (default: the model's calibrated threshold, else 0)")
    flags.qa_windows(p)
    flags.inference(p)

    def run(a: argparse.Namespace) -> int:
        from bertforge.fileio import check_output_dir
        from bertforge.tasks.qa.answerer import DEFAULT_MODEL
        from bertforge.tasks.qa.train import evaluate_squad

        if a.out is not None:
            check_output_dir(a.out)
        scores = evaluate_squad(a.model or DEFAULT_MODEL, a.data, a.out, null_threshold=a.null_threshold,
                                device=a.device, precision=a.precision, batch_size=a.batch_size,
                                windows=windows(a), compile=a.compile, progress=flags.show_progress(a))
        print(json.dumps(scores, indent=2))
        return 0

    p.set_defaults(func=run)
