"""Where the time of a QA fine-tuning step goes: the profile behind docs/speed.md's training findings.

The same SQuAD batches and steps as bench_qa_train.py (all-MiniLM-L6-v2 + a seeded QA head, bf16
autocast, fused AdamW), in three configurations that isolate the two causes found:

- `before`: attention dropout 0.1 (SDPA falls back to its math kernel on a CPU) and unpadded varying shapes;
- `no attn dropout`: the fused attention kernel, still varying shapes;
- `after`: no attention dropout and batches padded to a multiple of 64 with the padded shape kept (D15).

Per configuration, interleaved a few steps at a time (the machine is shared):
- the process's counters per step from getrusage (the kernel's own accounting, as `/usr/bin/time` or
  `perf stat -e page-faults` read it): user and system CPU seconds, minor page faults, context switches;
- slow steps (> 2x the configuration's median wall time) and whether their shape was new;
- a torch.profiler pass over a few steps: the share of self CPU time in the matmuls (mm / addmm / bmm,
  the oneDNN linear), the fused attention kernels, the math-attention pieces (softmax, dropout), the
  optimizer, and everything else.

    .venv/bin/python benchmarks/profile_qa_train.py --steps 12 --threads 2 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from bench_qa_train import batches, step

CATEGORIES = (  # first match wins; names are torch.profiler's op names
    ("attention kernel", ("_scaled_dot_product_flash_attention", "_flash_attention")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::", "aten::_mkldnn")),
    ("softmax / dropout (math attention)", ("softmax", "dropout", "bernoulli", "aten::mul_", "native_dropout")),
    ("optimizer", ("adam",)),
    ("layernorm / gelu", ("layer_norm", "gelu")),
    ("copies / casts / fills", ("copy_", "_to_copy", "fill_", "zero_", "index", "cat", "clone", "where")),
)


def category(name: str) -> str:
    for label, needles in CATEGORIES:
        if any(n in name for n in needles):
            return label
    return "other elementwise / bookkeeping"


def models(seed: int) -> dict:
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.heads import BertForQuestionAnswering

    def ours(attn: float):
        torch.manual_seed(seed)
        return BertForQuestionAnswering.from_pretrained(minilm_path(), attention_probs_dropout_prob=attn).train()

    return {"before": (ours(0.1), None), "no attn dropout": (ours(0.0), None), "after": (ours(0.0), 64)}


def counters() -> tuple[float, float, int, int, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw


def shape_of(features, pad: int | None) -> int:
    T = max(len(f.input_ids) for f in features)
    return -(-T // pad) * pad if pad else T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="measured steps per configuration")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=3, help="steps of one configuration before switching")
    ap.add_argument("--profile-steps", type=int, default=3, help="steps per configuration under torch.profiler")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = batches(args.warmup + args.steps + args.profile_steps, args.batch_size, args.seed)
    runs = models(args.seed)
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True) for n, (m, _) in runs.items()}
    seen: dict[str, set[int]] = {n: set() for n in runs}
    for name, (model, pad) in runs.items():
        for feats in data[:args.warmup]:
            step(model, opts[name], feats, pad)
            seen[name].add(shape_of(feats, pad))
    rows: dict[str, list[dict]] = {n: [] for n in runs}
    measured = data[args.warmup:args.warmup + args.steps]
    for start in range(0, len(measured), args.chunk):
        for name, (model, pad) in runs.items():
            for feats in measured[start:start + args.chunk]:
                T = shape_of(feats, pad)
                c0, t = counters(), time.perf_counter()
                tokens = step(model, opts[name], feats, pad)
                wall, c1 = time.perf_counter() - t, counters()
                rows[name].append({"wall": wall, "user": c1[0] - c0[0], "sys": c1[1] - c0[1],
                                   "faults": c1[2] - c0[2], "csw": c1[3] - c0[3] + c1[4] - c0[4],
                                   "tokens": tokens, "T": T, "new_shape": T not in seen[name]})
                seen[name].add(T)
    shares: dict[str, dict[str, float]] = {}
    from torch.profiler import ProfilerActivity, profile

    for name, (model, pad) in runs.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for feats in data[args.warmup + args.steps:]:
                step(model, opts[name], feats, pad)
        total: dict[str, float] = defaultdict(float)
        for e in prof.key_averages():
            total[category(e.key)] += e.self_cpu_time_total
        s = sum(total.values())
        shares[name] = {k: v / s for k, v in sorted(total.items(), key=lambda kv: -kv[1])}

    print(f"QA fine-tuning step profile, bf16 autocast, {args.threads} thread(s), {args.steps} steps x "
          f"{args.batch_size} SQuAD windows per configuration")
    print(f"{'configuration':<17}{'tok/s wall':>11}{'tok/CPU-s':>10}{'sys share':>10}{'faults/step':>12}"
          f"{'csw/step':>9}{'median s':>9}{'slow steps':>11}{'slow & new shape':>17}")
    summary = {}
    for name, rs in rows.items():
        tok = sum(r["tokens"] for r in rs)
        cpu = sum(r["user"] + r["sys"] for r in rs)
        med = statistics.median(r["wall"] for r in rs)
        slow = [r for r in rs if r["wall"] > 2 * med]
        summary[name] = {"tokens_per_s": tok / sum(r["wall"] for r in rs), "tokens_per_cpu_s": tok / cpu,
                         "sys_share": sum(r["sys"] for r in rs) / cpu,
                         "faults_per_step": statistics.mean(r["faults"] for r in rs),
                         "csw_per_step": statistics.mean(r["csw"] for r in rs), "median_step_s": med,
                         "slow_steps": len(slow), "slow_new_shape": sum(r["new_shape"] for r in slow),
                         "new_shapes": sum(r["new_shape"] for r in rs), "profile_shares": shares[name], "steps": rs}
        m = summary[name]
        print(f"{name:<17}{m['tokens_per_s']:>11.0f}{m['tokens_per_cpu_s']:>10.0f}{m['sys_share']:>10.0%}"
              f"{m['faults_per_step']:>12.0f}{m['csw_per_step']:>9.0f}{med:>9.2f}{len(slow):>11}"
              f"{m['slow_new_shape']:>17}")
    print(f"\nshare of self CPU time (torch.profiler, {args.profile_steps} steps each):")
    labels = [c for c, _ in CATEGORIES] + ["other elementwise / bookkeeping"]
    print(f"{'':<36}" + "".join(f"{n:>17}" for n in runs))
    for label in labels:
        print(f"{label:<36}" + "".join(f"{shares[n].get(label, 0.0):>17.0%}" for n in runs))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
