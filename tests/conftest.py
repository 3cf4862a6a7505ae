"""Shared test fixtures: where the shared data lives, and the real MiniLM weights."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data() -> Path:
    """The shared datasets folder (../shared/data beside the checkout; BERTFORGE_DATA overrides)."""
    env = os.environ.get("BERTFORGE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def require_data(*parts: str) -> Path:
    """Path under the shared data folder, or skip the test cleanly when it is absent."""
    path = shared_data().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from bertforge.models.bert.checkpoint import minilm_path

    try:
        return minilm_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for the module: on the shared 2-core machine a second OpenMP thread mostly waits
    (a tiny model's training step measured 14x slower with 2 threads under load). Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
