"""Pre-training throughput: bertforge BertForPreTraining vs HF transformers.BertForPreTraining.

One training step = forward (MLM + NSP loss) + backward + clip + AdamW step, on the same weights, the
same batch (the bundled corpus, bert-base-uncased vocabulary, dynamic masking, padded to seq) and the
same optimiser; the two models alternate step by step (the machine is shared and noisy: compare the
ratio, not the seconds). Configs: "small" (4 layers, 256 hidden, seq 128) and "bert-base" (a few steps),
in fp32 and with bf16 autocast. Before timing, the two losses on the batch are compared in eval mode.

The main lever (D7): HF projects all B*T positions onto the 30522-word vocabulary; bertforge gathers
the ~15% masked positions first. The second (layers.py): bertforge skips padding tokens.

    .venv/bin/python benchmarks/bench_pretrain.py [--configs small,bert-base] [--precisions fp32,bf16]
        [--steps 5] [--threads N]
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

BATCH = {"small": 32, "bert-base": 8}
STEPS = {"small": None, "bert-base": 2}  # None: --steps


def make_batch(tok, batch_size: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    from bertforge.cli.pretrain import default_corpus
    from bertforge.data.pretraining import PretrainingCollator, PretrainingDataset, build_pretraining_data

    with tempfile.TemporaryDirectory() as d:
        build_pretraining_data(default_corpus(), tok, Path(d) / "data", max_seq_length=seq, seed=seed)
        ds = PretrainingDataset(Path(d) / "data")
        return PretrainingCollator(tok, pad_to=seq)([ds[i] for i in range(batch_size)], seeds=list(range(batch_size)))


def step_fn(model, optimizer, batch, precision: str):
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step() -> float:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())
    return step


def bench(name: str, precision: str, steps: int, tok) -> dict:
    import transformers

    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.pretraining import BertForPreTraining
    from bertforge.training.trainer import param_groups

    seq, B = 128, BATCH[name]
    torch.manual_seed(0)
    ours = BertForPreTraining(BertConfig.preset(name, vocab_size=tok.vocab_size))
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(d)
        hf = transformers.BertForPreTraining.from_pretrained(d, attn_implementation="sdpa")
    batch = make_batch(tok, B, seq)
    with torch.no_grad():  # equal losses on equal inputs (dropout off)
        ours.eval(), hf.eval()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        with autocast:
            loss_ours, loss_hf = float(ours(**batch).loss), float(hf(**batch).loss)
        ours.train(), hf.train()
    steps_of = {}
    for label, model in (("bertforge", ours), ("hf", hf)):
        opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, fused=True)
        steps_of[label] = step_fn(model, opt, batch, precision)
    times = {"bertforge": [], "hf": []}
    for label in times:  # warm-up
        steps_of[label]()
    for _ in range(steps):
        for label in times:
            t = time.perf_counter()
            steps_of[label]()
            times[label].append(time.perf_counter() - t)
    real_tokens = int(batch["attention_mask"].sum())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"config": name, "precision": precision, "batch": f"{B}x{seq}", "real_tokens": real_tokens,
            "masked": int((batch["labels"] != -100).sum()), "loss_ours": loss_ours, "loss_hf": loss_hf,
            "tok_s_ours": B * seq / med["bertforge"], "tok_s_hf": B * seq / med["hf"], "steps": steps}


def main() -> None:
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tokenizer.tokenizer import Tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="small,bert-base")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model for 'small'")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("bertforge").setLevel(logging.ERROR)  # the corpus's over-long-line notice
    tok = Tokenizer.from_pretrained(minilm_path())
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
          f"training tokens/s (B*T per fwd+bwd+AdamW step, median), padded batch from the bundled corpus")
    header = (f"{'config':<10} {'prec':<5} {'batch':<7} {'real/masked':>12} {'bertforge tok/s':>16} "
              f"{'HF tok/s':>10} {'ratio':>6} {'loss ours':>10} {'loss HF':>10}")
    print(header)
    print("-" * len(header))
    for name in args.configs.split(","):
        for precision in args.precisions.split(","):
            r = bench(name, precision, STEPS[name] or args.steps, tok)
            print(f"{r['config']:<10} {r['precision']:<5} {r['batch']:<7} {r['real_tokens']:>6}/{r['masked']:<5} "
                  f"{r['tok_s_ours']:>16.0f} {r['tok_s_hf']:>10.0f} {r['tok_s_ours'] / r['tok_s_hf']:>5.2f}x "
                  f"{r['loss_ours']:>10.4f} {r['loss_hf']:>10.4f}", flush=True)


if __name__ == "__main__":
    main()
