"""Encoder forward throughput: bertforge vs HF transformers (eager and sdpa), same MiniLM weights and inputs.

For each (batch, seq) the three models run interleaved, round after round, and the median round time
is reported as tokens/s, with the ratio to HF sdpa and the model FLOP utilisation (MFU) against a
matmul peak measured in the same run (the machine is shared and noisy: compare ratios, not seconds).

    .venv/bin/python benchmarks/bench_encoder.py [--rounds 7] [--threads N]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def measured_matmul_peak(dtype=torch.float32, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n x n matmul, best of `reps` (our 'peak')."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def forward_flops(config, batch: int, seq: int) -> float:
    """Model FLOPs of one forward: 2 * (matmul parameters) per token + attention's QK^T and PV."""
    D, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token_layer = 2 * (4 * D * D + 2 * D * F) + 2 * 2 * seq * D
    return batch * seq * L * per_token_layer


def main() -> None:
    import transformers

    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.modeling import BertModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    path = minilm_path()
    models = {
        "bertforge": BertModel.from_pretrained(path).eval(),
        "hf-eager": transformers.BertModel.from_pretrained(str(path), attn_implementation="eager").eval(),
        "hf-sdpa": transformers.BertModel.from_pretrained(str(path), attn_implementation="sdpa").eval(),
    }
    config = models["bertforge"].config
    peak = measured_matmul_peak()
    rows = []
    for batch, seq in [(1, 128), (8, 128), (32, 128), (8, 384)]:
        ids = torch.randint(1000, 30000, (batch, seq))
        am = torch.ones_like(ids)
        times: dict[str, list[float]] = {k: [] for k in models}
        with torch.inference_mode():
            for m in models.values():  # warm-up
                m(input_ids=ids, attention_mask=am)
            for _ in range(args.rounds):
                peak = max(peak, measured_matmul_peak(reps=1))  # the best seen in the run, interleaved
                for name, m in models.items():
                    t = time.perf_counter()
                    m(input_ids=ids, attention_mask=am)
                    times[name].append(time.perf_counter() - t)
        rows.append((batch, seq, {k: statistics.median(v) for k, v in times.items()}))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; measured fp32 matmul peak {peak:.0f} GFLOP/s (best seen in the run)")
    print(f"{'batch':>5} {'seq':>4} | {'model':<10} {'tokens/s':>10} {'vs hf-sdpa':>10} {'MFU':>6}")
    for batch, seq, med in rows:
        flops = forward_flops(config, batch, seq)
        for name in models:
            tps = batch * seq / med[name]
            print(f"{batch:>5} {seq:>4} | {name:<10} {tps:>10.0f} {med['hf-sdpa'] / med[name]:>9.2f}x "
                  f"{flops / med[name] / 1e9 / peak:>6.0%}")


if __name__ == "__main__":
    main()
