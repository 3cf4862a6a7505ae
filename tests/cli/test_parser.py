"""The flag vocabulary: every command parses, shares the same names for the same ideas, helps on every
option, shows its defaults, validates numbers where it parses them, and keeps old spellings only hidden."""
from __future__ import annotations

import argparse

import pytest

from bertforge.cli import flags
from bertforge.cli.main import build_parser, main

# Old spellings kept as hidden aliases (the docs or tests used them): never shown, still accepted.
HIDDEN = {"--max-length", "--topn", "--bf16", "--no-progress", "--output", "--max-len", "--lr-factor", "--warmup"}
# One idea, one type: every command's flag of this name parses through the same validator.
SHARED_TYPES = {"--batch-size": flags.positive_int, "--top-k": flags.positive_int, "--seed": flags.integer,
                "--max-seq-length": flags.positive_int, "--device": flags.device, "--threads": flags.positive_int,
                "--encoding": flags.encoding_name, "--max-steps": flags.positive_int, "--epochs": None,
                "--lr": flags.positive_float}


@pytest.fixture(scope="module")
def leaves() -> dict[str, argparse.ArgumentParser]:
    return flags.leaf_parsers(build_parser())


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_every_option_has_help():
    assert flags.options_without_help(build_parser()) == []


def test_every_command_takes_the_global_flags(leaves):
    assert len(leaves) >= 25
    for name, p in leaves.items():
        shown = {o for a in options(p) if a.help != argparse.SUPPRESS for o in a.option_strings}
        assert {"--threads", "--quiet"} <= shown, name


def test_one_name_and_one_validator_per_idea(leaves):
    for name, p in leaves.items():
        for a in options(p):
            if a.help == argparse.SUPPRESS:
                assert set(a.option_strings) <= HIDDEN, (name, a.option_strings)
                continue
            assert not set(a.option_strings) & HIDDEN, (name, a.option_strings)
            assert a.type not in (int, float), f"{name} {a.option_strings}: a bare int/float is not validated"
            for flag in a.option_strings:
                want = SHARED_TYPES.get(flag)
                if want is not None:
                    assert a.type is want, (name, flag, a.type)
            if "--precision" in a.option_strings:
                assert set(a.choices) <= set(flags.PRECISIONS) | {"auto"}, name


def test_defaults_are_shown_in_help(leaves):
    for name, p in leaves.items():
        text = p.format_help()
        for a in options(p):
            if a.help == argparse.SUPPRESS or a.default in (None, False, [], argparse.SUPPRESS) or a.nargs == 0:
                continue
            assert "default" in (a.help or "") or f"(default: {a.default}" in " ".join(text.split()), \
                (name, a.option_strings)


def test_inference_commands_take_device_and_precision(leaves):
    for name in ("bertforge qa", "bertforge embed", "bertforge predict", "bertforge evaluate classify",
                 "bertforge evaluate ner", "bertforge evaluate choice", "bertforge evaluate glue",
                 "bertforge evaluate squad"):
        shown = {o for a in options(leaves[name]) for o in a.option_strings}
        assert {"--device", "--precision", "--batch-size"} <= shown, name
    for name in ("bertforge fill-mask", "bertforge translate", "bertforge viz attention", "bertforge generate"):
        assert "--device" in {o for a in options(leaves[name]) for o in a.option_strings}, name


@pytest.mark.parametrize("argv, dest, value", [
    (["finetune", "classify", "--train", "t", "--dev", "d", "--model", "m", "--out", "o", "--max-length", "32"],
     "max_seq_length", 32),
    (["embed", "--max-length", "16"], "max_seq_length", 16),
    (["word2vec", "similar", "v", "cat", "--topn", "3"], "top_k", 3),
    (["train-translation", "--task", "copy", "--out", "o", "--bf16"], "precision", "bf16"),
    (["train-translation", "--task", "copy", "--out", "o", "--lr-factor", "0.5", "--warmup", "8"], "lr", 0.5),
    (["pretrain", "--no-progress"], "quiet", True),
    (["predict", "--model", "m", "--text", "x", "--output", "p.jsonl"], "out", "p.jsonl"),
    (["viz", "positional", "--max-len", "20"], "max_seq_length", 20),
    (["qa", "q", "--threads", "2"], "threads", 2),
    (["--threads", "2", "qa", "q"], "threads", 2),
])
def test_old_spellings_still_parse(argv, dest, value):
    args = build_parser().parse_args(argv)
    assert str(getattr(args, dest)) == str(value)


@pytest.mark.parametrize("argv, message", [
    (["qa", "q", "--top-k", "0"], "--top-k must be >= 1, got 0"),
    (["embed", "--batch-size", "-3"], "--batch-size must be >= 1, got -3"),
    (["finetune", "glue", "--task", "rte", "--model", "m", "--out", "o", "--epochs", "0"], "--epochs must be positive"),
    (["translate", "--model", "m", "--beam", "0"], "--beam must be >= 1, got 0"),
    (["word2vec", "similar", "v", "w", "--top-k", "-1"], "--top-k must be >= 1"),
    (["qa", "q", "--threads", "0"], "--threads must be >= 1"),
    (["pretrain", "--lr", "nan"], "--lr must be a finite number"),
    (["qa", "q", "--device", "gpu"], "expected cpu, cuda, cuda:N or auto"),
    (["qa", "q", "--encoding", "klingon"], "unknown encoding 'klingon'"),
    (["viz", "masks", "--lengths", "0"], "--lengths must be >= 1, got 0"),
])
def test_bad_numbers_are_refused_where_parsed(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err


def test_cuda_asked_without_cuda_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["embed", "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err.splitlines()[-1]


def test_name_lists_kept_torch_free_match_the_library():
    from bertforge.cli import pretrain, translate, viz
    from bertforge.models.bert.config import BERT_PRESETS
    from bertforge.models.seq2seq.model import SEQ2SEQ_PRESETS
    from bertforge.tasks import classification, registry
    from bertforge.viz import IMAGE_SUFFIXES

    assert set(pretrain.BERT_PRESETS) == set(BERT_PRESETS)
    assert set(translate.SEQ2SEQ_PRESETS) == set(SEQ2SEQ_PRESETS)
    assert viz.IMAGE_SUFFIXES == IMAGE_SUFFIXES
    assert set(registry.KINDS) == set(classification.KINDS)


def test_finetune_evaluate_predict_read_one_registry(leaves):
    from bertforge.tasks.registry import TASKS

    for task in TASKS:
        assert f"bertforge finetune {task}" in leaves and f"bertforge evaluate {task}" in leaves
    fmt = next(a for a in options(leaves["bertforge predict"]) if "--format" in a.option_strings)
    assert tuple(fmt.choices) == TASKS["choice"].options[0].choices
