"""Precision modes and devices (bertforge.inference): errors, documented tolerances, compile, CUDA."""
from __future__ import annotations

import pytest
import torch

from bertforge.models.bert.modeling import BertModel
from bertforge.models.bert.config import BertConfig
from bertforge.inference import PackedLinear, QuantizedLinear, precision_context, prepare_model, quantize_int8

from conftest import require_data

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny() -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig.preset("tiny")).eval()


def test_bad_precision_and_device_are_clear_errors():
    with pytest.raises(ValueError, match="precision must be one of"):
        prepare_model(tiny(), precision="fp16")
    with pytest.raises(ValueError, match="unknown device|unsupported device"):
        prepare_model(tiny(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            prepare_model(tiny(), device="cuda")


def test_int8_keeps_ffn_output_fp32_and_quantizes_the_rest():
    modules = dict(quantize_int8(tiny()).named_modules())
    layer = "encoder.layers.0"
    assert type(modules[f"{layer}.ffn.w_2"]) in (torch.nn.Linear, PackedLinear)  # bf16 where int8_with_bf16()
    for name in ("self_attn.w_q", "self_attn.w_k", "self_attn.w_v", "self_attn.w_o", "ffn.w_1"):
        module = modules[f"{layer}.{name}"]
        assert isinstance(module, QuantizedLinear) or "quantized" in type(module).__module__, name


def _sentences(n: int) -> list[str]:
    corpus = require_data("corpus", "heldout.txt")
    return [s for s in corpus.read_text(encoding="utf-8").splitlines() if s.strip()][:n]


@pytest.mark.parametrize("precision,min_cos,mean_cos", [("bf16", 0.9995, 0.9998), ("int8", 0.96, 0.98)])
def test_sentence_vectors_stay_within_documented_tolerance(minilm_dir, precision, min_cos, mean_cos):
    """docs/inference.md: cosine to the fp32 vectors (measured: bf16 min 0.99997; int8 min 0.973, mean 0.987)."""
    from bertforge.tasks.embedding import SentenceEncoder

    lines = _sentences(64)
    ref = SentenceEncoder(minilm_dir).encode(lines)
    cos = (SentenceEncoder(minilm_dir, precision=precision).encode(lines) * ref).sum(1)
    assert cos.min() >= min_cos and cos.mean() >= mean_cos, (cos.min(), cos.mean())


def test_bf16_hidden_states_within_tolerance_on_packed_and_padded_paths(minilm_dir):
    """bf16 autocast vs fp32 on real tokens of a varied-length batch: max |diff| < 0.1 (hidden-state values
    are O(1); measured 0.03), and the two bf16 paths agree with each other as closely."""
    import transformers

    tok = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))
    batch = tok(_sentences(16), padding=True, truncation=True, max_length=128, return_tensors="pt")
    model = prepare_model(BertModel.from_pretrained(minilm_dir))
    real = batch["attention_mask"].bool()
    with torch.inference_mode():
        ref = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state[real]
        with precision_context("cpu", "bf16"):
            packed = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state.float()[real]
            model.set_attn_implementation("eager")
            padded = model(batch["input_ids"], batch["attention_mask"], unpad=False).last_hidden_state.float()[real]
    assert (packed - ref).abs().max() < 0.1
    assert (padded - ref).abs().max() < 0.1


@pytest.mark.slow
def test_compiled_model_equals_eager():
    model = tiny()
    ids = torch.randint(5, 100, (3, 17))
    am = torch.ones_like(ids)
    am[1, 9:] = 0
    with torch.inference_mode():
        ref = model(ids, am).last_hidden_state
        out = prepare_model(tiny(), compile=True)(ids, am).last_hidden_state
    real = am.bool()
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)


@cuda
@pytest.mark.cuda
def test_cuda_unpadded_equals_padded_and_matches_cpu(minilm_dir):
    model = BertModel.from_pretrained(minilm_dir).eval()
    ids = torch.randint(1000, 20000, (4, 64))
    am = torch.ones_like(ids)
    am[0, 1:] = 0  # a one-token sequence beside full-length ones
    am[2, 30:] = 0
    real = am.bool()
    with torch.inference_mode():
        cpu = model(ids, am).last_hidden_state[real]
        gpu_model = prepare_model(model, device="cuda")
        packed = gpu_model(ids.cuda(), am.cuda()).last_hidden_state[real.cuda()].cpu()
        padded = gpu_model(ids.cuda(), am.cuda(), unpad=False).last_hidden_state[real.cuda()].cpu()
        with precision_context("cuda", "bf16"):
            bf16 = gpu_model(ids.cuda(), am.cuda()).last_hidden_state.float()[real.cuda()].cpu()
    torch.testing.assert_close(packed, padded, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed, cpu, atol=1e-4, rtol=1e-4)
    assert (bf16 - cpu).abs().max() < 0.1
