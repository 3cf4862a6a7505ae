"""BERT beside GPT on the same corpus and budget: the numbers, blanks and samples of docs/gpt.md.

    runs/gpt-vs-bert/run.sh                       # trains both (train-lm, then pretrain --no-nsp)
    python recipes/bert_vs_gpt.py --bert runs/gpt-vs-bert/bert --gpt runs/gpt-vs-bert/gpt \
        --heldout ../shared/data/corpus/heldout.txt > runs/gpt-vs-bert/report.md

What it measures, on held-out text neither model trained on:

1. Each model on its own objective: BERT's masked-LM loss / accuracy (static 15% masks), GPT's
   next-token loss / perplexity / accuracy.
2. **The same blanks for both.** The tokens BERT's static masks hide are also predicted by GPT from
   the words to their left only (row [CLS] a b c ... -> GPT reads [SEP] a b c ..., its begin-of-text
   token, and its logits at t - 1 score the token at t; the causal mask keeps the right side out).
   BERT sees both sides of the blank (with 15% of the row masked); GPT sees one side, unmasked.
3. "Predicting words in a blank" (the notes' phrase) on a few sentences: BERT's fill-mask top 5, GPT's
   guess from the left context, and GPT's ranking of candidate words by whole-sentence likelihood.
4. Samples: GPT continues prompts (greedy and sampled, seed 0); BERT can only fill blanks.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

BLANK_SENTENCES = [
    "The President shall from time to time give to the Congress information of the [MASK] of the Union.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    "want of a [MASK].",
    "The whale swam towards the [MASK].",
    "She did not know what to [MASK].",
    "The capital of France is [MASK].",
]
PROMPTS = ["The President said that", "Elizabeth looked at her sister and", "The ship sailed"]


def last_eval(run: Path, key: str) -> dict:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [r for r in records if key in r]
    return evals[-1]


@torch.no_grad()
def same_blanks(bert, gpt, tok, heldout: Path, rows: int = 256, seq: int = 128) -> dict[str, float]:
    """BERT (both sides) and GPT (left side) on the very same masked tokens of held-out rows."""
    import tempfile

    from bertforge.data.pretraining import (
        MaskingConfig,
        PretrainingCollator,
        PretrainingDataset,
        build_pretraining_data,
    )

    with tempfile.TemporaryDirectory() as d:
        build_pretraining_data(heldout, tok, Path(d) / "eval", max_seq_length=seq, nsp=False, seed=0)
        ds = PretrainingDataset(Path(d) / "eval")
        rows = min(rows, len(ds))
        collate = PretrainingCollator(tok, MaskingConfig(static=True), seed=1234, nsp=False)
        batches = [collate([ds[i] for i in range(a, min(a + 32, rows))]) for a in range(0, rows, 32)]
        originals = [[ds[i]["input_ids"] for i in range(a, min(a + 32, rows))] for a in range(0, rows, 32)]
    bert.eval(), gpt.eval()
    stats = {"bert_nll": 0.0, "bert_correct": 0, "gpt_nll": 0.0, "gpt_correct": 0, "n": 0}
    for batch, orig in zip(batches, originals):
        labels = batch["labels"]
        out = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        logits = out.logits[0] if isinstance(out.logits, tuple) else out.logits  # (N, V) at masked positions
        targets = labels[labels != -100]
        stats["bert_nll"] += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
        stats["bert_correct"] += int((logits.argmax(-1) == targets).sum())
        for r, ids in enumerate(orig):
            ids = torch.as_tensor(ids, dtype=torch.long).clone()
            ids[0] = gpt.config.bos_token_id  # [CLS] -> GPT's begin-of-text
            positions = (labels[r, :len(ids)] != -100).nonzero().flatten()
            if len(positions) == 0:
                continue
            g = gpt(ids[None], return_logits=True).logits[0].float()  # (T, V)
            pred = g[positions - 1]  # logits at t - 1 predict the token at t
            tgt = ids[positions]
            stats["gpt_nll"] += float(F.cross_entropy(pred, tgt, reduction="sum"))
            stats["gpt_correct"] += int((pred.argmax(-1) == tgt).sum())
        stats["n"] += int(len(targets))
    n = stats["n"]
    return {"blanks": n, "bert_loss": stats["bert_nll"] / n, "bert_accuracy": stats["bert_correct"] / n,
            "gpt_loss": stats["gpt_nll"] / n, "gpt_accuracy": stats["gpt_correct"] / n}


def plot_curves(bert_run: Path, gpt_run: Path, png: Path) -> None:
    """Held-out loss of both runs against steps (same steps, same tokens per step)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(run: Path, key: str):
        rs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        return [r["step"] for r in rs if key in r], [r[key] for r in rs if key in r]

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*series(bert_run, "eval_mlm_loss"), "o-", label="BERT: masked-token loss (both sides visible)")
    ax.plot(*series(gpt_run, "eval_loss"), "s-", label="GPT: next-token loss (left side visible)")
    ax.set_xlabel("step (16 x 128 tokens each)"), ax.set_ylabel("held-out loss (nats)"), ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    from bertforge.cli.pretrain import load_mlm
    from bertforge.models.bert.pretraining import fill_mask
    from bertforge.tasks.language_modeling import complete, gpt_fill_blank, load_lm

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bert", type=Path, required=True, help="the pretrain run folder (its model/ is used)")
    p.add_argument("--gpt", type=Path, required=True, help="the train-lm run folder (its model/ is used)")
    p.add_argument("--heldout", type=Path, required=True, help="held-out text (heldout.txt)")
    p.add_argument("--rows", type=int, default=256, help="held-out rows for the same-blanks comparison")
    p.add_argument("--plot", type=Path, default=None, help="also draw both held-out curves into this PNG")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.plot is not None:
        plot_curves(args.bert, args.gpt, args.plot)
    bert, btok = load_mlm(args.bert / "model")
    gpt, gtok = load_lm(args.gpt / "model")
    b, g = last_eval(args.bert, "eval_mlm_loss"), last_eval(args.gpt, "eval_loss")
    print("| model | parameters | objective on held-out text | loss (nats) | accuracy | perplexity |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| BERT (MLM) | {bert.num_parameters() / 1e6:.2f}M | masked tokens, both sides visible | "
          f"{b['eval_mlm_loss']:.3f} | {b['eval_mlm_accuracy']:.3f} | {b['eval_mlm_perplexity']:.0f} |")
    print(f"| GPT | {gpt.num_parameters() / 1e6:.2f}M | every next token, left side visible | "
          f"{g['eval_loss']:.3f} | {g['eval_accuracy']:.3f} | {g['eval_perplexity']:.0f} |")
    s = same_blanks(bert, gpt, btok, args.heldout, args.rows)
    print(f"\nSame {s['blanks']} blanks (held-out static masks): BERT loss {s['bert_loss']:.3f}, accuracy "
          f"{s['bert_accuracy']:.3f} (perplexity {math.exp(s['bert_loss']):.0f}); GPT from the left only: loss "
          f"{s['gpt_loss']:.3f}, accuracy {s['gpt_accuracy']:.3f} (perplexity {math.exp(s['gpt_loss']):.0f})")
    print("\n## Predicting words in a blank\n")
    for text in BLANK_SENTENCES:
        bert_top = fill_mask(bert, btok, text, top_k=5)[0]
        cands = list(dict.fromkeys([w for w, _ in bert_top if not w.startswith("##")]))
        left = gpt_fill_blank(gpt, gtok, text, top_k=5)["left"]
        cands = list(dict.fromkeys(cands + [w for w, _ in left if w.isalpha()]))
        rescored = gpt_fill_blank(gpt, gtok, text, candidates=cands, top_k=5)["rescored"]
        show = lambda xs: ", ".join(f"{w} {p:.2f}" for w, p in xs)  # noqa: E731
        print(f"- *{text}*\n  - BERT (both sides): {show(bert_top)}\n  - GPT, left context only: {show(left)}\n"
              f"  - GPT, candidates ranked by sentence likelihood: {show(rescored[:5])}")
    print("\n## GPT samples\n")
    for prompt in PROMPTS:
        greedy = complete(gpt, gtok, prompt, max_new_tokens=30)[0]
        sampled = complete(gpt, gtok, prompt, max_new_tokens=30, do_sample=True, temperature=0.8, top_k=50, seed=0)[0]
        print(f"- **{prompt}** (greedy) {greedy}\n- **{prompt}** (T 0.8, top-k 50, seed 0) {sampled}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
