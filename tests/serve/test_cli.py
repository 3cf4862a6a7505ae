"""`bertforge serve` as a user runs it: flags, a real process on a free loopback port, Ctrl-C."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from bertforge.cli import flags
from bertforge.cli.main import build_parser
from bertforge.serve import is_loopback


def serve_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return parser, sub.choices["serve"]


def test_flags_defaults_and_help():
    parser, serve = serve_parser()
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.max_batch, args.max_wait_ms, args.max_queue) == ("127.0.0.1", 8000, 32, 5.0, 256)
    assert args.max_body_bytes == 1_000_000 and args.model is None and args.docs is None
    assert not [m for m in flags.options_without_help(parser) if m.startswith("bertforge serve")]


@pytest.mark.parametrize("argv", [["--port", "-1"], ["--max-batch", "0"], ["--timeout", "0"], ["--max-queue", "x"],
                                  ["--precision", "fp8"]])
def test_bad_flags_exit_2(argv, capsys):
    parser, _ = serve_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["serve", *argv])
    assert e.value.code == 2 and "error" in capsys.readouterr().err


def test_loopback_is_recognised():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.5", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.com"))


def test_the_command_serves_on_a_free_port_and_stops_on_ctrl_c(tiny_models):
    cmd = [sys.executable, "-m", "bertforge", "serve", "--port", "0", "--model", str(tiny_models["qa"]),
           "--no-embed", "--mlm-model", str(tiny_models["mlm"])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:  # wait for "open http://127.0.0.1:PORT/"
            lines.append(line)
            found = re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
            if found:
                break
            assert time.monotonic() - t0 < 120, "".join(lines)
        else:
            pytest.fail("the server exited:\n" + "".join(lines))
        url = found.group(1)
        assert any("fill-mask:" in l for l in lines) and any("embed: off" in l for l in lines)
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/health").json()["status"] == "ok"
            r = c.post("/api/qa", json={"question": "Who?", "context": "Ann lives in Oslo."})
            assert r.status_code == 200 and r.json()["answers"]
            assert c.get("/health", headers={"host": "evil.example"}).status_code == 400  # loopback: Host checked
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_a_taken_port_is_one_clear_line(tiny_models):
    from bertforge.serve import bind

    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}.*--port 0"):
            bind("127.0.0.1", port)
    finally:
        taken.close()
