"""`bertforge --help`, every command's --help and `--version` answer without importing torch."""
from __future__ import annotations

import subprocess
import sys

CHECK = r"""
import contextlib, io, sys
from bertforge.cli import flags
from bertforge.cli.main import build_parser, main

names = [n.split()[1:] for n in flags.leaf_parsers(build_parser())]
with contextlib.redirect_stdout(io.StringIO()) as out:
    codes = [main(["--help"]), main(["--version"])] + [main(n + ["--help"]) for n in names]
print(len(names), set(codes), "torch" in sys.modules, out.getvalue().count("usage:"))
"""


def test_help_and_version_import_no_torch():
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    n, codes, torch_loaded, usages = res.stdout.split(maxsplit=3)[0], *res.stdout.rsplit(maxsplit=3)[1:]
    assert (codes, torch_loaded) == ("{0}", "False"), res.stdout
    assert int(usages) == int(n) + 1


def test_version_of_the_console_entry():
    res = subprocess.run([sys.executable, "-m", "bertforge", "--version"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.startswith("bertforge "), (res.stdout, res.stderr)


def test_the_cli_sets_a_passive_thread_policy_before_torch_loads():
    """OMP_WAIT_POLICY=PASSIVE is in the environment when torch starts (and a user's choice wins)."""
    import subprocess
    import sys

    code = ("import os, sys; from bertforge.cli.main import main; main(['--version']); "
            "assert 'torch' not in sys.modules; print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE"
