"""Helpers shared by the tests (fixtures live in conftest.py; plain functions here, imported as
`from tests.helpers import require_data`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SRC = ROOT / "src"


def shared_data() -> Path:
    """The shared datasets folder (../shared/data beside the checkout; BERTFORGE_DATA overrides)."""
    env = os.environ.get("BERTFORGE_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def require_data(*parts: str) -> Path:
    """Path under the shared data folder, or skip the test cleanly when it is absent (a user's fresh
    clone; in CI, where the data is present, a skip fails the run: see conftest.py)."""
    path = shared_data().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path
