"""What each inference precision costs in accuracy: bertforge bf16 and int8 against its own fp32.

(a) QA, the shipped model on XQuAD-en (all 1,190 questions by default): EM / F1 with the official v1.1
    metric, and the share of questions whose answer text equals fp32's.
(b) Sentence vectors, all-MiniLM-L6-v2 on held-out corpus sentences: cosine to the fp32 vector (min, mean).

Run it in a process whose oneDNN is capped (`ONEDNN_MAX_CPU_ISA=AVX2`, `AVX512_CORE`) to see the
fallback paths' accuracy; the CPU's units and the paths taken are printed first.

    .venv/bin/python benchmarks/accuracy_precisions.py [--questions 0] [--sentences 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_inference import CORPUS
from bench_qa import XQUAD_EN


def main() -> None:
    from bertforge.data.squad import read_squad
    from bertforge.inference import cpu_matmul_units, int8_with_bf16, onednn_bf16, onednn_int8
    from bertforge.metrics.squad import squad_v1_scores
    from bertforge.tasks.embedding import SentenceEncoder
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=0, help="first N XQuAD-en questions (0 = all)")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = {"units": cpu_matmul_units(), "bf16 prepacked": onednn_bf16(), "int8 on oneDNN": onednn_int8(),
             "int8 remainder in bf16": int8_with_bf16()}
    print("matrix units and paths: " + ", ".join(f"{k}: {v}" for k, v in paths.items()))
    results: dict = {"paths": paths}

    examples = read_squad(XQUAD_EN)
    examples = examples[: args.questions] if args.questions else examples
    gold = {ex.qas_id: [a["text"] for a in ex.answers] for ex in examples}
    preds = {p: QuestionAnswerer(precision=p).predict(examples).predictions for p in ("fp32", "bf16", "int8")}
    print(f"\n(a) QA, shipped model, {len(examples)} XQuAD-en questions")
    print(f"{'precision':<10}{'EM':>7}{'F1':>7}{'answers = fp32':>16}")
    for p, pred in preds.items():
        s = squad_v1_scores(gold, pred)
        agree = sum(pred[k] == preds["fp32"][k] for k in gold) / len(gold)
        results[f"qa {p}"] = {"exact_match": s["exact_match"], "f1": s["f1"], "agree_fp32": agree}
        print(f"{p:<10}{s['exact_match']:>7.2f}{s['f1']:>7.2f}{agree:>16.1%}")

    lines = [s for s in CORPUS.read_text(encoding="utf-8").splitlines() if s.strip()][: args.sentences]
    ref = SentenceEncoder(precision="fp32").encode(lines)
    print(f"\n(b) sentence vectors, all-MiniLM-L6-v2, {len(lines)} held-out corpus sentences: cosine to fp32")
    for p in ("bf16", "int8"):
        cos = (SentenceEncoder(precision=p).encode(lines) * ref).sum(1)
        results[f"vectors {p}"] = {"min": float(cos.min()), "mean": float(cos.mean())}
        print(f"{p:<6} min {cos.min():.5f} mean {cos.mean():.5f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
