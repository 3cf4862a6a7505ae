"""Refuse before working, with one clear line (issue 15): bad models, bad bytes, bad outputs, huge requests.
Each case: exit status 2, the last stderr line `bertforge CMD: error: ...` saying what and where, no
traceback, and nothing left behind."""
from __future__ import annotations

import json
import shutil
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from tests.cli.helpers import run, tree


def refused(argv: list, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    """Run a command that must be refused; return its one error line."""
    r = run(argv, stdin, cwd)
    assert r.status == 2 and "Traceback" not in r.err, r
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("bertforge ") and ": error: " in line, r
    return line


@pytest.fixture
def broken(tiny, tmp_path):
    """A copy of the tiny encoder to break."""
    def make(name: str = "bert") -> Path:
        return Path(shutil.copytree(tiny[name], tmp_path / f"broken-{name}"))
    return make


@pytest.mark.parametrize("config, words", [
    ([1, 2], "JSON object"),
    ("{not json", "not valid JSON"),
    ({"hidden_size": "big"}, "hidden_size must be an integer"),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be an integer"),
    ({"pad_token_id": 9999}, "pad_token_id must be a token id"),
])
def test_malformed_config_json(broken, config, words):
    model = broken()
    if isinstance(config, dict):
        config = {**json.loads((model / "config.json").read_text()), **config}
    (model / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    for argv in (["embed", "--model", model], ["viz", "attention", "the cat", "--model", model, "--out", "/tmp/x.png"]):
        line = refused(argv, b"the cat sat.\n")
        assert words in line and "config.json" in line


def test_a_vocabulary_that_does_not_fit_the_model(broken):
    model = broken("qa")
    vocab = (model / "vocab.txt").read_text().split("\n")
    (model / "vocab.txt").write_text("\n".join(vocab[:-1] + [f"extra{i}" for i in range(50)]) + "\n")
    assert "vocab.txt has" in refused(["qa", "who?", "--context", "the cat.", "--model", model])
    assert "does not belong to this model" in refused(["embed", "--model", model], b"the cat.\n")
    vocab[0], vocab[2] = vocab[2], vocab[0]  # [PAD] no longer where config.json says (pad_token_id 0)
    (model / "vocab.txt").write_text("\n".join(vocab))
    assert "[PAD] is token 2" in refused(["qa", "who?", "--context", "the cat.", "--model", model])


def test_lengths_beyond_the_models_positions_name_its_limit(tiny):
    assert "use --max-seq-length 512 or less" in refused(
        ["qa", "who?", "--context", "x", "--model", tiny["qa"], "--max-seq-length", "600"])
    assert "use --max-seq-length 512 or less" in refused(
        ["embed", "--model", tiny["bert"], "--max-seq-length", "513"], b"a\n")
    assert "reads at most 512" in refused(["fill-mask", "--model", tiny["mlm"], "the " * 600 + "[MASK]"])


def test_non_utf8_input_names_the_file_line_and_offset(tiny, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("the cat.\ncaf\xe9 au lait.\n".encode("latin-1"))
    line = refused(["embed", "--model", tiny["bert"], "--input", bad])
    assert f"{bad} is not valid utf-8 text: byte 0xe9 at offset 12 (line 2)" in line and "--encoding" in line
    assert "<stdin> is not valid utf-8" in refused(["qa", "who?", "--model", tiny["qa"]], bad.read_bytes())
    assert "byte 0xe9" in refused(["pretrain", "--corpus", bad, "--out", tmp_path / "run", "--config", "tiny"])
    r = run(["embed", "--model", tiny["bert"], "--input", bad, "--encoding", "latin-1"])  # said explicitly
    assert r.status == 0 and len(r.out.splitlines()) == 2


def test_text_arguments_that_are_not_utf8(tiny):
    assert "not valid UTF-8" in refused(["qa", "who\udcff?", "--context", "x", "--model", tiny["qa"]])


def test_embed_keeps_one_row_per_line(tiny):
    assert "line(s) 2 blank" in refused(["embed", "--model", tiny["bert"]], b"the cat.\n\nthe dog.\n")
    r = run(["embed", "--model", tiny["bert"]], b"the cat.\nthe dog.\nparis.\n")
    assert r.status == 0 and len(r.out.splitlines()) == 3


@pytest.mark.parametrize("argv, words", [
    (["embed", "--out", "existing_dir"], "is a folder"),
    (["embed", "--out", "vectors.txt"], "use one of .npy, .jsonl"),
    (["embed", "--out", "existing_file/v.npy"], "is a file, not a folder"),
    (["viz", "positional", "--out", "p.gif"], "use one of .png, .svg"),
    (["viz", "masks", "--out", "masks"], "without extension"),
    (["word2vec", "train", "--corpus", "corpus.txt", "--out", "existing_dir"], "is a folder"),
    (["finetune", "classify", "--train", "t.jsonl", "--dev", "d.jsonl", "--model", "m", "--out", "existing_file"],
     "is a file, not a folder"),
    (["predict", "--model", "m", "--text", "x", "--out", "p.csv"], "use one of .jsonl, .json"),
])
def test_outputs_are_checked_before_the_work(tiny, tmp_path, argv, words):
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "existing_file").write_text("keep\n")
    (tmp_path / "corpus.txt").write_text("the cat sat.\n")
    model = tiny["classifier"] if argv[0] == "predict" else tiny["bert"]
    argv = [model if a == "m" else a for a in argv]
    if argv[0] == "embed":
        argv += ["--model", model]
    before = tree(tmp_path)
    assert words in refused(argv, b"the cat.\n", cwd=tmp_path)
    assert tree(tmp_path) == before


def test_viz_extensions_are_honoured(tmp_path):
    for suffix, magic in ((".svg", b"<?xml"), (".pdf", b"%PDF"), (".png", b"\x89PNG"), (".jpg", b"\xff\xd8")):
        assert run(["viz", "masks", "--out", tmp_path / f"m{suffix}"]).status == 0
        assert (tmp_path / f"m{suffix}").read_bytes().startswith(magic)


def test_resource_guard_gives_an_estimate(tmp_path):
    line = refused(["viz", "positional", "--max-seq-length", "100000", "--d-model", "100000",
                    "--out", tmp_path / "p.png"])
    assert "would need about 400.0 GB" in line
    assert "would need about" in refused(["viz", "masks", "--lengths", "100000", "--row", "0",
                                          "--out", tmp_path / "m.png"])


def test_a_failed_run_leaves_nothing_behind(tiny, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    refused(["pretrain", "--corpus", tmp_path / "empty.txt", "--out", tmp_path / "new" / "run", "--config", "tiny",
             "--vocab", tiny["bert"] / "vocab.txt"])
    assert not (tmp_path / "new").exists()


def test_progress_bars_on_a_terminal_only(monkeypatch):
    from bertforge.cli.flags import show_progress
    from bertforge.inference import progress_bar

    class Terminal:
        def __init__(self, tty: bool):
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, s: str) -> int:
            return len(s)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stderr", Terminal(True))
    assert show_progress(Namespace(quiet=False)) and not show_progress(Namespace(quiet=True))
    assert not progress_bar(10, "x", enabled=True).disable
    assert progress_bar(10, "x", enabled=False).disable
    monkeypatch.setattr(sys, "stderr", Terminal(False))  # piped
    assert not show_progress(Namespace(quiet=False)) and progress_bar(10, "x", enabled=True).disable
