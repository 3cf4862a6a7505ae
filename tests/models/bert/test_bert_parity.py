"""Is this really BERT? bertforge vs HF transformers on real MiniLM weights and on random bert-base."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from bertforge.models.bert.checkpoint import CheckpointMismatchError, from_hf_key, to_hf_key  # noqa: E402
from bertforge.models.bert.config import BertConfig  # noqa: E402
from bertforge.models.bert.modeling import BertModel, mean_pool  # noqa: E402

SENTENCES = [
    "Hi.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch of his house.",
    "Café crème brûlée, naïve résumé and Ångström units.",
    "東京は日本の首都です。北京也是首都。",
    "Attention is all you need; BERT reads text in both directions at once!",
]


@pytest.fixture(scope="module")
def hf_batch(minilm_dir):
    tok = transformers.BertTokenizer.from_pretrained(str(minilm_dir))
    return tok(SENTENCES, padding=True, return_tensors="pt")


@pytest.fixture(scope="module")
def hf_models(minilm_dir):
    return {impl: transformers.BertModel.from_pretrained(str(minilm_dir), attn_implementation=impl).eval()
            for impl in ("eager", "sdpa")}


def _real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Values at real (non-pad) positions only. Pad positions are meaningless and numerically
    fragile: HF's own eager and sdpa paths differ there by ~6e-5 on this batch."""
    return x[mask.bool()]


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_minilm_matches_hf(minilm_dir, hf_batch, hf_models, impl):
    ours = BertModel.from_pretrained(minilm_dir, attn_implementation=impl)
    assert ours.load_report.initialized == [] and ours.load_report.ignored == []
    with torch.no_grad():
        a = ours(**hf_batch, output_hidden_states=True)
        b = hf_models["eager"](**hf_batch, output_hidden_states=True)
    m = hf_batch["attention_mask"]
    assert (_real(a.last_hidden_state, m) - _real(b.last_hidden_state, m)).abs().max() <= 1e-5
    assert (a.pooler_output - b.pooler_output).abs().max() <= 1e-5
    assert len(a.hidden_states) == len(b.hidden_states) == 7
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert (_real(x, m) - _real(y, m)).abs().max() <= 1e-5


def test_attention_probabilities_equal_hf(minilm_dir, hf_batch, hf_models):
    ours = BertModel.from_pretrained(minilm_dir)
    with pytest.raises(ValueError, match="eager"):
        ours(**hf_batch, output_attentions=True)  # D3: no silent fallback
    ours.set_attn_implementation("eager")
    with torch.no_grad():
        a = ours(**hf_batch, output_attentions=True).attentions
        b = hf_models["eager"](**hf_batch, output_attentions=True).attentions
    T = hf_batch["input_ids"].shape[1]
    assert len(a) == 6 and a[0].shape == (len(SENTENCES), 12, T, T)
    m = hf_batch["attention_mask"].bool()
    for x, y in zip(a, b):
        assert x.shape == y.shape
        # rows of real queries; pad-query rows are as fragile as their hidden states
        assert (x.permute(0, 2, 1, 3)[m] - y.permute(0, 2, 1, 3)[m]).abs().max() <= 1e-5


def test_sentence_transformers_embedding_reproduced(minilm_dir, hf_batch, hf_models):
    """all-MiniLM-L6-v2 = mean over non-pad tokens, L2-normalised; reference computed from HF outputs
    one sentence at a time (no padding at all)."""
    tok = transformers.BertTokenizer.from_pretrained(str(minilm_dir))
    ours = BertModel.from_pretrained(minilm_dir)
    with torch.no_grad():
        emb = mean_pool(ours(**hf_batch).last_hidden_state, hf_batch["attention_mask"])
        for i, s in enumerate(SENTENCES):
            h = hf_models["eager"](**tok(s, return_tensors="pt")).last_hidden_state[0]
            ref = torch.nn.functional.normalize(h.mean(0), dim=0)
            assert (emb[i] - ref).abs().max() <= 1e-5
    # A sanity check of meaning: paraphrases are closer than unrelated sentences.
    with torch.no_grad():
        enc = tok(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."],
                  padding=True, return_tensors="pt")
        e = mean_pool(ours(**enc).last_hidden_state, enc["attention_mask"])
    sims = e @ e.T
    assert sims[0, 1] > 0.6 > sims[0, 2]


def test_parameter_counts():
    assert BertModel(BertConfig.preset("bert-base")).num_parameters() == 109_482_240
    assert BertModel(BertConfig.preset("bert-large")).num_parameters() == 335_141_888
    hf = transformers.BertModel(transformers.BertConfig())
    assert sum(p.numel() for p in hf.parameters()) == 109_482_240


def test_random_bert_base_both_directions(tmp_path):
    torch.manual_seed(0)
    config = BertConfig.preset("bert-base", num_hidden_layers=2)  # 2 layers keep the test fast; same shapes
    hf = transformers.BertModel(transformers.BertConfig(num_hidden_layers=2), add_pooling_layer=True).eval()
    ids = torch.randint(0, 30522, (3, 17))
    am = torch.ones_like(ids)
    am[1, 9:] = 0
    tt = torch.zeros_like(ids)
    tt[:, 8:] = 1
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=am, token_type_ids=tt)

    # HF state dict -> bertforge
    ours = BertModel(config).eval()
    from bertforge.models.bert.checkpoint import load_state_into
    load_state_into(ours, hf.state_dict())
    with torch.no_grad():
        out = ours(ids, am, tt)
    assert (_real(out.last_hidden_state, am) - _real(ref.last_hidden_state, am)).abs().max() <= 1e-5
    assert (out.pooler_output - ref.pooler_output).abs().max() <= 1e-5

    # bertforge checkpoint -> HF
    ours.save_pretrained(tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.tmp"))
    hf2 = transformers.BertModel.from_pretrained(str(tmp_path / "ckpt")).eval()
    with torch.no_grad():
        back = hf2(input_ids=ids, attention_mask=am, token_type_ids=tt)
    assert torch.equal(back.last_hidden_state, ref.last_hidden_state)

    # and HF's saved directory (with the `bert.`-less keys) back into bertforge
    hf.save_pretrained(str(tmp_path / "hf"))
    ours2 = BertModel.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        assert torch.equal(ours2(ids, am, tt).last_hidden_state, out.last_hidden_state)


def test_loading_keys_with_bert_prefix_and_legacy_bin(tmp_path, minilm_dir):
    hf = transformers.BertForMaskedLM(transformers.BertConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=64)).eval()
    hf.save_pretrained(str(tmp_path / "bin"), safe_serialization=False)  # bert.* keys, pytorch_model.bin
    assert (tmp_path / "bin" / "pytorch_model.bin").exists()
    ours = BertModel.from_pretrained(tmp_path / "bin")
    assert any(k.startswith("cls.") for k in ours.load_report.ignored)
    ids = torch.randint(0, 1000, (2, 7))
    with torch.no_grad():
        assert torch.allclose(ours(ids).last_hidden_state, hf.bert(ids).last_hidden_state, atol=1e-6)


def test_mismatched_checkpoint_lists_keys(tmp_path):
    small = BertModel(BertConfig.preset("tiny"))
    small.save_pretrained(tmp_path / "tiny")
    state = {k: v for k, v in small.state_dict().items()}
    bigger = BertModel(BertConfig.preset("tiny", intermediate_size=128))
    from bertforge.models.bert.checkpoint import load_state_into
    with pytest.raises(CheckpointMismatchError, match="wrong shape") as e:
        load_state_into(bigger, state)
    assert "intermediate.dense.weight" in str(e.value)  # HF names in the message
    del state["encoder.layers.1.ffn.w_2.weight"]
    state["encoder.layers.0.surprise"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as e:
        load_state_into(BertModel(BertConfig.preset("tiny")), state)
    assert "missing" in str(e.value) and "encoder.layer.1.output.dense.weight" in str(e.value)
    assert "unexpected" in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "tiny" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        BertModel.from_pretrained(tmp_path / "tiny")


def test_key_mapping_is_a_bijection(minilm_dir):
    from safetensors.torch import load_file
    hf_keys = [k for k in load_file(str(minilm_dir / "model.safetensors")) if not k.endswith("position_ids")]
    ours = set(BertModel(BertConfig.preset("minilm-l6")).state_dict())
    assert {from_hf_key(k) for k in hf_keys} == ours
    assert {to_hf_key(k) for k in ours} == set(hf_keys)


def test_padding_is_ignored_and_bad_inputs_are_clear(minilm_dir):
    model = BertModel.from_pretrained(minilm_dir)
    ids = torch.tensor([[101, 7592, 2088, 102]])
    padded = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0]])
    with torch.no_grad():
        a = model(ids).last_hidden_state
        b = model(padded, attention_mask=(padded != 0).long()).last_hidden_state
    assert (a - b[:, :4]).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="vocabulary"):
        model(torch.tensor([[101, 40000]]))
    with pytest.raises(ValueError, match="positions"):
        model(torch.ones(1, 600, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="shape"):
        model(ids, attention_mask=torch.ones(1, 5))
