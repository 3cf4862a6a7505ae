"""Fixtures of the command-line tests: the tiny models, built once per session."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models and data files by name (tests/cli/helpers.make_models)."""
    from tests.cli.helpers import make_models

    return make_models(tmp_path_factory.mktemp("cli-models"))
