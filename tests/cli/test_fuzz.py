"""A fuzz suite for the command line (hypothesis): every command's parser and entry point, driven with
generated arguments and inputs (sizes, numbers, encodings, paths, outputs) on tiny models.

Whatever comes in, a run must end with status 0 or 2 (2: one clear `bertforge CMD: error: ...` line, no
traceback), write valid UTF-8 (valid JSON lines with --json), and a failed run must leave the folder it
ran in exactly as it found it. Commands run in this process (`helpers.run`), so an exception that
escapes `main` -- a bug, which the real command would print as a traceback -- fails the test.

The default suite runs a fixed (derandomized) sample of modest size; `-m slow` runs 8x more, random.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertforge.tasks.translation import TranslationTrainConfig
from tests.cli.helpers import run, tree

CASES: list[tuple[str, int]] = []  # (command, exit status) per run: the counts go in the closing notes


def fuzz(n: int) -> Callable:
    """Hypothesis settings for a command: `n` examples in the default suite (fixed), 8n under -m slow."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz_slow(n: int) -> Callable:
    return settings(max_examples=8 * n, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- values ---------------------------------------------------------------------------------------

def pool(good: list, bad: list) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    return st.sampled_from(good), st.sampled_from(bad)


# Each pool: (good values, bad values). `opt` leaves a flag out 60% of the time, gives a good value 30%
# and a bad one 10%, so most runs go past the parser into the command and some stop at each check.
INTS = pool(["1", "2", "3"], ["0", "-1", "1.5", "abc", "", "1e3", "99999999999999999999999"])
SMALL = pool(["1", "2"], ["0", "-1", "x"])  # sizes whose large values would mean a long run
FLOATS = pool(["0.5", "1", "1e-3", "0.1"], ["0", "-0.5", "nan", "inf", "1e309", "x", "2"])
DEVICES = pool(["cpu", "auto"], ["cuda", "cuda:3", "gpu", "CPU", ""])
PRECISIONS = pool(["fp32", "bf16", "int8"], ["fp16", "FP32"])
TRAIN_PRECISIONS = pool(["fp32", "bf16"], ["int8", "fp16"])
ENCODINGS = pool(["utf-8", "latin-1", "cp1252"], ["bogus", "utf-16"])
LENGTHS = pool(["16", "32", "64", "300", "512"], ["513", "1000", "0", "-5", "7"])
WORD = st.sampled_from(["the", "cat", "paris", "[MASK]", "zebra", "é", "😀", "", " ", "-x", "--", "a\tb", "x\ny"])
TEXT = st.one_of(st.lists(WORD, min_size=1, max_size=6).map(" ".join), st.text(max_size=40),
                 st.sampled_from(["who lives in paris?", "the [MASK] sat on the [MASK].", "x" * 3000, "who\udcff?"]))
SANE = st.sampled_from(["who lives in paris?", "where is the cat?", "what ran in the park?", "the cat sat.",
                        "alice lives in paris."])
QUESTION = st.integers(0, 9).flatmap(lambda i: SANE if i < 7 else TEXT)
MASKED = st.integers(0, 9).flatmap(lambda i: st.sampled_from(["the [MASK] sat on the mat.", "[MASK] lives in paris.",
                                                              "the [MASK] ran in the [MASK]."]) if i < 7 else TEXT)
TEXTS = (SANE, TEXT)
GOOD_INPUTS = st.sampled_from([b"the cat sat.\n", b"alice lives in paris.\nthe dog ran.\n", b"\xef\xbb\xbfthe cat.\n",
                               "\u00e9t\u00e9 \U0001f600 paris.\n".encode(), b"a\r\nb\r\n", b"the cat " * 400 + b"\n"])
BAD_INPUTS = st.one_of(
    st.sampled_from([b"", b"\n", b"the cat.\n\nthe dog.\n", "caf\xe9 in paris.\n".encode("latin-1"),
                     b"\x00\x01\xff\xfe", "the cat.\n".encode("utf-16")]),
    st.binary(max_size=48), st.text(max_size=60).map(lambda s: s.encode("utf-8")))
INPUTS = st.integers(0, 9).flatmap(lambda i: GOOD_INPUTS if i < 6 else BAD_INPUTS)
MAYBE_INPUTS = st.integers(0, 9).flatmap(lambda i: st.none() if i < 7 else INPUTS)  # None: the command's real data


def opt(flag: str, values: tuple[st.SearchStrategy, st.SearchStrategy]) -> st.SearchStrategy:
    """[] (60%), [flag, a good value] (30%) or [flag, a bad value] (10%)."""
    good, bad = values
    return st.integers(0, 9).flatmap(lambda i: st.just([]) if i < 6 else (good if i < 9 else bad).map(
        lambda v: [flag, v]))


def switch(*options: list) -> st.SearchStrategy:
    return st.sampled_from([[], *options])


def flags(*pairs: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(*pairs).map(lambda parts: [x for p in parts for x in p])


def _path(where: str, name: str, suffix: str) -> str:
    if where == "existing_file":
        return where  # a file where the output goes (a folder, or another file's place)
    if where == "existing_dir":
        return f"existing_dir/{name}{suffix}"
    return f"{where}{suffix}"


def place(name: str, suffixes: tuple[str, ...], bad_suffixes: tuple[str, ...] = ()) -> st.SearchStrategy:
    """An output path inside the work folder: 80% a good one (new, nested, in a folder), 20% a bad one
    (a file in the way, under a file, an impossible place, or an extension the command cannot write)."""
    good = st.tuples(st.sampled_from(["new", "new/deeper", "existing_dir"]), st.sampled_from(suffixes))
    bad = st.tuples(st.sampled_from(["existing_file", "existing_file/sub", "/proc/no/x"]), st.sampled_from(suffixes))
    if bad_suffixes:
        bad = st.one_of(bad, st.tuples(st.just("new"), st.sampled_from(bad_suffixes)))
    return st.integers(0, 9).flatmap(lambda i: good if i < 8 else bad).map(lambda ps: _path(ps[0], name, ps[1]))


def out_opt(name: str, suffixes: tuple[str, ...], bad_suffixes: tuple[str, ...] = ()) -> st.SearchStrategy:
    return st.one_of(st.just([]), place(name, suffixes, bad_suffixes).map(lambda p: ["--out", p]))


# ---- the check --------------------------------------------------------------------------------------

def check(argv: list, stdin: Optional[bytes] = None, files: Optional[dict[str, bytes]] = None) -> None:
    """Run `bertforge argv` in a fresh folder holding `files` (+ existing_file, existing_dir) and check the
    contract of the module docstring."""
    with tempfile.TemporaryDirectory(prefix="bf-fuzz-") as d:
        work = Path(d)
        (work / "existing_file").write_text("keep me\n")
        (work / "existing_dir").mkdir()
        for name, data in (files or {}).items():
            (work / name).write_bytes(data)
        before, t0 = tree(work), time.perf_counter()
        r = run(argv, stdin, cwd=work)
        CASES.append((str(argv[0]), r.status))
        if os.environ.get("BERTFORGE_FUZZ_LOG"):  # see what the generated runs were
            print(f"[{r.status}] {time.perf_counter() - t0:.1f}s {[str(a)[:40] for a in argv]} "
                  f"{r.err.strip().splitlines()[-1:] if r.err else ''}")
        assert r.status in (0, 2), r
        assert "Traceback" not in r.err, r
        r.out.encode("utf-8")  # strict: no lone surrogates leaked into the output
        if r.status == 2:
            last = r.err.strip().splitlines()[-1]
            assert last.startswith("bertforge") and ": error: " in last, r
            assert tree(work) == before, f"a failed run left files behind: {tree(work) - before} ({r})"
            assert (work / "existing_file").read_text() == "keep me\n"
        elif "--json" in argv:
            for line in r.out.splitlines():
                json.loads(line)


def model_dirs(tiny: dict[str, Path], *names: str) -> st.SearchStrategy:
    """One of the tiny models named (the right kind, 80%) or a wrong kind / a missing folder / a file."""
    others = [tiny["bert"], tiny["mlm"], tiny["corpus"], Path("/nonexistent/model")]
    return st.integers(0, 9).flatmap(lambda i: st.sampled_from([tiny[n] for n in names] if i < 8 else others))


# ---- inference commands -----------------------------------------------------------------------------

QA_WINDOWS = flags(opt("--max-seq-length", LENGTHS),
                   opt("--max-query-length", pool(["16", "32", "64"], ["0", "x", "600"])),
                   opt("--window-overlap", pool(["0", "16", "64"], ["-1", "x", "500"])))


def qa_case(tiny):
    return st.tuples(
        st.lists(QUESTION, min_size=1, max_size=3),
        st.sampled_from(["context", "file", "stdin", "none"]), INPUTS,
        flags(opt("--top-k", INTS), opt("--batch-size", INTS), opt("--device", DEVICES), opt("--precision", PRECISIONS),
              opt("--encoding", ENCODINGS), opt("--max-answer-length", INTS), switch(["--json"]),
              switch(["--always-answer"]), QA_WINDOWS, opt("--threads", SMALL)),
        model_dirs(tiny, "qa"))


def run_qa(case):
    questions, source, data, extra, model = case
    argv, stdin, files = ["qa", *questions, "--model", model, *extra], None, {}
    if source == "context":
        argv += ["--context", data.decode("utf-8", "replace")]
    elif source == "file":
        argv += ["--context-file", "context.txt"]
        files["context.txt"] = data
    elif source == "stdin":
        stdin = data
    check(argv, stdin, files)


def embed_case(tiny):
    return st.tuples(
        INPUTS, st.booleans(), out_opt("vectors", (".npy", ".jsonl"), (".txt", "")),
        flags(opt("--max-seq-length", LENGTHS), opt("--batch-size", INTS), opt("--device", DEVICES),
              opt("--precision", PRECISIONS), opt("--encoding", ENCODINGS), opt("--max-length", LENGTHS)),
        model_dirs(tiny, "bert"))


def run_embed(case):
    data, from_file, out, extra, model = case
    argv = ["embed", "--model", model, *out, *extra]
    if from_file:
        check(argv + ["--input", "in.txt"], None, {"in.txt": data})
    else:
        check(argv, data)


def fill_mask_case(tiny):
    return st.tuples(st.lists(MASKED, min_size=1, max_size=3),
                     flags(opt("--top-k", INTS), opt("--device", DEVICES)), model_dirs(tiny, "mlm"))


def run_fill_mask(case):
    texts, extra, model = case
    check(["fill-mask", "--model", model, *extra, "--", *texts])


def predict_case(tiny):
    return st.tuples(
        model_dirs(tiny, "classifier", "tagger", "chooser"),
        st.one_of(QUESTION.map(lambda t: ["--text", t]),
                  st.sampled_from(["in.txt", "in.jsonl", "in.csv", "missing.txt", "existing_dir"]).map(
                      lambda f: ["--input", f])),
        INPUTS, out_opt("preds", (".jsonl", ".json"), (".csv",)),
        flags(opt("--pair", TEXTS), opt("--choices", (st.just("cat dog"), st.lists(WORD, max_size=3).map(" ".join))),
              opt("--format", pool(["commonsenseqa", "copa", "swag"], ["xml"])),
              opt("--batch-size", INTS), opt("--device", DEVICES), opt("--precision", PRECISIONS),
              opt("--encoding", ENCODINGS), opt("--output", pool(["o.jsonl"], ["o.csv"]))))


def run_predict(case):
    model, source, data, out, extra = case
    if "--choices" in extra:  # the candidates are separate arguments
        i = extra.index("--choices")
        extra = extra[:i + 1] + (extra[i + 1].split() or [""]) + extra[i + 2:]
    check(["predict", "--model", model, *source, *out, *extra], None,
          {"in.txt": data, "in.jsonl": data, "in.csv": data})


def evaluate_case(tiny):
    tasks = st.sampled_from([
        (["classify", "--file", "data.jsonl"], "classifier", "classify"),
        (["ner", "--file", "data.conll"], "tagger", "conll"),
        (["choice", "--format", "commonsenseqa", "--file", "data.jsonl"], "chooser", "choice"),
        (["squad", "--data", "data.json"], "qa", "squad"),
        (["glue", "--task", "rte", "--data-dir", "existing_dir"], "classifier", "classify")])
    return st.tuples(tasks, MAYBE_INPUTS, st.integers(0, 9).map(lambda i: i < 8),
                     flags(opt("--batch-size", INTS), opt("--device", DEVICES), opt("--precision", PRECISIONS)),
                     st.sampled_from([[], ["--out", "scores"], ["--out", "existing_file"]]))


def run_evaluate(case, tiny):
    (task, model, data_name), data, right_model, extra, out = case
    if task[0] == "squad":
        extra = extra + out
    data = tiny[data_name].read_bytes() if data is None else data
    files = {name: data for name in ("data.jsonl", "data.conll", "data.json")}
    check(["evaluate", *task, "--model", tiny[model] if right_model else tiny["bert"], *extra], None, files)


# ---- training commands --------------------------------------------------------------------------------

LOOP = flags(opt("--max-steps", SMALL), opt("--lr", FLOATS), opt("--weight-decay", FLOATS), opt("--seed", INTS),
             opt("--precision", TRAIN_PRECISIONS), opt("--device", DEVICES), opt("--save-every", SMALL),
             opt("--keep-last", SMALL), switch(["--resume"], ["--overwrite"], ["--resume", "--overwrite"]))
TRAINING = flags(LOOP, opt("--batch-size", SMALL), opt("--warmup-ratio", FLOATS))


def finetune_case(tiny):
    tasks = st.sampled_from([
        (["classify", "--train", "train.jsonl", "--dev", "dev.jsonl"], "classify"),
        (["ner", "--train", "train.jsonl", "--dev", "dev.jsonl"], "conll"),
        (["choice", "--format", "commonsenseqa", "--train", "train.jsonl", "--dev", "dev.jsonl"], "choice"),
        (["squad", "--train", "train.jsonl", "--dev", "dev.jsonl"], "squad")])
    return st.tuples(tasks, MAYBE_INPUTS, place("run", ("",)),
                     st.sampled_from(["bert", "bert", "qa", "corpus"]),
                     flags(TRAINING, opt("--max-seq-length", LENGTHS), opt("--epochs", FLOATS)))


def run_finetune(case, tiny):
    (task, data_name), data, out, model, extra = case
    if "--max-steps" not in extra:
        extra = extra + ["--max-steps", "1"]
    data = tiny[data_name].read_bytes() if data is None else data
    check(["finetune", *task, "--model", tiny[model], "--out", out, "--quiet", *extra], None,
          {"train.jsonl": data, "dev.jsonl": data})


def pretrain_case(tiny):
    return st.tuples(MAYBE_INPUTS, place("run", ("",)),
                     flags(TRAINING, opt("--max-seq-length", pool(["8", "16", "32"], ["4", "600"])),
                           opt("--mask-rate", FLOATS), opt("--short-seq-prob", FLOATS), opt("--dupe-factor", SMALL),
                           opt("--eval-batches", SMALL), switch(["--no-nsp"], ["--whole-word"], ["--static-masking"]),
                           opt("--config", pool(["tiny"], ["huge"]))),
                     st.sampled_from([["--vocab", "VOCAB"], ["--vocab", "existing_file"], ["--train-vocab", "0"]]))


def run_pretrain(case, tiny):
    data, out, extra, vocab = case
    if "--max-steps" not in extra:
        extra = extra + ["--max-steps", "1"]
    vocab = [str(tiny["bert"] / "vocab.txt") if v == "VOCAB" else v for v in vocab]
    data = tiny["corpus"].read_bytes() if data is None else data
    check(["pretrain", "--corpus", "corpus.txt", "--out", out, "--config", "tiny", "--batch-size", "4",
           "--eval-batches", "1", "--max-seq-length", "16", *vocab, *extra], None, {"corpus.txt": data})


def word2vec_case(tiny):
    return st.tuples(
        st.sampled_from(["train", "eval", "similar"]), MAYBE_INPUTS, place("vectors", (".txt", ".bin")),
        flags(opt("--dim", INTS), opt("--window", INTS), opt("--negative", INTS), opt("--min-count", INTS),
              opt("--sample", FLOATS), opt("--alpha", FLOATS), opt("--min-alpha", FLOATS), opt("--epochs", SMALL),
              opt("--batch-size", INTS), opt("--workers", SMALL), switch(["--sg"], ["--binary"], ["--whitespace"]))
        , flags(opt("--top-k", INTS), opt("--topn", INTS), opt("--minus", (st.just("dog"), WORD))),
        st.lists(st.one_of(st.sampled_from(["cat", "dog", "paris"]), WORD), min_size=1, max_size=3))


def run_word2vec(case, tiny):
    action, data, out, train_flags, query_flags, words = case
    files = {"corpus.txt": tiny["corpus"].read_bytes() if data is None else data}
    if action == "train":
        check(["word2vec", "train", "--corpus", "corpus.txt", "--out", out, "--quiet", *train_flags], None, files)
    elif action == "eval":
        check(["word2vec", "eval", "vectors.txt", "--wordsim", "corpus.txt", "--simlex", "corpus.txt",
               "--analogies", "corpus.txt"], None, {**files, "vectors.txt": tiny["vectors"].read_bytes()})
    else:
        vectors = tiny["vectors"].read_bytes() if data is None else data
        check(["word2vec", "similar", "vectors.txt", *words, *query_flags], None, {"vectors.txt": vectors})


def viz_case(tiny):
    picture = place("picture", (".png", ".svg", ".pdf", ".jpg"), (".gif", ""))
    return st.one_of(
        st.tuples(st.just("attention"), QUESTION, picture,
                  flags(opt("--layer", INTS), opt("--head", INTS), opt("--max-seq-length", LENGTHS),
                        st.one_of(st.just([]), place("explorer", (".html",), (".txt",)).map(lambda p: ["--html", p])),
                        opt("--device", DEVICES))),
        st.tuples(st.just("positional"), st.just(""), picture,
                  flags(opt("--max-seq-length", pool(["1", "64"], ["100000", "0"])),
                        opt("--d-model", pool(["2", "128"], ["1", "100000", "-2"])),
                        opt("--dims", pool(["0", "1"], ["200", "-1"])), opt("--max-len", INTS))),
        st.tuples(st.just("embeddings"), st.just(""), picture,
                  st.lists(st.one_of(st.sampled_from(["cat", "dog", "paris"]), WORD), min_size=1, max_size=3)
                  .map(lambda ws: ["--words", *ws])),
        st.tuples(st.just("masks"), st.just(""), picture,
                  flags(opt("--lengths", pool(["3", "5 2", "4 4 4"], ["0", "100000"])), opt("--row", INTS))))


def run_viz(case, tiny):
    kind, text, out, extra = case
    extra = [x for part in extra for x in (part.split(" ") if kind == "masks" and part[:1].isdigit() else [part])]
    argv = ["viz", kind, "--out", out, *extra]
    if kind == "attention":
        argv += ["--model", tiny["bert"], "--", text]
    if kind == "embeddings":
        argv += ["--vectors", tiny["vectors"]]
    check(argv)


def translate_case(tiny):
    return st.tuples(INPUTS, flags(opt("--beam", INTS), opt("--alpha", FLOATS), opt("--batch-size", INTS),
                                   opt("--device", DEVICES), opt("--encoding", ENCODINGS),
                                   switch(["--no-cache"], ["--reference", "ref.txt"])),
                     model_dirs(tiny, "translator"))


def run_translate(case):
    data, extra, model = case
    check(["translate", "--model", model, *extra], data, {"ref.txt": b"the cat\n"})


def train_translation_case(tiny):
    return st.tuples(place("run", ("",)), st.sampled_from([["--task", "copy"], ["--task", "reverse"], [],
                                                           ["--task", "copy", "--data", "existing_dir"]]),
                     flags(LOOP, opt("--warmup-steps", INTS), opt("--max-tokens", pool(["64"], ["0"])),
                           opt("--vocab-size", INTS), opt("--beam", SMALL), opt("--cpu-budget", FLOATS)))


@dataclass
class _SmallToy(TranslationTrainConfig):
    """The toy tasks at a size the fuzz suite can afford (10,000 pairs and a 500-sentence test set by default)."""

    toy_train: int = 200
    toy_test: int = 8
    eval_sentences: int = 4


def run_train_translation(case):
    import bertforge.tasks.translation as translation

    out, task, extra = case
    if "--max-steps" not in extra:
        extra = extra + ["--max-steps", "1"]
    translation.TranslationTrainConfig = _SmallToy
    try:
        check(["train-translation", "--out", out, "--eval-every", "0", *task, *extra])
    finally:
        translation.TranslationTrainConfig = TranslationTrainConfig


def lm_case(tiny):
    return st.one_of(
        st.tuples(st.just("train-lm"), place("run", ("",)), MAYBE_INPUTS,
                  flags(TRAINING, opt("--block-size", SMALL), opt("--dropout", FLOATS), opt("--eval-blocks", SMALL))),
        st.tuples(st.just("generate"), st.just(""), st.lists(QUESTION, min_size=1, max_size=2),
                  flags(opt("--max-new-tokens", SMALL), opt("--temperature", FLOATS), opt("--top-k", INTS),
                        opt("--top-p", FLOATS), opt("--repetition-penalty", FLOATS), opt("--device", DEVICES),
                        switch(["--greedy"], ["--no-stream"]))))


def run_lm(case, tiny):
    kind, out, data, extra = case
    if kind == "train-lm":
        if "--max-steps" not in extra:
            extra = extra + ["--max-steps", "1"]
        data = tiny["corpus"].read_bytes() if data is None else data
        check(["train-lm", "--corpus", "corpus.txt", "--out", out, "--config", "tiny", "--batch-size", "2",
               "--block-size", "8", "--vocab", tiny["gpt"] / "vocab.txt", "--quiet", *extra],
              None, {"corpus.txt": data})
    else:
        check(["generate", "--model", tiny["gpt"], *extra, "--", *data])


def index_serve_case(tiny):
    return st.one_of(
        st.tuples(st.just("index"), place("index", ("",)),
                  flags(opt("--batch-size", INTS), opt("--max-file-mb", FLOATS), opt("--passage-words", INTS),
                        opt("--overlap-words", INTS), opt("--precision", pool(["auto", "fp32"], ["x"])))),
        st.tuples(st.just("serve"), st.just(""),
                  flags(opt("--port", INTS), opt("--max-batch", INTS), opt("--max-wait-ms", FLOATS),
                        opt("--timeout", FLOATS), opt("--max-top-k", INTS), opt("--device", DEVICES))))


def run_index_serve(case, tiny):
    kind, out, extra = case
    if kind == "index":
        docs = {f"doc{i}.txt": p.read_bytes() for i, p in enumerate(sorted(tiny["docs"].iterdir()))}
        with tempfile.TemporaryDirectory(prefix="bf-docs-") as d:
            for name, data in docs.items():
                (Path(d) / name).write_bytes(data)
            check(["index", d, "--out", out, "--model", tiny["bert"], "--quiet", *extra])
    else:  # a model that cannot load: the server never starts, whatever the other flags say
        check(["serve", "--model", "/nonexistent/model", "--no-embed", *extra])


# ---- the tests: a fixed sample by default, a larger random one under -m slow ----------------------------

COMMANDS = [  # (name, strategy builder, runner, examples in the default suite)
    ("qa", qa_case, lambda c, t: run_qa(c), 24),
    ("embed", embed_case, lambda c, t: run_embed(c), 20),
    ("fill-mask", fill_mask_case, lambda c, t: run_fill_mask(c), 14),
    ("predict", predict_case, lambda c, t: run_predict(c), 20),
    ("evaluate", evaluate_case, run_evaluate, 16),
    ("finetune", finetune_case, run_finetune, 12),
    ("pretrain", pretrain_case, run_pretrain, 10),
    ("word2vec", word2vec_case, run_word2vec, 16),
    ("viz", viz_case, run_viz, 16),
    ("translate", translate_case, lambda c, t: run_translate(c), 12),
    ("train-translation", train_translation_case, lambda c, t: run_train_translation(c), 5),
    ("train-lm/generate", lm_case, run_lm, 12),
    ("index/serve", index_serve_case, run_index_serve, 10),
]


def _test(builder, runner, n: int, slow: bool):
    wrap = fuzz_slow(n) if slow else fuzz(n)

    def test(tiny):
        @wrap
        @given(case=st.data())
        def inner(case):
            runner(case.draw(builder(tiny)), tiny)

        inner()

    return test


@pytest.mark.parametrize("name, builder, runner, n", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_fuzz(name, builder, runner, n, tiny):
    _test(builder, runner, n, slow=False)(tiny)


@pytest.mark.slow
@pytest.mark.parametrize("name, builder, runner, n", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_fuzz_more(name, builder, runner, n, tiny):
    _test(builder, runner, n, slow=True)(tiny)


def test_fuzz_count():
    """Runs last in this module: how many command runs the fuzz tests made (shown with -s)."""
    from collections import Counter

    by = Counter(CASES)
    names = sorted({c for c, _ in CASES})
    print(f"\ncli fuzz: {len(CASES)} command runs, all exit 0 or 2 with no traceback; exit 0 / 2 by command: "
          + ", ".join(f"{n} {by[(n, 0)]}/{by[(n, 2)]}" for n in names))
