"""`bertforge embed --model DIR < sentences.txt`: one sentence vector per input line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertforge.cli import flags


def register(sub) -> None:
    p = sub.add_parser("embed", help="sentence embeddings (mean pooling + L2 norm), one per input line")
    p.add_argument("--model", type=Path, default=None, help="BERT directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--input", type=Path, default=None, help="a file of sentences (default: stdin)")
    p.add_argument("--out", type=Path, default=None, help="write a .npy array instead of JSON lines")
    p.add_argument("--max-length", type=int, default=256)
    flags.inference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bertforge.tasks.embedding import SentenceEncoder

    text = args.input.read_text(encoding="utf-8") if args.input else sys.stdin.read()
    sentences = [s for s in text.splitlines() if s.strip()]
    if not sentences:
        raise ValueError("no sentences given (one per line on stdin or in --input)")
    enc = SentenceEncoder(args.model, device=args.device, precision=args.precision,
                          batch_size=args.batch_size, max_length=args.max_length, compile=args.compile)
    vectors = enc.encode(sentences)
    if args.out:
        import numpy as np

        from bertforge.fileio import atomic_path

        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, vectors.numpy())
        print(f"wrote {tuple(vectors.shape)} to {args.out}", file=sys.stderr)
    else:
        for v in vectors.tolist():
            print(json.dumps([round(x, 6) for x in v]))
    return 0
