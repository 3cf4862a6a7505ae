"""Written files follow the user's umask like any other tool, and an overwritten file keeps its mode."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from bertforge.fileio import atomic_write_json, atomic_write_text, current_umask


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    assert mode(tmp_path / "a.txt") == expected and mode(tmp_path / "b.json") == expected


def test_overwriting_keeps_the_files_mode(tmp_path, umask):
    umask(0o022)
    f = tmp_path / "f.txt"
    f.write_text("old")
    f.chmod(0o640)
    atomic_write_text(f, "new")
    assert f.read_text() == "new" and mode(f) == 0o640


def test_a_saved_model_and_checkpoint_are_readable_by_the_group(tmp_path):
    """End to end: save_pretrained under umask 022 writes 0644 files (was 0600)."""
    code = ("import os, torch; os.umask(0o022); from bertforge.models.bert.config import BertConfig; "
            "from bertforge.models.bert.modeling import BertModel; "
            f"BertModel(BertConfig.preset('tiny')).save_pretrained(r'{tmp_path / 'm'}')")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert {p.name: mode(p) for p in (tmp_path / "m").iterdir()} == {"config.json": 0o644,
                                                                      "model.safetensors": 0o644}
