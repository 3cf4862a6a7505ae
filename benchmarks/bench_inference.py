"""Fast inference, side by side with HF transformers on the same weights (issue: fast inference).

(a) Encoder tokens/s on real sentences of varied length (the shared corpus, held-out file, in file
    order), batch 32, padded to the batch's longest as a user's tokenizer call gives them: HF
    `BertModel` (sdpa) and bertforge's `BertModel` get the *same* padded tensors; bertforge skips the
    padding inside (the packed path), HF computes it.
(b) The QA workload: XQuAD-en questions/s, `bertforge qa` vs HF `pipeline("question-answering")`
    (see bench_qa.py), with answer agreement and EM/F1.

Each in fp32, bf16 and int8 (dynamic quantization of the linear layers), with MFU: model FLOPs of the
real tokens / time / the matmul peak of that precision measured in the same run with the same clock
(best seen). bertforge's bf16 is the prepacked mode (`bertforge.inference.prepack_bf16`); "bf16-autocast"
is the mode before it (autocast around the fp32 model), kept as the before column. ONNX Runtime (when
`onnxruntime` and `onnx` are installed) runs HF's graph exported to ONNX and fused by its BERT optimiser
(`onnxruntime.transformers.optimizer`, model_type bert), fp32 and dynamically quantized int8, on the
encoder workload. Systems run interleaved, round after round; the median round is reported (the
machine is shared: compare ratios). `--clock cpu` times with the process's CPU time instead of the wall
clock: on a loaded machine with 1 thread it measures the work, not the waiting for a core.

    .venv/bin/python benchmarks/bench_inference.py [--sentences 640] [--questions 300] [--threads 1]
        [--model DIR (QA; default the shipped model)] [--compile] [--clock wall|cpu] [--no-ort]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from bench_qa import XQUAD_EN, print_qa_table, qa_compare

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "heldout.txt"
PRECISIONS = ("fp32", "bf16", "int8")
OURS = ("fp32", "bf16-autocast", "bf16", "int8")  # bertforge's systems; bf16-autocast = bf16 before prepacking
CLOCK = time.perf_counter  # --clock cpu: time.process_time


def peak_key(precision: str) -> str:
    return "bf16" if precision.startswith("bf16") else precision


def matmul_peak(precision: str, n: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of an n x n x n product in `precision` (int8: a dynamically quantized nn.Linear)."""
    if precision == "int8":
        lin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)),
                                                     {torch.nn.Linear}, dtype=torch.qint8)
        x = torch.randn(n, n)
        f = lambda: lin(x)  # noqa: E731
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        f = lambda: a @ b  # noqa: E731
    with torch.inference_mode():
        f()
        best = float("inf")
        for _ in range(reps):
            t = CLOCK()
            f()
            best = min(best, CLOCK() - t)
    return 2 * n**3 / best / 1e9


def encoder_flops(config, lengths) -> float:
    """Forward FLOPs on the real tokens: 2 x matmul parameters per token + QK^T and PV per sequence."""
    D, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return sum(L * (n * 2 * (4 * D * D + 2 * D * F) + 2 * 2 * n * n * D) for n in lengths)


def ort_systems(path: Path, batches: list[dict]) -> dict:
    """ONNX Runtime fp32 and int8 on HF's BertModel graph (exported once to a temporary folder), fused by
    onnxruntime's BERT optimiser; one intra-op thread per torch thread. {} when onnxruntime is missing."""
    import tempfile
    import warnings

    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:
        print("onnxruntime / onnx not installed: no ONNX Runtime rows (pip install onnxruntime onnx)")
        return {}
    import transformers

    folder = Path(tempfile.mkdtemp(prefix="bench_ort_"))
    hf = transformers.BertModel.from_pretrained(str(path), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(hf, tuple(batches[0][k] for k in names), str(folder / "model.onnx"), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={k: {0: "batch", 1: "seq"} for k in names + ["last_hidden_state"]})
        cfg = hf.config
        optimize_model(str(folder / "model.onnx"), model_type="bert", num_heads=cfg.num_attention_heads,
                       hidden_size=cfg.hidden_size).save_model_to_file(str(folder / "opt.onnx"))
        quantize_dynamic(str(folder / "opt.onnx"), str(folder / "int8.onnx"), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    systems = {}
    for p, file in (("fp32", "opt.onnx"), ("int8", "int8.onnx")):
        session = ort.InferenceSession(str(folder / file), options, providers=["CPUExecutionProvider"])
        systems[f"ort {p}"] = (lambda b, s=session: torch.from_numpy(
            s.run(None, {k: b[k].numpy() for k in names})[0]), p)
    return systems


def encoder_bench(sentences: list[str], batch_size: int, rounds: int, compile: bool, peaks: dict,
                  ort: bool = True) -> list[dict]:
    import transformers

    from bertforge.inference import precision_context, prepare_model
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.modeling import BertModel

    path = minilm_path()
    tok = transformers.BertTokenizerFast.from_pretrained(str(path))
    batches = [tok(sentences[i : i + batch_size], padding=True, truncation=True, max_length=256,
                   return_tensors="pt") for i in range(0, len(sentences), batch_size)]
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(1)]
    slots = sum(b["input_ids"].numel() for b in batches)
    systems = {}  # name -> (run(batch) -> last hidden state, precision)
    for p in PRECISIONS:
        hf = transformers.BertModel.from_pretrained(str(path), attn_implementation="sdpa").eval()
        if p == "int8":
            hf = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)
        systems[f"hf {p}"] = (lambda b, m=hf: m(**b).last_hidden_state, p)
    for p in OURS:
        model = prepare_model(BertModel.from_pretrained(path), "cpu", "fp32" if p == "bf16-autocast" else p,
                              compile and p != "int8")
        systems[f"bertforge {p}"] = (lambda b, m=model: m(**b).last_hidden_state, p)
    if ort:
        systems.update(ort_systems(path, batches))
    times: dict[str, list[float]] = {k: [] for k in systems}
    config = BertModel.from_pretrained(path).config
    ref_hidden = {}
    with torch.inference_mode():
        for r in range(rounds + 1):  # round 0 warms up (and compiles)
            for p in PRECISIONS:
                peaks[p] = max(peaks.get(p, 0.0), matmul_peak(p, reps=1))
            order = list(systems.items()) if r % 2 else list(systems.items())[::-1]  # ABBA
            for name, (run, p) in order:
                t = CLOCK()
                outs = []
                for b in batches:
                    # HF's int8 (torch.ao) takes fp32 activations: bf16 autocast is bertforge's int8 remainder only
                    plain = name.startswith("ort") or name == "hf int8"
                    with precision_context("cpu", "fp32" if plain else peak_key(p)):
                        outs.append(run(b))
                if r:
                    times[name].append(CLOCK() - t)
                else:  # accuracy vs HF fp32 on real tokens
                    am = [b["attention_mask"].bool() for b in batches]
                    ref_hidden[name] = torch.cat([o.float()[m] for o, m in zip(outs, am)])
    ref = ref_hidden["hf fp32"]
    ref_hidden = {k: (v - ref).abs().max().item() for k, v in ref_hidden.items()}
    flops = encoder_flops(config, lengths)
    base = statistics.median(times["hf fp32"])
    rows = []
    for name, (_, p) in systems.items():
        med = statistics.median(times[name])
        rows.append({"system": name, "tokens_per_s": sum(lengths) / med, "vs_hf_fp32": base / med,
                     "mfu": flops / med / 1e9 / peaks[peak_key(p)], "max_abs_diff_vs_hf_fp32": ref_hidden[name]})
    print(f"\n(a) encoder, all-MiniLM-L6-v2, {len(sentences)} corpus sentences in batches of {batch_size} "
          f"({sum(lengths)} real tokens in {slots} padded slots: {1 - sum(lengths) / slots:.0%} padding); "
          f"median of {rounds} rounds")
    print(f"{'system':<24} {'tokens/s':>9} {'vs HF fp32':>10} {'MFU':>5} {'max|diff| vs HF fp32':>21}")
    for r in rows:
        print(f"{r['system']:<24} {r['tokens_per_s']:>9.0f} {r['vs_hf_fp32']:>9.2f}x {r['mfu']:>5.0%} "
              f"{r['max_abs_diff_vs_hf_fp32']:>21.2e}")
    return rows


def main() -> None:
    from bertforge.data.squad import read_squad
    from bertforge.tasks.qa.answerer import DEFAULT_MODEL, QuestionAnswerer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="QA model for (b)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--compile", action="store_true", help="torch.compile bertforge's fp32/bf16 encoders in (a)")
    ap.add_argument("--skip", choices=["encoder", "qa"], default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU time (1 thread on a loaded machine)")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime rows")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    from bertforge.inference import cpu_matmul_units

    print(f"matrix units (oneDNN): {cpu_matmul_units()}; clock: {args.clock}")
    print(f"machine: {platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    peaks: dict[str, float] = {}
    results = {}
    if args.skip != "encoder":
        lines = [s for s in CORPUS.read_text(encoding="utf-8").splitlines() if s.strip()][: args.sentences]
        results["encoder"] = encoder_bench(lines, args.batch_size, args.rounds, args.compile, peaks, not args.no_ort)
    if args.skip != "qa":
        examples = read_squad(XQUAD_EN)[: args.questions or None]
        qa = QuestionAnswerer(args.model)
        feats = qa.features(examples)
        flops = encoder_flops(qa.model.config, [len(f.input_ids) for f in feats])
        for p in PRECISIONS:
            peaks[p] = max(peaks.get(p, 0.0), matmul_peak(p))
        res = qa_compare(args.model, examples, OURS, PRECISIONS, args.batch_size, clock=CLOCK)
        for name, r in res.items():  # MFU on the windows' real tokens
            r["mfu"] = flops * r["q_per_s"] / len(examples) / 1e9 / peaks[peak_key(name.split()[-1])]
        print(f"\n(b) QA, {len(examples)} XQuAD-en questions ({len(feats)} windows), model {args.model}")
        print_qa_table(res, len(examples))
        print("MFU: " + ", ".join(f"{k} {r['mfu']:.0%}" for k, r in res.items()))
        results["qa"] = res
    print("matmul peaks measured (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    results["peaks"] = peaks
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
