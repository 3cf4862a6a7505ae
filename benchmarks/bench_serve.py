"""`bertforge serve` under load: dynamic batching vs one request per model call, side by side.

    .venv/bin/python benchmarks/bench_serve.py [--requests 192] [--concurrency 1 4 16 64] [--threads 2 1]
                                               [--contexts paragraph|sentence] [--precision fp32|bf16|int8]

For each torch thread count, three servers answer with the shipped QA model, each in its own process:
  A  `bertforge serve --max-batch 32 --max-wait-ms 5`: dynamic batching, one inference worker;
  B  `bertforge serve --max-batch 1`: one request per model call, the same one worker (a queue);
  C  a plain FastAPI endpoint (`def`, so FastAPI runs it in its thread pool) calling
     `QuestionAnswerer.answer` per request: what a server without batching usually is, N requests
     running the model at once in N threads.
All get the same requests (SQuAD v1.1 dev, first question of spread-out paragraphs, the paragraph or
only the sentence holding the answer as the context; the bundled demo passage when the shared data is
absent) at each concurrency, interleaved in slices of 4 x the concurrency (A B C, C B A, A B C, ...)
so they see the same machine load. Reported per level: requests/s, latency p50/p95/p99 (seconds, queueing included), the
mean group A formed, errors, the ratios A/B and A/C, and whether B and C answered as A did; then each
server's resident memory after warm-up, after all the load, and its peak.
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
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
SQUAD_DEV = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def sentence_of(context: str, at: int) -> str:
    """The sentence of `context` holding character `at`."""
    left = max((m.end() for m in re.finditer(r"[.!?]\s+", context[:at])), default=0)
    m = re.search(r"[.!?](\s|$)", context[at:])
    return context[left: at + (m.end() if m else len(context) - at)].strip()


def requests_pool(n: int, contexts: str = "paragraph") -> tuple[list[dict], str]:
    """n request bodies (question + paragraph, or + the answer's sentence), and where they come from."""
    if SQUAD_DEV.exists():
        data = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))["data"]
        paragraphs = [p for article in data for p in article["paragraphs"]]
        step = max(1, len(paragraphs) // n)  # spread over the articles: varied lengths
        picked = paragraphs[::step][:n]
        bodies = []
        for p in picked:
            qa = p["qas"][0]
            context = (p["context"] if contexts == "paragraph"
                       else sentence_of(p["context"], qa["answers"][0]["answer_start"]))
            bodies.append({"question": qa["question"], "context": context, "top_k": 1})
        return bodies, f"SQuAD v1.1 dev, {len(bodies)} {contexts}s (first question of each paragraph)"
    passage = (ROOT / "src" / "bertforge" / "assets" / "demo_passage.txt").read_text(encoding="utf-8")
    questions = ["When was the Transformer introduced?", "What does BERT stand for?", "Who published BERT?",
                 "How many encoder layers does the base Transformer have?"]
    bodies = [{"question": questions[i % len(questions)], "context": passage, "top_k": 1} for i in range(n)]
    return bodies, "the bundled demo passage (shared SQuAD data not found)"


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, so no server outlives it (Linux prctl)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---- a server process ---------------------------------------------------------------------------

class Server:
    """A server process on a free port (`bertforge serve`, or this file's naive one); stderr drained."""

    @classmethod
    def serve(cls, threads: int, max_batch: int, extra: list[str]) -> Server:
        return cls([sys.executable, "-m", "bertforge", "--threads", str(threads), "serve", "--port", "0",
                    "--no-embed", "--max-batch", str(max_batch), "--timeout", "600", "--max-queue", "1024", *extra])

    @classmethod
    def naive(cls, threads: int, extra: list[str]) -> Server:
        return cls([sys.executable, __file__, "--naive-server", "--threads", str(threads), *extra])

    wait_policy = "PASSIVE"  # OMP_WAIT_POLICY of every server (the CLI's default; C gets it too)

    def __init__(self, cmd: list[str]):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": self.wait_policy}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=env, preexec_fn=_die_with_parent)
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far, all its threads (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def level(servers: dict[str, Server], bodies: list[dict], concurrency: int) -> dict:
    """Every system on the same slices of the requests, in the order A B C, then C B A on the next slice,
    and so on: each system samples the same minutes of a noisy shared machine. A slice holds 4 x the
    concurrency (at least 8 requests), so most of it runs at full concurrency; at least 2 slices."""
    size = max(8, 4 * concurrency)
    n = max(len(bodies), 2 * size)
    bodies = (bodies * (n // len(bodies) + 1))[:n]
    names = list(servers)
    acc = {k: {"seconds": 0.0, "cpu": 0.0, "lat": [], "answers": [], "errors": 0} for k in names}
    before = servers["A"].batching()
    for k, start in enumerate(range(0, n, size)):
        part = bodies[start:start + size]
        for name in (names if k % 2 == 0 else names[::-1]):
            cpu = servers[name].cpu_seconds()
            seconds, lat, answers, errors = run(servers[name], part, concurrency)
            slot = acc[name]
            slot["cpu"] += servers[name].cpu_seconds() - cpu
            slot["seconds"] += seconds
            slot["lat"] += lat
            slot["errors"] += errors
            slot["answers"] += answers
    after = servers["A"].batching()
    out = {"requests": n}
    for name in names:
        slot = acc[name]
        same = sum(x == y and x is not None for x, y in zip(slot["answers"], acc["A"]["answers"]))
        out[name] = {"req_s": n / slot["seconds"], "cpu_ms": 1000 * slot["cpu"] / n,
                     "p50": percentile(slot["lat"], 0.50), "p95": percentile(slot["lat"], 0.95),
                     "p99": percentile(slot["lat"], 0.99), "errors": slot["errors"], "same_as_A": same / n}
    calls = after["batches"] - before["batches"]
    out["A"]["mean_batch"] = (after["jobs"] - before["jobs"]) / calls if calls else 0.0
    return out


class NaiveQuestion(BaseModel):
    """System C's request (module level: FastAPI resolves the annotation by name)."""

    question: str
    context: str
    top_k: int = 1


def naive_server(args: argparse.Namespace) -> None:
    """System C: no batcher, no worker; FastAPI runs each request's model call in its own thread."""
    import torch
    from fastapi import FastAPI

    sys.path.insert(0, str(ROOT / "src"))
    from bertforge.serve.server import serve_forever
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

    torch.set_num_threads(args.threads[0])
    qa = QuestionAnswerer(args.model or DEFAULT_MODEL, precision=args.precision)
    app = FastAPI()
    jobs = {"n": 0}

    @app.post("/api/qa")
    def answer(q: NaiveQuestion) -> dict:  # `def`: run in FastAPI's thread pool, concurrently
        jobs["n"] += 1
        return {"answers": [a.to_dict() for a in qa.answer(q.question, q.context, q.top_k)]}

    @app.get("/health")
    def health() -> dict:
        return {"batching": {"jobs": jobs["n"], "batches": jobs["n"]}}

    serve_forever(app, "127.0.0.1", 0, log_level="warning", access_log=False,
                  announce=lambda url: print(f"open {url}/", file=sys.stderr, flush=True))


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally`s: stop the servers
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=192,
                    help="requests per concurrency level and system (at least 8 x the concurrency are sent)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1, 1],
                    help="torch threads of the servers (default: all cores, then 1)")
    ap.add_argument("--max-batch", type=int, default=32, help="A's --max-batch")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="A's --max-wait-ms")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    ap.add_argument("--model", default=None, help="QA model directory (default: the shipped one)")
    ap.add_argument("--contexts", default="paragraph", choices=("paragraph", "sentence"),
                    help="the whole SQuAD paragraph, or only the sentence holding the answer")
    ap.add_argument("--systems", default="ABC", help="which of A B C to run (A is always run)")
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE"),
                    help="OpenMP threads sleep (PASSIVE, what `bertforge` sets) or spin (ACTIVE) while they wait")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_serve.json"))
    ap.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)  # system C's process
    args = ap.parse_args()
    if args.naive_server:
        return naive_server(args)

    Server.wait_policy = args.omp_wait_policy
    bodies, source = requests_pool(args.requests, args.contexts)
    chars = sum(len(b["context"]) for b in bodies) / len(bodies)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({platform.processor() or 'cpu'}), "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"requests: {source}, contexts {chars:.0f} characters on average; {args.requests} per level and system; "
          f"OMP_WAIT_POLICY={args.omp_wait_policy}")
    extra = ["--precision", args.precision] + (["--model", args.model] if args.model else [])
    results = {"machine": platform.platform(), "cpus": os.cpu_count(), "source": source, "avg_chars": chars,
               "levels": {}}
    systems = "A" + args.systems.replace("A", "")
    for threads in args.threads:
        servers = {"A": Server.serve(threads, args.max_batch, extra + ["--max-wait-ms", str(args.max_wait_ms)])}
        if "B" in systems:
            servers["B"] = Server.serve(threads, 1, extra)
        if "C" in systems:
            servers["C"] = Server.naive(threads, extra)
        try:
            for s in servers.values():  # warm-up: first calls allocate and pick kernels
                run(s, bodies[:16], 4)
            memory = {name: {"warm": s.memory_mb()} for name, s in servers.items()}
            others = [n for n in servers if n != "A"]
            print(f"\n## torch threads = {threads}   (A: --max-batch {args.max_batch} --max-wait-ms "
                  f"{args.max_wait_ms}; B: --max-batch 1; C: a thread per request)\n")
            print("| concurrency (requests) | " + " | ".join(f"{n} req/s" for n in servers) + " | "
                  + " | ".join(f"A/{n}" for n in others) + " | "
                  + " | ".join(f"{n} CPU ms/req" for n in servers) + " | "
                  + " | ".join(f"{n} p50 / p95 / p99 s" for n in servers)
                  + " | A mean group | errors | same answers as A |")
            print("|---" * (4 + 3 * len(servers) + len(others)) + "|")
            for c in args.concurrency:
                r = level(servers, bodies, c)
                results["levels"][f"threads={threads} c={c}"] = r
                A = r["A"]
                print(f"| {c} ({r['requests']}) | " + " | ".join(f"{r[n]['req_s']:.1f}" for n in servers) + " | "
                      + " | ".join(f"{A['req_s'] / r[n]['req_s']:.2f}x" for n in others) + " | "
                      + " | ".join(f"{r[n]['cpu_ms']:.0f}" for n in servers) + " | "
                      + " | ".join(f"{r[n]['p50']:.2f} / {r[n]['p95']:.2f} / {r[n]['p99']:.2f}" for n in servers)
                      + f" | {A['mean_batch']:.1f} | " + "/".join(str(r[n]["errors"]) for n in servers) + " | "
                      + "/".join(f"{100 * r[n]['same_as_A']:.0f}%" for n in others) + " |", flush=True)
            for name, s in servers.items():
                memory[name]["after"] = s.memory_mb()
            results[f"memory threads={threads}"] = memory
            print("\nresident memory MB (after warm-up -> after the load, peak): " + "; ".join(
                f"{n} {m['warm']['rss_mb']:.0f} -> {m['after']['rss_mb']:.0f} (peak {m['after']['peak_mb']:.0f})"
                for n, m in memory.items()))
        finally:
            for s in servers.values():
                s.stop()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
