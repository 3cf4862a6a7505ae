"""Thread policy on a shared machine: encoder throughput with OpenMP's default (spinning) wait policy vs
`OMP_WAIT_POLICY=PASSIVE`, idle and with one competing busy process, for bertforge and HF, 2 threads.

OpenMP threads spin at every barrier by default; when another process takes one of the 2 cores, the
spinning thread burns its slice waiting for a preempted partner and throughput collapses. PASSIVE
makes waiting threads sleep. The policy is read when torch's OpenMP runtime starts, so each
(policy, system) cell runs in a fresh child process; the contention is a pure-Python busy loop started
beside it. Cells are run in the order A B B A (twice) and the median of each is reported.

    .venv/bin/python benchmarks/bench_threads.py            # the table (a few minutes)
    .venv/bin/python benchmarks/bench_threads.py --child bertforge   # one measurement (used internally)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

TEXT = ("The Transformer replaces recurrence with attention: every position attends to every other one, "
        "so long-range dependencies are one step away and training parallelises across the sequence.")


def child(system: str, seconds: float, threads: int) -> float:
    """Encoder tokens/s of `system` over about `seconds` (batches of 16 x 128 real tokens)."""
    import torch

    torch.set_num_threads(threads)
    from bertforge.models.bert.checkpoint import minilm_path

    if system == "bertforge":
        from bertforge.models.bert.modeling import BertModel
        model = BertModel.from_pretrained(minilm_path()).eval()
    else:
        import transformers
        model = transformers.BertModel.from_pretrained(str(minilm_path()), attn_implementation="sdpa").eval()
    ids = torch.randint(1000, 20000, (16, 128), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)
        tokens, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(input_ids=ids, attention_mask=mask)
            tokens += ids.numel()
    return tokens / (time.perf_counter() - start)


def _spin(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def cell(system: str, policy: str, contended: bool, seconds: float, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    stop, hog = mp.Event(), None
    if contended:
        hog = mp.Process(target=_spin, args=(stop,), daemon=True)
        hog.start()
    try:
        out = subprocess.run([sys.executable, __file__, "--child", system, "--seconds", str(seconds),
                              "--threads", str(threads)], env=env, capture_output=True, text=True, check=True)
    finally:
        if hog is not None:
            stop.set()
            hog.join()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["bertforge", "hf"], help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per cell")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the measured process")
    ap.add_argument("--repeats", type=int, default=2, help="A B B A rounds")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.child:
        print(child(args.child, args.seconds, args.threads))
        return
    results: dict[str, list[float]] = {}
    for contended in (False, True):
        for system in ("bertforge", "hf"):
            order = ["default", "PASSIVE", "PASSIVE", "default"] * args.repeats
            for policy in order:
                key = f"{system}|{policy}|{'contended' if contended else 'idle'}"
                results.setdefault(key, []).append(cell(system, policy, contended, args.seconds, args.threads))
    print(f"Encoder tokens/s (MiniLM, 16 x 128, {args.threads} threads), median of {2 * args.repeats}; "
          f"contended = one busy Python process beside it")
    print(f"{'system':<11}{'machine':<11}{'default':>10}{'PASSIVE':>10}{'PASSIVE/default':>17}")
    for system in ("bertforge", "hf"):
        for load in ("idle", "contended"):
            d = statistics.median(results[f"{system}|default|{load}"])
            p = statistics.median(results[f"{system}|PASSIVE|{load}"])
            print(f"{system:<11}{load:<11}{d:>10.0f}{p:>10.0f}{p / d:>16.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
