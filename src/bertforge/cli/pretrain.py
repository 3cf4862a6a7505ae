"""`bertforge pretrain` (corpus -> shards -> MLM + NSP training with the shared loop) and `bertforge fill-mask`.

    bertforge pretrain                                   # the bundled 300 KB corpus, small config, vocab of bert-base
    bertforge pretrain --corpus my_texts/ --out runs/mine --config minilm-l6 --train-vocab 16000 --max-steps 20000
    bertforge pretrain --out runs/mine --resume          # continue exactly where it stopped
    bertforge fill-mask --model runs/mine/model "The capital of France is [MASK]."
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

DEFAULT_CORPUS = "pretraining_corpus.txt"  # in bertforge/assets


def default_corpus() -> Path:
    return Path(str(resources.files("bertforge") / "assets" / DEFAULT_CORPUS))


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="pre-train BERT (masked LM + next-sentence prediction) on a corpus",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=None,
                   help="text files or folders of .txt (blank line between documents); default: the bundled corpus")
    p.add_argument("--eval-corpus", nargs="+", default=None,
                   help="held-out text; default: every 20th document of --corpus is held out")
    p.add_argument("--out", default="runs/pretrain", help="output folder (checkpoints, metrics, model/)")
    p.add_argument("--config", default="small", help="model preset: tiny, small, minilm-l6, bert-base, bert-large")
    p.add_argument("--init-from", default=None, help="start from this checkpoint folder instead of random weights")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--vocab", default=None, help="vocab.txt (or a folder holding one); default: bert-base-uncased's")
    vocab.add_argument("--train-vocab", type=int, default=None, metavar="SIZE",
                       help="train a WordPiece vocabulary of SIZE tokens on the corpus")
    p.add_argument("--cased", action="store_true", help="do not lowercase (only with --train-vocab / a cased vocab)")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--mask-rate", type=float, default=0.15)
    p.add_argument("--static-masking", action="store_true", help="Google's exact-count masks, fixed per example")
    p.add_argument("--whole-word", action="store_true", help="mask whole words, not word pieces")
    p.add_argument("--no-nsp", action="store_true", help="packed rows, masked LM only (RoBERTa style)")
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--dupe-factor", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--keep-last", type=int, default=2)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_pretrain)

    f = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pre-trained model")
    f.add_argument("text", nargs="+", help='sentences with [MASK], e.g. "The capital of France is [MASK]."')
    f.add_argument("--model", required=True, help="a folder with config.json, model.safetensors, vocab.txt")
    f.add_argument("--top-k", type=int, default=5)
    f.set_defaults(func=run_fill_mask)


# ---------------------------------------------------------------------------------------------
# pretrain
# ---------------------------------------------------------------------------------------------


def _load_tokenizer(args, out: Path, corpus: list[Path]):
    from bertforge.data.pretraining import vocab_fingerprint
    from bertforge.tokenizer.tokenizer import Tokenizer

    saved = out / "tokenizer"
    if args.vocab:
        path = Path(args.vocab)
        tok = Tokenizer.from_pretrained(path) if path.is_dir() else Tokenizer.from_vocab(path, lowercase=not args.cased)
    elif args.train_vocab:
        if args.resume and (saved / "vocab.txt").exists():
            tok = Tokenizer.from_pretrained(saved)
        else:
            from bertforge.tokenizer.tokenizer import train_vocab

            vocab_path = train_vocab([str(c) for c in corpus], args.train_vocab, out / "trained_vocab.txt",
                                     lowercase=not args.cased)
            tok = Tokenizer.from_vocab(vocab_path, lowercase=not args.cased)
    elif args.resume and (saved / "vocab.txt").exists():
        tok = Tokenizer.from_pretrained(saved)
    else:
        from bertforge.models.bert.checkpoint import minilm_path

        try:
            tok = Tokenizer.from_pretrained(minilm_path())  # bert-base-uncased's 30522-token vocabulary
        except FileNotFoundError as e:
            raise FileNotFoundError(f"no default vocabulary ({e}); pass --vocab PATH or --train-vocab SIZE") from None
    if (saved / "vocab.txt").exists():
        prev = Tokenizer.from_pretrained(saved)
        if vocab_fingerprint(prev) != vocab_fingerprint(tok):
            raise ValueError(f"the vocabulary ({tok.vocab_size} tokens) does not match the one this run in {out} was "
                             f"started with ({prev.vocab_size} tokens, {saved / 'vocab.txt'}): use the same --vocab, "
                             f"or a new --out")
    return tok


def _corpus_key(files: list[Path], **params) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _build_data(args, tok, out: Path, files: list[Path], eval_files):
    """Shards for training and evaluation, rebuilt only when the corpus or the parameters change."""
    from bertforge.data.pretraining import PretrainingDataset, build_pretraining_data, read_documents

    params = dict(max_seq_length=args.max_seq_length, short_seq_prob=args.short_seq_prob, nsp=not args.no_nsp,
                  dupe_factor=args.dupe_factor, seed=args.seed)
    key = _corpus_key(files + (eval_files or []), held_out=bool(eval_files), lowercase=tok.lowercase,
                      vocab=tok.vocab_size, **params)
    data = out / "data"
    stamp = data / "key.txt"
    if not (stamp.exists() and stamp.read_text() == key):
        if args.resume and stamp.exists():
            raise ValueError(f"the corpus or data options differ from the run being resumed in {out}: resume with "
                             f"the same --corpus and options, or start a new --out")
        if eval_files:
            train_docs, eval_docs = read_documents(files), read_documents(eval_files)
        else:  # every 20th document is held out
            docs = list(read_documents(files))
            if not docs:
                raise ValueError(f"the corpus is empty: no non-blank line in {', '.join(map(str, files))}")
            train_docs = [d for i, d in enumerate(docs) if i % 20 != 19]
            eval_docs = [d for i, d in enumerate(docs) if i % 20 == 19]
            if len(eval_docs) < 2:  # a small corpus: hold out its last 2 documents (NSP needs 2)
                if len(docs) < 2 and not args.no_nsp:
                    raise ValueError(f"the corpus has {len(docs)} document: next-sentence prediction needs at "
                                     f"least 2 (separate documents by blank lines), or use --no-nsp")
                if len(docs) >= 6:
                    train_docs, eval_docs = docs[:-2], docs[-2:]
                else:
                    train_docs, eval_docs = docs, docs
                    logging.getLogger("bertforge").warning(
                        "corpus of %d documents: too small to hold documents out; evaluating on training text",
                        len(docs))
        build_pretraining_data(train_docs, tok, data / "train", **params)
        build_pretraining_data(eval_docs, tok, data / "eval", **params)
        stamp.write_text(key)
    return PretrainingDataset(data / "train"), PretrainingDataset(data / "eval")


def run_pretrain(args) -> int:
    import torch

    from bertforge.models.bert.config import BertConfig
    from bertforge.data.pretraining import MaskingConfig, PretrainingCollator, corpus_files
    from bertforge.data.loader import ResumableLoader
    from bertforge.models.bert.pretraining import BertForMaskedLM, BertForPreTraining, evaluate_pretraining
    from bertforge.training.trainer import Trainer, TrainConfig, init_distributed

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    files = corpus_files(args.corpus) if args.corpus else [default_corpus()]
    eval_files = corpus_files(args.eval_corpus) if args.eval_corpus else None
    rank, world_size = init_distributed()  # under torchrun: rank 0 prepares vocab and data, the others wait
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        tok = _load_tokenizer(args, out, files)
        train_ds, eval_ds = _build_data(args, tok, out, files, eval_files)
        tok.save_pretrained(out / "tokenizer")
        print(f"data: {len(train_ds)} training / {len(eval_ds)} held-out instances of <= {args.max_seq_length} "
              f"tokens ({train_ds.meta['documents']} documents), vocabulary {tok.vocab_size}"
              + (f"; {world_size} processes" if world_size > 1 else ""))
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            from bertforge.data.pretraining import PretrainingDataset
            from bertforge.tokenizer.tokenizer import Tokenizer

            tok = Tokenizer.from_pretrained(out / "tokenizer")
            train_ds, eval_ds = PretrainingDataset(out / "data" / "train"), PretrainingDataset(out / "data" / "eval")

    cls = BertForMaskedLM if args.no_nsp else BertForPreTraining
    if args.init_from:
        model = cls.from_pretrained(args.init_from)
        if model.config.vocab_size != tok.vocab_size:
            raise ValueError(f"--init-from {args.init_from} has a vocabulary of {model.config.vocab_size}, the "
                             f"tokenizer {tok.vocab_size}: pass that model's vocab.txt with --vocab")
    else:
        overrides = dict(vocab_size=tok.vocab_size)
        preset = BertConfig.preset(args.config)
        if preset.max_position_embeddings < args.max_seq_length:
            overrides["max_position_embeddings"] = args.max_seq_length
        model = cls(BertConfig.preset(args.config, **overrides))
    nsp = not args.no_nsp
    masking = MaskingConfig(rate=args.mask_rate, static=args.static_masking, whole_word=args.whole_word)
    loader = ResumableLoader(train_ds, args.batch_size, PretrainingCollator(tok, masking, nsp=nsp), seed=args.seed)
    eval_collate = PretrainingCollator(tok, MaskingConfig(rate=args.mask_rate, static=True,
                                                          whole_word=args.whole_word), seed=1234, nsp=nsp)
    eval_n = min(len(eval_ds), args.eval_batches * args.batch_size)

    def eval_fn(m):
        batches = (eval_collate([eval_ds[i] for i in range(s, min(s + args.batch_size, eval_n))])
                   for s in range(0, eval_n, args.batch_size))
        return evaluate_pretraining(m, batches)

    config = TrainConfig(out_dir=str(out), max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay,
                         warmup_ratio=args.warmup_ratio, grad_accum_steps=args.grad_accum, precision=args.precision,
                         eval_every=args.eval_every, save_every=args.save_every, keep_last=args.keep_last,
                         log_every=args.log_every, seed=args.seed, resume=args.resume,
                         progress=not args.no_progress)
    if rank == 0:
        print(f"model: {cls.__name__} {args.config if not args.init_from else args.init_from}, "
              f"{model.num_parameters() / 1e6:.1f}M parameters")
    trainer = Trainer(model, config, loader, eval_fn=eval_fn, save_hook=tok.save_pretrained)
    if rank == 0 and args.resume and trainer.step >= trainer.max_steps:
        print(f"already at step {trainer.step} of {trainer.max_steps}: nothing to do (raise --max-steps)")
    log = trainer.train()
    if trainer.is_main:
        final = out / "model"
        from bertforge.training.trainer import unwrap
        unwrap(trainer.model).save_pretrained(final)
        tok.save_pretrained(final)
        evals = [r for r in log if "eval_mlm_loss" in r]
        if evals:
            e = evals[-1]
            nsp_txt = f", NSP accuracy {e['eval_nsp_accuracy']:.3f}" if "eval_nsp_accuracy" in e else ""
            print(f"held-out at step {e['step']}: MLM loss {e['eval_mlm_loss']:.3f}, MLM accuracy "
                  f"{e['eval_mlm_accuracy']:.3f}, perplexity {e['eval_mlm_perplexity']:.1f}{nsp_txt}")
        print(f"model: {final}  metrics: {out / 'metrics.jsonl'}  curve: {out / 'loss.png'}")
    return 0


# ---------------------------------------------------------------------------------------------
# fill-mask
# ---------------------------------------------------------------------------------------------


def load_mlm(model_dir: str | Path):
    """(model, tokenizer) from a pre-training output: a folder with config.json, weights and vocab.txt."""
    from bertforge.models.bert.config import BertConfig
    from bertforge.models.bert.pretraining import BertForMaskedLM, BertForPreTraining
    from bertforge.tokenizer.tokenizer import Tokenizer

    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist")
    vocab_dir = path if (path / "vocab.txt").exists() else path.parent / "tokenizer"
    if not (vocab_dir / "vocab.txt").exists():
        raise FileNotFoundError(f"no vocab.txt in {path}")
    arch = BertConfig.from_json(path / "config.json").extra.get("architectures") or ["BertForPreTraining"]
    cls = BertForMaskedLM if arch[0] == "BertForMaskedLM" else BertForPreTraining
    model = cls.from_pretrained(path)
    if any(k.startswith("cls.predictions") for k in model.load_report.initialized):
        raise ValueError(f"{path} has no masked-LM head (cls.predictions.*): it is not a pre-training checkpoint")
    tok = Tokenizer.from_pretrained(vocab_dir)
    if tok.vocab_size != model.config.vocab_size:
        raise ValueError(f"vocab.txt has {tok.vocab_size} tokens but the model {model.config.vocab_size}")
    return model, tok


def run_fill_mask(args) -> int:
    from bertforge.models.bert.pretraining import fill_mask

    model, tok = load_mlm(args.model)
    for text in args.text:
        print(text)
        for k, candidates in enumerate(fill_mask(model, tok, text, top_k=args.top_k)):
            shown = "  ".join(f"{t} {p:.3f}" for t, p in candidates)
            print(f"  [MASK] {k + 1}: {shown}")
    return 0
