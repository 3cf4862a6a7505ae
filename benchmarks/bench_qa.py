"""QA speed and agreement: `bertforge qa` (QuestionAnswerer) vs HF `pipeline("question-answering")`
(transformers 4.x), same weights, same XQuAD-en questions, same window settings (384 / 128 shared
tokens = HF doc_stride 128), interleaved in chunks so all systems see the same machine load.

    .venv/bin/python benchmarks/bench_qa.py [--model DIR] [--questions 300] [--precision fp32 bf16 int8]
                                            [--hf-precision fp32 bf16 int8]

Prints questions/s for each system, the speed-up over HF fp32, how often the answers agree with HF fp32
(exact text) and each system's EM/F1. HF bf16 runs the pipeline under bf16 autocast, HF int8 on the
dynamically quantized HF model: the same precision modes as bertforge's.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

XQUAD_EN = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad" / "xquad.en.json"


def hf_pipeline(model_dir: Path, precision: str):
    """HF's QA pipeline on `model_dir`, and the context its calls run under for `precision`."""
    import transformers

    from bertforge.inference import precision_context

    model = transformers.BertForQuestionAnswering.from_pretrained(str(model_dir), attn_implementation="sdpa").eval()
    if precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    tok = transformers.BertTokenizerFast.from_pretrained(str(model_dir))
    return transformers.pipeline("question-answering", model=model, tokenizer=tok, device=-1), \
        (lambda: precision_context("cpu", "fp32" if precision == "int8" else precision))  # torch.ao int8: fp32 in


def qa_compare(model_dir: Path, examples, precisions=("fp32", "bf16"), hf_precisions=("fp32",),
               batch_size: int = 32, chunk: int = 50, clock=time.perf_counter) -> dict[str, dict[str, float]]:
    """Run every system over `examples` in interleaved chunks; return {system: q_per_s, speedup, agree, EM, F1}."""
    from bertforge.metrics.squad import squad_v1_scores
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    gold = {ex.qas_id: [a["text"] for a in ex.answers] for ex in examples}
    systems = {}
    for p in hf_precisions:
        pipe, ctx = hf_pipeline(model_dir, p)

        def run_hf(chunk_, pipe=pipe, ctx=ctx):
            with torch.inference_mode(), ctx():
                out = pipe(question=[e.question for e in chunk_], context=[e.context for e in chunk_],
                           max_seq_len=384, doc_stride=128, max_question_len=64, max_answer_len=30,
                           batch_size=batch_size)
            out = out if isinstance(out, list) else [out]
            return [o["answer"].strip() for o in out]
        systems[f"hf {p}"] = run_hf
    for p in precisions:
        if p == "bf16-autocast":  # the bf16 mode before prepacking: autocast around the fp32 model
            from bertforge.tasks.qa.answerer import load_qa_model

            model, tok = load_qa_model(model_dir, "cpu", "fp32")
            qa = QuestionAnswerer(model=model, tokenizer=tok, precision="bf16", batch_size=batch_size,
                                  always_answer=True)
        else:
            # always_answer: HF's pipeline has no null threshold, so both return their best span
            qa = QuestionAnswerer(model_dir, precision=p, batch_size=batch_size, always_answer=True)

        def run_ours(chunk_, qa=qa):
            answers = qa.answer_many([e.question for e in chunk_], [e.context for e in chunk_])
            return [a[0].text if a else "" for a in answers]
        systems[f"bertforge {p}"] = run_ours

    first = examples[: min(8, len(examples))]
    for run in systems.values():  # warm-up (first-call allocations, quantized kernels)
        run(first)
    times = {name: 0.0 for name in systems}
    preds: dict[str, dict[str, str]] = {name: {} for name in systems}
    for i in range(0, len(examples), chunk):  # interleave: each chunk runs on every system in turn
        part = examples[i : i + chunk]
        order = list(systems.items()) if (i // chunk) % 2 else list(systems.items())[::-1]  # ABBA
        for name, run in order:
            t = clock()
            answers = run(part)
            times[name] += clock() - t
            preds[name].update({e.qas_id: a for e, a in zip(part, answers)})
    ref = "hf fp32" if "hf fp32" in systems else next(iter(systems))
    n = len(examples)
    result = {}
    for name, t in times.items():
        s = squad_v1_scores(gold, preds[name])
        result[name] = {"q_per_s": n / t, "speedup": times[ref] / t,
                        "agree": sum(preds[name][q] == preds[ref][q] for q in gold) / n,
                        "exact_match": s["exact_match"], "f1": s["f1"]}
    return result


def print_qa_table(result: dict, n: int, peak_note: str = "") -> None:
    print(f"{'system':<24} {'q/s':>7} {'vs HF fp32':>10} {'agree w/ HF fp32':>17} {'EM':>6} {'F1':>6}{peak_note}")
    for name, r in result.items():
        print(f"{name:<24} {r['q_per_s']:>7.2f} {r['speedup']:>9.2f}x {r['agree']:>16.1%} "
              f"{r['exact_match']:>6.2f} {r['f1']:>6.2f}")


def main() -> None:
    import json

    from bertforge.data.squad import read_squad
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=XQUAD_EN)
    ap.add_argument("--questions", type=int, default=300, help="first N questions (0 = all 1,190)")
    ap.add_argument("--chunk", type=int, default=50, help="questions per interleaved round")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"],
                    choices=["fp32", "bf16", "int8", "bf16-autocast"], help="bf16-autocast: bf16 before prepacking")
    ap.add_argument("--hf-precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "int8"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    examples = read_squad(args.data)
    if args.questions:
        examples = examples[: args.questions]
    result = qa_compare(args.model, examples, args.precision, args.hf_precision, args.batch_size, args.chunk)
    print(f"machine: {platform.machine()} CPU, {torch.get_num_threads()} threads; model {args.model}; "
          f"{len(examples)} XQuAD-en questions")
    print_qa_table(result, len(examples))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
