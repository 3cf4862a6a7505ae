"""GPT throughput: bertforge GPTLMHeadModel vs HF transformers.GPT2LMHeadModel on the same weights and batches.

1. **Training**: one step = forward (next-token loss) + backward + clip + AdamW, on the same batch (packed
   blocks of the bundled corpus, bert-base-uncased vocabulary: 30522 words), the same initial weights
   and the same optimiser; the two models alternate step by step (the machine is shared and noisy:
   read the ratio). GPT-2's dropout 0.1 on both sides, fp32 and bf16 autocast. Before timing, the two
   losses on the batch are compared in eval mode.
2. **Generation**: greedy decoding from the same weights, with and without the KV cache, bertforge's
   `generate` vs HF's `generate`; all four outputs are asserted identical token for token.

The lever in training is the language-model head: HF materialises (B, T, 30522) logits, an fp32 copy,
their log-softmax and a gradient of the same size (4 x 500 MB at 16 x 256); bertforge's
`linear_cross_entropy` computes the loss and both gradients chunk by chunk and never holds them.

    .venv/bin/python benchmarks/bench_gpt.py [--configs small] [--precisions fp32,bf16] [--steps 5]
        [--batch 16] [--seq 256] [--new-tokens 64] [--threads N]
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from contextlib import nullcontext

import torch


def corpus_batch(tok, batch: int, seq: int) -> torch.Tensor:
    """(batch, seq) token blocks of the bundled corpus, as train-lm makes them."""
    from bertforge.cli.pretrain import default_corpus
    from bertforge.data.language_modeling import PackedBlocks, tokenize_documents
    from bertforge.data.pretraining import read_documents

    tokens, _ = tokenize_documents(read_documents(default_corpus()), tok, tok.sep_token_id)
    blocks = PackedBlocks(tokens, seq)
    if len(blocks) < batch:
        raise SystemExit(f"the bundled corpus has {len(blocks)} blocks of {seq}; lower --batch or --seq")
    return torch.stack([torch.from_numpy(blocks[i]["input_ids"]) for i in range(batch)])


def twins(name: str, vocab_size: int, dropout: float):
    """A bertforge GPT with fresh weights and HF's GPT2LMHeadModel loaded from its saved folder."""
    import transformers

    from bertforge.models.gpt.config import GPTConfig
    from bertforge.models.gpt.modeling import GPTLMHeadModel

    torch.manual_seed(0)
    ours = GPTLMHeadModel(GPTConfig.preset(name, vocab_size=vocab_size, resid_pdrop=dropout, embd_pdrop=dropout,
                                           attn_pdrop=dropout))
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(d)
        hf = transformers.GPT2LMHeadModel.from_pretrained(d, attn_implementation="sdpa")
    return ours, hf


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def bench_training(name: str, precision: str, steps: int, ids: torch.Tensor) -> dict:
    from bertforge.training.trainer import param_groups

    ours, hf = twins(name, 30522, dropout=0.1)
    with torch.no_grad(), autocast(precision):  # equal losses on equal inputs (dropout off)
        ours.eval(), hf.eval()
        loss_ours, loss_hf = float(ours(ids, labels=ids).loss), float(hf(ids, labels=ids).loss)
    ours.train(), hf.train()

    def step_fn(model):
        opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, fused=True)

        def step() -> None:
            with autocast(precision):
                loss = model(ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    fns = {"bertforge": step_fn(ours), "hf": step_fn(hf)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(steps):
        for label, f in fns.items():
            t = time.perf_counter()
            f()
            times[label].append(time.perf_counter() - t)
    n = ids.numel()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"config": name, "precision": precision, "batch": f"{ids.size(0)}x{ids.size(1)}",
            "tok_s_ours": n / med["bertforge"], "tok_s_hf": n / med["hf"], "loss_ours": loss_ours, "loss_hf": loss_hf}


@torch.no_grad()
def bench_generation(name: str, prompt: torch.Tensor, new_tokens: int, repeats: int) -> dict:
    from bertforge.models.gpt.generation import generate

    ours, hf = twins(name, 30522, dropout=0.0)
    ours.eval(), hf.eval()
    runs = {
        "bertforge cache": lambda: generate(ours, prompt, max_new_tokens=new_tokens, eos_token_id=None),
        "bertforge no cache": lambda: generate(ours, prompt, max_new_tokens=new_tokens, eos_token_id=None,
                                               use_cache=False),
        "HF cache": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                        min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0),
        "HF no cache": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                           min_new_tokens=new_tokens, do_sample=False, use_cache=False,
                                           pad_token_id=0),
    }
    outputs, times = {}, {k: [] for k in runs}
    for k, f in runs.items():  # warm-up, and the outputs to compare
        outputs[k] = f()
    ref = outputs["HF cache"]
    for k, out in outputs.items():
        assert torch.equal(out, ref), f"{k} differs from HF generate (cached)"
    for _ in range(repeats):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    n = prompt.size(0) * new_tokens
    return {k: n / statistics.median(v) for k, v in times.items()}


def main() -> None:
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tokenizer.tokenizer import Tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="small", help="GPT presets (tiny, small, medium, gpt2-small)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per prompt")
    ap.add_argument("--gen-batch", type=int, default=1, help="prompts generated at once")
    ap.add_argument("--repeats", type=int, default=3, help="timed generations per variant")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("bertforge").setLevel(logging.ERROR)
    import transformers
    transformers.logging.set_verbosity_error()
    tok = Tokenizer.from_pretrained(minilm_path())
    ids = corpus_batch(tok, args.batch, args.seq)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, {args.threads} threads; training tokens/s (B*T per fwd+bwd+clip+AdamW "
          f"step, median of {args.steps}, interleaved)")
    header = (f"{'config':<10} {'prec':<5} {'batch':<7} {'bertforge tok/s':>16} {'HF tok/s':>10} {'ratio':>6} "
              f"{'loss ours':>10} {'loss HF':>10}")
    print(header)
    print("-" * len(header))
    for name in args.configs.split(","):
        for precision in args.precisions.split(","):
            r = bench_training(name, precision, args.steps, ids)
            print(f"{r['config']:<10} {r['precision']:<5} {r['batch']:<7} {r['tok_s_ours']:>16.0f} "
                  f"{r['tok_s_hf']:>10.0f} {r['tok_s_ours'] / r['tok_s_hf']:>5.2f}x {r['loss_ours']:>10.4f} "
                  f"{r['loss_hf']:>10.4f}", flush=True)
    prompt = ids[:args.gen_batch, :16]
    print(f"\n# greedy generation, fp32, prompt {args.gen_batch}x16, {args.new_tokens} new tokens, median of "
          f"{args.repeats}; outputs identical token for token (asserted)")
    for name in args.configs.split(","):
        r = bench_generation(name, prompt, args.new_tokens, args.repeats)
        ours_c, ours_n, hf_c, hf_n = (r["bertforge cache"], r["bertforge no cache"], r["HF cache"], r["HF no cache"])
        print(f"{name:<10} tokens/s: bertforge {ours_c:.0f} (cache) / {ours_n:.0f} (no cache); HF {hf_c:.0f} / "
              f"{hf_n:.0f}; cache speed-up bertforge {ours_c / ours_n:.1f}x, HF {hf_c / hf_n:.1f}x; "
              f"bertforge / HF with cache {ours_c / hf_c:.2f}x, without {ours_n / hf_n:.2f}x", flush=True)


if __name__ == "__main__":
    main()
