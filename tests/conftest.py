"""Shared fixtures (the real MiniLM weights, one torch thread) and the CI rule on skips.

With BERTFORGE_STRICT_SKIPS=1 (set by .ci/run) a skipped test fails the session: in CI the shared data,
the weights and every dev dependency are present, so a skip means a check did not run. Only the skips
that CI cannot avoid (no GPU there) are allowed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import require_data, shared_data  # noqa: F401 - re-exported for older imports

ALLOWED_SKIPS = ("needs a CUDA device", "this machine has CUDA")
_skipped: list[tuple[str, str]] = []


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


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in ALLOWED_SKIPS):
            _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("BERTFORGE_STRICT_SKIPS") == "1" and _skipped:
        lines = "\n".join(f"  {node}: {reason}" for node, reason in _skipped)
        print(f"\nBERTFORGE_STRICT_SKIPS: {len(_skipped)} test(s) skipped, so their checks did not run:\n{lines}")
        session.exitstatus = 1
