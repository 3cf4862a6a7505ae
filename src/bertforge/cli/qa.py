"""`bertforge qa "question" --context TEXT | --context-file PATH | < stdin`: answer questions about a text."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_inference_flags(p: argparse.ArgumentParser) -> None:
    """--precision / --device / --batch-size / --compile, shared by qa, evaluate and embed."""
    from bertforge.inference import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (reference), bf16 (autocast), int8 (dynamic quantization, CPU)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (off by default: see docs/inference.md for when it pays)")


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
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

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
                          max_answer_length=args.max_answer_length, compile=args.compile)
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


def add_window_flags(p: argparse.ArgumentParser) -> None:
    """D6: the flags say what they mean (window_overlap = tokens shared by consecutive windows)."""
    p.add_argument("--max-seq-length", type=int, default=384)
    p.add_argument("--max-query-length", type=int, default=64)
    p.add_argument("--window-overlap", type=int, default=128)


def add_finetune_squad(tasks) -> None:
    """`bertforge finetune squad --model PATH --train FILE... [--dev FILE] --out DIR`."""
    p = tasks.add_parser("squad", help="extractive QA on SQuAD-format JSON (v1.1, v2.0, COVID-QA)")
    p.add_argument("--model", type=Path, required=True, help="a BERT directory (QA head initialised if absent)")
    p.add_argument("--train", type=Path, nargs="+", required=True, help="SQuAD-format training file(s)")
    p.add_argument("--dev", type=Path, default=None, help="dev file: best checkpoint by F1 (optional)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--negatives-per-question", type=int, default=1,
                   help="answer-less windows kept per question (-1: all, as HF)")
    p.add_argument("--eval-every", type=int, default=None, help="steps between dev evaluations")
    p.add_argument("--version-2-with-negative", action="store_true", help="SQuAD 2.0 (unanswerable questions)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    add_window_flags(p)

    def run(a: argparse.Namespace) -> int:
        import torch

        from bertforge.tasks.qa.train import QATrainConfig, finetune_squad

        if a.threads:
            torch.set_num_threads(a.threads)
        cfg = QATrainConfig(max_seq_length=a.max_seq_length, max_query_length=a.max_query_length,
                            window_overlap=a.window_overlap, epochs=a.epochs, max_steps=a.max_steps, lr=a.lr,
                            batch_size=a.batch_size, seed=a.seed, precision=a.precision,
                            negatives_per_question=None if a.negatives_per_question < 0 else a.negatives_per_question,
                            eval_every=a.eval_every, version_2_with_negative=a.version_2_with_negative,
                            resume=a.resume)
        finetune_squad(a.model, a.train, a.dev, a.out, cfg)
        print(f"saved the fine-tuned model to {a.out}")
        return 0

    p.set_defaults(func=run)


def add_evaluate_squad(tasks) -> None:
    """`bertforge evaluate squad --model DIR --data FILE [--out DIR]`: EM/F1 JSON + predictions files."""
    p = tasks.add_parser("squad", help="EM/F1 (SQuAD v1.1, or v2.0 with HasAns/NoAns) of a QA model")
    p.add_argument("--model", type=Path, default=None, help="QA model directory (default: shipped model)")
    p.add_argument("--data", type=Path, required=True, help="SQuAD-format JSON")
    p.add_argument("--out", type=Path, default=None, help="write predictions.json, nbest_predictions.json, "
                   "results.json here")
    p.add_argument("--null-threshold", type=float, default=0.0, help="SQuAD 2.0: predict no answer when "
                   "null score - best span score > this")
    p.add_argument("--threads", type=int, default=None)
    add_window_flags(p)
    add_inference_flags(p)

    def run(a: argparse.Namespace) -> int:
        import torch

        from bertforge.tasks.qa.answerer import DEFAULT_MODEL
        from bertforge.tasks.qa.train import evaluate_squad

        if a.threads:
            torch.set_num_threads(a.threads)
        scores = evaluate_squad(a.model or DEFAULT_MODEL, a.data, a.out, null_threshold=a.null_threshold,
                                device=a.device, precision=a.precision, batch_size=a.batch_size,
                                max_seq_length=a.max_seq_length, max_query_length=a.max_query_length,
                                window_overlap=a.window_overlap, compile=a.compile)
        print(json.dumps(scores, indent=2))
        return 0

    p.set_defaults(func=run)
