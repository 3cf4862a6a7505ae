"""`bertforge train-lm` (train a GPT on a corpus) and `bertforge generate` (continue a text with it).

    bertforge train-lm --corpus ../shared/data/corpus --out runs/gpt --config small --max-steps 2000 --precision bf16
    bertforge train-lm --out runs/gpt --resume                # continue exactly where it stopped
    torchrun --nproc_per_node=2 -m bertforge.cli.main train-lm --corpus DIR --out runs/gpt   # DDP
    bertforge generate --model runs/gpt/model "The President said that"
    bertforge generate --model runs/gpt/model --greedy --max-new-tokens 30 --stop "." "It was" "She"

Generation settings (docs/gpt.md): --temperature 0 (or --greedy) picks the most likely token; a
negative temperature or a --top-p outside (0, 1] is an error; a prompt longer than the context window
minus --max-new-tokens is cut from the left with a warning; an empty prompt is an error.
train-lm runs 1000 optimiser steps unless --max-steps or --epochs says otherwise.
"""
from __future__ import annotations

import argparse
import logging
import sys

from bertforge.cli import flags

PRESETS = ("tiny", "small", "medium", "gpt2-small")  # bertforge.models.gpt.config.GPT_PRESETS (no torch here)


def register(sub) -> None:
    p = sub.add_parser("train-lm", help="train a GPT (decoder-only language model) on a corpus",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", type=str, default=None, metavar="PATH",
                   help="text files or folders of .txt (blank line between documents); default: the bundled corpus")
    p.add_argument("--eval-corpus", nargs="+", type=str, default=None, metavar="PATH",
                   help="held-out text; default: every 20th document of --corpus is held out")
    flags.out(p, help="run folder: checkpoints, metrics.jsonl, loss.png, perplexity.png, model/")
    p.add_argument("--config", choices=PRESETS, default="small", help="model size preset (docs/gpt.md)")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--vocab", default=None, metavar="PATH",
                       help="vocab.txt (or a folder holding one); default: bert-base-uncased's 30522 tokens")
    vocab.add_argument("--train-vocab", type=flags.positive_int, default=None, metavar="SIZE",
                       help="train a WordPiece vocabulary of SIZE tokens on the corpus first")
    p.add_argument("--cased", action="store_true", help="do not lowercase (with --train-vocab or a cased vocab)")
    p.add_argument("--block-size", type=flags.positive_int, default=None,
                   help="tokens per training sequence (packed); default: the preset's context window")
    p.add_argument("--dropout", type=flags.fraction, default=None,
                   help="residual, embedding and attention dropout; default: the preset's (GPT-2: 0.1)")
    flags.training(p, lr=6e-4, batch=16, precision="fp32")
    p.add_argument("--grad-accum", type=flags.positive_int, default=1,
                   help="micro-batches per optimiser step (the batch size is per micro-batch)")
    p.add_argument("--eval-every", type=flags.non_negative_int, default=100,
                   help="held-out perplexity every N steps (0: only at the end)")
    p.add_argument("--eval-blocks", type=flags.positive_int, default=64, help="held-out blocks per evaluation")
    flags.log_every(p)
    p.set_defaults(func=run_train)

    g = sub.add_parser("generate", help="continue a text with a trained GPT (streams the new tokens)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("prompt", nargs="+", help="text to continue; several prompts are generated as one batch")
    flags.model(g, help="a train-lm model folder (config.json, model.safetensors, vocab.txt)", required=True)
    g.add_argument("--max-new-tokens", type=flags.positive_int, default=50, help="tokens to add at most")
    g.add_argument("--temperature", type=flags.non_negative_float, default=0.8,
                   help="softmax temperature; 0 = greedy (the most likely token)")
    g.add_argument("--greedy", action="store_true", help="always the most likely token (= --temperature 0)")
    flags.top_k(g, default=50, help="sample among the k most likely tokens only")
    g.add_argument("--top-p", type=flags.fraction, default=1.0,
                   help="nucleus sampling: the smallest set of tokens with this much probability, in (0, 1]")
    g.add_argument("--repetition-penalty", type=flags.positive_float, default=1.0,
                   help="> 1 discourages tokens already in the text (CTRL); 1 = off")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop when the new text contains TEXT (repeatable); TEXT is not printed")
    flags.seed(g)
    g.add_argument("--no-stream", action="store_true", help="print the text when it is complete, not token by token")
    g.add_argument("--no-cache", action="store_true", help="recompute the whole prefix each step (slow; for checks)")
    flags.device_flag(g, default="cpu")
    g.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bertforge.data.pretraining import corpus_files
    from bertforge.tasks.language_modeling import LMTrainSettings, prepare_out_dir, train_language_model
    from bertforge.tasks.pretraining import default_corpus, load_tokenizer
    from bertforge.training.trainer import TrainConfig, init_distributed

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    out = Path(args.out)
    files = corpus_files(args.corpus) if args.corpus else [default_corpus()]
    eval_files = corpus_files(args.eval_corpus) if args.eval_corpus else None
    rank, world = init_distributed()  # under torchrun: rank 0 prepares the folder and the vocabulary
    if rank == 0:
        prepare_out_dir(out, args.resume, args.overwrite)
        tok = load_tokenizer(out, files, args.vocab, args.train_vocab, args.cased, args.resume)
        tok.save_pretrained(out / "tokenizer")
    if world > 1:
        import torch

        from bertforge.tokenizer.tokenizer import Tokenizer

        torch.distributed.barrier()
        if rank > 0:
            tok = Tokenizer.from_pretrained(out / "tokenizer")
    if args.max_steps is None and args.epochs is None:
        args.max_steps = 1000
    train = TrainConfig(out_dir=str(out), max_steps=args.max_steps, epochs=args.epochs or 1.0, lr=args.lr,
                        weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
                        grad_accum_steps=args.grad_accum, precision=args.precision, device=args.device,
                        eval_every=args.eval_every, save_every=args.save_every or 0, keep_last=args.keep_last,
                        log_every=args.log_every, seed=args.seed, resume=args.resume,
                        progress=flags.show_progress(args))
    settings = LMTrainSettings(corpus=files, eval_corpus=eval_files, train=train, tokenizer=tok, preset=args.config,
                               block_size=args.block_size, dropout=args.dropout, batch_size=args.batch_size,
                               eval_blocks=args.eval_blocks)  # the folder is prepared above
    result = train_language_model(settings)
    e = result["last_eval"]
    if e is not None:
        print(f"held-out at step {e['step']}: loss {e['eval_loss']:.3f}, perplexity {e['eval_perplexity']:.1f}, "
              f"next-token accuracy {e['eval_accuracy']:.3f}")
    if rank == 0:
        print(f"model: {result['model_dir']}  metrics: {out / 'metrics.jsonl'}  curves: {out / 'loss.png'}, "
              f"{out / 'perplexity.png'}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from bertforge.inference import check_device
    from bertforge.tasks.language_modeling import check_prompts, complete, load_lm

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    check_prompts(args.prompt)
    model, tok = load_lm(args.model)
    model.to(check_device(args.device))
    greedy = args.greedy or args.temperature == 0
    sampling = dict(do_sample=not greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    repetition_penalty=args.repetition_penalty, seed=args.seed, use_cache=not args.no_cache)
    stream = len(args.prompt) == 1 and not args.no_stream
    if stream:
        sys.stdout.write(args.prompt[0].rstrip() + " ")
        sys.stdout.flush()
        complete(model, tok, args.prompt, max_new_tokens=args.max_new_tokens, stop_strings=args.stop,
                 stream=True, **sampling)
        return 0
    texts = complete(model, tok, args.prompt, max_new_tokens=args.max_new_tokens, stop_strings=args.stop, **sampling)
    for prompt, text in zip(args.prompt, texts):
        print(f"{prompt.rstrip()} {text}")
    return 0
