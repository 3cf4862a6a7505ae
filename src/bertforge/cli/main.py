"""`bertforge <command>`: a thin dispatcher. Each command group lives in `bertforge.commands.<name>`
and exposes `register(subparsers)`; the command's function parses nothing itself and calls the library.

Errors a user can fix (bad paths, bad input) are `BertforgeError`s, `ValueError`s, `FileNotFoundError`s
or `TypeError`s: they are printed as one line, never as a traceback (set BERTFORGE_DEBUG=1 for one).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# One line per command group; each module defines register(subparsers).
COMMAND_MODULES = [
    "bertforge.cli.embed",
    "bertforge.cli.qa",
    "bertforge.cli.pretrain",
    "bertforge.cli.translate",
    "bertforge.cli.finetune",
    "bertforge.cli.evaluate",
    "bertforge.cli.predict",
    "bertforge.cli.word2vec",
    "bertforge.cli.viz",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertforge", description="bertforge: the Transformer and BERT from first principles. Run `bertforge COMMAND --help` for a command's flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, TypeError, KeyboardInterrupt) as e:
        if os.environ.get("BERTFORGE_DEBUG"):
            raise
        if isinstance(e, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return 130
        print(f"bertforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
