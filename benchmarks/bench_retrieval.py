"""Ask a folder (issue 16): indexing, retrieval quality, latency, end-to-end QA and the flat store's
scale, side by side with an anchor a user would pick, in one run.

The folder: every SQuAD v1.1 dev paragraph as a file (2,067 files, 48 article folders); the questions:
XQuAD-en (1,190; their paragraphs are 240 of those files). `bertforge.retrieval.evaluation` builds both.

(a) Indexing from scratch (a child process each, for its peak RSS): `DocumentIndex.build` with the
    default bf16 embedding (where the CPU has it) and with fp32, vs the anchor: sentence-transformers
    (the same all-MiniLM-L6-v2 files, fp32) encoding the same passages into a FAISS IndexFlatIP.
    Then a re-index of the unchanged folder (the incremental path).
(b) Recall@1/5/20 of the gold paragraph's file: BM25 alone (bm25s, the BM25-only pipeline), vectors
    alone, the hybrid (convex mix, the default) and RRF, and the anchor (sentence-transformers + FAISS).
(c) Per-question latency (one question at a time, as a user asks): retrieval and reading measured
    separately, K = 5 and 20, reader fp32 (the CLI default) and bf16; p50 / p95.
(d) End to end: SQuAD EM/F1 of the answers read from the folder (K = 1, 5, 20; hybrid, BM25-only and
    vector-only retrieval) vs the same reader given the gold paragraph.
(e) The flat store at 1k / 10k / 100k synthetic passages (random unit vectors, 384-d): query latency
    p50 / p95, vs FAISS IndexFlatIP (exact) and HNSW32 (approximate; build time and top-1 agreement).

Absolute times are for this machine (named in the output; 2 vCPU shared with other work): compare
the ratios. Torch runs on `--threads` threads (default 1).

    .venv/bin/python benchmarks/bench_retrieval.py [--threads 1] [--latency-questions 100]
        [--reader-precision bf16] [--skip-index] [--skip-e2e] [--json runs/bench_retrieval.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BERTFORGE_DATA") or ROOT.parent / "shared" / "data")
SQUAD_DEV = DATA / "squad" / "dev-v1.1.json"
XQUAD_EN = DATA / "xquad" / "xquad.en.json"
WORK = ROOT / "runs" / "bench_retrieval"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} vCPU (shared), torch threads {os.environ.get('OMP_NUM_THREADS', '?')}"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.txt"))


# ---- (a) indexing, each in a child process -------------------------------------------------------

def child_build(folder: str, out: str, precision: str) -> dict:
    from bertforge.retrieval import DocumentIndex

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    index = DocumentIndex.build(folder, out, precision=precision)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    again = DocumentIndex.build(folder, out, precision=precision)
    return {"passages": len(index), "seconds": seconds, "embedded": index.report.embedded,
            "reindex_seconds": time.perf_counter() - t, "reindex_embedded": again.report.embedded,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_anchor(index_dir: str, out: str) -> dict:
    """sentence-transformers + FAISS on the same passages (the chunking is ours: same units of retrieval)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # local files only: never a hub download
    import faiss
    from sentence_transformers import SentenceTransformer

    from bertforge.models.bert.checkpoint import minilm_path

    manifest = json.loads((Path(index_dir) / "index.json").read_text())
    texts = [json.loads(line)["text"] for line in open(Path(index_dir) / manifest["data"] / "passages.jsonl")]
    t = time.perf_counter()
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    store = faiss.IndexFlatIP(vectors.shape[1])
    store.add(vectors.astype(np.float32))
    faiss.write_index(store, out)
    return {"passages": len(texts), "seconds": time.perf_counter() - t,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(kind: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args], check=True, capture_output=True,
                         text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_indexing(folder: Path) -> dict:
    mb = folder_bytes(folder) / 1e6
    rows = {}
    for name, precision in [("bertforge (auto: bf16 here)", "auto"), ("bertforge fp32", "fp32")]:
        r = run_child("build", str(folder), str(WORK / f"index-{precision}"), precision)
        rows[name] = {**r, "passages_per_s": r["passages"] / r["seconds"], "mb_per_s": mb / r["seconds"]}
    r = run_child("anchor", str(WORK / "index-auto"), str(WORK / "anchor.faiss"))
    rows["sentence-transformers + FAISS flat (fp32)"] = {**r, "passages_per_s": r["passages"] / r["seconds"],
                                                         "mb_per_s": mb / r["seconds"]}
    print(f"\n(a) Indexing {mb:.1f} MB of text ({folder_bytes(folder)} bytes, "
          f"{len(list(folder.rglob('*.txt')))} files) from scratch")
    print("| system | passages | seconds | passages/s | MB/s | peak RSS MB | re-index unchanged |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    anchor = rows["sentence-transformers + FAISS flat (fp32)"]["seconds"]
    for name, r in rows.items():
        again = f"{r['reindex_seconds']:.1f} s ({r['reindex_embedded']} embedded)" if "reindex_seconds" in r else "n/a"
        print(f"| {name} | {r['passages']} | {r['seconds']:.1f} ({anchor / r['seconds']:.2f}x anchor speed) | "
              f"{r['passages_per_s']:.1f} | {r['mb_per_s']:.3f} | {r['peak_rss_mb']:.0f} | {again} |")
    return rows


# ---- (b) recall ----------------------------------------------------------------------------------

def bench_recall(index, questions, anchor_path: Path) -> dict:
    from bertforge.retrieval.evaluation import recall_at_k

    qs, gold = [g.question for g in questions], [g.file for g in questions]
    rows = {}
    for name, mode, fusion in [("BM25 alone (bm25s)", "bm25", None), ("vectors alone (MiniLM, flat)", "vector", None),
                               ("hybrid, convex mix 0.5 (default)", "hybrid", "convex"),
                               ("hybrid, RRF k=60", "hybrid", "rrf")]:
        if fusion:
            index.fusion = fusion
        hits = index.search_many(qs, 20, mode)
        rows[name] = recall_at_k([[p.file for p in h] for h in hits], gold)
    index.fusion = "convex"
    if anchor_path.exists():
        os.environ["HF_HUB_OFFLINE"] = "1"
        import faiss
        from sentence_transformers import SentenceTransformer

        from bertforge.models.bert.checkpoint import minilm_path

        st = SentenceTransformer(str(minilm_path()), device="cpu")
        _, ids = faiss.read_index(str(anchor_path)).search(st.encode(qs, normalize_embeddings=True), 20)
        rows["anchor: sentence-transformers + FAISS"] = recall_at_k(
            [[index.passages[i].file for i in row] for row in ids], gold)
    print(f"\n(b) Recall@k of the gold paragraph ({len(qs)} XQuAD-en questions, {len(index)} passages)")
    print("| retrieval | R@1 | R@5 | R@20 |\n| --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r[1]:.1f} | {r[5]:.1f} | {r[20]:.1f} |")
    return {name: {str(k): v for k, v in r.items()} for name, r in rows.items()}


# ---- (c) latency ---------------------------------------------------------------------------------

def bench_latency(index, questions, n: int) -> dict:
    from bertforge.retrieval.ask import read_passages
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    qs = [g.question for g in questions[:: max(1, len(questions) // n)][:n]]
    index.search(qs[0], 5)  # warm up
    rows = {}
    for precision in ("fp32", "bf16"):
        reader = QuestionAnswerer(precision=precision)
        read_passages(reader, [qs[0]], [index.search(qs[0], 5)])
        for k in (5, 20):
            retrieve, read = [], []
            for q in qs:
                t = time.perf_counter()
                hits = index.search(q, k)
                t1 = time.perf_counter()
                read_passages(reader, [q], [hits])
                retrieve.append(t1 - t)
                read.append(time.perf_counter() - t1)
            total = [a + b for a, b in zip(retrieve, read)]
            rows[f"K={k}, reader {precision}"] = {
                "retrieval_p50_ms": pct(retrieve, 50), "retrieval_p95_ms": pct(retrieve, 95),
                "reading_p50_ms": pct(read, 50), "reading_p95_ms": pct(read, 95),
                "total_p50_ms": pct(total, 50), "total_p95_ms": pct(total, 95)}
    print(f"\n(c) Latency per question ({len(qs)} questions, one at a time), milliseconds")
    print("| setting | retrieval p50 | p95 | reading p50 | p95 | total p50 | p95 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['retrieval_p50_ms']:.0f} | {r['retrieval_p95_ms']:.0f} | {r['reading_p50_ms']:.0f} | "
              f"{r['reading_p95_ms']:.0f} | {r['total_p50_ms']:.0f} | {r['total_p95_ms']:.0f} |")
    return rows


# ---- (d) end to end ------------------------------------------------------------------------------

def bench_end_to_end(index, questions, precision: str) -> dict:
    from bertforge.metrics.squad import squad_v1_scores
    from bertforge.retrieval import ask_docs_many
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    reader = QuestionAnswerer(precision=precision)
    gold = {g.qid: list(g.answers) for g in questions}
    qs = [g.question for g in questions]
    rows = {}
    t = time.perf_counter()
    read = reader.answer_many(qs, [g.context for g in questions])
    rows["gold paragraph (reader alone)"] = {**squad_v1_scores(gold, {g.qid: a[0].text if a else ""
                                                                      for g, a in zip(questions, read)}),
                                             "seconds": time.perf_counter() - t}
    for name, mode, k in [("folder, hybrid, K=1", "hybrid", 1), ("folder, hybrid, K=5 (default)", "hybrid", 5),
                          ("folder, hybrid, K=20", "hybrid", 20), ("folder, BM25-only pipeline, K=5", "bm25", 5),
                          ("folder, vectors only, K=5", "vector", 5)]:
        t = time.perf_counter()
        found = []
        for i in range(0, len(qs), 64):
            found += ask_docs_many(reader, index, qs[i:i + 64], top_passages=k, mode=mode)
        rows[name] = {**squad_v1_scores(gold, {g.qid: a[0].text if a else "" for g, a in zip(questions, found)}),
                      "seconds": time.perf_counter() - t}
    ref = rows["gold paragraph (reader alone)"]["f1"]
    print(f"\n(d) End to end, SQuAD EM/F1 on {len(qs)} XQuAD-en questions (reader {precision}, batched)")
    print("| answers from | EM | F1 | F1 - gold F1 | seconds |\n| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['exact_match']:.1f} | {r['f1']:.1f} | {r['f1'] - ref:+.1f} | {r['seconds']:.0f} |")
    return rows


# ---- (e) the flat store at scale -----------------------------------------------------------------

def bench_store_scale(sizes=(1_000, 10_000, 100_000), dim: int = 384, queries: int = 100) -> dict:
    import faiss

    from bertforge.retrieval import FaissStore, FlatStore

    faiss.omp_set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rng = np.random.default_rng(0)
    rows = {}
    for n in sizes:
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        qs = vectors[rng.choice(n, queries)] + 0.05 * rng.standard_normal((queries, dim), dtype=np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        exact = None
        for name, store in [("FlatStore (numpy)", FlatStore()), ("FAISS IndexFlatIP", FaissStore("Flat")),
                            ("FAISS HNSW32", FaissStore("HNSW32"))]:
            t = time.perf_counter()
            store.build(vectors)
            build = time.perf_counter() - t
            times, ids = [], []
            for q in qs:
                t = time.perf_counter()
                ids.append(store.search(q[None], 10)[1][0])
                times.append(time.perf_counter() - t)
            if exact is None:
                exact = ids
            # random unit vectors are near-orthogonal: only the nearest (the query's source) is meaningful
            recall = float(np.mean([a[0] == b[0] for a, b in zip(ids, exact)]))
            rows[f"{n} {name}"] = {"n": n, "store": name, "build_s": build, "p50_ms": pct(times, 50),
                                   "p95_ms": pct(times, 95), "top1_agreement_with_exact": recall}
    print(f"\n(e) Vector search latency, one query, top 10 of n synthetic {dim}-d unit vectors, {queries} queries")
    print("| n | store | build s | p50 ms | p95 ms | top-1 = exact's |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows.values():
        print(f"| {r['n']} | {r['store']} | {r['build_s']:.2f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
              f"{r['top1_agreement_with_exact']:.2f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads")
    ap.add_argument("--latency-questions", type=int, default=100, help="questions timed one at a time")
    ap.add_argument("--reader-precision", default="bf16", choices=("fp32", "bf16"),
                    help="reader precision of the end-to-end section (gold and folder alike)")
    ap.add_argument("--skip-index", action="store_true", help="reuse the indexes of a previous run")
    ap.add_argument("--skip-e2e", action="store_true", help="leave out the end-to-end section")
    ap.add_argument("--json", type=Path, default=WORK / "results.json", help="write all numbers here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_build(*rest) if kind == "build" else child_anchor(*rest)))
        return

    from bertforge.retrieval import DocumentIndex
    from bertforge.retrieval.evaluation import gold_questions, write_squad_folder

    if not SQUAD_DEV.exists() or not XQUAD_EN.exists():
        sys.exit(f"needs {SQUAD_DEV} and {XQUAD_EN} (the shared data)")
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}")
    folder = WORK / "squad-dev"
    questions = gold_questions(XQUAD_EN, write_squad_folder(SQUAD_DEV, folder))
    results = {"machine": machine(), "threads": args.threads}
    if not args.skip_index or not (WORK / "index-auto" / "index.json").exists():
        results["indexing"] = bench_indexing(folder)
    index = DocumentIndex.load(WORK / "index-auto")
    results["recall"] = bench_recall(index, questions, WORK / "anchor.faiss")
    results["latency"] = bench_latency(index, questions, args.latency_questions)
    if not args.skip_e2e:
        results["end_to_end"] = bench_end_to_end(index, questions, args.reader_precision)
    results["store_scale"] = bench_store_scale()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
