"""Command-line command groups; see `bertforge.cli`."""
