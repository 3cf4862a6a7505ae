"""QA fine-tuning and evaluation: the commands end to end (fast, tiny model) and real learning (slow)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.heads import BertForQuestionAnswering
from tests.helpers import require_data


def _squad_file(path, n_paragraphs=6):
    """A small SQuAD-format file whose answers are easy to find (a name after 'called')."""
    names = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"]
    data = []
    for i in range(n_paragraphs):
        name = names[i % len(names)]
        context = f"The farmer in village {i} owned a dog called {name}. It liked to run in the fields."
        data.append({"title": f"t{i}", "paragraphs": [{"context": context, "qas": [
            {"id": f"q{i}", "question": "What was the dog called?",
             "answers": [{"text": name, "answer_start": context.index(name)}]}]}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def test_finetune_and_evaluate_commands_end_to_end(tmp_path, minilm_dir):
    from bertforge.cli.main import main

    base = tmp_path / "base"
    BertForQuestionAnswering(BertConfig.preset("tiny", max_position_embeddings=512)).bert.save_pretrained(base)
    shutil.copy(minilm_dir / "vocab.txt", base / "vocab.txt")
    train = _squad_file(tmp_path / "train.json")
    rc = main(["finetune", "squad", "--model", str(base), "--train", str(train), "--dev", str(train),
               "--out", str(tmp_path / "qa"), "--max-steps", "2", "--batch-size", "4", "--precision", "fp32",
               "--max-seq-length", "64", "--max-query-length", "16", "--window-overlap", "8"])
    assert rc == 0
    for f in ("config.json", "model.safetensors", "vocab.txt", "qa_train_config.json"):
        assert (tmp_path / "qa" / f).exists(), f
    assert (tmp_path / "qa" / "run" / "metrics.jsonl").exists()
    saved = json.loads((tmp_path / "qa" / "qa_train_config.json").read_text())
    assert saved["train"]["max_steps"] == 2 and saved["train"]["precision"] == "fp32"  # the loop's settings kept
    assert saved["train_files"] == [str(train)] and saved["windows"]["max_seq_length"] == 64
    rc = main(["evaluate", "squad", "--model", str(tmp_path / "qa"), "--data", str(train),
               "--out", str(tmp_path / "eval"), "--max-seq-length", "64", "--max-query-length", "16",
               "--window-overlap", "8"])
    assert rc == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    nbest = json.loads((tmp_path / "eval" / "nbest_predictions.json").read_text())
    assert results["questions"] == 6 and set(predictions) == {f"q{i}" for i in range(6)}
    assert 0 <= results["f1"] <= 100 and all(len(v) >= 1 for v in nbest.values())


def test_training_features_keep_answers_and_subsample_negatives(minilm_dir):
    from bertforge.data.squad import QAWindows, SquadExample
    from bertforge.tasks.qa.train import QATrainConfig, training_features
    from bertforge.tokenizer.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(minilm_dir)
    context = " ".join(f"Filler sentence number {i}." for i in range(200)) + " The key is hidden under the mat."
    ex = SquadExample("q", "Where is the key?", context,
                      [{"text": "under the mat", "answer_start": context.index("under the mat")}])
    cfg = QATrainConfig(windows=QAWindows(64, 16, 16), negatives_per_question=2)
    feats = training_features([ex], tok, cfg)
    positives = [f for f in feats if f.start_position != 0]
    assert len(positives) >= 1 and len(feats) == len(positives) + 2
    all_feats = training_features([ex], tok, QATrainConfig(windows=QAWindows(64, 16, 16),
                                                           negatives_per_question=None))
    assert len(all_feats) > len(feats)


def _first_questions(src, n, dst):
    """Write the first paragraphs of SQuAD file `src` holding about `n` questions to `dst`."""
    articles, count = [], 0
    for article in json.loads(src.read_text())["data"]:
        for p in article["paragraphs"]:
            if count < n:
                articles.append({"title": article["title"], "paragraphs": [p]})
                count += len(p["qas"])
    dst.write_text(json.dumps({"version": "1.1", "data": articles}))


@pytest.mark.slow
def test_small_finetune_raises_f1_well_above_untrained(tmp_path, minilm_dir):
    """400 SQuAD train questions (no article shared with XQuAD / SQuAD dev), three epochs: F1 and EM on
    ~150 XQuAD-en questions rise well above the untrained model's (random head)."""
    from bertforge.tasks.qa.train import QATrainConfig, evaluate_squad, finetune_squad
    from bertforge.training.trainer import TrainConfig

    data = require_data()
    _first_questions(data / "squad" / "train-v1.1.json", 400, tmp_path / "small.json")
    _first_questions(data / "xquad" / "xquad.en.json", 150, tmp_path / "eval.json")

    torch.manual_seed(0)
    untrained = tmp_path / "untrained"
    BertForQuestionAnswering.from_pretrained(minilm_dir).save_pretrained(untrained)
    shutil.copy(minilm_dir / "vocab.txt", untrained / "vocab.txt")
    before = evaluate_squad(untrained, tmp_path / "eval.json")
    finetune_squad(minilm_dir, [tmp_path / "small.json"], None, tmp_path / "qa",
                   QATrainConfig(train=TrainConfig(epochs=3, lr=2e-4, precision="bf16", save_every=1000, seed=42,
                                                   warmup_ratio=0.1), batch_size=16))
    after = evaluate_squad(tmp_path / "qa", tmp_path / "eval.json")
    # Measured here: F1 6.5 -> 14.0 (EM 1.3 -> 11.1). 400 questions are ~0.5% of SQuAD's train set.
    assert after["f1"] > 1.8 * before["f1"] and after["exact_match"] > before["exact_match"] + 5, (before, after)


# ---- fixed training shapes (D15): the padded path gives the loss curve of the unpadded one ----------


def _marker_features(n: int, seed: int = 0) -> list:
    """Synthetic QA windows of 12-120 tokens whose answer runs from marker 5 to marker 6 (a quickly
    learned task: the curves then have a clear descent to compare)."""
    import random

    from bertforge.data.squad import SquadFeature

    rng, feats = random.Random(seed), []
    for i in range(n):
        L = rng.randint(12, 120)
        ids = [1] + [rng.randrange(10, 128) for _ in range(L - 2)] + [2]
        s = rng.randint(1, L - 5)
        e = rng.randint(s + 1, s + 3)
        ids[s], ids[e] = 5, 6
        feats.append(SquadFeature(i, 0, ids, [0] * L, [1] * L, [None] * L, [True] * L, s, e))
    return feats


def _qa_loss_curve(tmp_path, pad_to_multiple_of, precision: str, steps: int) -> list[float]:
    """Train a tiny QA model from one seed on the same batches in the same order; the loss of every step."""
    from bertforge.data.loader import ResumableLoader
    from bertforge.data.squad import length_bucketed_batches
    from bertforge.tasks.qa.train import QATrainConfig, train_batch
    from bertforge.training.trainer import TrainConfig, Trainer

    cfg = QATrainConfig(pad_to_multiple_of=pad_to_multiple_of)
    feats = _marker_features(400)
    batches = [[feats[k] for k in idx] for idx in length_bucketed_batches(feats, 8, seed=0)]
    loader = ResumableLoader(batches, batch_size=1, collate_fn=lambda items: train_batch(items[0], cfg), seed=0)
    torch.manual_seed(0)
    # No dropout: the two paths draw dropout masks of different shapes, which is not what is compared here.
    model = BertForQuestionAnswering(BertConfig.preset("tiny", vocab_size=128, hidden_dropout_prob=0.0,
                                                       attention_probs_dropout_prob=0.0))
    tc = TrainConfig(out_dir=str(tmp_path / f"{pad_to_multiple_of}-{precision}"), max_steps=steps, lr=1e-3,
                     warmup_steps=20, precision=precision, log_every=1, progress=False, seed=0, device="cpu")
    log = Trainer(model, tc, loader).train()
    return [r["loss"] for r in log if "loss" in r]


@pytest.mark.parametrize("steps", [120, pytest.param(300, marks=pytest.mark.slow)])
def test_padded_fixed_shapes_train_like_unpadded_within_bf16_tolerance(tmp_path, one_thread, steps):
    """D15: QA training pads batches to a multiple of 64 and keeps that shape (unpad=False). Over seeded
    steps on a tiny model the loss curve equals the unpadded one: to float rounding in fp32 (measured over
    300 steps: 5e-7), and within bf16's tolerance in bf16: the mean relative gap of the 20-step mean losses
    stays under 1% (measured 0.05%; docs/speed.md), as does bf16's gap to fp32, while the loss falls well
    below its start."""
    fp32_packed = _qa_loss_curve(tmp_path, None, "fp32", steps)
    fp32_padded = _qa_loss_curve(tmp_path, 64, "fp32", steps)
    bf16_packed = _qa_loss_curve(tmp_path, None, "bf16", steps)
    bf16_padded = _qa_loss_curve(tmp_path, 64, "bf16", steps)
    assert len(fp32_packed) == len(bf16_padded) == steps
    assert fp32_packed[-1] < 0.5 * fp32_packed[0], "the task must be learned for the curves to mean anything"

    def means(curve):  # 20-step means: the curve as a plot shows it
        return torch.tensor(curve).view(-1, 20).mean(1)

    def gap(a, b):  # mean relative gap between two curves' 20-step means
        return float(((means(a) - means(b)).abs() / means(b)).mean())

    assert max(abs(a - b) for a, b in zip(fp32_padded, fp32_packed)) < 1e-4
    assert gap(bf16_padded, bf16_packed) < 0.01, gap(bf16_padded, bf16_packed)
    assert gap(bf16_padded, fp32_packed) < 0.01, gap(bf16_padded, fp32_packed)
    assert gap(bf16_packed, fp32_packed) < 0.01, gap(bf16_packed, fp32_packed)
