"""`bertforge qa "question" --context TEXT | --context-file PATH | < stdin`: answer questions about a text."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_inference_flags(p: argparse.ArgumentParser) -> None:
    """--precision / --device / --batch-size, shared by qa, evaluate and embed."""
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="fp32 (reference), bf16 (autocast), int8 (dynamic quantization, CPU)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=32)


def register(sub) -> None:
    p = sub.add_parser("qa", help="answer questions about a text (extractive QA)",
                       description="Answer questions about a text with an extractive QA model "
                                   "(default: the model shipped with bertforge).")
    p.add_argument("question", nargs="*", help="one or more questions (or use --questions-file)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--context", help="the text to answer from")
    src.add_argument("--context-file", type=Path, help="read the text from a file")
    p.add_argument("--questions-file", type=Path, help="one question per line")
    p.add_argument("--model", type=Path, default=None, help="a QA model directory (default: shipped model)")
    p.add_argument("--top-k", type=int, default=1, help="answers per question")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--max-seq-length", type=int, default=384)
    p.add_argument("--max-query-length", type=int, default=64)
    p.add_argument("--window-overlap", type=int, default=128)
    p.add_argument("--max-answer-length", type=int, default=30)
    add_inference_flags(p)
    p.set_defaults(func=run)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


def run(args: argparse.Namespace) -> int:
    from ..qa import DEFAULT_MODEL, QuestionAnswerer

    questions = list(args.question)
    if args.questions_file:
        questions += [q.strip() for q in _read_text(args.questions_file).splitlines() if q.strip()]
    if not questions:
        raise ValueError("no question given: pass one as an argument or use --questions-file")
    if args.context is not None:
        context = args.context
    elif args.context_file is not None:
        context = _read_text(args.context_file)
    elif not sys.stdin.isatty():
        context = sys.stdin.read()
    else:
        raise ValueError("no context given: use --context TEXT, --context-file PATH or pipe it on stdin")

    qa = QuestionAnswerer(args.model or DEFAULT_MODEL, device=args.device, precision=args.precision,
                          batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                          max_query_length=args.max_query_length, window_overlap=args.window_overlap,
                          max_answer_length=args.max_answer_length)
    for question, answers in zip(questions, qa.answer_many(questions, context, top_k=args.top_k)):
        if args.json:
            print(json.dumps({"question": question, "answers": [a.to_dict() for a in answers]},
                             ensure_ascii=False))
            continue
        print(f"Q: {question}")
        if not answers:
            print("   (no answer found)")
        for rank, a in enumerate(answers, 1):
            print(f"   {rank}. {a.text!r}  p={a.probability:.3f}  chars {a.start}-{a.end}")
            print(f"      {a.sentence}")
    return 0
