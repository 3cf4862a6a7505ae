"""The notes' sequence models: counted transition matrices, feature voting, the mask, and attention learning it."""
from __future__ import annotations

import pytest
import torch

from bertforge.models.sequence_models import (
    NOTES_SENTENCES,
    MarkovModel,
    SkipSecondOrderModel,
    mask_from,
    pair_feature_layer,
    train_attention_lm,
    train_attention_mask,
    words,
)

PROGRAM = "Check the program log and find out whether it ran"
BATTERY = "Check the battery log and find out whether it ran"
MASK = {("battery", "ran"), ("program", "ran")}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest


@pytest.fixture(scope="module")
def skip_model() -> SkipSecondOrderModel:
    return SkipSecondOrderModel(NOTES_SENTENCES)


def test_markov_models_cannot_see_eight_words_back():
    first, second = MarkovModel(NOTES_SENTENCES, 1), MarkovModel(NOTES_SENTENCES, 2)
    assert first.predict("the") == {"program": 0.5, "battery": 0.5}
    assert first.predict("ran") == {"please": 0.5, "down": 0.5}
    assert first.predict("down") == {"please": 1.0}
    # the two most recent words do not help either: the deciding word is eight places back
    assert second.predict(BATTERY) == second.predict(PROGRAM) == {"please": 0.5, "down": 0.5}
    assert second.predict("it ran") == {"please": 0.5, "down": 0.5}
    assert first.predict("unseen") == {}
    with pytest.raises(ValueError):
        MarkovModel(NOTES_SENTENCES, 0)


def test_feature_votes_are_the_notes_numbers(skip_model):
    program, battery = skip_model.votes(PROGRAM), skip_model.votes(BATTERY)
    # "sum by column = 0 for every word except 4 for down and 5 for please" (and the reverse for battery)
    assert {w: v for w, v in program.items() if v} == {"down": 4.0, "please": 5.0}
    assert {w: v for w, v in battery.items() if v} == {"down": 5.0, "please": 4.0}
    assert set(program) == set(skip_model.vocab)  # every other word: exactly 0
    assert skip_model.predict(PROGRAM) == "please" and skip_model.predict(BATTERY) == "down"


def test_feature_rows(skip_model):
    # the eight shared features vote 0.5 / 0.5; only battery and program decide
    assert len(skip_model.active_features(BATTERY)) == 9
    assert skip_model.weights[("Check", "ran")] == {"please": 0.5, "down": 0.5}
    assert skip_model.weights[("battery", "ran")] == {"down": 1.0}
    assert skip_model.weights[("program", "ran")] == {"please": 1.0}
    shared = [f for f in skip_model.active_features(BATTERY) if f not in MASK]
    assert len(shared) == 8 and all(skip_model.weights[f] == {"please": 0.5, "down": 0.5} for f in shared)


def test_mask_turns_four_against_five_into_one_against_zero(skip_model):
    battery = skip_model.votes(BATTERY, mask=MASK)
    program = skip_model.votes(PROGRAM, mask=MASK)
    assert battery["down"] == 1.0 and battery["please"] == 0.0
    assert program["please"] == 1.0 and program["down"] == 0.0
    assert sum(battery.values()) == 1.0 and sum(program.values()) == 1.0
    # a mask given as weights: halving a feature halves its vote
    assert skip_model.votes(BATTERY, mask={("battery", "ran"): 0.5})["down"] == 0.5


def test_matrix_form_equals_the_votes(skip_model):
    for prefix in (BATTERY, PROGRAM, "Check the battery log"):
        a, T, features = skip_model.matrices(prefix)
        votes = a @ T
        expected = skip_model.votes(prefix)
        assert votes.tolist() == [expected[w] for w in skip_model.vocab]
        assert torch.allclose(T.sum(1), torch.ones(len(features)))  # each feature's row is a distribution
        m = torch.tensor([1.0 if f in MASK else 0.0 for f in features])
        masked = skip_model.votes(prefix, mask=MASK)
        assert ((a * m) @ T).tolist() == [masked[w] for w in skip_model.vocab]


def test_pair_feature_layer_with_relu_builds_the_pair_features():
    vocab = ["battery", "program", "ran"]
    W, b = pair_feature_layer(vocab, [("battery", "ran"), ("program", "ran")])

    def features(seen):
        x = torch.tensor([1.0 if w in seen else 0.0 for w in vocab])
        return W @ x + b, torch.relu(W @ x + b)

    raw, feat = features({"battery", "ran"})
    assert raw.tolist() == [1.0, -1.0] and feat.tolist() == [1.0, 0.0]  # the notes: 1 and -1, ReLU -> 0
    assert features({"program", "ran"})[1].tolist() == [0.0, 1.0]
    assert features({"ran"})[1].tolist() == [0.0, 0.0]
    assert features({"battery"})[1].tolist() == [0.0, 0.0]


def test_attention_learns_the_notes_mask():
    for seed in (0, 1):
        model, losses = train_attention_mask(seed=seed)
        assert losses[-1] < losses[0]
        for prefix, keep, next_word in ((BATTERY, ("battery", "ran"), "down"), (PROGRAM, ("program", "ran"), "please")):
            mask = mask_from(model, prefix)
            assert mask[keep] > 0.99, mask  # the eight uninformative features get < 1% together
            assert sum(mask.values()) == pytest.approx(1.0)
            probs, _ = model(torch.tensor([[model.vocab.index(w) for w in words(prefix)]]))
            p = dict(zip(model.vocab, probs[0, -1].tolist()))
            assert p[next_word] > 0.99  # = the hand-masked vote: weight 1 against 0
        # with a uniform mask the model gives the unmasked vote divided by the nine features (5/9 : 4/9)
        with torch.no_grad():
            model.w_q.zero_()
        probs, _ = model(torch.tensor([[model.vocab.index(w) for w in words(BATTERY)]]))
        assert probs[0, -1, model.vocab.index("down")].item() == pytest.approx(5 / 9)
        assert probs[0, -1, model.vocab.index("please")].item() == pytest.approx(4 / 9)


def test_end_to_end_attention_routes_the_decision_through_battery_or_program():
    """With learned values too, a head only needs to tell the sentences apart; whenever it does, `ran`
    attends to battery or program (all other words are the same in both sentences)."""
    solved = 0
    for seed in range(4):
        model, vocab, losses = train_attention_lm(seed=seed, d_model=32, lr=0.1, steps=300)
        ids = torch.tensor([[vocab.index(w) for w in words(s)] for s in (BATTERY, PROGRAM)])
        with torch.no_grad():
            logits, attn = model(ids)
        p = logits[:, -1].softmax(-1)
        if p[0, vocab.index("down")] > 0.9 and p[1, vocab.index("please")] > 0.9:
            solved += 1
            assert max(attn[0, -1, 2].item(), attn[1, -1, 2].item()) > 0.5  # position 2: battery / program
    assert solved >= 1
