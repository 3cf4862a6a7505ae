"""The shared training loop (D10): accumulation, exact resume, schedules, decay groups, safe checkpoints."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bertforge.training.trainer as train_mod
from bertforge.data.loader import ResumableLoader
from bertforge.models.bert.heads import HeadOutput
from bertforge.training.schedules import lr_lambda
from bertforge.training.trainer import NonFiniteLossError, TrainConfig, Trainer, list_checkpoints, param_groups


class Toy(nn.Module):
    """A 2-layer classifier with LayerNorm and dropout (so resume must restore the torch RNG)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.l1, self.norm, self.drop, self.l2 = (nn.Linear(8, 16), nn.LayerNorm(16), nn.Dropout(dropout),
                                                  nn.Linear(16, 3))

    def forward(self, x, y):
        logits = self.l2(self.drop(torch.relu(self.norm(self.l1(x)))))
        return HeadOutput(logits=logits, loss=F.cross_entropy(logits, y))


def toy_data(n: int = 20, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(8).astype(np.float32), "y": int(rng.integers(3))} for _ in range(n)]


def noisy_collate(examples, seeds):
    """Per-example noise drawn from the loader's seeds: stands in for dynamic masking."""
    x = np.stack([e["x"] + 0.1 * np.random.default_rng(s).standard_normal(8).astype(np.float32)
                  for e, s in zip(examples, seeds)])
    return {"x": torch.from_numpy(x), "y": torch.tensor([e["y"] for e in examples])}


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(out_dir=str(tmp_path), lr=1e-2, log_every=1, progress=False, warmup_steps=2, seed=0)
    return TrainConfig(**{**base, **kw})


def train_losses(log):
    return {r["step"]: r["loss"] for r in log if "loss" in r}


def test_accumulation_equals_full_batch(tmp_path):
    torch.manual_seed(0)
    model = Toy()
    data = toy_data(16)
    full = Trainer(copy.deepcopy(model), cfg(tmp_path / "a", max_steps=1, warmup_steps=0),
                   ResumableLoader(data, 8, noisy_collate, shuffle=False))
    accum = Trainer(copy.deepcopy(model), cfg(tmp_path / "b", max_steps=1, warmup_steps=0, grad_accum_steps=2),
                    ResumableLoader(data, 4, noisy_collate, shuffle=False))
    la, lb = full.train(), accum.train()
    assert la[0]["loss"] == pytest.approx(lb[0]["loss"], abs=1e-6)
    assert la[0]["grad_norm"] == pytest.approx(lb[0]["grad_norm"], abs=1e-6)
    for pa, pb in zip(full.model.parameters(), accum.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0)


def test_unequal_micro_batches_are_weighted_by_examples(tmp_path):
    torch.manual_seed(0)
    model = Toy()
    batch = noisy_collate(toy_data(4), seeds=[1, 2, 3, 4])
    t = Trainer(model, cfg(tmp_path, max_steps=1), [batch])
    split = [{k: v[:3] for k, v in batch.items()}, {k: v[3:] for k, v in batch.items()}]
    loss_split = t.forward_backward(split)
    g_split = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference = model(**batch).loss  # the plain mean over the 4 examples
    reference.backward()
    assert loss_split == pytest.approx(reference.item(), abs=1e-6)
    for g, p in zip(g_split, model.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-7, rtol=0)


def test_exact_resume_gives_the_same_losses(tmp_path):
    # 20 examples, batch 4, accumulation 2: steps straddle epoch boundaries; dropout needs the RNG.
    def run(out, **kw):
        torch.manual_seed(123)
        loader = ResumableLoader(toy_data(20), 4, noisy_collate, seed=7)
        return Trainer(Toy(dropout=0.3), cfg(out, max_steps=7, grad_accum_steps=2, save_every=2, **kw), loader)

    straight = run(tmp_path / "straight")
    expected = train_losses(straight.train())
    stopped = run(tmp_path / "resumed")
    first = train_losses(stopped.train(until_step=3))
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["checkpoint-2", "checkpoint-3"]
    resumed = run(tmp_path / "resumed", resume=True)  # a fresh process: new model, new loader
    assert resumed.step == 3
    second = train_losses(resumed.train())
    assert sorted({**first, **second}) == list(range(1, 8))
    for step, loss in {**first, **second}.items():
        assert loss == expected[step], f"step {step}: {loss} != {expected[step]}"
    for pa, pb in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("name", ["linear", "constant"])
def test_schedules_match_hf(name, tmp_path):
    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    hf = (get_linear_schedule_with_warmup(opt, 10, 50) if name == "linear"
          else get_constant_schedule_with_warmup(opt, 10))
    ours = lr_lambda(name, warmup=10, total=50)
    for step in range(60):
        assert ours(step) == pytest.approx(hf.get_last_lr()[0], abs=1e-12)
        opt.step(), hf.step()


def test_noam_schedule_formula(tmp_path):
    d, warmup = 512, 4000
    f = lr_lambda("noam", warmup=warmup, total=0, d_model=d)
    for s in (1, 100, 3999, 4000, 4001, 20000):  # Vaswani et al. eq. 3 with step_num = s
        assert f(s - 1) == pytest.approx(d ** -0.5 * min(s ** -0.5, s * warmup ** -1.5), rel=1e-12)
    peak = max(range(1, 10000), key=lambda s: f(s - 1))
    assert peak == warmup  # rises linearly, then decays as 1/sqrt(step)
    # The trainer's lr follows it, scaled by TrainConfig.lr (the factor).
    t = Trainer(Toy(), cfg(tmp_path, max_steps=5, schedule="noam", noam_d_model=d, warmup_steps=4, lr=2.0),
                ResumableLoader(toy_data(8), 4))
    lrs = [r["lr"] for r in t.train()]
    assert lrs == pytest.approx([2.0 * d ** -0.5 * min(s ** -0.5, s * 4 ** -1.5) for s in range(1, 6)])


def test_decay_groups_are_hf_rule():
    from bertforge.models.bert.checkpoint import to_hf_key
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.heads import BertForQuestionAnswering

    model = BertForQuestionAnswering(BertConfig.preset("tiny"))
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): to_hf_key(n) for n, p in model.named_parameters()}
    hf_no_decay = {n for n in names.values() if n.endswith("bias") or "LayerNorm.weight" in n}
    assert {names[id(p)] for p in no_decay["params"]} == hf_no_decay  # HF run_pretraining's rule
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    loader = ResumableLoader(toy_data(16), 4, noisy_collate)
    t = Trainer(Toy(), cfg(tmp_path, max_steps=4, save_every=2), loader)
    t.train(until_step=2)
    good = {k: v.clone() for k, v in t.model.state_dict().items()}
    real_save = torch.save

    def crash(obj, f, *a, **kw):  # write half a file, then die (power cut, disk full)
        real_save(obj, f, *a, **kw)
        with open(f, "r+b") as fh:
            fh.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(train_mod.torch, "save", crash)
    from bertforge.errors import BertforgeError
    with pytest.raises(BertforgeError, match="disk full"):  # one clear line (issue 15), was the raw OSError
        t.train()
    monkeypatch.setattr(train_mod.torch, "save", real_save)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2"]
    fresh = Trainer(Toy(), cfg(tmp_path, max_steps=4, save_every=2, resume=True),
                    ResumableLoader(toy_data(16), 4, noisy_collate))
    assert fresh.step == 2
    for k, v in fresh.model.state_dict().items():
        assert torch.equal(v, good[k])


def test_corrupt_checkpoint_on_resume_is_a_clear_error(tmp_path):
    t = Trainer(Toy(), cfg(tmp_path, max_steps=2), ResumableLoader(toy_data(8), 4))
    t.train()
    (tmp_path / "checkpoint-2" / train_mod.STATE_NAME).write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        Trainer(Toy(), cfg(tmp_path, max_steps=2, resume=True), ResumableLoader(toy_data(8), 4))


class NanAtStep(Toy):
    def __init__(self, bad_call: int):
        super().__init__()
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x, y):
        out = super().forward(x, y)
        self.calls += 1
        if self.calls == self.bad_call:
            out.loss = out.loss * float("nan")
        return out


def test_nan_loss_stops_before_the_update(tmp_path):
    model = NanAtStep(bad_call=3)
    t = Trainer(model, cfg(tmp_path, max_steps=5, save_every=2), ResumableLoader(toy_data(16), 4))
    with pytest.raises(NonFiniteLossError, match=r"nan at step 3.*checkpoint-2"):
        t.train()
    assert t.step == 2
    saved = Trainer(Toy(), cfg(tmp_path, max_steps=5, resume=True), ResumableLoader(toy_data(16), 4))
    for k, v in saved.model.state_dict().items():  # the parameters were not touched by the NaN step
        assert torch.equal(v, model.state_dict()[k])


def test_best_checkpoint_and_early_stopping(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at eval 2; evals 3 and 4 do not improve

    t = Trainer(Toy(), cfg(tmp_path, max_steps=10, eval_every=2, metric_for_best="acc", patience=2),
                ResumableLoader(toy_data(16), 4), eval_fn=lambda m: {"acc": next(scores)})
    log = t.train()
    assert t.step == 8 and t.best_metric == 0.7
    assert [r["eval_acc"] for r in log if "eval_acc" in r] == [0.5, 0.7, 0.6, 0.65]
    best = torch.load(tmp_path / "best" / train_mod.STATE_NAME, weights_only=True)
    assert best["step"] == 4
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, 9))
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_keep_last_k(tmp_path):
    t = Trainer(Toy(), cfg(tmp_path, max_steps=6, save_every=1, keep_last=2), ResumableLoader(toy_data(8), 2))
    t.train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-5", "checkpoint-6"]


def test_bf16_autocast_trains_close_to_fp32(tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        t = Trainer(Toy(), cfg(tmp_path / precision, max_steps=3, precision=precision),
                    ResumableLoader(toy_data(16), 8, noisy_collate))
        losses[precision] = [r["loss"] for r in t.train()]
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)


def test_loader_ranks_partition_the_single_process_batches():
    data = list(range(11))
    collate = lambda ex: ex  # noqa: E731
    single = list(ResumableLoader(data, 4, collate, seed=3))
    ranks = [list(ResumableLoader(data, 2, collate, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == 3
    for k in range(2):  # full batches: rank r holds every 2nd example of the single-process batch
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(single[k])
    seen = sorted(x for r in ranks for b in r for x in b)
    assert set(seen) == set(data) and len(seen) == 12  # padded by one wrapped example


def test_loader_position_roundtrip():
    data = list(range(10))
    a = ResumableLoader(data, 3, lambda ex: ex, seed=1)
    it = iter(a)
    first = [next(it), next(it)]
    b = ResumableLoader(data, 3, lambda ex: ex, seed=1)
    b.load_state_dict(a.state_dict())
    assert list(it) == list(b)  # the rest of epoch 0
    assert list(a) == list(b)  # and epoch 1
    assert first[0] != list(ResumableLoader(data, 3, lambda ex: ex, seed=2))[0]
    with pytest.raises(ValueError, match="dataset"):
        ResumableLoader(list(range(9)), 3, lambda ex: ex).load_state_dict(a.state_dict())


def test_bad_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="noam"):
        Trainer(Toy(), cfg(tmp_path, max_steps=1, schedule="noam"), ResumableLoader(toy_data(4), 2))
    class NoLoss(Toy):
        def forward(self, x, y):
            return HeadOutput(logits=super().forward(x, y).logits)

    with pytest.raises(TypeError, match="no loss"):
        Trainer(NoLoss(), cfg(tmp_path, max_steps=1), ResumableLoader(toy_data(4), 2)).train()


def test_varied_shape_bf16_training_keeps_memory_bounded():
    """Under bf16 every new batch shape grew the process (oneDNN's primitive cache + glibc's heap; a SQuAD
    run was OOM-killed at 12.7 GB). bertforge bounds the cache (on import) and the Trainer trims the heap:
    120 shapes end near 0.5 GB; with neither, 1.66 GB (cache bound only: 0.67 GB, trim only: 0.49 GB)."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from bertforge.training.trainer import release_free_memory\n"
        "torch.set_num_threads(1)\n"
        "lin = torch.nn.Linear(384, 1536); x = torch.randn(6000, 384)\n"
        "for i in range(120):\n"
        "    with torch.autocast('cpu', dtype=torch.bfloat16):\n"
        "        y = lin(x[:3000 + 17 * i].requires_grad_())\n"
        "    y.float().sum().backward()\n"
        "    if i % 10 == 9: release_free_memory()\n"
        "print(int(open('/proc/self/statm').read().split()[1]) * 4096 // 2**20)\n")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    rss_mb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout.split()[-1])
    assert rss_mb < 1000, rss_mb


# ---- one run per folder, logs without repeats, callbacks ------------------------------------------

def test_a_folder_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path):
    from bertforge.errors import BertforgeError

    data = toy_data(16)
    Trainer(Toy(), cfg(tmp_path, max_steps=2, save_every=1), ResumableLoader(data, 4, noisy_collate)).train()
    (tmp_path / "notes.txt").write_text("mine")  # a user's file beside the run must survive --overwrite
    with pytest.raises(BertforgeError, match="already holds a training run.*--resume.*--overwrite"):
        Trainer(Toy(), cfg(tmp_path, max_steps=2), ResumableLoader(data, 4, noisy_collate))
    Trainer(Toy(), cfg(tmp_path, max_steps=3, save_every=1, overwrite=True),
            ResumableLoader(data, 4, noisy_collate)).train()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the old run's records are gone, not appended to
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BertforgeError, match="is a file"):
        Trainer(Toy(), cfg(tmp_path / "file", max_steps=1), ResumableLoader(data, 4, noisy_collate))
    with pytest.raises(ValueError, match="exclude each other"):
        cfg(tmp_path, resume=True, overwrite=True)


def test_metrics_log_has_each_step_once_after_a_crash_and_resume(tmp_path):
    """A crash after checkpoint-3 but at step 5: the resumed run trains steps 4-5 again, logged once."""
    data = toy_data(24)
    t = Trainer(Toy(0.1), cfg(tmp_path, max_steps=8, save_every=3), ResumableLoader(data, 4, noisy_collate))
    t.train(until_step=5)
    import shutil
    shutil.rmtree(tmp_path / "checkpoint-5")  # the crash: the stop-checkpoint was never written
    resumed = Trainer(Toy(0.1), cfg(tmp_path, max_steps=8, save_every=3, resume=True),
                      ResumableLoader(data, 4, noisy_collate))
    assert resumed.step == 3
    resumed.train()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_callbacks_are_called_and_can_stop_a_run_that_then_resumes(tmp_path):
    from bertforge.training.callbacks import Callback, CpuBudget

    class Spy(Callback):
        def __init__(self):
            self.calls = []

        def on_train_begin(self, trainer):
            self.calls.append("begin")

        def on_step_end(self, trainer, record):
            self.calls.append(f"step{trainer.step}")
            return trainer.step == 2  # stop after step 2

        def on_save(self, trainer, path):
            self.calls.append(path.name)

        def on_train_end(self, trainer):
            self.calls.append("end")

    spy = Spy()
    data = toy_data(24)
    t = Trainer(Toy(), cfg(tmp_path, max_steps=6, save_every=0), ResumableLoader(data, 4, noisy_collate),
                callbacks=[spy])
    t.train()
    assert spy.calls == ["begin", "step1", "step2", "checkpoint-2", "end"] and t.step == 2
    assert t.train_tokens == 2 * 4 and t.train_seconds > 0  # toy batches: one "token" per example
    budget = CpuBudget(1e-9)  # spent at once: one step, then a checkpoint with the CPU time carried over
    resumed = Trainer(Toy(), cfg(tmp_path, max_steps=6, resume=True), ResumableLoader(data, 4, noisy_collate),
                      callbacks=[budget])
    resumed.train()
    assert resumed.step == 3 and (tmp_path / "checkpoint-3").is_dir()
    assert json.loads((tmp_path / "cpu_time.json").read_text())["cpu_s"] > 0


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A write error in the middle of a checkpoint (simulated ENOSPC from the weights writer): one clear
    error, no temporary folder left, and the previous checkpoint still resumes."""
    import errno

    from bertforge.errors import BertforgeError

    data = toy_data(24)
    t = Trainer(Toy(), cfg(tmp_path, max_steps=6, save_every=2), ResumableLoader(data, 4, noisy_collate))
    t.train(until_step=2)
    real_save = train_mod.save_model

    def full_disk(model, path):
        real_save(model, path)  # half of the checkpoint lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_mod, "save_model", full_disk)
    with pytest.raises(BertforgeError, match=r"No space left on device.*checkpoint-2, is intact.*--resume"):
        t.train(until_step=4)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(train_mod, "save_model", real_save)
    resumed = Trainer(Toy(), cfg(tmp_path, max_steps=6, save_every=2, resume=True),
                      ResumableLoader(data, 4, noisy_collate))
    assert resumed.step == 2
    resumed.train()
    assert resumed.step == 6
