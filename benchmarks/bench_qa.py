"""QA speed and agreement: `bertforge qa` (QuestionAnswerer) vs HF `pipeline("question-answering")`
(transformers 4.x), same weights, same XQuAD-en questions, same window settings (384 / 128 shared
tokens = HF doc_stride 128), interleaved in chunks so both see the same machine load.

    .venv/bin/python benchmarks/bench_qa.py [--model DIR] [--questions 300] [--precision fp32 bf16 int8]

Prints questions/s for each, the ratio, how often the answers agree (exact text) and each side's EM/F1.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def main() -> None:
    import transformers

    from bertforge.data.squad import read_squad
    from bertforge.metrics.squad import squad_v1_scores
    from bertforge.qa import DEFAULT_MODEL, QuestionAnswerer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad" / "xquad.en.json")
    ap.add_argument("--questions", type=int, default=300, help="first N questions (0 = all 1,190)")
    ap.add_argument("--chunk", type=int, default=50, help="questions per interleaved round")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "int8"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    examples = read_squad(args.data)
    if args.questions:
        examples = examples[: args.questions]
    gold = {ex.qas_id: [a["text"] for a in ex.answers] for ex in examples}

    hf_model = transformers.BertForQuestionAnswering.from_pretrained(str(args.model)).eval()
    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(args.model))
    pipe = transformers.pipeline("question-answering", model=hf_model, tokenizer=hf_tok, device=-1)
    ours = {p: QuestionAnswerer(args.model, precision=p, batch_size=args.batch_size) for p in args.precision}

    chunks = [examples[i : i + args.chunk] for i in range(0, len(examples), args.chunk)]
    times = {name: 0.0 for name in ["hf-pipeline", *ours]}
    preds: dict[str, dict[str, str]] = {name: {} for name in times}
    for chunk in chunks:  # interleave: each chunk runs on every system before the next chunk
        t = time.perf_counter()
        with torch.inference_mode():
            out = pipe(question=[e.question for e in chunk], context=[e.context for e in chunk],
                       max_seq_len=384, doc_stride=128, max_question_len=64, max_answer_len=30,
                       batch_size=args.batch_size)
        times["hf-pipeline"] += time.perf_counter() - t
        out = out if isinstance(out, list) else [out]
        preds["hf-pipeline"].update({e.qas_id: o["answer"].strip() for e, o in zip(chunk, out)})
        for p, qa in ours.items():
            t = time.perf_counter()
            answers = qa.answer_many([e.question for e in chunk], [e.context for e in chunk])
            times[p] += time.perf_counter() - t
            preds[p].update({e.qas_id: (a[0].text if a else "") for e, a in zip(chunk, answers)})

    n = len(examples)
    print(f"machine: {platform.machine()} CPU, {torch.get_num_threads()} threads; model {args.model}; "
          f"{n} XQuAD-en questions")
    print(f"{'system':<14} {'q/s':>7} {'vs HF':>7} {'agree w/ HF':>12} {'EM':>6} {'F1':>6}")
    base = times["hf-pipeline"]
    result = {}
    for name, t in times.items():
        agree = sum(preds[name][q] == preds["hf-pipeline"][q] for q in gold) / n
        s = squad_v1_scores(gold, preds[name])
        result[name] = {"q_per_s": n / t, "speedup": base / t, "agree": agree, **s}
        print(f"{name:<14} {n / t:>7.2f} {base / t:>6.2f}x {agree:>11.1%} {s['exact_match']:>6.2f} {s['f1']:>6.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
