"""The Transformer's parts against the paper's formulas and hand-made cases (D2-D4)."""
from __future__ import annotations

import math

import pytest
import torch

from bertforge.nn import (
    Decoder,
    Encoder,
    EncoderLayer,
    KVCache,
    MultiHeadAttention,
    PositionwiseFeedForward,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    combine_masks,
    look_ahead_mask,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)


def test_positional_encoding_equals_formula():
    L, D = 50, 16
    pe = sinusoidal_positional_encoding(L, D)
    for pos in (0, 1, 7, 49):
        for i in range(D // 2):
            angle = pos / (10000 ** (2 * i / D))
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    odd = sinusoidal_positional_encoding(4, 5)  # odd d_model: one more sine column
    assert odd.shape == (4, 5) and odd[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 5)), abs=1e-6)


def test_sinusoidal_module_adds_encoding_and_checks_length():
    enc = SinusoidalPositionalEncoding(8, max_len=10)
    x = torch.zeros(2, 4, 8)
    assert torch.equal(enc(x)[1], sinusoidal_positional_encoding(10, 8)[:4])
    assert torch.equal(enc(x, offset=3)[0], sinusoidal_positional_encoding(10, 8)[3:7])
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.zeros(1, 11, 8))


def test_token_embedding_scale():
    emb = TokenEmbedding(10, 16, scale=True)
    ids = torch.tensor([[1, 2]])
    assert torch.allclose(emb(ids), emb.weight[ids] * 4.0)


def test_masks_shapes_and_semantics():
    am = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pm = padding_mask(am)
    assert pm.shape == (2, 1, 1, 3) and pm.dtype == torch.bool
    assert pm[1, 0, 0].tolist() == [True, False, False]
    la = look_ahead_mask(3)
    assert la.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # With a cache of 2 past positions, the one new query sees all 3 keys.
    assert look_ahead_mask(1, 3).tolist() == [[True, True, True]]
    both = combine_masks(pm, la)
    assert both.shape == (2, 1, 3, 3) and both[0, 0, 2].tolist() == [True, True, False]
    assert combine_masks(None, None) is None
    with pytest.raises(ValueError):
        padding_mask(torch.ones(2, 3, 4))


def _explicit_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1) @ v


def test_attention_paths_equal_each_other_and_the_formula():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    mask = padding_mask(torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])) & look_ahead_mask(5)
    eager, probs = scaled_dot_product_attention(q, k, v, mask, need_weights=True, implementation="eager")
    fast, none = scaled_dot_product_attention(q, k, v, mask, implementation="sdpa")
    assert none is None
    assert torch.allclose(eager, _explicit_attention(q, k, v, mask), atol=1e-6)
    assert torch.allclose(eager, fast, atol=1e-6)  # D3: fp32 to 1e-6
    assert torch.allclose(probs.sum(-1), torch.ones(2, 3, 5))
    assert (probs.masked_select(~mask.expand_as(probs)) == 0).all()
    with pytest.raises(ValueError, match="eager"):
        scaled_dot_product_attention(q, k, v, mask, need_weights=True, implementation="sdpa")
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, k, v, mask.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_query_with_nothing_to_attend_gives_zeros_not_nan(dtype, impl):
    q, k, v = (torch.randn(2, 2, 3, 4, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = padding_mask(torch.tensor([[0, 0, 0], [1, 1, 0]]))  # first sequence is all padding
    out, _ = scaled_dot_product_attention(q, k, v, mask, implementation=impl)
    assert not torch.isnan(out).any()
    assert (out[0] == 0).all()
    out.float().sum().backward()
    assert not any(torch.isnan(t.grad).any() for t in (q, k, v))


def test_multi_head_attention_equals_per_head_formula():
    """Concat(head_1..head_h) W_O with head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i), computed by hand."""
    torch.manual_seed(1)
    D, H = 12, 3
    mha = MultiHeadAttention(D, H, implementation="eager").eval()
    x, ctx = torch.randn(2, 4, D), torch.randn(2, 6, D)
    out, probs = mha(x, context=ctx, need_weights=True)
    dk = D // H
    heads = []
    for i in range(H):
        sl = slice(i * dk, (i + 1) * dk)
        qi = x @ mha.w_q.weight[sl].T + mha.w_q.bias[sl]
        ki = ctx @ mha.w_k.weight[sl].T + mha.w_k.bias[sl]
        vi = ctx @ mha.w_v.weight[sl].T + mha.w_v.bias[sl]
        heads.append(torch.softmax(qi @ ki.transpose(-2, -1) / math.sqrt(dk), -1) @ vi)
    expected = torch.cat(heads, -1) @ mha.w_o.weight.T + mha.w_o.bias
    assert torch.allclose(out, expected, atol=1e-5)
    assert probs.shape == (2, H, 4, 6)


def test_kv_cache_incremental_equals_full():
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 5, 8)
    full, _ = mha(x, mask=look_ahead_mask(5))
    cache = KVCache()
    steps = [mha(x[:, t : t + 1], mask=look_ahead_mask(1, t + 1), cache=cache)[0] for t in range(5)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-6)
    assert len(cache) == 5


def test_feed_forward_formula_and_bad_activation():
    ffn = PositionwiseFeedForward(4, 8, activation="relu")
    x = torch.randn(2, 3, 4)
    expected = torch.relu(x @ ffn.w_1.weight.T + ffn.w_1.bias) @ ffn.w_2.weight.T + ffn.w_2.bias
    assert torch.allclose(ffn(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        PositionwiseFeedForward(4, 8, activation="swish")


def test_post_ln_and_pre_ln_placement():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 8)
    for norm_first in (False, True):
        layer = EncoderLayer(8, num_heads=2, d_ff=16, dropout=0.0, attn_dropout=0.0, norm_first=norm_first).eval()
        a, s = layer.attn_sublayer, layer.self_attn
        if norm_first:  # x + Sublayer(LN(x))
            h = x + s(a.norm(x))[0]
            expected = h + layer.ffn(layer.ffn_sublayer.norm(h))
        else:  # LN(x + Sublayer(x))
            h = a.norm(x + s(x)[0])
            expected = layer.ffn_sublayer.norm(h + layer.ffn(h))
        assert torch.allclose(layer(x)[0], expected, atol=1e-6)
    assert Encoder(2, 8, num_heads=2, d_ff=16, norm_first=True).final_norm is not None


def test_decoder_look_ahead_hides_the_future_and_cross_attention_respects_source_padding():
    torch.manual_seed(4)
    dec = Decoder(2, 16, num_heads=4, d_ff=32, dropout=0.0, attn_dropout=0.0).eval()
    memory = torch.randn(1, 6, 16)
    tgt = torch.randn(1, 5, 16)
    out, _ = dec(tgt, memory, self_mask=look_ahead_mask(5))
    tgt2 = tgt.clone()
    tgt2[:, 3:] = torch.randn(1, 2, 16)  # change positions 3, 4
    out2, _ = dec(tgt2, memory, self_mask=look_ahead_mask(5))
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-6)
    assert not torch.allclose(out[:, 3:], out2[:, 3:])
    # Source positions 4, 5 are padding: changing them must not change anything.
    src_mask = padding_mask(torch.tensor([[1, 1, 1, 1, 0, 0]]))
    memory2 = memory.clone()
    memory2[:, 4:] = 100 * torch.randn(1, 2, 16)
    a, _ = dec(tgt, memory, look_ahead_mask(5), src_mask)
    b, _ = dec(tgt, memory2, look_ahead_mask(5), src_mask)
    assert torch.allclose(a, b, atol=1e-6)
