"""`bertforge <command>`: a thin dispatcher. Each command group lives in `bertforge.cli.<name>` and exposes
`register(subparsers)`; its run function parses nothing itself and calls the library.

Global flags (`--threads`, `--quiet`, `--version`) are handled here, once, for every command. Errors a
user can fix (`BertforgeError`, a ValueError, a missing or unreadable file) are printed as one line
and exit with status 2, never as a traceback (set BERTFORGE_DEBUG=1 for one); anything else is a bug
and keeps its traceback. Building the parser imports no torch: `bertforge --help` is fast.
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
    "bertforge.cli.lm",
    "bertforge.cli.index",
    "bertforge.cli.serve",
]


def build_parser() -> argparse.ArgumentParser:
    from bertforge.cli import flags

    parser = argparse.ArgumentParser(
        prog="bertforge", parents=[flags.global_flags()],
        description="bertforge: the Transformer and BERT from first principles. "
                    "Run `bertforge COMMAND --help` for a command's flags.")
    parser.add_argument("--version", action="version", version=f"bertforge {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for leaf in _leaf_parsers(parser):  # the global flags work after the command name too
        for action in flags.global_flags()._actions[1:]:  # noqa: SLF001 - skip -h
            if not any(o in leaf._option_string_actions for o in action.option_strings):  # noqa: SLF001
                leaf._add_action(action)  # noqa: SLF001
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not subs:
        return [parser]
    return [leaf for a in subs for p in a.choices.values() for leaf in _leaf_parsers(p)]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("bertforge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _apply_globals(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def main(argv: list[str] | None = None) -> int:
    from bertforge.errors import BertforgeError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _apply_globals(args)
        result = args.func(args)
    except (BertforgeError, ValueError, OSError, KeyboardInterrupt) as e:
        if os.environ.get("BERTFORGE_DEBUG"):
            raise
        if isinstance(e, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            return 130
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            e = f"{e.strerror}: {e.filename}"
        print(f"bertforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
