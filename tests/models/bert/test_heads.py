"""Classification heads vs HF transformers: same state dict -> same logits and loss; checkpoints round-trip."""
from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from bertforge.models.bert.checkpoint import load_state_into  # noqa: E402
from bertforge.models.bert.config import BertConfig  # noqa: E402
from bertforge.models.bert.heads import (  # noqa: E402
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
    id2label,
    num_labels,
    problem_type,
    set_labels,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)
HF_CLASSES = {
    BertForSequenceClassification: "BertForSequenceClassification",
    BertForMultipleChoice: "BertForMultipleChoice",
    BertForTokenClassification: "BertForTokenClassification",
}


def _pair(cls, n_labels=3, problem=None, **extra):
    """An HF head with random weights and the bertforge head loaded from its state dict."""
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(**TINY, num_labels=n_labels, problem_type=problem, **extra)
    hf = getattr(transformers, HF_CLASSES[cls])(hf_config).eval()
    ours_config = BertConfig.from_dict(hf_config.to_dict())
    ours = cls(ours_config).eval()
    report = load_state_into(ours, hf.state_dict())
    assert report.initialized == [] and report.ignored == []
    return ours, hf


def _batch(B=4, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, TINY["vocab_size"], (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0  # some padding
    mask[3, 4:] = 0
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, 5:] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


@pytest.mark.parametrize("kind", ["regression", "single_label_classification", "multi_label_classification"])
@pytest.mark.parametrize("configured", [False, True], ids=["inferred", "configured"])
def test_sequence_classification_matches_hf(kind, configured):
    n = 1 if kind == "regression" else 3
    ours, hf = _pair(BertForSequenceClassification, n, problem=kind if configured else None)
    batch = _batch()
    g = torch.Generator().manual_seed(2)
    labels = {"regression": torch.rand(4, generator=g) * 5,
              "single_label_classification": torch.tensor([0, 2, 1, 2]),
              "multi_label_classification": (torch.rand(4, 3, generator=g) > 0.5).float()}[kind]
    assert problem_type(ours.config, labels) == kind  # HF's inference rule, or the configured type
    with torch.no_grad():
        a = ours(**batch, labels=labels)
        b = hf(**batch, labels=labels)
    assert hf.config.problem_type == kind  # HF decided the same problem type
    assert a.logits.shape == b.logits.shape == (4, n)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)


def test_sequence_classification_without_labels_has_no_loss():
    ours, _ = _pair(BertForSequenceClassification)
    out = ours(**_batch())
    assert out.loss is None and out.logits.shape == (4, 3)


def test_multiple_choice_matches_hf():
    ours, hf = _pair(BertForMultipleChoice)
    B, C, T = 3, 4, 9
    flat = _batch(B * C, T)
    batch = {k: v.view(B, C, T) for k, v in flat.items()}
    labels = torch.tensor([3, 0, 2])
    with torch.no_grad():
        a = ours(**batch, labels=labels, output_hidden_states=True)
        b = hf(**batch, labels=labels)
    assert a.logits.shape == b.logits.shape == (B, C)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)
    assert a.encoder.last_hidden_state.shape == (B, C, T, TINY["hidden_size"])
    assert a.encoder.hidden_states[0].shape == (B, C, T, TINY["hidden_size"])
    # each choice is scored on its own: choice 1 of example 2 equals that row run as a 1-choice batch
    with torch.no_grad():
        single = ours(**{k: v[2:3, 1:2] for k, v in batch.items()})
    torch.testing.assert_close(single.logits[0, 0], a.logits[2, 1], atol=1e-5, rtol=1e-5)


def test_token_classification_matches_hf():
    ours, hf = _pair(BertForTokenClassification, 5)
    assert ours.bert.pooler is None and hf.bert.pooler is None  # HF builds it without a pooler too
    batch = _batch()
    labels = torch.randint(0, 5, (4, 9), generator=torch.Generator().manual_seed(3))
    labels[batch["attention_mask"] == 0] = -100
    labels[:, 0] = -100  # [CLS]
    labels[0, 3] = -100  # a continuation word piece
    with torch.no_grad():
        a = ours(**batch, labels=labels)
        b = hf(**batch, labels=labels)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(a.logits[real], b.logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)
    # -100 positions really are ignored: changing the logits there leaves the loss unchanged
    manual = torch.nn.functional.cross_entropy(a.logits[labels != -100], labels[labels != -100])
    torch.testing.assert_close(a.loss, manual)


def test_classifier_dropout_follows_hf_rule():
    ours, hf = _pair(BertForSequenceClassification, classifier_dropout=0.3)
    assert ours.dropout.p == hf.dropout.p == 0.3
    ours, hf = _pair(BertForTokenClassification)
    assert ours.dropout.p == hf.dropout.p == TINY.get("hidden_dropout_prob", 0.1)


def test_dropout_active_in_training_only():
    ours, _ = _pair(BertForSequenceClassification)
    batch = _batch()
    ours.train()
    torch.manual_seed(0)
    a = ours(**batch).logits
    b = ours(**batch).logits
    assert not torch.allclose(a, b)
    ours.eval()
    torch.testing.assert_close(ours(**batch).logits, ours(**batch).logits)


@pytest.mark.parametrize("cls", list(HF_CLASSES))
def test_checkpoint_round_trip_with_hf(cls, tmp_path):
    """bertforge -> save_pretrained -> HF from_pretrained (labels kept) -> save -> bertforge: same logits."""
    config = BertConfig(**TINY)
    set_labels(config, ["neg", "neu", "pos"], "single_label_classification")
    torch.manual_seed(4)
    ours = cls(config).eval()
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["id2label"] == {"0": "neg", "1": "neu", "2": "pos"} and saved["architectures"] == [cls.__name__]

    hf = getattr(transformers, HF_CLASSES[cls]).from_pretrained(str(tmp_path / "ours")).eval()
    assert hf.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert hf.config.problem_type == "single_label_classification"
    hf.save_pretrained(str(tmp_path / "hf"))
    back = cls.from_pretrained(tmp_path / "hf")
    assert back.load_report.initialized == [] and back.load_report.ignored == []
    assert id2label(back.config) == {0: "neg", 1: "neu", 2: "pos"} and num_labels(back.config) == 3

    flat = _batch(6, 7)
    batch = {k: v.view(3, 2, 7) for k, v in flat.items()} if cls is BertForMultipleChoice else _batch()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        x, y, z = ours(**batch).logits, hf(**batch).logits, back(**batch).logits
    if cls is BertForTokenClassification:
        x, y, z = x[real], y[real], z[real]
    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x, z, atol=1e-6, rtol=1e-6)


def test_minilm_base_checkpoint_into_head_initialises_only_the_head(minilm_dir):
    model = BertForSequenceClassification.from_pretrained(minilm_dir)
    assert sorted(model.load_report.initialized) == ["classifier.bias", "classifier.weight"]
    assert num_labels(model.config) == 2
    model = BertForTokenClassification.from_pretrained(minilm_dir)
    assert "bert.pooler.dense.weight" not in model.state_dict()
    assert "pooler.dense.weight" in model.load_report.ignored


def test_bad_inputs_raise_clear_errors():
    seq, _ = _pair(BertForSequenceClassification)
    with pytest.raises(ValueError, match="out of range"):
        seq(**_batch(), labels=torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="shaped like the logits"):
        seq(**_batch(), labels=torch.ones(4, 2))
    mc, _ = _pair(BertForMultipleChoice)
    with pytest.raises(ValueError, match="batch, choices, seq_len"):
        mc(**_batch())
    with pytest.raises(ValueError, match="duplicate"):
        set_labels(BertConfig(**TINY), ["a", "a"])
    with pytest.raises(ValueError, match="problem_type"):
        set_labels(BertConfig(**TINY), ["a", "b"], "ranking")
