"""`bertforge <command>`: the command line, a thin layer over the library (one module per command group)."""
from bertforge.cli.main import main

__all__ = ["main"]
