"""`bertforge pretrain` (corpus -> shards -> MLM + NSP training with the shared loop) and `bertforge fill-mask`.

    bertforge pretrain                                   # the bundled 300 KB corpus, small config, vocab of bert-base
    bertforge pretrain --corpus my_texts/ --out runs/mine --config minilm-l6 --train-vocab 16000 --max-steps 20000
    bertforge pretrain --out runs/mine --resume          # continue exactly where it stopped
    bertforge fill-mask --model runs/mine/model "The capital of France is [MASK]."

pretrain runs 500 optimiser steps unless --max-steps or --epochs says otherwise. The work is
`bertforge.tasks.pretraining.pretrain`; this module only parses.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bertforge.cli import flags

BERT_PRESETS = ("tiny", "small", "minilm-l6", "bert-base", "bert-large")  # models.bert.config (no torch here)


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="pre-train BERT (masked LM + next-sentence prediction) on a corpus",
                              description=__doc__)
    p.add_argument("--corpus", nargs="+", default=None, metavar="PATH",
                   help="text files or folders of .txt (blank line between documents); default: the bundled corpus")
    p.add_argument("--eval-corpus", nargs="+", default=None, metavar="PATH",
                   help="held-out text; default: every 20th document of --corpus is held out")
    flags.out(p, "output folder (checkpoints, metrics, model/)", required=False, default=Path("runs/pretrain"))
    p.add_argument("--config", choices=BERT_PRESETS, default="small", help="model size preset")
    p.add_argument("--init-from", type=Path, default=None, metavar="DIR",
                   help="start from this checkpoint folder instead of random weights")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--vocab", type=Path, default=None, metavar="PATH",
                       help="vocab.txt (or a folder holding one); default: bert-base-uncased's")
    vocab.add_argument("--train-vocab", type=flags.positive_int, default=None, metavar="SIZE",
                       help="train a WordPiece vocabulary of SIZE tokens on the corpus")
    p.add_argument("--cased", action="store_true", help="do not lowercase (only with --train-vocab / a cased vocab)")
    flags.max_seq_length(p, 128, "tokens per training instance, special tokens included (at least 8)")
    flags.training(p, lr=5e-4, batch=32, warmup_ratio=0.06, seed_default=0, save_every=100,
                   batch_help="sequences per batch, per process")
    p.add_argument("--grad-accum", type=flags.positive_int, default=1,
                   help="micro-batches per optimiser step (the batch size is per micro-batch)")
    p.add_argument("--mask-rate", type=flags.positive_float, default=0.15,
                   help="share of the non-special tokens predicted (D7), below 1")
    p.add_argument("--static-masking", action="store_true", help="Google's exact-count masks, fixed per example")
    p.add_argument("--whole-word", action="store_true", help="mask whole words, not word pieces")
    p.add_argument("--no-nsp", action="store_true", help="packed rows, masked LM only (RoBERTa style)")
    p.add_argument("--short-seq-prob", type=flags.fraction, default=0.1,
                   help="share of instances cut shorter than --max-seq-length (D8)")
    p.add_argument("--dupe-factor", type=flags.positive_int, default=1,
                   help="times the corpus is turned into instances, each with other pairs and cuts")
    p.add_argument("--eval-every", type=flags.non_negative_int, default=100,
                   help="held-out evaluation every N steps (0: only at the end)")
    p.add_argument("--eval-batches", type=flags.positive_int, default=20, help="held-out batches per evaluation")
    flags.log_every(p)
    flags.alias(p, "--no-progress", "quiet", action="store_true")
    p.set_defaults(func=run_pretrain)

    f = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pre-trained model")
    f.add_argument("text", nargs="+", help='sentences with [MASK], e.g. "The capital of France is [MASK]."')
    flags.model(f, "a pre-training output folder (config.json, model.safetensors, vocab.txt)", required=True)
    flags.top_k(f, default=5, help="candidates per [MASK]")
    flags.device_flag(f, default="cpu")
    f.set_defaults(func=run_fill_mask)


def config_from_args(args: argparse.Namespace):
    """The PretrainConfig of the flags."""
    from bertforge.data.pretraining import MaskingConfig
    from bertforge.errors import BertforgeError
    from bertforge.tasks.pretraining import PretrainConfig, pretrain_train_defaults

    if args.mask_rate >= 1:
        raise BertforgeError(f"--mask-rate must be below 1, got {args.mask_rate}")
    fields = flags.train_fields(args, out_dir=str(args.out), grad_accum_steps=args.grad_accum,
                                eval_every=args.eval_every, log_every=args.log_every)
    if args.epochs is not None and args.max_steps is None:
        fields["max_steps"] = None  # --epochs alone: as many steps as the epochs take (else 500 steps)
    return PretrainConfig(
        train=pretrain_train_defaults(**fields), corpus=args.corpus, eval_corpus=args.eval_corpus,
        preset=args.config, init_from=args.init_from, vocab=args.vocab, train_vocab=args.train_vocab,
        cased=args.cased, max_seq_length=args.max_seq_length, batch_size=args.batch_size,
        masking=MaskingConfig(rate=args.mask_rate, static=args.static_masking, whole_word=args.whole_word),
        nsp=not args.no_nsp, short_seq_prob=args.short_seq_prob, dupe_factor=args.dupe_factor,
        eval_batches=args.eval_batches)


def run_pretrain(args: argparse.Namespace) -> int:
    from bertforge.tasks.pretraining import pretrain

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    result = pretrain(config_from_args(args))
    e = result.last_eval
    if e is not None:
        nsp_txt = f", NSP accuracy {e['eval_nsp_accuracy']:.3f}" if "eval_nsp_accuracy" in e else ""
        print(f"held-out at step {e['step']}: MLM loss {e['eval_mlm_loss']:.3f}, MLM accuracy "
              f"{e['eval_mlm_accuracy']:.3f}, perplexity {e['eval_mlm_perplexity']:.1f}{nsp_txt}")
    print(f"model: {result.model_dir}  metrics: {args.out / 'metrics.jsonl'}  curve: {args.out / 'loss.png'}")
    return 0


def load_mlm(model_dir: str | Path, device: str = "cpu"):
    """Kept for callers of the old place: `bertforge.tasks.pretraining.load_mlm`."""
    from bertforge.tasks.pretraining import load_mlm as load

    return load(model_dir, device)


def run_fill_mask(args: argparse.Namespace) -> int:
    from bertforge.models.bert.pretraining import fill_mask
    from bertforge.tasks.pretraining import load_mlm as load

    model, tok = load(args.model, args.device)
    results = [fill_mask(model, tok, text, top_k=args.top_k) for text in args.text]  # all checked before printing
    for text, masks in zip(args.text, results):
        print(text)
        for k, candidates in enumerate(masks):
            shown = "  ".join(f"{t} {p:.3f}" for t, p in candidates)
            print(f"  [MASK] {k + 1}: {shown}")
    return 0
