"""Quality side by side: fine-tune HF `transformers.BertForQuestionAnswering` on the shipped model's recipe.

    python benchmarks/qa_side_by_side.py --out runs/qa-hf [--epochs 1] [--threads 1]

Same data as the 11k-question recipe that trained the previously shipped model (SQuAD v1.1 dev minus
XQuAD-en paragraphs + COVID-QA train, the same windows and the same batches in the same order), same
hyper-parameters (AdamW lr/betas/eps/weight decay with no decay on biases and LayerNorm, linear warm-up
10% then linear decay, gradient clipping at 1.0, bf16 autocast) and the same seed; only the model and
the loop differ: here the model is HF's and the loop is a plain PyTorch loop with HF's
`get_linear_schedule_with_warmup`.

Both models are then scored by the same evaluator (official SQuAD v1.1 EM/F1 on XQuAD-en and COVID-QA
dev), so the table compares the training, not the decoding. The HF model is saved in HF's own format
and loaded by bertforge's `QuestionAnswerer` as any HF checkpoint would be. With `--bertforge DIR`
(the recipe's output, e.g. runs/qa-minilm/model-fp16) the script prints both rows.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bertforge.data.loader import ResumableLoader  # noqa: E402
from bertforge.data.squad import collate, length_bucketed_batches, read_squad  # noqa: E402
from bertforge.fileio import atomic_write_json  # noqa: E402
from bertforge.models.bert.checkpoint import minilm_path  # noqa: E402
from bertforge.tasks.qa.train import QATrainConfig, evaluate_squad, training_features  # noqa: E402
from bertforge.tokenizer.tokenizer import Tokenizer  # noqa: E402


def build_split(data_dir: str | Path, out_file: str | Path) -> dict[str, int]:
    """Write SQuAD v1.1 dev minus XQuAD-en's paragraphs to `out_file` (the 11k-question data this
    comparison was measured on; the shipped model now trains on SQuAD train: recipes/qa_squad.py)."""
    data_dir = Path(data_dir)
    squad = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    xquad = json.loads((data_dir / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    held_out = {p["context"] for a in xquad["data"] for p in a["paragraphs"]}
    kept_articles, paragraphs, questions, dropped = [], 0, 0, 0
    for article in squad["data"]:
        keep = [p for p in article["paragraphs"] if p["context"] not in held_out]
        dropped += len(article["paragraphs"]) - len(keep)
        if keep:
            kept_articles.append({"title": article["title"], "paragraphs": keep})
            paragraphs += len(keep)
            questions += sum(len(p["qas"]) for p in keep)
    if dropped != len(held_out):
        raise ValueError(f"expected to hold out {len(held_out)} XQuAD paragraphs, found {dropped} in SQuAD dev")
    atomic_write_json(out_file, {"version": "1.1-minus-xquad", "data": kept_articles})
    return {"paragraphs": paragraphs, "questions": questions, "held_out_paragraphs": dropped}


def main() -> None:
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("runs/qa-hf"))
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bertforge", type=Path, default=None, help="the recipe's model dir, to print both rows")
    ap.add_argument("--eval-only", action="store_true", help="score an already trained --out/model")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QATrainConfig(batch_size=args.batch_size, pad_to_multiple_of=None)  # the recipe's defaults, then:
    cfg.train = replace(cfg.train, epochs=args.epochs, lr=args.lr, seed=args.seed, precision=args.precision)
    model_dir = args.out / "model"
    t0 = time.time()
    if not args.eval_only:
        args.out.mkdir(parents=True, exist_ok=True)
        split_file = args.out / "train-squad-dev-minus-xquad.json"
        build_split(args.data, split_file)
        tokenizer = Tokenizer.from_pretrained(minilm_path())
        examples = [ex for f in (split_file, args.data / "covid_qa" / "covid-qa-train.json") for ex in read_squad(f)]
        features = training_features(examples, tokenizer, cfg)
        batches = [[features[k] for k in idx]
                   for idx in length_bucketed_batches(features, cfg.batch_size, cfg.train.seed)]
        loader = ResumableLoader(batches, batch_size=1, collate_fn=lambda items: collate(items[0]), seed=cfg.train.seed)

        torch.manual_seed(cfg.train.seed)
        model = transformers.BertForQuestionAnswering.from_pretrained(str(minilm_path()), attn_implementation="sdpa")
        no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.train.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=cfg.train.lr, eps=1e-6)
        total = math.ceil(cfg.train.epochs * len(batches))
        scheduler = transformers.get_linear_schedule_with_warmup(optimizer, round(cfg.train.warmup_ratio * total),
                                                                 total)
        model.train()
        step, tokens, start = 0, 0, time.time()
        while step < total:
            for batch in loader:
                if step >= total:
                    break
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16"):
                    loss = model(**batch).loss  # HF: (CE(start) + CE(end)) / 2
                loss.float().backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens += int(batch["attention_mask"].sum())
                if step % 10 == 0 or step == total:
                    print(f"step {step}/{total} loss {loss.item():.4f} tok/s {tokens / (time.time() - start):.0f}",
                          flush=True)
        model.save_pretrained(model_dir)  # HF's own format (safetensors, HF names)
        for f in ("vocab.txt", "tokenizer_config.json"):
            shutil.copy(minilm_path() / f, model_dir / f)
    minutes = (time.time() - t0) / 60
    rows = {"HF transformers": model_dir}
    if args.bertforge:
        rows = {"bertforge": args.bertforge, **rows}
    results = {}
    for name, d in rows.items():
        if (Path(d) / "scores.json").exists():  # the recipe already scored it with this same evaluator
            results[name] = json.loads((Path(d) / "scores.json").read_text())
            continue
        results[name] = {s: evaluate_squad(d, f) for s, f in (("xquad", args.data / "xquad" / "xquad.en.json"),
                                                              ("covid", args.data / "covid_qa" / "covid-qa-dev.json"))}
        (Path(d) / "scores.json").write_text(json.dumps(results[name], indent=1))
    (args.out / "side_by_side.json").write_text(json.dumps(results, indent=1))
    print(f"\ntrain + eval {minutes:.1f} min; {args.epochs} epoch(s), lr {args.lr}, batch {args.batch_size}, "
          f"seed {args.seed}, {args.precision}\n")
    print("| model | XQuAD-en EM | XQuAD-en F1 | COVID-QA dev EM | COVID-QA dev F1 |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['xquad']['exact_match']:.2f} | {r['xquad']['f1']:.2f} | "
              f"{r['covid']['exact_match']:.2f} | {r['covid']['f1']:.2f} |")


if __name__ == "__main__":
    main()
