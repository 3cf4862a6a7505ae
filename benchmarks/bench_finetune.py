"""Fine-tuning side by side: bertforge vs HF transformers from the real MiniLM-L6 weights.

For each task and seed, the two models start from the *same* weights (the encoder from all-MiniLM-L6-v2,
the new head drawn once with the seed and copied into HF's class) and run through the same training loop
(`bertforge.finetune.finetune`: same data, hyper-parameters, seed, AdamW, schedule, dev evaluations,
best-checkpoint rule). They differ in the model class and in batching:

- bertforge: `BertFor...` with length-bucketed batches (each padded to its own longest member);
- HF:        `transformers.BertFor...` with plain shuffled batches padded to their longest member
             (what `DataCollatorWithPadding` gives HF's Trainer), unless --same-batches.

Reported per task: the dev metric of the kept (best) checkpoint for each (mean and the per-seed values:
their spread is the run-to-run noise) and training throughput in real (non-padding) tokens per second,
evaluation and checkpoint time excluded, per wall second and per CPU second of the (single-threaded)
process -- the second is what to compare on a shared machine. The two sides of one seed run back to back,
alternating which goes first (the machine is shared and noisy). Results are appended to <out>/results.jsonl
as each run ends, so an interrupted benchmark resumes where it stopped.

    nohup nice -n 10 .venv/bin/python benchmarks/bench_finetune.py --tasks rte,mrpc,stsb,cola,wnut17 \\
        --seeds 1,2 --epochs 3 > runs/bench_finetune.log 2>&1 &
    .venv/bin/python benchmarks/bench_finetune.py --report       # the table from results.jsonl
    .venv/bin/python benchmarks/bench_finetune.py --model-speed  # both models on identical batches
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

HF_CLASS = {"sequence": "BertForSequenceClassification", "token": "BertForTokenClassification",
            "choice": "BertForMultipleChoice"}


def data_root() -> Path:
    env = os.environ.get("BERTFORGE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def task_data(name: str):
    import bertforge.tasks.classification as ft

    root = data_root()
    if name in ("rte", "mrpc", "stsb", "cola", "sst2", "wnli"):
        return ft.glue_task_data(name, root / "glue")
    if name == "wnut17":
        return ft.ner_task_data(root / "wnut17/wnut17train.conll", root / "wnut17/emerging.dev.conll", "wnut17")
    if name == "conll2003":
        return ft.ner_task_data(root / "conll2003/train.txt", root / "conll2003/valid.txt", "conll2003")
    if name == "commonsenseqa":
        return ft.choice_task_data("commonsenseqa", root / "commonsenseqa/train_rand_split.jsonl",
                                   root / "commonsenseqa/dev_rand_split.jsonl")
    if name == "copa":
        return ft.choice_task_data("copa", root / "copa/train.jsonl", root / "copa/val.jsonl")
    raise SystemExit(f"unknown task {name}")


def majority_baseline(data) -> float:
    """The dev headline metric of always predicting the most frequent training label (0 for correlations
    and for NER's all-O, which finds no entity)."""
    from collections import Counter

    from bertforge.metrics.classification import accuracy, classification_scores

    if data.kind == "token" or data.problem_type == "regression":
        return 0.0
    top = Counter(str(e.label) for e in data.train).most_common(1)[0][0]
    ref = [str(e.label) for e in data.dev]
    if data.kind == "choice":
        return accuracy([top] * len(ref), ref)
    ids = {name: i for i, name in enumerate(data.labels)}
    return classification_scores([ids[top]] * len(ref), [ids[r] for r in ref], len(ids))[data.metric]


def run_one(task: str, side: str, seed: int, args, scratch: Path) -> dict:
    import transformers

    import bertforge.tasks.classification as ft
    from bertforge.models.bert.checkpoint import minilm_path

    data = task_data(task)
    if args.max_train and len(data.train) > args.max_train:
        data.train = random.Random(0).sample(data.train, args.max_train)
    base = minilm_path()
    train = ft.finetune_train_config(epochs=args.epochs or data.defaults.epochs, lr=args.lr or data.defaults.lr,
                                     seed=seed, patience=None, progress=False,
                                     precision="bf16" if args.bf16 and side == "bertforge" else "fp32")
    settings = ft.FinetuneSettings(train, batch_size=args.batch_size, evals_per_epoch=args.evals_per_epoch,
                                   bucket=(side == "bertforge" or args.same_batches) and not args.no_bucket)
    torch.manual_seed(seed)
    model = ft.build_model(base, data)  # the seeded head on MiniLM: both sides start here
    if side == "hf":
        init = scratch / "init"
        model.save_pretrained(init)
        model = getattr(transformers, HF_CLASS[data.kind]).from_pretrained(str(init), attn_implementation="sdpa")
        shutil.rmtree(init)
    out = scratch / f"{task}-{side}-{seed}"
    t = time.perf_counter()
    result = ft.finetune(data, base, out, settings, model=model)
    wall = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    resolved = settings.resolve(data.defaults)
    return {"task": task, "side": side, "seed": seed, "metric": data.metric, "score": result.best.get(data.metric),
            "dev": result.best, "tokens_per_s": result.tokens_per_s, "tokens_per_cpu_s": result.tokens_per_cpu_s,
            "train_tokens": result.train_tokens, "train_seconds": result.train_seconds,
            "train_cpu_seconds": result.train_cpu_seconds, "wall_seconds": wall, "n_train": len(data.train),
            "n_dev": len(data.dev), "epochs": resolved.epochs, "lr": resolved.lr, "batch_size": resolved.batch_size,
            "max_length": resolved.max_length, "bf16": settings.precision == "bf16",
            "same_batches": args.same_batches, "threads": torch.get_num_threads(),
            "baseline": majority_baseline(data)}


def model_speed(rounds: int = 5) -> None:
    """Training-step CPU time of the two model classes on identical batches (same weights, same padding),
    interleaved: isolates the model implementation from the batching."""
    import transformers

    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.heads import BertForSequenceClassification

    ours = BertForSequenceClassification.from_pretrained(minilm_path()).train()
    hf = transformers.BertForSequenceClassification.from_pretrained(str(minilm_path())).train()
    hf.classifier.load_state_dict(ours.classifier.state_dict())  # the encoders are both MiniLM already
    print(f"{'batch x seq':<12}{'bertforge ms':>13}{'HF ms':>8}{'HF/bf':>7}   (CPU time per forward+backward, min of "
          f"{rounds})")
    for B, T in ((16, 64), (32, 128)):
        g = torch.Generator().manual_seed(0)
        batch = {"input_ids": torch.randint(1000, 20000, (B, T), generator=g),
                 "attention_mask": torch.ones(B, T, dtype=torch.long), "labels": torch.randint(0, 2, (B,), generator=g)}
        batch["attention_mask"][B // 2:, T // 2:] = 0
        times = {"bertforge": [], "hf": []}
        for r in range(rounds + 1):
            for name, model in (("bertforge", ours), ("hf", hf)):
                t = time.process_time()
                model(**batch).loss.backward()
                if r:  # round 0 warms up
                    times[name].append(time.process_time() - t)
                model.zero_grad(set_to_none=True)
        a, b = min(times["bertforge"]) * 1e3, min(times["hf"]) * 1e3
        print(f"{f'{B} x {T}':<12}{a:>13.0f}{b:>8.0f}{b / a:>7.2f}")


def report(path: Path) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    if not rows:
        print(f"no results in {path}")
        return
    groups = list(dict.fromkeys((r["task"], json.dumps(r["setup"], sort_keys=True)) for r in rows))
    print(f"{'task':<14}{'metric':<10}{'majority':>9} | {'bertforge (seeds)':<28}{'HF (seeds)':<28}"
          f"{'diff':>7} | {'bf tok/s':>9}{'HF tok/s':>9}{'ratio':>7} | "
          f"{'bf tok/cpu-s':>12}{'HF':>7}{'ratio':>7}  setup")
    for task, setup_key in groups:
        group = [r for r in rows if r["task"] == task and json.dumps(r["setup"], sort_keys=True) == setup_key]
        for bf16 in sorted({r["bf16"] for r in group}):
            sel = [r for r in group if r["side"] == "hf" or r["bf16"] == bf16]
            bf = [r for r in sel if r["side"] == "bertforge"]
            hf = [r for r in sel if r["side"] == "hf"]
            if not bf or not hf:
                continue

            def cell(rs):
                xs = [100 * r["score"] for r in rs]
                sd = f"±{statistics.stdev(xs):.1f}" if len(xs) > 1 else ""
                return f"{statistics.mean(xs):5.1f}{sd} ({', '.join(f'{x:.1f}' for x in xs)})", statistics.mean(xs)

            (bcell, bmean), (hcell, hmean) = cell(bf), cell(hf)
            btps = statistics.mean(r["tokens_per_s"] for r in bf)
            htps = statistics.mean(r["tokens_per_s"] for r in hf)
            bcpu = statistics.mean(r["tokens_per_cpu_s"] for r in bf)
            hcpu = statistics.mean(r["tokens_per_cpu_s"] for r in hf)
            r0 = bf[0]
            base = r0["baseline"]
            setup = (f"{r0['epochs']:g} ep, lr {r0['lr']:g}, bs {r0['batch_size']}, len {r0['max_length']}, "
                     f"n_train {r0['n_train']}" + (", bf16" if bf16 else "")
                     + (", same batches" if r0["same_batches"] else "")
                     + (", no bucketing" if r0["setup"].get("no_bucket") else ""))
            print(f"{task:<14}{r0['metric']:<10}{100 * base:>9.1f} | {bcell:<28}"
                  f"{hcell:<28}{bmean - hmean:>+7.1f} | {btps:>9.0f}{htps:>9.0f}{btps / htps:>7.2f} | "
                  f"{bcpu:>12.0f}{hcpu:>7.0f}{bcpu / hcpu:>7.2f}  {setup}")
    print("scores x100 of the kept (best dev) checkpoint; ± = sample std over seeds; tok/s = real (non-padding) "
          "tokens per second of training, eval/checkpoint time excluded; tok/cpu-s = the same per second of this "
          "process's CPU time (1 thread: robust to the other jobs on a shared machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="rte,mrpc,stsb,cola,wnut17")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--epochs", type=float, default=None, help="default: each task's default")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--evals-per-epoch", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=None, help="subsample the training set (seeded)")
    ap.add_argument("--bf16", action="store_true", help="bertforge side under bf16 autocast")
    ap.add_argument("--same-batches", action="store_true", help="HF uses bertforge's bucketed batches too")
    ap.add_argument("--no-bucket", action="store_true",
                    help="bertforge uses plain shuffled batches too (its speed then comes from skipping padding)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench_finetune")
    ap.add_argument("--report", action="store_true", help="only print the table from <out>/results.jsonl")
    ap.add_argument("--model-speed", action="store_true", help="only time both models on identical batches")
    args = ap.parse_args()
    out = Path(args.out)
    results = out / "results.jsonl"
    if args.report:
        report(results)
        return
    torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    if args.model_speed:
        model_speed()
        return
    out.mkdir(parents=True, exist_ok=True)
    setup = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "max_train": args.max_train,
             "same_batches": args.same_batches, "evals_per_epoch": args.evals_per_epoch,
             **({"no_bucket": True} if args.no_bucket else {})}
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()] if results.exists() else []
    done = {(r["task"], r["side"], r["seed"], r["bf16"], json.dumps(r["setup"], sort_keys=True)) for r in rows}
    scratch = Path(tempfile.mkdtemp(prefix="bench_finetune_", dir=out))
    try:
        for task in args.tasks.split(","):
            for k, seed in enumerate(int(s) for s in args.seeds.split(",")):
                for side in (["bertforge", "hf"] if k % 2 == 0 else ["hf", "bertforge"]):
                    key = (task, side, seed, args.bf16 and side == "bertforge", json.dumps(setup, sort_keys=True))
                    if key in done:
                        continue
                    r = {**run_one(task, side, seed, args, scratch), "setup": setup}
                    print(json.dumps(r), flush=True)
                    with open(results, "a") as f:
                        f.write(json.dumps(r) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(results)


if __name__ == "__main__":
    main()
