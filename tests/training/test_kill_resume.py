"""Kill tests (issue 15): `kill -9` or Ctrl-C (SIGINT) at a random point of `finetune` and `pretrain`, then
`--resume`: the final weights equal those of an uninterrupted run bit for bit (CPU, one thread), and the
metrics log has each step once. The commands run as real processes, as a user runs them."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STEPS = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory, minilm_dir) -> Path:
    """A tiny BERT with dropout (so resume must restore the RNG) on the real vocab, CSV data, a corpus."""
    import shutil

    import torch

    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.modeling import BertModel

    root = tmp_path_factory.mktemp("kill")
    torch.manual_seed(0)
    BertModel(BertConfig.preset("tiny", hidden_dropout_prob=0.1)).save_pretrained(root / "tiny")
    shutil.copy(minilm_dir / "vocab.txt", root / "tiny" / "vocab.txt")
    rng = random.Random(0)
    words = "the film was good bad great awful fine plot actors music boring superb".split()
    for split, n in (("train", 96), ("dev", 16)):
        rows = ["text,label"] + [f"{' '.join(rng.choices(words, k=6))},{rng.choice(['pos', 'neg'])}"
                                 for _ in range(n)]
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    docs = ["\n".join(" ".join(rng.choices(words, k=8)) + " ." for _ in range(6)) for _ in range(40)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    return root


def command(kind: str, root: Path, out: Path) -> list[str]:
    common = ["--out", str(out), "--max-steps", str(STEPS), "--save-every", "2", "--batch-size", "8",
              "--seed", "3", "--quiet"]
    if kind == "finetune":
        return ["finetune", "classify", "--train", str(root / "train.csv"), "--dev", str(root / "dev.csv"),
                "--model", str(root / "tiny"), "--max-seq-length", "16", "--evals-per-epoch", "4", *common]
    return ["pretrain", "--corpus", str(root / "corpus.txt"), "--config", "tiny", "--vocab", str(root / "tiny"),
            "--max-seq-length", "32", *common]


def run(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bertforge", "--threads", "1", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def final_weights(out: Path) -> bytes:
    return (out / f"checkpoint-{STEPS}" / "model.safetensors").read_bytes()


def logged_steps(out: Path) -> list[int]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r]


@pytest.mark.parametrize("kind, sig", [("finetune", signal.SIGKILL), ("pretrain", signal.SIGINT),
                                       pytest.param("finetune", signal.SIGINT, marks=pytest.mark.slow),
                                       pytest.param("pretrain", signal.SIGKILL, marks=pytest.mark.slow)])
def test_interrupted_then_resumed_equals_uninterrupted(setup, tmp_path, kind, sig):
    ref = run(command(kind, setup, tmp_path / "ref"))
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    rng = random.Random(f"{kind}{sig}")
    out = tmp_path / "cut"
    # A checkpoint that must exist, then a random moment after it; on a machine so fast that the run ends
    # first, cut earlier (the last try signals the moment checkpoint-2 appears, 10 steps before the end).
    for kill_after, delay in ((rng.choice([4, 6, 8]), rng.uniform(0, 0.5)), (2, rng.uniform(0, 0.1)), (2, 0.0)):
        shutil.rmtree(out, ignore_errors=True)
        victim = run(command(kind, setup, out))
        deadline = time.time() + 600
        while not (out / f"checkpoint-{kill_after}").exists() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        victim.send_signal(sig)
        _, err = victim.communicate(timeout=120)
        if victim.returncode != 0:
            break
    assert victim.returncode != 0, "every run finished before the signal arrived"
    assert "Traceback" not in err, err
    assert victim.returncode in (130, -signal.SIGKILL, 2), (victim.returncode, err)
    resumed = run([*command(kind, setup, out), "--resume"])
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert final_weights(out) == final_weights(tmp_path / "ref")
    assert logged_steps(out) == logged_steps(tmp_path / "ref")
    assert sorted(set(logged_steps(out))) == logged_steps(out)  # each step once
