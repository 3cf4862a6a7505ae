"""`bertforge train-translation ...` and `bertforge translate --model DIR [--beam 5] < input.txt`.

    bertforge train-translation --task copy --out runs/copy                  # a toy task: minutes on a CPU
    bertforge train-translation --data multi30k/ --out runs/m30k --precision bf16 --cpu-budget 3600
    bertforge translate --model runs/m30k --beam 5 < test.de > test.hyp.en

--epochs, --lr (the Noam factor), --warmup-steps, --max-tokens and --preset default to the real-data
values (10, 1.0, 1000, 2048, small), or with --task to the toy ones (8, 0.3, 200, 512, tiny).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bertforge.cli import flags

SEQ2SEQ_PRESETS = ("tiny", "small", "transformer-base", "transformer-big")  # models.seq2seq (no torch here)


def register(sub) -> None:
    p = sub.add_parser("train-translation", help="train an encoder-decoder Transformer on parallel text",
                       description=__doc__)
    p.add_argument("--src-lang", default="de", help="source language: the suffix of the source files")
    p.add_argument("--tgt-lang", default="en", help="target language: the suffix of the target files")
    p.add_argument("--data", type=Path, default=None,
                   help="Multi30K folder (task1/raw/...) or a folder of <split>.<lang> files (train, val, test)")
    p.add_argument("--task", choices=("copy", "reverse"), default=None,
                   help="a toy task instead of --data: learns in a couple of minutes on a CPU")
    flags.out(p, "run folder: checkpoints, logs, the final model")
    p.add_argument("--preset", choices=SEQ2SEQ_PRESETS, default=None,
                   help="model size preset (default: small; tiny for a toy task)")
    p.add_argument("--vocab-size", type=flags.positive_int, default=8000, help="WordPiece vocabulary size")
    p.add_argument("--separate-vocab", action="store_true", help="one vocabulary per language (default: joint)")
    p.add_argument("--lowercase", action="store_true", help="lowercase the text (default: cased, as sacreBLEU scores)")
    p.add_argument("--max-tokens", type=flags.positive_int, default=None,
                   help="padded tokens per batch (default 2048; toy 512)")
    flags.training(p, weight_decay=None, seed_default=0, save_every=200, with_batch=False,
                   with_warmup_ratio=False, lr_help="peak learning rate: the Noam factor (default 1.0; toy 0.3)")
    flags.alias(p, "--lr-factor", "lr", type=flags.positive_float)
    flags.alias(p, "--bf16", "precision", action="store_const", const="bf16")
    p.add_argument("--warmup-steps", type=flags.non_negative_int, default=None,
                   help="warm-up steps of the schedule (default 1000; toy 200)")
    flags.alias(p, "--warmup", "warmup_steps", type=flags.non_negative_int)
    p.add_argument("--schedule", choices=("noam", "linear", "constant"), default="noam",
                   help="learning-rate schedule (noam: Vaswani et al. 5.3)")
    p.add_argument("--cpu-budget", type=flags.positive_float, default=None,
                   help="stop after this many CPU seconds of training")
    p.add_argument("--norm-first", action="store_true", help="pre-LN instead of the paper's post-LN")
    p.add_argument("--eval-every", type=flags.non_negative_int, default=500,
                   help="validation loss and BLEU every N steps (0: only at the end)")
    p.add_argument("--beam", type=flags.positive_int, default=5, help="beam size for the final test-set BLEU")
    p.set_defaults(func=run_train)

    p = sub.add_parser("translate", help="translate stdin (one sentence per line) with a trained model",
                       description="Translate stdin, one sentence per line, to stdout: output line i is the "
                                   "translation of input line i (a blank line stays blank).")
    flags.model(p, "a run folder or one of its checkpoints", required=True)
    p.add_argument("--beam", type=flags.positive_int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--alpha", type=flags.number, default=0.6, help="length penalty ((5 + |Y|) / 6)^alpha")
    flags.batch_size(p, 64, "sentences per batch")
    flags.device_flag(p, default="cpu")
    p.add_argument("--no-cache", action="store_true", help="re-run the decoder on the whole prefix each step")
    p.add_argument("--reference", type=Path, default=None, help="reference file: print sacreBLEU to stderr")
    flags.encoding(p)
    p.set_defaults(func=run_translate)


def run_train(args: argparse.Namespace) -> int:
    from bertforge.errors import BertforgeError
    from bertforge.fileio import check_output_dir
    from bertforge.tasks.translation import TranslationTrainConfig, train_translation, translation_train_defaults

    toy = args.task is not None
    if toy == (args.data is not None):
        raise BertforgeError("give exactly one of --data DIR and --task copy|reverse")
    check_output_dir(args.out)

    def pick(value, default, toy_default):
        return value if value is not None else (toy_default if toy else default)

    train = translation_train_defaults(**flags.train_fields(
        args, out_dir=str(args.out), epochs=pick(args.epochs, 10.0, 8.0), lr=pick(args.lr, 1.0, 0.3),
        warmup_steps=pick(args.warmup_steps, 1000, 200), schedule=args.schedule, eval_every=args.eval_every,
        progress=False))
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
    from bertforge.errors import BertforgeError
    from bertforge.fileio import read_stdin
    from bertforge.inference import check_device
    from bertforge.tasks.translation import Translator

    if sys.stdin.isatty():
        raise BertforgeError("no input: pipe the sentences to translate on stdin, one per line")
    translator = Translator.from_pretrained(args.model)
    translator.model.to(check_device(args.device))
    lines = read_stdin(args.encoding).splitlines()
    refs = None
    if args.reference is not None:
        from bertforge.data.translation import read_lines

        refs = read_lines(args.reference)
        if len(refs) != len(lines):
            raise BertforgeError(f"{args.reference} has {len(refs)} lines but the input has {len(lines)}")
    keep = [i for i, line in enumerate(lines) if line.strip()]
    t0 = time.perf_counter()
    hyps = translator.translate([lines[i] for i in keep], beam_size=args.beam, alpha=args.alpha,
                                batch_size=args.batch_size, use_cache=not args.no_cache)
    dt = time.perf_counter() - t0
    out = [""] * len(lines)  # blank input lines stay blank, so output lines align with input lines
    for i, h in zip(keep, hyps):
        out[i] = h
    sys.stdout.write("".join(line + "\n" for line in out))
    if not args.quiet:
        print(f"translated {len(keep)} sentences in {dt:.1f}s ({len(keep) / max(dt, 1e-9):.1f} sentences/s)",
              file=sys.stderr)
    if refs is not None:
        from bertforge.metrics.bleu import corpus_bleu

        result = corpus_bleu(out, refs)
        print(f"BLEU {result.score:.2f}\n{result.detail}\n{result.signature}", file=sys.stderr)
    return 0
