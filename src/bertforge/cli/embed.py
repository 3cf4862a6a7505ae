"""`bertforge embed --model DIR < sentences.txt`: one sentence vector per input line.

Output row i is the vector of input line i. A blank line is refused (with its line number) rather than
skipped or embedded, so the rows can never drift out of line with the input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertforge.cli import flags

OUT_SUFFIXES = (".npy", ".jsonl")


def register(sub) -> None:
    p = sub.add_parser("embed", help="sentence embeddings (mean pooling + L2 norm), one per input line",
                       description=__doc__)
    flags.model(p, "BERT directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--input", type=Path, default=None, help="a file of sentences, one per line (default: stdin)")
    flags.out(p, "write the vectors here: .npy (one float32 array, a row per line) or .jsonl; "
                 "default: JSON lines on stdout", required=False, metavar="FILE")
    flags.max_seq_length(p, 256, "tokens per sentence; longer ones are truncated", old_alias=True)
    flags.encoding(p)
    flags.inference(p)
    p.set_defaults(func=run)


def read_lines(args: argparse.Namespace) -> list[str]:
    """The input lines (file or stdin), each a sentence; blank lines refused with their numbers."""
    from bertforge.errors import BertforgeError
    from bertforge.fileio import read_stdin, read_text

    if args.input is not None:
        text, source = read_text(args.input, args.encoding), str(args.input)
    elif sys.stdin.isatty():
        raise BertforgeError("no input: pipe sentences on stdin (one per line) or pass --input FILE")
    else:
        text, source = read_stdin(args.encoding), "stdin"
    lines = text.splitlines()
    if not lines:
        raise BertforgeError(f"no sentences given ({source} is empty; one sentence per line)")
    blank = [n for n, line in enumerate(lines, 1) if not line.strip()]
    if blank:
        where = ", ".join(map(str, blank[:5])) + (", ..." if len(blank) > 5 else "")
        raise BertforgeError(f"{source}: line(s) {where} blank; embed writes one vector per input line, so "
                             f"every line needs a sentence (drop them first, e.g. grep -v '^[[:space:]]*$')")
    return lines


def run(args: argparse.Namespace) -> int:
    from bertforge.fileio import atomic_path, atomic_write_text, check_output_file
    from bertforge.tasks.embedding import SentenceEncoder

    if args.out is not None:
        check_output_file(args.out, OUT_SUFFIXES)
    sentences = read_lines(args)
    enc = SentenceEncoder(args.model, device=args.device, precision=args.precision,
                          batch_size=args.batch_size, max_length=args.max_seq_length, compile=args.compile)
    vectors = enc.encode(sentences, progress=flags.show_progress(args))
    rows = "".join(json.dumps([round(x, 6) for x in v]) + "\n" for v in vectors.tolist())
    if args.out is None:
        sys.stdout.write(rows)
    elif args.out.suffix.lower() == ".npy":
        import numpy as np

        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, vectors.numpy())
    else:
        atomic_write_text(args.out, rows)
    if args.out is not None:
        print(f"wrote {tuple(vectors.shape)} to {args.out}", file=sys.stderr)
    return 0
