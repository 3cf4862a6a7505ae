"""Decoding speed (sentences/s) with and without the key/value cache, greedy and beam search.

    python benchmarks/bench_translation.py [--model RUN_DIR] [--sentences 200] [--threads 1] [--repeats 3]

With --model (a `bertforge train-translation` run folder) it translates Multi30K test2016 source
sentences; without, a randomly initialised `small` model (d_model 256, 3+3 layers, 8000 words) decodes
a fixed 30 tokens per sentence (random weights never stop early). The reference is uncached decoding
(the decoder re-run on the whole prefix at each step); both modes are timed interleaved, in rounds,
on the same batches, and must give the same tokens. Reports the median round.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertforge.data.translation import TranslationCollator, encode_text, multi30k  # noqa: E402
from bertforge.models.seq2seq.decoding import beam_search, greedy_decode  # noqa: E402
from bertforge.models.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.model is not None:
        from bertforge.tasks.translation import Translator

        tr = Translator.from_pretrained(args.model)
        model = tr.model
        src = [encode_text(tr.src_tokenizer, s) for s, _ in multi30k("test2016")[:args.sentences]]
        max_new = None
        what = f"trained model {args.model}, Multi30K test2016 (first {len(src)} sentences)"
    else:
        torch.manual_seed(0)
        model = Seq2SeqTransformer(Seq2SeqConfig.preset("small", src_vocab_size=8000, tgt_vocab_size=8000,
                                                        share_embeddings=True)).eval()
        g = torch.Generator().manual_seed(0)
        src = [torch.randint(5, 8000, (int(n),), generator=g).tolist()
               for n in torch.randint(8, 25, (args.sentences,), generator=g)]
        max_new = 30
        what = f"random small model, {len(src)} random sources, 30 new tokens each"
    c = model.config
    collate = TranslationCollator(c.pad_token_id, c.bos_token_id, c.eos_token_id)
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    batches = [collate.source([src[i] for i in order[k:k + args.batch_size]])
               for k in range(0, len(order), args.batch_size)]

    def run(kind: str, use_cache: bool) -> list[list[int]]:
        out = []
        for b in batches:
            if kind == "greedy":
                out += greedy_decode(model, **b, max_new_tokens=max_new, use_cache=use_cache)
            else:
                out += beam_search(model, **b, beam_size=args.beam, max_new_tokens=max_new, use_cache=use_cache)
        return out

    kinds = ["greedy", f"beam {args.beam}"]
    times: dict[tuple[str, bool], list[float]] = {(k, u): [] for k in kinds for u in (False, True)}
    outputs: dict[tuple[str, bool], list[list[int]]] = {}
    for _ in range(args.repeats):  # interleaved rounds: the machine is shared and noisy
        for key in times:
            t0 = time.perf_counter()
            outputs[key] = run(key[0], key[1])
            times[key].append(time.perf_counter() - t0)

    print(f"decoding speed, {what}; {args.threads} thread(s), batch {args.batch_size}, "
          f"median of {args.repeats} interleaved rounds")
    print(f"{'decoding':<10} {'no cache (ref) sent/s':>22} {'KV cache sent/s':>16} {'speed-up':>9} {'same tokens':>12}")
    for k in kinds:
        slow, fast = statistics.median(times[(k, False)]), statistics.median(times[(k, True)])
        same = outputs[(k, False)] == outputs[(k, True)]
        print(f"{k:<10} {len(src) / slow:>22.1f} {len(src) / fast:>16.1f} {slow / fast:>8.2f}x {str(same):>12}")
        if not same:
            print("ERROR: cached and uncached decoding differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
