"""Fine-tuning end to end: batching, the best checkpoint kept, evaluate/predict, the commands; a slow test on
real data against the majority-class baseline."""
from __future__ import annotations

import json
import random
import shutil
from collections import Counter

import pytest
import torch

import bertforge.tasks.classification as ft
from bertforge.cli.main import main as cli
from bertforge.data.batching import BucketedLoader, pad_collate
from bertforge.data.choice import ChoiceExample
from bertforge.data.classify import TextExample
from bertforge.data.ner import TaggedSentence
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.modeling import BertModel
from tests.helpers import require_data

QUICK = dict(progress=False, patience=None)  # TrainConfig fields of the quick runs

pytestmark = pytest.mark.usefixtures("one_thread")


POS, NEG = ["great", "wonderful", "superb", "lovely"], ["awful", "terrible", "dreadful", "horrid"]
FILL = ["the", "film", "was", "a", "story", "and", "plot", "acting", "really", "quite", "it"]
OTHER = ["alex", "lives", "in", "paris", "visited", "new", "york", "where", "is", "milk", "kept", "?", "fridge",
         "oven", "sky", "what", "do", "birds", "swim", "fly", "dig", "here", "b", "c", "quick", "brown", "fox",
         "jumps", "hi", "one", "two", "three", "four", "hello", "long"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny randomly initialised BERT with a small vocabulary (the toy tasks' words; others are [UNK])."""
    path = tmp_path_factory.mktemp("tiny")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILL + OTHER
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    BertModel(BertConfig.preset("tiny", vocab_size=len(vocab), hidden_dropout_prob=0.0)).save_pretrained(path)
    return path




def sentiment(n: int, seed: int) -> list[TextExample]:
    """'pos' iff the sentence holds a positive word: learnable by a tiny model in a few hundred steps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILL, k=rng.randint(2, 12)) + [rng.choice(POS if label == "pos" else NEG)]
        rng.shuffle(words)
        out.append(TextExample(" ".join(words), label=label, guid=str(i)))
    return out


def test_sequence_finetune_learns_and_keeps_best(tiny_dir, tmp_path):
    data = ft.TaskData("toy", "sequence", sentiment(256, 0), sentiment(64, 1), ["neg", "pos"])
    settings = ft.FinetuneSettings(ft.finetune_train_config(epochs=4, lr=2e-3, progress=False, patience=None),
                                   batch_size=16, max_length=32, evals_per_epoch=2)
    result = ft.finetune(data, tiny_dir, tmp_path / "run", settings)
    evals = [r["eval_accuracy"] for r in result.log if "eval_accuracy" in r]
    assert len(evals) == 8 and max(evals) >= 0.95  # learned the rule (chance: ~0.5)
    assert result.best["accuracy"] == max(evals)
    assert result.train_tokens > 0 and result.tokens_per_s > 0
    best = result.best_dir
    assert {"config.json", "model.safetensors", "vocab.txt", "finetune.json"} <= {p.name for p in best.iterdir()}
    info = json.loads((best / "finetune.json").read_text())
    assert info["kind"] == "sequence" and info["dev"]["accuracy"] == max(evals)
    # the kept checkpoint really is the best one: re-evaluating it gives the logged best score
    assert ft.evaluate(best, data.dev)["accuracy"] == pytest.approx(max(evals))
    assert ft.predict(best, [TextExample("the plot was superb"), TextExample("it was dreadful")]) == ["pos", "neg"]
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertForSequenceClassification.from_pretrained(str(best))
    assert hf.config.id2label == {0: "neg", 1: "pos"}
    # and back: an HF-saved folder (no finetune.json; the kind is read off its architecture) predicts the same
    hf.save_pretrained(str(tmp_path / "hf"))
    shutil.copy(best / "vocab.txt", tmp_path / "hf" / "vocab.txt")
    assert ft.task_info(tmp_path / "hf")["kind"] == "sequence"
    assert ft.predict(tmp_path / "hf", data.dev) == ft.predict(best, data.dev)


def test_regression_and_multilabel_kinds(tiny_dir, tmp_path):
    rng = random.Random(0)
    reg = [TextExample(" ".join(rng.choices(FILL, k=3)), label=rng.uniform(0, 5)) for _ in range(40)]
    data = ft.TaskData("reg", "sequence", reg[:32], reg[32:], ["LABEL_0"], "regression", "spearman")
    result = ft.finetune(data, tiny_dir, tmp_path / "reg",
                         ft.FinetuneSettings(ft.finetune_train_config(max_steps=2, **QUICK), batch_size=8,
                                             max_length=16, evals_per_epoch=1))
    assert set(result.best) == {"pearson", "spearman", "mse"}
    assert all(isinstance(x, float) for x in ft.predict(result.best_dir, reg[:3]))
    multi = [TextExample(w, label=[w[0]] + (["long"] if len(w) > 5 else [])) for w in FILL]
    data = ft.TaskData("multi", "sequence", multi, multi, sorted({x for e in multi for x in e.label}),
                       "multi_label_classification", "micro_f1")
    result = ft.finetune(data, tiny_dir, tmp_path / "multi",
                         ft.FinetuneSettings(ft.finetune_train_config(max_steps=2, **QUICK), batch_size=4,
                                             max_length=8, evals_per_epoch=1))
    assert set(result.best) == {"micro_f1", "subset_accuracy"}
    assert all(isinstance(p, list) and set(p) <= set(data.labels) for p in ft.predict(result.best_dir, multi))


def test_token_and_choice_kinds_run_end_to_end(tiny_dir, tmp_path):
    sents = [TaggedSentence(["Alex", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"]),
             TaggedSentence(["Nadim", "Ladki", "visited", "New", "York"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])]
    data = ft.TaskData("ner", "token", sents * 4, sents, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], metric="f1")
    result = ft.finetune(data, tiny_dir, tmp_path / "ner",
                         ft.FinetuneSettings(ft.finetune_train_config(max_steps=2, **QUICK), batch_size=4,
                                             max_length=16, evals_per_epoch=1))
    assert {"precision", "recall", "f1", "accuracy"} == set(result.best)
    tags = ft.predict(result.best_dir, [TaggedSentence(["Nadim", "Ladki", "is", "here"])])
    assert len(tags) == 1 and len(tags[0]) == 4 and set(tags[0]) <= set(data.labels)
    qs = [ChoiceExample("where is milk kept?", ["fridge", "oven", "sky"], 0),
          ChoiceExample("what do birds do?", ["swim", "fly", "dig"], 1)]
    data = ft.TaskData("toychoice", "choice", qs * 4, qs)
    result = ft.finetune(data, tiny_dir, tmp_path / "choice",
                         ft.FinetuneSettings(ft.finetune_train_config(max_steps=2, **QUICK), batch_size=2,
                                             max_length=16, evals_per_epoch=1))
    assert set(result.best) == {"accuracy"}
    assert all(p in (0, 1, 2) for p in ft.predict(result.best_dir, qs))


def test_pad_collate_shapes_and_padding():
    flat = [{"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "labels": [-100, 3, -100]},
            {"input_ids": [101, 7, 8, 9, 102], "token_type_ids": [0, 0, 0, 1, 1], "labels": [-100, 1, 2, 0, -100]}]
    b = pad_collate(flat, pad_token_id=0, pad_labels=True)
    assert b["input_ids"].tolist() == [[101, 7, 102, 0, 0], [101, 7, 8, 9, 102]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert b["labels"].tolist()[0] == [-100, 3, -100, -100, -100]
    nested = [{"input_ids": [[1, 2], [1, 2, 3]], "token_type_ids": [[0, 0], [0, 0, 1]], "labels": 1},
              {"input_ids": [[1], [1, 2, 3, 4]], "token_type_ids": [[0], [0, 0, 1, 1]], "labels": 0}]
    b = pad_collate(nested)
    assert b["input_ids"].shape == b["attention_mask"].shape == (2, 2, 4)
    assert b["attention_mask"][1].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]] and b["labels"].tolist() == [1, 0]
    regression = [{"input_ids": [1, 2], "token_type_ids": [0, 0], "labels": 2.5}]
    assert pad_collate(regression)["labels"].dtype == torch.float32


def test_bucketed_loader_covers_each_example_once_and_resumes():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(1000)]
    data = [{"input_ids": [1] * n, "token_type_ids": [0] * n} for n in lengths]

    def batches(loader):
        return [b["attention_mask"].sum(1).tolist() for b in loader]

    loader = BucketedLoader(data, lengths, 32, seed=3, collate_fn=pad_collate)
    epoch = batches(loader)
    assert sorted(n for b in epoch for n in b) == sorted(lengths) and len(epoch) == 32
    spread = sum(max(b) - min(b) for b in epoch) / len(epoch)
    plain = batches(ft.ResumableLoader(data, 32, seed=3, collate_fn=pad_collate))
    assert spread < 0.25 * sum(max(b) - min(b) for b in plain) / len(plain)  # far less padding
    assert batches(loader) != epoch  # the next epoch has another order
    again = BucketedLoader(data, lengths, 32, seed=3, collate_fn=pad_collate)
    it = iter(again)
    first = [next(it)["attention_mask"].sum(1).tolist() for _ in range(5)]
    state = again.state_dict()
    resumed = BucketedLoader(data, lengths, 32, seed=3, collate_fn=pad_collate)
    resumed.load_state_dict(state)
    assert first + batches(resumed) == epoch  # resume continues exactly


def test_predict_logits_independent_of_batching(tiny_dir):
    from bertforge.models.bert.heads import BertForTokenClassification, set_labels
    from bertforge.tokenizer.tokenizer import Tokenizer

    config = BertConfig.from_json(tiny_dir / "config.json")
    set_labels(config, ["O", "B-X", "I-X"])
    model = BertForTokenClassification(config).eval()
    tok = Tokenizer.from_pretrained(tiny_dir)
    sents = [TaggedSentence(s.split()) for s in ["a b c", "the quick brown fox jumps", "hi", "one two three four"]]
    features, _ = ft.TokenKind.featurize(tok, sents, 32, config)
    together = ft.predict_logits(model, features, batch_size=4)
    for f, logits in zip(features, together):
        alone = ft.predict_logits(model, [f], batch_size=1)[0]
        assert logits.shape == (len(f["input_ids"]), 3)
        assert abs(logits - alone).max() < 1e-5  # padding in a batch changes nothing


def test_commands_finetune_evaluate_predict(tiny_dir, tmp_path, capsys):
    for name, n, seed in (("train", 128, 0), ("dev", 32, 1)):
        rows = [{"text": e.text, "label": e.label} for e in sentiment(n, seed)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    assert cli(["finetune", "classify", "--train", str(tmp_path / "train.jsonl"), "--dev", str(tmp_path / "dev.jsonl"),
                "--model", str(tiny_dir), "--out", str(out), "--max-steps", "6", "--batch-size", "16",
                "--lr", "1e-3", "--quiet", "--max-length", "32"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best_dir"] == str(out / "best") and "accuracy" in summary["dev"]
    assert cli(["evaluate", "classify", "--model", str(out / "best"), "--file", str(tmp_path / "dev.jsonl")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == 32 and scores["accuracy"] == pytest.approx(summary["dev"]["accuracy"])
    assert cli(["predict", "--model", str(out / "best"), "--text", "the plot was superb"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["text"] == "the plot was superb" and line["prediction"] in ("pos", "neg")
    (tmp_path / "in.txt").write_text("it was awful\nsuperb film\n")
    assert cli(["predict", "--model", str(out / "best"), "--input", str(tmp_path / "in.txt"),
                "--output", str(tmp_path / "p.jsonl")]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2


def test_command_errors_are_one_line(tiny_dir, tmp_path, capsys):
    assert cli(["finetune", "ner", "--train", str(tmp_path / "nope.conll"), "--dev", str(tmp_path / "x"),
                "--model", str(tiny_dir), "--out", str(tmp_path / "o")]) == 2
    assert "no CoNLL file" in capsys.readouterr().err
    assert cli(["predict", "--model", str(tiny_dir), "--text", "hello"]) == 2  # a base model, not a classifier
    assert "not a fine-tuned classifier" in capsys.readouterr().err
    assert cli(["finetune", "glue", "--task", "rte", "--data-dir", str(tmp_path), "--model", str(tiny_dir),
                "--out", str(tmp_path / "o")]) == 2
    assert "RTE/train.tsv" in capsys.readouterr().err
    assert cli(["finetune", "glue", "--task", "rte", "--model", str(tiny_dir), "--out", str(tmp_path / "o"),
                "--epochs", "0", "--data-dir", str(tmp_path)]) == 2
    assert "--epochs must be positive" in capsys.readouterr().err


# ---- slow: real data, real weights ---------------------------------------------------------------

@pytest.mark.slow
def test_sst2_finetune_beats_majority(minilm_dir, tmp_path):
    """MiniLM on 2,000 SST-2 sentences for one epoch: dev accuracy far above the majority class (50.9%)."""
    data = ft.glue_task_data("sst2", require_data("glue"))
    data.train = random.Random(0).sample(data.train, 2000)
    majority = Counter(e.label for e in data.dev).most_common(1)[0][1] / len(data.dev)
    result = ft.finetune(data, minilm_dir, tmp_path / "sst2",
                         ft.FinetuneSettings(ft.finetune_train_config(epochs=1, lr=1e-4, **QUICK), batch_size=32,
                                             evals_per_epoch=1))
    assert result.best["accuracy"] > majority + 0.2, (result.best, majority)


@pytest.mark.slow
def test_conll_finetune_finds_entities(minilm_dir, tmp_path):
    """MiniLM on 1,500 CoNLL-2003 sentences, one epoch: entity F1 on 500 dev sentences well above the
    all-O baseline (F1 0)."""
    root = require_data("conll2003")
    data = ft.ner_task_data(root / "train.txt", root / "valid.txt", "conll2003")
    data.train, data.dev = random.Random(0).sample(data.train, 1500), data.dev[:500]
    result = ft.finetune(data, minilm_dir, tmp_path / "conll",
                         ft.FinetuneSettings(ft.finetune_train_config(epochs=1, lr=1e-4, **QUICK), batch_size=16,
                                             evals_per_epoch=1))
    assert result.best["f1"] > 0.4, result.best
