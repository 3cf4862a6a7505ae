"""word2vec: bertforge vs gensim on the shared pre-training corpus, same hyper-parameters.

    python benchmarks/bench_word2vec.py [--modes sg cbow] [--epochs 5] [--repeats 1] [--workers 2]

Both read the same token lists (bertforge.word2vec.read_sentences over corpus/*.txt except heldout.txt)
with dim 100, window 5, negative 5, min-count 5, sample 1e-3, alpha 0.025 -> 1e-4, and 2 worker threads
(bertforge: Hogwild job threads, torch intra-op threads 1). Runs are interleaved (gensim, bertforge,
gensim, ...) because the machine is shared and noisy. Timing includes building the vocabulary.
Words/s = raw corpus words x epochs / wall seconds; CPU s = process CPU time of the run.
Quality with bertforge.word_eval (tested equal to gensim's evaluate_word_pairs / evaluate_word_analogies):
WordSim-353 and SimLex-999 Spearman, Google analogy accuracy over the top 30,000 words.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from bertforge.models.word2vec.evaluation import GENSIM_FILES, evaluate_analogies, evaluate_word_pairs, gensim_test_file
from bertforge.models.word2vec.keyed_vectors import KeyedVectors
from bertforge.models.word2vec.model import Word2Vec, Word2VecConfig, read_sentences


def data_dir() -> Path:
    env = os.environ.get("BERTFORGE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def evaluate(kv: KeyedVectors) -> dict[str, float]:
    return {
        "WordSim-353 Spearman": evaluate_word_pairs(kv, gensim_test_file(GENSIM_FILES["wordsim"])).spearman,
        "SimLex-999 Spearman": evaluate_word_pairs(kv, gensim_test_file(GENSIM_FILES["simlex"])).spearman,
        "analogy accuracy (top 30k)": evaluate_analogies(kv, gensim_test_file(GENSIM_FILES["analogies"]),
                                                         restrict_vocab=30_000).accuracy,
    }


def run_gensim(sentences, sg: bool, epochs: int, workers: int, seed: int):
    from gensim.models import Word2Vec as GensimWord2Vec

    t, c = time.perf_counter(), time.process_time()
    model = GensimWord2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sample=1e-3,
                           alpha=0.025, min_alpha=1e-4, sg=int(sg), hs=0, epochs=epochs, workers=workers,
                           seed=seed)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return KeyedVectors(model.wv.index_to_key, model.wv.vectors), wall, cpu


def run_bertforge(sentences, sg: bool, epochs: int, workers: int, seed: int, extra: dict):
    config = Word2VecConfig(sg=sg, vector_size=100, window=5, negative=5, min_count=5, sample=1e-3,
                            alpha=0.025, min_alpha=1e-4, epochs=epochs, workers=workers, seed=seed, **extra)
    t, c = time.perf_counter(), time.process_time()
    model = Word2Vec(config).train(sentences)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return model.wv, wall, cpu, model.epoch_losses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["sg", "cbow"], choices=["sg", "cbow"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1, help="runs per library and mode (seeds 1, 2, ...)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-sentences", type=int, default=None, help="a prefix of the corpus (quick tries)")
    ap.add_argument("--save", type=Path, default=None, help="folder to write the first run's vectors to")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="bertforge Word2VecConfig overrides, e.g. batch_size=512 dup_cap=16")
    args = ap.parse_args()

    corpus = data_dir() / "corpus"
    files = sorted(f for f in corpus.glob("*.txt") if f.name != "heldout.txt")
    if not files:
        print(f"no corpus at {corpus} (set BERTFORGE_DATA)", file=sys.stderr)
        return 1
    sentences = list(read_sentences(files))[: args.max_sentences]
    words = sum(map(len, sentences))
    defaults = Word2VecConfig()
    extra = {k: type(getattr(defaults, k))(v) for k, v in (s.split("=", 1) for s in args.set)}
    torch.set_num_threads(1)
    print(f"corpus: {', '.join(f.name for f in files)}: {len(sentences):,} sentences, {words:,} words; "
          f"epochs {args.epochs}, workers {args.workers}, bertforge overrides {extra or 'none'}", flush=True)

    for mode in args.modes:
        sg = mode == "sg"
        rows: dict[str, dict[str, list[float]]] = {"gensim": {}, "bertforge": {}}
        for r in range(args.repeats):
            seed = r + 1
            for lib in ("gensim", "bertforge"):  # interleaved
                if lib == "gensim":
                    kv, wall, cpu = run_gensim(sentences, sg, args.epochs, args.workers, seed)
                    note = ""
                else:
                    kv, wall, cpu, losses = run_bertforge(sentences, sg, args.epochs, args.workers, seed, extra)
                    note = "epoch losses " + " ".join(f"{x:.4f}" for x in losses)
                if args.save and r == 0:
                    args.save.mkdir(parents=True, exist_ok=True)
                    kv.save_word2vec_format(args.save / f"{lib}_{mode}.txt")
                metrics = {"words/s": words * args.epochs / wall, "wall s": wall, "CPU s": cpu, **evaluate(kv)}
                for k, v in metrics.items():
                    rows[lib].setdefault(k, []).append(v)
                print(f"  [{mode} run {r + 1}] {lib:9s} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                      + (f"  {note}" if note else ""), flush=True)
        print(f"\n{mode}: mean of {args.repeats} run(s)")
        print(f"| {'metric':28s} | {'gensim':>10s} | {'bertforge':>10s} | {'bertforge/gensim':>16s} | {'diff':>8s} |")
        print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 18}|{'-' * 10}|")
        for k in rows["gensim"]:
            g, b = statistics.mean(rows["gensim"][k]), statistics.mean(rows["bertforge"][k])
            print(f"| {k:28s} | {g:10.4g} | {b:10.4g} | {b / g:16.3f} | {b - g:+8.4g} |")
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
