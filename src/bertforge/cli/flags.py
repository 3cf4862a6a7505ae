"""One flag vocabulary for every command: the same name for the same idea, validated where it is parsed.

A command builds its parser from these groups instead of spelling flags itself:

    p = sub.add_parser("qa", ...)
    flags.model(p, help="a QA model directory (default: the shipped model)")
    flags.inference(p)          # --precision --device --batch-size --compile
    flags.top_k(p)

Global flags (`--threads`, `--quiet`) are handled once by `bertforge.cli.main` and may be given before
or after the command. Numeric types (`positive_int`, ...) reject bad values at parse time with the
user's words ("--top-k must be >= 1, got 0"): argparse then prints usage and exits with status 2.
Every parser is a `Parser`: its `--help` shows each option's default, and an old spelling kept for the
docs that used it (`alias`) is accepted but not shown.

Building a parser imports no torch: `bertforge --help` stays fast. `--device cuda` is the one exception,
checked at parse time (it needs torch to know whether a GPU is there).
"""
from __future__ import annotations

import argparse
import codecs
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

PRECISIONS = ("fp32", "bf16", "int8")  # inference; training autocast takes the first two
TRAIN_PRECISIONS = ("fp32", "bf16")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
OUTPUT_DESTS = ("out", "html")  # the namespace fields that name what a command writes (see main.cleanup)


# ---- the parser: defaults in --help, errors in the user's words -----------------------------------

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already names its default or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, argparse.SUPPRESS) or default == []
                or not action.option_strings or action.nargs == 0):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-parsers share its formatter, and whose value errors read
    "--batch-size must be >= 1, got 0" instead of "argument --batch-size: must be >= 1, got 0"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("formatter_class") in (None, argparse.RawDescriptionHelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        m = re.match(r"argument (-[\w-]+)(?:/-[\w-]+)*: (.*)$", message, re.S)
        if m and m.group(2).startswith(m.group(1)):  # the message names the flag itself
            message = m.group(2)
        elif m and m.group(2).startswith("must be"):
            message = f"{m.group(1)} {m.group(2)}"
        super().error(message)


# ---- value types: each raises ArgumentTypeError, which argparse turns into a one-line usage error ----

def _number(kind: Callable, low: float, inclusive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):  # NaN, inf
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low if inclusive else value <= low:
            bound = f">= {low:g}" if inclusive else ("positive (> 0)" if low == 0 else f"> {low:g}")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, "an integer >= 1")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0, False, "a number > 0")
non_negative_float = _number(float, 0, True, "a number >= 0")


def integer(text: str) -> int:
    """Any integer (a seed, an index); the message says what was wrong."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def number(text: str) -> float:
    """Any finite number (a threshold that may be negative)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or abs(value) == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (ratios, probabilities)."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def device(text: str) -> str:
    """cpu, cuda, cuda:N, mps or auto; a GPU that is not there is refused here, with one clear line."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
    if text not in ("cpu", "auto"):
        from bertforge.inference import check_device  # imports torch: only when a GPU is asked for

        try:
            check_device(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


def encoding_name(text: str) -> str:
    """A text encoding Python knows (utf-8, latin-1, cp1252, utf-16, ...)."""
    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r} (e.g. utf-8, latin-1, cp1252)") from None


# ---- flag groups ----------------------------------------------------------------------------------

def alias(p: argparse.ArgumentParser, old: str, dest: str, **kwargs: Any) -> None:
    """Accept `old` (a spelling the docs once used) for `dest`, hidden from --help."""
    p.add_argument(old, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def model(p: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    p.add_argument("--model", type=Path, required=required, default=None, metavar="DIR", help=help)


def out(p: argparse.ArgumentParser, help: str, required: bool = True, metavar: str = "DIR",
        default: Optional[Path] = None) -> None:
    p.add_argument("--out", type=Path, required=required, default=default, metavar=metavar, help=help)


def top_k(p: argparse.ArgumentParser, default: int = 1, help: str = "answers per question") -> None:
    p.add_argument("--top-k", type=positive_int, default=default, help=help)


def seed(p: argparse.ArgumentParser, default: int = 42) -> None:
    p.add_argument("--seed", type=integer, default=default,
                   help="seed of every random choice (initialisation, data order, masking, dropout): "
                        "same seed, same run")


def device_flag(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", type=device, default=default,
                   help="cpu, cuda, cuda:N or auto (auto: the GPU when there is one)")


def batch_size(p: argparse.ArgumentParser, default: Optional[int] = 32, help: str = "sequences per batch") -> None:
    p.add_argument("--batch-size", type=positive_int, default=default, help=help)


def precision(p: argparse.ArgumentParser, default: str = "fp32") -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="fp32 (reference), bf16 (autocast: matrix units), int8 (dynamic quantization, CPU)")


def inference(p: argparse.ArgumentParser, batch: int = 32, default_device: str = "cpu",
              compile: bool = True) -> None:
    """--precision / --device / --batch-size / --compile (docs/inference.md)."""
    precision(p)
    device_flag(p, default_device)
    batch_size(p, batch)
    if compile:
        p.add_argument("--compile", action="store_true",
                       help="torch.compile the model (see docs/inference.md for when it pays)")


def max_seq_length(p: argparse.ArgumentParser, default: Optional[int] = 384,
                   help: str = "tokens per sequence, special tokens included", old_alias: bool = False) -> None:
    """--max-seq-length; `old_alias`: also accept the --max-length that finetune's and embed's docs used."""
    p.add_argument("--max-seq-length", type=positive_int, default=default, help=help)
    if old_alias:
        alias(p, "--max-length", "max_seq_length", type=positive_int)


def encoding(p: argparse.ArgumentParser) -> None:
    """--encoding of the text a command reads (files and stdin); anything not in it is refused."""
    p.add_argument("--encoding", type=encoding_name, default="utf-8",
                   help="encoding of the input text (files and stdin); bytes that are not valid in it are "
                        "refused with the file, line and byte offset")


def qa_windows(p: argparse.ArgumentParser) -> None:
    """D6: the flags say what they mean (window overlap = tokens shared by consecutive windows)."""
    max_seq_length(p, 384, "tokens per window: [CLS] question [SEP] context [SEP]")
    p.add_argument("--max-query-length", type=positive_int, default=64, help="question tokens kept")
    p.add_argument("--window-overlap", type=non_negative_int, default=128,
                   help="context tokens shared by consecutive windows of a long context")


def training(p: argparse.ArgumentParser, epochs: Optional[float] = None, lr: Optional[float] = None,
             batch: Optional[int] = None, precision: str = "fp32", title: str = "training",
             max_steps: Optional[int] = None, warmup_ratio: Optional[float] = 0.1,
             weight_decay: Optional[float] = 0.01, seed_default: int = 42, save_every: Optional[int] = None,
             keep_last: int = 2, batch_help: str = "sequences per optimiser step", with_batch: bool = True,
             with_warmup_ratio: bool = True, lr_help: str = "peak learning rate") -> None:
    """The hyper-parameters and run control every training command shares (TrainConfig's fields).
    A default of None means "the task's default" (the command's help says which)."""
    g = p.add_argument_group(title)
    g.add_argument("--epochs", type=positive_float, default=epochs, help="passes over the training data")
    g.add_argument("--max-steps", type=positive_int, default=max_steps,
                   help="stop after this many optimiser steps")
    g.add_argument("--lr", type=positive_float, default=lr, help=lr_help)
    if with_warmup_ratio:
        g.add_argument("--warmup-ratio", type=fraction, default=warmup_ratio, help="linear warm-up, share of the steps")
    g.add_argument("--weight-decay", type=non_negative_float, default=weight_decay,
                   help="AdamW weight decay (none on biases and LayerNorm)")
    if with_batch:
        batch_size(g, batch, batch_help)
    g.add_argument("--precision", choices=TRAIN_PRECISIONS, default=precision, help="bf16: autocast")
    device_flag(g)
    seed(g, seed_default)
    g.add_argument("--save-every", type=non_negative_int, default=save_every,
                   help="checkpoint every N steps (0: only at the end)")
    g.add_argument("--keep-last", type=positive_int, default=keep_last, help="step checkpoints kept")
    run = g.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    run.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start afresh")


def log_every(p: argparse.ArgumentParser, default: int = 10) -> None:
    """`--log-every N`: how often the training loss is logged (the commands that log on their own cadence)."""
    p.add_argument("--log-every", type=positive_int, default=default, help="training loss logged every N steps")


def train_fields(args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    """TrainConfig keyword arguments of `training`'s flags that were given (None: keep the task's default),
    plus `fields`."""
    names = ("epochs", "max_steps", "lr", "warmup_ratio", "weight_decay", "precision", "device", "seed",
             "save_every", "keep_last", "resume", "overwrite")
    kw = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    kw["progress"] = show_progress(args)
    return {**kw, **fields}


def global_flags() -> argparse.ArgumentParser:
    """--threads / --quiet: a parent parser, so they work before or after the command name."""
    g = argparse.ArgumentParser(add_help=False)
    g.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS,
                   help="CPU threads for torch (default: all cores)")
    g.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars or progress messages")
    return g


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal only: off when stderr is piped or with --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


# ---- walking a parser (tests, docs) -----------------------------------------------------------------

def leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """{"bertforge finetune glue": parser, ...}: every parser that runs a command (no sub-commands)."""
    prefix = prefix or parser.prog
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not subs:
        return {prefix: parser}
    found: dict[str, argparse.ArgumentParser] = {}
    for action in subs:
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) not in seen:  # aliases (word2vec similar / query) share one parser
                seen.add(id(sub))
                found.update(leaf_parsers(sub, f"{prefix} {name}"))
    return found


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of `parser` and its sub-commands that has no help text (a test keeps this empty)."""
    missing = []

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:  # noqa: SLF001 - argparse has no public walk
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
            elif not action.help and action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):  # noqa: SLF001
                missing.append(f"{prefix}: {'/'.join(action.option_strings) or action.dest}")

    walk(parser, parser.prog)
    return missing
