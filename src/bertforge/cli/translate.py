"""`bertforge train-translation ...` and `bertforge translate --model DIR [--beam 5] < input.txt`."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train-translation", help="train an encoder-decoder Transformer on parallel text")
    p.add_argument("--src-lang", default="de")
    p.add_argument("--tgt-lang", default="en")
    p.add_argument("--data", type=Path, default=None,
                   help="Multi30K folder (task1/raw/...) or a folder of <split>.<lang> files (train, val, test)")
    p.add_argument("--task", choices=("copy", "reverse"), default=None,
                   help="a toy task instead of --data: learns in a couple of minutes on a CPU")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, the final model")
    p.add_argument("--preset", default=None, help="model preset (default: small; tiny for a toy task)")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--separate-vocab", action="store_true", help="one vocabulary per language (default: joint)")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--max-tokens", type=int, default=None, help="padded tokens per batch (default 2048; toy 512)")
    p.add_argument("--epochs", type=float, default=None, help="default 10 (toy: 8)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--cpu-budget", type=float, default=None, help="stop after this many CPU seconds of training")
    p.add_argument("--lr-factor", type=float, default=None, help="Noam factor (default 1.0; toy 0.3)")
    p.add_argument("--warmup", type=int, default=None, help="Noam warm-up steps (default 1000; toy 200)")
    p.add_argument("--schedule", choices=("noam", "linear", "constant"), default="noam")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (about 2x faster on CPUs with AVX512-BF16)")
    p.add_argument("--norm-first", action="store_true", help="pre-LN instead of the paper's post-LN")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (the shared CPU: 1)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--beam", type=int, default=5, help="beam size for the final test-set BLEU")
    p.set_defaults(func=run_train)

    p = sub.add_parser("translate", help="translate stdin (one sentence per line) with a trained model")
    p.add_argument("--model", type=Path, required=True, help="a run folder or one of its checkpoints")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty ((5 + |Y|) / 6)^alpha")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-cache", action="store_true", help="re-run the decoder on the whole prefix each step")
    p.add_argument("--reference", type=Path, default=None, help="reference file: print sacreBLEU to stderr")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=run_translate)


def run_train(args: argparse.Namespace) -> int:
    from bertforge.tasks.translation import TranslationTrainConfig, train_translation, translation_train_defaults

    toy = args.task is not None
    if toy == (args.data is not None):
        raise ValueError("give exactly one of --data DIR and --task copy|reverse")

    def pick(value, default, toy_default):
        return value if value is not None else (toy_default if toy else default)

    train = translation_train_defaults(
        out_dir=str(args.out), epochs=pick(args.epochs, 10.0, 8.0), max_steps=args.max_steps,
        lr=pick(args.lr_factor, 1.0, 0.3), warmup_steps=pick(args.warmup, 1000, 200), schedule=args.schedule,
        precision="bf16" if args.bf16 else "fp32", eval_every=args.eval_every, save_every=args.save_every,
        seed=args.seed, resume=args.resume, overwrite=getattr(args, "overwrite", False))
    cfg = TranslationTrainConfig(
        train=train, src_lang=args.src_lang, tgt_lang=args.tgt_lang,
        data_dir=str(args.data) if args.data else None, task=args.task, preset=pick(args.preset, "small", "tiny"),
        model_overrides={"norm_first": True} if args.norm_first else {}, vocab_size=args.vocab_size,
        joint_vocab=not args.separate_vocab, lowercase=args.lowercase,
        max_tokens=pick(args.max_tokens, 2048, 512), cpu_budget_s=args.cpu_budget)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    translator = train_translation(cfg, log=log)

    from bertforge.data.translation import exact_match
    from bertforge.tasks.translation import load_splits

    test = load_splits(cfg).get("test")
    if test:
        for beam in sorted({1, args.beam}):
            t0 = time.perf_counter()
            result, hyps = translator.bleu([s for s, _ in test], [t for _, t in test], beam_size=beam)
            dt = time.perf_counter() - t0
            extra = f", exact match {exact_match(hyps, [t for _, t in test]):.3f}" if toy else ""
            log(f"test ({len(test)} sentences), beam {beam}: BLEU {result.score:.2f}{extra} "
                f"[{len(test) / dt:.1f} sentences/s]\n  {result.detail}\n  {result.signature}")
    return 0


def run_translate(args: argparse.Namespace) -> int:
    import torch

    from bertforge.tasks.translation import Translator

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.beam < 1:
        raise ValueError(f"--beam must be >= 1, got {args.beam}")
    translator = Translator.from_pretrained(args.model)
    lines = sys.stdin.read().splitlines()
    keep = [i for i, line in enumerate(lines) if line.strip()]
    t0 = time.perf_counter()
    hyps = translator.translate([lines[i] for i in keep], beam_size=args.beam, alpha=args.alpha,
                                batch_size=args.batch_size, use_cache=not args.no_cache)
    dt = time.perf_counter() - t0
    out = [""] * len(lines)  # blank input lines stay blank, so output lines align with input lines
    for i, h in zip(keep, hyps):
        out[i] = h
    sys.stdout.write("".join(line + "\n" for line in out))
    print(f"translated {len(keep)} sentences in {dt:.1f}s ({len(keep) / max(dt, 1e-9):.1f} sentences/s)",
          file=sys.stderr)
    if args.reference is not None:
        from bertforge.data.translation import read_lines
        from bertforge.metrics.bleu import corpus_bleu

        refs = read_lines(args.reference)
        if len(refs) != len(lines):
            raise ValueError(f"{args.reference} has {len(refs)} lines but the input has {len(lines)}")
        result = corpus_bleu(out, refs)
        print(f"BLEU {result.score:.2f}\n{result.detail}\n{result.signature}", file=sys.stderr)
    return 0
