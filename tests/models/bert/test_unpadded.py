"""Issue 7: the unpadded (packed) path equals the padded path (fp32, 1e-5), forward and backward."""
from __future__ import annotations

import torch

from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.modeling import BertModel


def _batch(lengths, T, vocab=30000, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (len(lengths), T), generator=g)
    am = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        am[i, :n] = 1
    ids = ids * am  # pad id 0
    tt = (torch.arange(T) >= 3).long().expand(len(lengths), T) * am
    return ids, am, tt


def test_unpadded_equals_padded_on_real_weights(minilm_dir):
    model = BertModel.from_pretrained(minilm_dir)
    T = 512  # one max-length sequence, one single-token sequence ([CLS] alone), varied others
    ids, am, tt = _batch([512, 1, 2, 37, 200, 511], T)
    with torch.no_grad():
        a = model(ids, am, tt, unpad=True, output_hidden_states=True)
        b = model(ids, am, tt, unpad=False, output_hidden_states=True)
    real = am.bool()
    for x, y in zip(a.hidden_states + (a.last_hidden_state,), b.hidden_states + (b.last_hidden_state,)):
        assert (x[real] - y[real]).abs().max() <= 1e-5
        assert (x[~real] == 0).all()  # padding positions are zeros on the packed path
    assert (a.pooler_output - b.pooler_output).abs().max() <= 1e-5


def test_unpadded_gradients_equal_padded():
    torch.manual_seed(0)
    model = BertModel(BertConfig.preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ids, am, tt = _batch([10, 3, 1, 7], 10, vocab=1000)
    grads = []
    for unpad in (True, False):
        model.zero_grad()
        out = model(ids, am, tt, unpad=unpad).last_hidden_state
        (out[am.bool()] ** 2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5), n


def test_default_unpads_only_when_there_is_padding(minilm_dir):
    model = BertModel.from_pretrained(minilm_dir)
    ids, am, tt = _batch([8, 8], 8)
    with torch.no_grad():
        assert torch.equal(model(ids, am, tt).last_hidden_state, model(ids, am, tt, unpad=False).last_hidden_state)
