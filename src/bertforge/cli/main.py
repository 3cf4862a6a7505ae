"""`bertforge <command>`: a thin dispatcher. Each command group lives in `bertforge.cli.<name>` and exposes
`register(subparsers)`; its run function parses nothing itself and calls the library.

Global flags (`--threads`, `--quiet`, `--version`) are handled here, once, for every command. Errors a
user can fix (`BertforgeError`, a ValueError, a missing or unreadable file) are printed as one line
and exit with status 2, never as a traceback (set BERTFORGE_DEBUG=1 for one); anything else is a bug
and keeps its traceback. A usage error (a flag out of range) also exits with 2. A failed run leaves
nothing behind: an `--out` it created is removed, unless it holds a training checkpoint (`--resume`).
Building the parser imports no torch: `bertforge --help` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

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

    parser = flags.Parser(
        prog="bertforge", parents=[flags.global_flags()],
        description="bertforge: the Transformer and BERT from first principles. "
                    "Run `bertforge COMMAND --help` for a command's flags.")
    parser.add_argument("--version", action="version", version=f"bertforge {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for leaf in flags.leaf_parsers(parser).values():  # the global flags work after the command name too
        for action in flags.global_flags()._actions:  # noqa: SLF001 - argparse has no public list
            if not any(o in leaf._option_string_actions for o in action.option_strings):  # noqa: SLF001
                leaf._add_action(action)  # noqa: SLF001
    return parser


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("bertforge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _apply_globals(args: argparse.Namespace) -> None:
    args.quiet = getattr(args, "quiet", False)
    args.threads = getattr(args, "threads", None)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Refuse command-line text that is not valid UTF-8 (Python keeps such bytes as lone surrogates,
    which would leak into outputs and JSON): one rule for every text argument."""
    from bertforge.errors import BertforgeError

    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise BertforgeError(f"the {name} argument is not valid UTF-8 text: "
                                         f"{text.encode('utf-8', 'replace')!r}") from None


def _outputs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(output, the highest of its folders that does not exist yet) for each output that does not exist:
    what a failed run must not leave behind."""
    from bertforge.cli.flags import OUTPUT_DESTS

    found = []
    for dest in OUTPUT_DESTS:
        path = getattr(args, dest, None)
        if isinstance(path, Path) and not os.path.lexists(path):
            top = path
            while not os.path.lexists(top.parent) and top.parent != top:
                top = top.parent
            found.append((path, top))
    return found


def _clean_up(created: list[tuple[Path, Path]]) -> None:
    """Remove what a failed run created, unless it holds a training checkpoint (`--resume` continues it)."""
    import shutil

    for path, top in created:
        if not os.path.lexists(top):
            continue
        if path.is_dir() and any(path.glob("checkpoint-*")):
            continue
        if top.is_dir() and not top.is_symlink():
            shutil.rmtree(top, ignore_errors=True)
        else:
            top.unlink(missing_ok=True)


def thread_policy() -> None:
    """Let OpenMP threads sleep while they wait (`OMP_WAIT_POLICY=PASSIVE`) unless the user chose a policy.

    By default they spin at every barrier; on a shared machine, when another process takes one of the
    cores, throughput collapses (~3x measured on this 2-core machine), while PASSIVE holds it at a small
    cost on an idle machine (benchmarks/bench_threads.py; docs/inference.md has the table). Read when
    torch starts its OpenMP runtime, so it is set before torch is imported. Library users set it
    themselves (`export OMP_WAIT_POLICY=PASSIVE`).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    from bertforge.errors import BertforgeError

    thread_policy()

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has printed
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    created = _outputs(args)
    status = 1
    try:
        _check_text_arguments(args)
        _apply_globals(args)
        status = int(args.func(args) or 0)
        return status
    except (BertforgeError, ValueError, OSError, MemoryError, KeyboardInterrupt) as e:
        if os.environ.get("BERTFORGE_DEBUG"):
            raise
        if isinstance(e, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            status = 130
            return status
        status = 2
        print(f"bertforge {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return status
    finally:
        if status != 0:
            _clean_up(created)


def _one_line(e: BaseException) -> str:
    """The message of a user error, on one line."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.strerror}: {e.filename}"
    if isinstance(e, MemoryError):
        return "not enough memory for this input: make it smaller (fewer or shorter inputs, a smaller --batch-size)"
    if isinstance(e, UnicodeDecodeError):
        return (f"input is not valid {e.encoding} text (byte 0x{e.object[e.start]:02x} at offset {e.start}): "
                f"convert it to UTF-8, or pass --encoding where the command has it")
    return " ".join(str(e).split("\n")) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
