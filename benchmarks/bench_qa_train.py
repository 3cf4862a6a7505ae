"""QA fine-tuning throughput, side by side: the training paths of bertforge and HF on the same SQuAD batches.

Every system runs the same steps (the same 32-window batches of SQuAD v1.1 train, length-bucketed, in
the same order) from the same weights (all-MiniLM-L6-v2 + one seeded QA head), bf16 autocast, fused
AdamW, interleaved round-robin a few steps at a time (the machine is shared: ratios, not absolute times):

- `bertforge before`: unpadded varying shapes, attention dropout 0.1 (the defaults until D15 / D3's note);
- `bertforge`: batches padded to a multiple of 64 with the padded shape kept, attention dropout 0
  (what `finetune squad` and the recipe do now);
- `HF`: `transformers.BertForQuestionAnswering` (sdpa attention), its default dropout 0.1;
- `HF no attn dropout`: the same with attention dropout 0 (the fair comparison of the model code).

Reported: real (non-padding) tokens per second of training, and the ratio to `bertforge before`.

    .venv/bin/python benchmarks/bench_qa_train.py --steps 40 --threads 2
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def batches(n_steps: int, batch_size: int, seed: int):
    from bertforge.data.squad import QAWindows, length_bucketed_batches, read_squad
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tokenizer import Tokenizer

    examples = read_squad(DATA / "squad" / "train-v1.1.json")
    random.Random(seed).shuffle(examples)
    features = QAWindows().features(examples[:n_steps * batch_size], Tokenizer.from_pretrained(minilm_path()),
                                    is_training=True)
    order = length_bucketed_batches(features, batch_size, seed)
    random.Random(seed).shuffle(order)
    return [[features[k] for k in idx] for idx in order[:n_steps]]


def systems(seed: int):
    import transformers

    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.heads import BertForQuestionAnswering

    def ours(attn: float):
        torch.manual_seed(seed)
        return BertForQuestionAnswering.from_pretrained(minilm_path(), attention_probs_dropout_prob=attn).train()

    def hf(attn: float):
        m = transformers.BertForQuestionAnswering.from_pretrained(
            str(minilm_path()), attention_probs_dropout_prob=attn, attn_implementation="sdpa").train()
        m.qa_outputs.load_state_dict(ours(0.0).qa_outputs.state_dict())
        return m

    return {"bertforge before": (ours(0.1), None), "bertforge": (ours(0.0), 64),
            "HF": (hf(0.1), None), "HF no attn dropout": (hf(0.0), None)}


def step(model, optimizer, features, pad_multiple) -> int:
    from bertforge.data.squad import collate

    batch = collate(features, pad_to_multiple_of=pad_multiple)
    kwargs = {"unpad": False} if pad_multiple else {}
    if not hasattr(model, "bert") or not hasattr(model, "head"):  # HF: keyword names of its forward
        kwargs = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, **kwargs)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return int(batch["attention_mask"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="measured steps per system")
    ap.add_argument("--warmup", type=int, default=4, help="unmeasured first steps per system")
    ap.add_argument("--chunk", type=int, default=4, help="steps of one system before switching to the next")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per step")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0, help="data order and head initialisation")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = batches(args.warmup + args.steps, args.batch_size, args.seed)
    runs = systems(args.seed)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True) for name, (m, _) in runs.items()}
    tokens = {name: 0 for name in runs}
    seconds = {name: 0.0 for name in runs}
    for name, (model, pad) in runs.items():  # warm-up: first shapes, allocator
        for feats in data[:args.warmup]:
            step(model, opts[name], feats, pad)
    measured = data[args.warmup:]
    for start in range(0, len(measured), args.chunk):
        for name, (model, pad) in runs.items():
            for feats in measured[start:start + args.chunk]:
                t = time.perf_counter()
                tokens[name] += step(model, opts[name], feats, pad)
                seconds[name] += time.perf_counter() - t
    base = tokens["bertforge before"] / seconds["bertforge before"]
    print(f"QA fine-tuning, bf16 autocast, {args.threads} thread(s), {args.steps} steps x {args.batch_size} "
          f"SQuAD train windows each, interleaved every {args.chunk} steps")
    print(f"{'system':<22}{'real tok/s':>12}{'vs before':>11}")
    results = {}
    for name in runs:
        rate = tokens[name] / seconds[name]
        results[name] = rate
        print(f"{name:<22}{rate:>12.0f}{rate / base:>10.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
