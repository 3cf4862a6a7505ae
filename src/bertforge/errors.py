"""The one exception class for mistakes a user can fix (a bad path, bad input, a flag out of range).

`BertforgeError` subclasses `ValueError`, so code that already catches ValueError keeps working. The CLI
prints it as one line (`bertforge qa: error: ...`) and exits with status 2; a bug (TypeError, KeyError,
...) still shows its traceback, so it gets reported instead of being mistaken for a user error.
Messages say what was wrong AND how to fix it: "--batch-size must be >= 1, got 0".
"""
from __future__ import annotations


class BertforgeError(ValueError):
    """A user error with a message that says how to fix it."""


def require(module: str, extra: str, package: str | None = None):
    """Import an optional dependency, or raise a BertforgeError saying which extra installs it.

    >>> require("sacrebleu.metrics", "translation")   # the module, or:
    BertforgeError: BLEU needs sacrebleu: pip install 'bertforge[translation]' (or pip install sacrebleu)
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        name = package or module.split(".")[0]
        raise BertforgeError(f"this needs {name}, which is not installed: pip install 'bertforge[{extra}]' "
                             f"(or pip install {name})") from None
