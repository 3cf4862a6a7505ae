"""Tokenizer throughput: bertforge vs HF BertTokenizer (pure Python) vs HF BertTokenizerFast (Rust).

Same vocab (bert-base-uncased, 30522), several MB of real English text (shared/data/corpus, lines
taken round-robin from the files), one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false).
Modes:
  tokenize        line by line, token strings
  encode          line by line, ids + offsets ([CLS] ... [SEP]); HF Python has no offsets, so it
                  gives ids only (its best case)
  batch           batches of --batch lines, padded to the longest, ids + offsets (bertforge,
                  Rust) or ids (HF Python)
bertforge starts every pass with a fresh tokenizer (empty chunk cache), so cache warm-up is paid
inside the timing. Rounds are interleaved and the median is reported; throughput is measured on
process CPU time (the machine is shared; wall time is printed too). Before timing, the three outputs
are checked identical: ids of all three, offsets of bertforge and Rust.

    .venv/bin/python benchmarks/bench_tokenizer.py [--mb 3] [--rounds 2] [--batch 64]
"""
from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from bertforge.tokenizer.tokenizer import Tokenizer  # noqa: E402


def data_dir() -> Path:
    return Path(os.environ.get("BERTFORGE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def vocab_file() -> Path:
    from bertforge.models.bert.checkpoint import minilm_path

    return Path(minilm_path()) / "vocab.txt"


def load_lines(megabytes: float) -> list[str]:
    """Non-empty lines, round-robin over the corpus files, until `megabytes` of UTF-8."""
    files = sorted((data_dir() / "corpus").glob("*.txt"))
    if not files:
        raise SystemExit(f"no corpus at {data_dir() / 'corpus'} (set BERTFORGE_DATA)")
    per_file = [[ln for ln in f.read_text(encoding="utf-8").split("\n") if ln.strip()] for f in files]
    out, size, i = [], 0, 0
    while size < megabytes * 1e6 and any(i < len(p) for p in per_file):
        for p in per_file:
            if i < len(p):
                out.append(p[i])
                size += len(p[i].encode("utf-8"))
        i += 1
    return out


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, tokens) of one call."""
    c, w = time.process_time(), time.perf_counter()
    n = fn()
    return time.process_time() - c, time.perf_counter() - w, n


def main() -> None:
    import transformers

    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=3.0, help="MB of text")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    vocab = str(vocab_file())
    lines = load_lines(args.mb)
    mb = sum(len(ln.encode("utf-8")) for ln in lines) / 1e6
    batches = [lines[i:i + args.batch] for i in range(0, len(lines), args.batch)]
    slow = transformers.BertTokenizer(vocab, do_lower_case=True)
    fast = transformers.BertTokenizerFast(vocab, do_lower_case=True)
    print(f"{len(lines)} lines, {mb:.2f} MB, vocab {vocab}")

    # ---- identical outputs
    ours = Tokenizer.from_vocab(vocab)
    mismatch = {"ids (python)": 0, "ids (rust)": 0, "offsets (rust)": 0, "tokens (python)": 0}
    for ln in lines:
        enc = ours.encode(ln)
        ref = fast(ln, return_offsets_mapping=True)
        mismatch["ids (python)"] += enc.input_ids != slow.encode(ln)
        mismatch["ids (rust)"] += enc.input_ids != ref["input_ids"]
        mismatch["offsets (rust)"] += enc.offsets != [tuple(o) for o in ref["offset_mapping"]]
        mismatch["tokens (python)"] += ours.tokenize(ln) != slow.tokenize(ln)
    print("lines that differ from bertforge: " + ", ".join(f"{k} {v}" for k, v in mismatch.items()))

    # ---- timing
    def bf_tokenize() -> int:
        t = Tokenizer.from_vocab(vocab)
        return sum(len(t.tokenize(ln)) for ln in lines)

    def bf_encode() -> int:
        t = Tokenizer.from_vocab(vocab)
        return sum(len(t.encode(ln).offsets) for ln in lines)

    def bf_batch() -> int:
        t = Tokenizer.from_vocab(vocab)
        return sum(sum(map(sum, t.encode_batch(b).attention_mask)) for b in batches)

    def py_batch() -> int:
        return sum(sum(map(sum, slow(b, padding="longest")["attention_mask"])) for b in batches)

    def rs_batch() -> int:
        return sum(sum(map(sum, fast(b, padding="longest", return_offsets_mapping=True)["attention_mask"]))
                   for b in batches)

    cases = {
        ("tokenize", "bertforge"): bf_tokenize,
        ("tokenize", "HF Python"): lambda: sum(len(slow.tokenize(ln)) for ln in lines),
        ("tokenize", "HF Rust"): lambda: sum(len(fast.tokenize(ln)) for ln in lines),
        ("encode", "bertforge"): bf_encode,
        ("encode", "HF Python"): lambda: sum(len(slow(ln)["input_ids"]) for ln in lines),
        ("encode", "HF Rust"): lambda: sum(len(fast(ln, return_offsets_mapping=True)["offset_mapping"])
                                           for ln in lines),
        ("batch", "bertforge"): bf_batch,
        ("batch", "HF Python"): py_batch,
        ("batch", "HF Rust"): rs_batch,
    }
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {k: [] for k in cases}
    for r in range(args.rounds):
        for key, fn in cases.items():
            results[key].append(timed(fn))
            print(f"  round {r + 1}: {key[0]:8s} {key[1]:10s} {results[key][-1][0]:7.2f} s cpu", flush=True)

    def rate(key):  # (MB/s cpu, tokens/s cpu, MB/s wall)
        cpu = statistics.median(x[0] for x in results[key])
        wall = statistics.median(x[1] for x in results[key])
        return mb / cpu, results[key][0][2] / cpu, mb / wall

    print(f"\n{len(lines)} lines, {mb:.2f} MB, single thread, median of {args.rounds} rounds (CPU time)\n")
    print("| mode | tokenizer | MB/s | tokens/s | MB/s (wall) | x HF Python | x HF Rust |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode in ("tokenize", "encode", "batch"):
        py, rs = rate((mode, "HF Python"))[0], rate((mode, "HF Rust"))[0]
        for name in ("bertforge", "HF Python", "HF Rust"):
            m, t, w = rate((mode, name))
            print(f"| {mode} | {name} | {m:.2f} | {t / 1e3:,.0f}k | {w:.2f} | {m / py:.1f} | {m / rs:.2f} |")
    print("\nencode/batch: bertforge and Rust return ids + offsets; HF Python returns ids only.")
    print(f"batch: {args.batch} lines per call, padded to the longest.")


if __name__ == "__main__":
    main()
