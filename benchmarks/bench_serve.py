"""`bertforge serve` under load: dynamic batching vs one request per model call, side by side.

    .venv/bin/python benchmarks/bench_serve.py [--requests 192] [--concurrency 1 4 16 64] [--threads 2 1]

For each torch thread count, two servers run the shipped QA model as `bertforge serve` processes, the
same flags but `--max-batch 32` (A: dynamic batching, `--max-wait-ms 5`) and `--max-batch 1` (B: one
request per model call; still one inference worker). Both get the same requests (SQuAD v1.1 dev
paragraphs, first question each; the bundled demo passage when the shared data is absent) at each
concurrency, interleaved A B B A (half the requests per run) so both see the same machine load.
Reported per level: requests/s, latency p50/p95/p99 (seconds, queueing included), the mean group size A
formed, errors, and the ratio A/B. Also: whether A and B gave the same answers, and each server's
resident memory after warm-up, after all the load, and its peak.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SQUAD_DEV = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def requests_pool(n: int) -> tuple[list[dict], str]:
    """n request bodies (question + paragraph), and where they come from."""
    if SQUAD_DEV.exists():
        data = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))["data"]
        paragraphs = [p for article in data for p in article["paragraphs"]]
        step = max(1, len(paragraphs) // n)  # spread over the articles: varied lengths
        picked = paragraphs[::step][:n]
        bodies = [{"question": p["qas"][0]["question"], "context": p["context"], "top_k": 1} for p in picked]
        return bodies, f"SQuAD v1.1 dev, {len(bodies)} paragraphs (first question each)"
    sys.path.insert(0, str(ROOT / "src"))
    from bertforge.cli.demo import ASSETS, QUESTIONS

    passage = (ASSETS / "demo_passage.txt").read_text(encoding="utf-8")
    bodies = [{"question": QUESTIONS[i % len(QUESTIONS)], "context": passage, "top_k": 1} for i in range(n)]
    return bodies, "the bundled demo passage (shared SQuAD data not found)"


# ---- a server process ---------------------------------------------------------------------------

class Server:
    """`bertforge serve` in its own process on a free port; its stderr drained in the background."""

    def __init__(self, threads: int, max_batch: int, extra: list[str]):
        cmd = [sys.executable, "-m", "bertforge", "--threads", str(threads), "serve", "--port", "0", "--no-embed",
               "--max-batch", str(max_batch), "--timeout", "600", "--max-queue", "1024", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.log: list[str] = []
        self.url = ""
        for line in self.proc.stderr:
            self.log.append(line)
            found = re.search(r"open (http://[\d.]+:\d+)/", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def memory_mb(self) -> dict:
        """Resident set now and at its peak (Linux /proc)."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
        return {"rss_mb": fields.get("VmRSS"), "peak_mb": fields.get("VmHWM")}

    def batching(self) -> dict:
        return httpx.get(self.url + "/health", timeout=60).json()["batching"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- load -----------------------------------------------------------------------------------------

async def _run(url: str, bodies: list[dict], concurrency: int) -> tuple[float, list[float], list, int]:
    """(wall seconds, per-request latencies, answers, errors) for `bodies` sent `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    answers: list = [None] * len(bodies)
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        async def one(i: int, body: dict) -> None:
            nonlocal errors
            async with gate:
                t = time.perf_counter()
                try:
                    r = await client.post("/api/qa", json=body)
                except httpx.HTTPError:
                    errors += 1
                    return
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors += 1
                    return
                answers[i] = [a["text"] for a in r.json()["answers"]]

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        return time.perf_counter() - t0, latencies, answers, errors


def run(server: Server, bodies: list[dict], concurrency: int):
    return asyncio.run(_run(server.url, bodies, concurrency))


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def level(a: Server, b: Server, bodies: list[dict], concurrency: int) -> dict:
    """A B B A, half the requests per run; both systems' totals."""
    half = len(bodies) // 2
    parts = {"A": [bodies[:half], bodies[half:]], "B": [bodies[:half], bodies[half:]]}
    acc = {k: {"seconds": 0.0, "lat": [], "answers": [], "errors": 0} for k in "AB"}
    before = a.batching()
    for name, server, part in (("A", a, 0), ("B", b, 0), ("B", b, 1), ("A", a, 1)):
        seconds, lat, answers, errors = run(server, parts[name][part], concurrency)
        slot = acc[name]
        slot["seconds"] += seconds
        slot["lat"] += lat
        slot["errors"] += errors
        slot["answers"].append(answers)
    after = a.batching()
    out = {}
    for name in "AB":
        slot = acc[name]
        out[name] = {"req_s": len(bodies) / slot["seconds"], "p50": percentile(slot["lat"], 0.50),
                     "p95": percentile(slot["lat"], 0.95), "p99": percentile(slot["lat"], 0.99),
                     "errors": slot["errors"]}
    calls = after["batches"] - before["batches"]
    out["A"]["mean_batch"] = (after["jobs"] - before["jobs"]) / calls if calls else 0.0
    a_answers = acc["A"]["answers"][0] + acc["A"]["answers"][1]
    b_answers = acc["B"]["answers"][0] + acc["B"]["answers"][1]
    out["same_answers"] = sum(x == y and x is not None for x, y in zip(a_answers, b_answers)) / len(bodies)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=192, help="requests per concurrency level and system")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1, 1],
                    help="torch threads of the servers (default: all cores, then 1)")
    ap.add_argument("--max-batch", type=int, default=32, help="A's --max-batch")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="A's --max-wait-ms")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    ap.add_argument("--model", default=None, help="QA model directory (default: the shipped one)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_serve.json"))
    args = ap.parse_args()

    bodies, source = requests_pool(args.requests)
    chars = sum(len(b["context"]) for b in bodies) / len(bodies)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"requests: {source}, contexts {chars:.0f} characters on average; {args.requests} per level and system")
    extra = ["--precision", args.precision] + (["--model", args.model] if args.model else [])
    results = {"machine": platform.platform(), "cpus": os.cpu_count(), "source": source, "avg_chars": chars,
               "levels": {}}
    for threads in args.threads:
        a = Server(threads, args.max_batch, extra + ["--max-wait-ms", str(args.max_wait_ms)])
        b = Server(threads, 1, extra)
        try:
            for s in (a, b):  # warm-up: first calls allocate and pick kernels
                run(s, bodies[:16], 4)
            memory = {"A": {"warm": a.memory_mb()}, "B": {"warm": b.memory_mb()}}
            print(f"\n## torch threads = {threads}   (A: --max-batch {args.max_batch} --max-wait-ms "
                  f"{args.max_wait_ms}; B: --max-batch 1)\n")
            print("| concurrency | A req/s | B req/s | A/B | A p50 / p95 / p99 s | B p50 / p95 / p99 s "
                  "| A mean group | errors A/B | same answers |")
            print("|---|---|---|---|---|---|---|---|---|")
            for c in args.concurrency:
                r = level(a, b, bodies, c)
                results["levels"][f"threads={threads} c={c}"] = r
                A, B = r["A"], r["B"]
                print(f"| {c} | {A['req_s']:.1f} | {B['req_s']:.1f} | {A['req_s'] / B['req_s']:.2f}x "
                      f"| {A['p50']:.2f} / {A['p95']:.2f} / {A['p99']:.2f} | {B['p50']:.2f} / {B['p95']:.2f} / "
                      f"{B['p99']:.2f} | {A['mean_batch']:.1f} | {A['errors']}/{B['errors']} "
                      f"| {100 * r['same_answers']:.1f}% |", flush=True)
            for name, s in (("A", a), ("B", b)):
                memory[name]["after"] = s.memory_mb()
            results[f"memory threads={threads}"] = memory
            print("\nresident memory MB (after warm-up -> after the load, peak): " + "; ".join(
                f"{n} {m['warm']['rss_mb']:.0f} -> {m['after']['rss_mb']:.0f} (peak {m['after']['peak_mb']:.0f})"
                for n, m in memory.items()))
        finally:
            a.stop()
            b.stop()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
