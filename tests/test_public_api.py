"""The lazy public API: `import bertforge` loads no torch, and every public name resolves to its module's object."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import bertforge


def test_import_bertforge_loads_no_torch():
    code = "import sys, bertforge; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", bertforge.__all__)
def test_every_public_name_is_its_module_object(name):
    obj = getattr(bertforge, name)
    assert obj is getattr(importlib.import_module(bertforge._PUBLIC[name]), name)


def test_unknown_name_is_a_clear_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        bertforge.Nope  # noqa: B018
