"""`bertforge word2vec train|eval|similar`: static word vectors (skip-gram / CBOW) and their evaluation."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertforge.cli import flags


def register(sub) -> None:
    p = sub.add_parser("word2vec", help="train, evaluate and query word2vec vectors")
    wsub = p.add_subparsers(dest="word2vec_command", metavar="ACTION")
    wsub.required = True

    t = wsub.add_parser("train", help="train skip-gram or CBOW with negative sampling on text files")
    t.add_argument("--corpus", type=Path, nargs="+", required=True,
                   help="UTF-8 text files (one sentence per line) or folders of *.txt (searched recursively)")
    flags.out(t, "vectors file (word2vec format; text unless --binary)", metavar="FILE")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--sg", dest="sg", action="store_true", help="skip-gram")
    mode.add_argument("--cbow", dest="sg", action="store_false", help="CBOW (default, as gensim)")
    t.add_argument("--dim", type=flags.positive_int, default=100, help="vector size")
    t.add_argument("--window", type=flags.positive_int, default=5, help="largest distance between centre and context")
    t.add_argument("--negative", type=flags.positive_int, default=5, help="negative samples per target")
    t.add_argument("--min-count", type=flags.positive_int, default=5, help="words seen fewer times are dropped")
    t.add_argument("--sample", type=flags.non_negative_float, default=1e-3, help="subsampling threshold (0: off)")
    t.add_argument("--alpha", type=flags.positive_float, default=0.025, help="initial learning rate")
    t.add_argument("--min-alpha", type=flags.non_negative_float, default=1e-4,
                   help="final learning rate (linear decay)")
    t.add_argument("--epochs", type=flags.positive_int, default=5, help="passes over the corpus")
    flags.batch_size(t, 512, "centre words per vectorised step")
    flags.seed(t, 1)
    t.add_argument("--workers", type=flags.positive_int, default=2,
                   help="worker threads (Hogwild, as gensim); 1 makes a run reproducible")
    t.add_argument("--binary", action="store_true", help="write the binary word2vec format")
    t.add_argument("--no-lowercase", dest="lowercase", action="store_false", help="keep the case of the words")
    t.add_argument("--whitespace", action="store_true", help="the corpus is pre-tokenised: split on spaces")
    t.add_argument("--exclude", nargs="*", default=[], metavar="NAME",
                   help="file names to leave out of folders (e.g. heldout.txt)")
    t.set_defaults(func=run_train)

    e = wsub.add_parser("eval", help="WordSim-353 / SimLex-999 Spearman and Google analogy accuracy")
    e.add_argument("vectors", type=Path, help="word2vec text or binary file")
    e.add_argument("--wordsim", type=Path, default=None, help="default: gensim's test_data/wordsim353.tsv")
    e.add_argument("--simlex", type=Path, default=None, help="default: gensim's test_data/simlex999.txt")
    e.add_argument("--analogies", type=Path, default=None, help="default: gensim's test_data/questions-words.txt")
    e.add_argument("--restrict-vocab", type=flags.positive_int, default=30_000,
                   help="analogy search space (top words)")
    e.set_defaults(func=run_eval)

    s = wsub.add_parser("similar", aliases=["query"],
                        help="nearest words (cosine); with --minus, analogies (king - man + woman)")
    s.add_argument("vectors", type=Path, help="word2vec text or binary file")
    s.add_argument("words", nargs="+", help="positive words")
    s.add_argument("--minus", nargs="*", default=[], help="negative words")
    flags.top_k(s, 10, "nearest words shown")
    flags.alias(s, "--topn", "top_k", type=flags.positive_int)
    s.set_defaults(func=run_similar)


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bertforge.data.pretraining import corpus_files
    from bertforge.fileio import check_output_file
    from bertforge.models.word2vec.model import Word2Vec, Word2VecConfig, read_sentences

    check_output_file(args.out)
    if args.min_alpha > args.alpha:
        raise ValueError(f"--min-alpha ({args.min_alpha}) must not exceed --alpha ({args.alpha})")
    config = Word2VecConfig(sg=args.sg, vector_size=args.dim, window=args.window, negative=args.negative,
                            min_count=args.min_count, sample=args.sample, alpha=args.alpha,
                            min_alpha=args.min_alpha, epochs=args.epochs, batch_size=args.batch_size,
                            workers=args.workers, seed=args.seed)
    files = corpus_files(args.corpus, args.exclude)
    sentences = list(read_sentences(files, lowercase=args.lowercase, whitespace=args.whitespace))
    model = Word2Vec(config).build_vocab(sentences)
    print(f"{len(sentences)} sentences, {sum(map(len, sentences))} words, vocabulary {len(model.vocab)} "
          f"(min count {config.min_count}); {'skip-gram' if config.sg else 'CBOW'}", file=sys.stderr)
    bar = None if not flags.show_progress(args) else tqdm(total=1, unit="word", unit_scale=True, file=sys.stderr)

    def progress(p) -> None:
        if bar is None:
            return
        bar.total = p.words_total
        bar.n = p.words_done
        bar.set_postfix_str(f"epoch {p.epoch + 1}/{config.epochs} loss {p.epoch_loss:.4f} "
                            f"lr {p.alpha:.5f} {p.words_per_sec / 1e3:.0f}k words/s", refresh=False)
        bar.refresh()

    model.train(sentences, progress=progress)
    if bar is not None:
        bar.close()
    for k, (loss, pairs) in enumerate(zip(model.epoch_losses, model.epoch_pairs), 1):
        print(f"epoch {k}: mean loss {loss:.4f} over {pairs} pairs", file=sys.stderr)
    model.wv.save_word2vec_format(args.out, binary=args.binary)
    print(f"{model.words_trained / model.train_seconds:,.0f} words/s; wrote {len(model.vocab)} x "
          f"{config.vector_size} vectors to {args.out}", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from bertforge.models.word2vec.evaluation import evaluate_all
    from bertforge.models.word2vec.keyed_vectors import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(args.vectors)
    report = evaluate_all(kv, wordsim=args.wordsim, simlex=args.simlex, analogies=args.analogies,
                          restrict_vocab=args.restrict_vocab)
    for line in report.lines():
        print(line)
    return 0


def run_similar(args: argparse.Namespace) -> int:
    from bertforge.models.word2vec.keyed_vectors import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(args.vectors)
    for w in args.words + args.minus:
        if w not in kv:
            raise ValueError(f"{w!r} is not in the vocabulary of {args.vectors}")
    for word, sim in kv.most_similar(positive=args.words, negative=args.minus, topn=args.top_k):
        print(f"{sim:.4f}\t{word}")
    return 0
