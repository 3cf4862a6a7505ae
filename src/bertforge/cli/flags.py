"""One flag vocabulary for every command: the same name for the same idea, validated where it is parsed.

A command builds its parser from these groups instead of spelling flags itself:

    p = sub.add_parser("qa", ...)
    flags.model(p, help="a QA model directory (default: the shipped model)")
    flags.inference(p)          # --precision --device --batch-size --compile
    flags.top_k(p)

Global flags (`--threads`, `--quiet`) are handled once by `bertforge.cli.main` and may be given before
or after the command. Numeric types (`positive_int`, ...) reject bad values at parse time with the
user's words ("--top-k must be >= 1, got 0"): argparse then prints usage and exits with status 2.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

PRECISIONS = ("fp32", "bf16", "int8")  # inference; training autocast takes the first two
TRAIN_PRECISIONS = ("fp32", "bf16")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


# ---- value types: each raises ArgumentTypeError, which argparse turns into a one-line usage error ----

def _number(kind: Callable, low: float, inclusive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or (value < low if inclusive else value <= low):  # NaN or out of range
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}, got {text}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, "an integer >= 1")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0, False, "a number > 0")
non_negative_float = _number(float, 0, True, "a number >= 0")


def fraction(text: str) -> float:
    """A number in [0, 1] (ratios, probabilities)."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def device(text: str) -> str:
    """cpu, cuda, cuda:N, mps or auto; whether the device exists is checked when the model loads."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    return text


# ---- flag groups ----------------------------------------------------------------------------------

def model(p: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    p.add_argument("--model", type=Path, required=required, default=None, metavar="DIR", help=help)


def out(p: argparse.ArgumentParser, help: str, required: bool = True, metavar: str = "DIR") -> None:
    p.add_argument("--out", type=Path, required=required, default=None, metavar=metavar, help=help)


def top_k(p: argparse.ArgumentParser, default: int = 1, help: str = "answers per question") -> None:
    p.add_argument("--top-k", type=positive_int, default=default, help=help)


def seed(p: argparse.ArgumentParser, default: int = 42) -> None:
    p.add_argument("--seed", type=int, default=default,
                   help="seed of every random choice (data order, masking, dropout): same seed, same run")


def device_flag(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", type=device, default=default,
                   help="cpu, cuda, cuda:N or auto (auto: the GPU when there is one)")


def batch_size(p: argparse.ArgumentParser, default: Optional[int] = 32, help: str = "sequences per batch") -> None:
    p.add_argument("--batch-size", type=positive_int, default=default, help=help)


def inference(p: argparse.ArgumentParser, batch: int = 32, default_device: str = "cpu") -> None:
    """--precision / --device / --batch-size / --compile (docs/inference.md)."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (reference), bf16 (autocast: matrix units), int8 (dynamic quantization, CPU)")
    device_flag(p, default_device)
    batch_size(p, batch)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (see docs/inference.md for when it pays)")


def max_seq_length(p: argparse.ArgumentParser, default: Optional[int] = 384,
                   help: str = "tokens per sequence, special tokens included") -> None:
    p.add_argument("--max-seq-length", type=positive_int, default=default, help=help)


def qa_windows(p: argparse.ArgumentParser) -> None:
    """D6: the flags say what they mean (window overlap = tokens shared by consecutive windows)."""
    max_seq_length(p, 384, "tokens per window: [CLS] question [SEP] context [SEP]")
    p.add_argument("--max-query-length", type=positive_int, default=64, help="question tokens kept")
    p.add_argument("--window-overlap", type=non_negative_int, default=128,
                   help="context tokens shared by consecutive windows of a long context")


def training(p: argparse.ArgumentParser, epochs: Optional[float] = None, lr: Optional[float] = None,
             batch: Optional[int] = None, precision: str = "fp32", title: str = "training") -> None:
    """The hyper-parameters and run control every training command shares (TrainConfig's fields)."""
    g = p.add_argument_group(title)
    g.add_argument("--epochs", type=positive_float, default=epochs, help="passes over the training data")
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimiser steps")
    g.add_argument("--lr", type=positive_float, default=lr, help="peak learning rate")
    g.add_argument("--warmup-ratio", type=fraction, default=0.1, help="linear warm-up, share of the steps")
    g.add_argument("--weight-decay", type=non_negative_float, default=0.01,
                   help="AdamW weight decay (none on biases and LayerNorm)")
    batch_size(g, batch, "sequences per optimiser step")
    g.add_argument("--precision", choices=TRAIN_PRECISIONS, default=precision, help="bf16: autocast")
    device_flag(g)
    seed(g)
    g.add_argument("--save-every", type=non_negative_int, default=None,
                   help="checkpoint every N steps (0: only at the end)")
    g.add_argument("--keep-last", type=positive_int, default=2, help="step checkpoints kept")
    run = g.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    run.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start afresh")


def global_flags() -> argparse.ArgumentParser:
    """--threads / --quiet: a parent parser, so they work before or after the command name."""
    g = argparse.ArgumentParser(add_help=False)
    g.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS,
                   help="CPU threads for torch (default: all cores)")
    g.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars or progress messages")
    return g


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


