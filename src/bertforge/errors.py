"""The one exception class for mistakes a user can fix (a bad path, bad input, a flag out of range).

`BertforgeError` subclasses `ValueError`, so code that already catches ValueError keeps working. The CLI
prints it as one line (`bertforge qa: error: ...`) and exits with status 2; a bug (TypeError, KeyError,
...) still shows its traceback, so it gets reported instead of being mistaken for a user error.
Messages say what was wrong AND how to fix it: "--batch-size must be >= 1, got 0".
"""
from __future__ import annotations


class BertforgeError(ValueError):
    """A user error with a message that says how to fix it."""
