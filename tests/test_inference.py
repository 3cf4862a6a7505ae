"""Precision modes and devices (bertforge.inference): errors, documented tolerances, compile, CUDA."""
from __future__ import annotations

import pytest
import torch

from bertforge.inference import PackedLinear, QuantizedLinear, precision_context, prepare_model, quantize_int8
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.modeling import BertModel
from tests.helpers import require_data

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


# ---- answers and vectors of the fast paths vs fp32 (docs/speed.md has the measured values) ----------


def _xquad(n: int):
    from bertforge.data.squad import read_squad

    return read_squad(require_data("xquad", "xquad.en.json"))[:n]


def _qa_scores(examples, precision: str) -> tuple[dict, dict]:
    from bertforge.metrics.squad import squad_v1_scores
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    predictions = QuestionAnswerer(precision=precision).predict(examples).predictions
    gold = {ex.qas_id: [a["text"] for a in ex.answers] for ex in examples}
    return predictions, squad_v1_scores(gold, predictions)


@pytest.mark.parametrize("precision,min_agree,max_f1_drop", [("bf16", 0.95, 1.5), ("int8", 0.75, 6.0)])
def test_xquad_answers_agree_with_fp32(one_thread, precision, min_agree, max_f1_drop):
    """The first 80 XQuAD-en questions, the shipped model: the fast path's answers equal fp32's on most
    questions and its F1 stays close (docs/speed.md: the full set's agreement and EM/F1 per precision).
    Measured with the 11k-question model: int8 F1 59.2 vs fp32 63.6 on these 80 (a 4.5-point cost: int8
    does not meet issue 19's <= 1 point goal yet)."""
    examples = _xquad(80)
    ref, ref_scores = _qa_scores(examples, "fp32")
    got, scores = _qa_scores(examples, precision)
    agree = sum(ref[k] == got[k] for k in ref) / len(ref)
    assert agree >= min_agree, agree
    assert scores["f1"] >= ref_scores["f1"] - max_f1_drop, (scores, ref_scores)


@pytest.mark.slow
@pytest.mark.parametrize("precision,min_agree,max_f1_drop", [("bf16", 0.98, 0.5), ("int8", 0.80, 1.5)])
def test_xquad_answers_agree_with_fp32_full_set(precision, min_agree, max_f1_drop):
    """All 1,190 XQuAD-en questions: the bounds docs/speed.md states (measured there)."""
    examples = _xquad(1190)
    ref, ref_scores = _qa_scores(examples, "fp32")
    got, scores = _qa_scores(examples, precision)
    agree = sum(ref[k] == got[k] for k in ref) / len(ref)
    assert agree >= min_agree, agree
    assert abs(scores["f1"] - ref_scores["f1"]) <= max_f1_drop, (scores, ref_scores)


_NO_AMX_SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from bertforge.inference import cpu_matmul_units, onednn_bf16, int8_with_bf16
from bertforge.tasks.embedding import SentenceEncoder
lines = json.loads(sys.argv[1])
out = {"units": cpu_matmul_units(), "bf16_packed": onednn_bf16(), "int8_with_bf16": int8_with_bf16()}
for p in ("fp32", "bf16", "int8"):
    out[p] = SentenceEncoder(precision=p).encode(lines).tolist()
print(json.dumps(out))
"""


@pytest.mark.parametrize("isa,units", [("AVX2", "avx2"), pytest.param("AVX512_CORE", "avx512", marks=pytest.mark.slow)])
def test_cpu_without_amx_gives_the_same_vectors(minilm_dir, isa, units):
    """oneDNN capped below AMX (ONEDNN_MAX_CPU_ISA, read when oneDNN starts: a fresh process): every
    precision still runs, through its fallback (AVX2: no bf16 kernels, so bf16 is autocast alone and int8
    runs its remainder in fp32), and its sentence vectors match this process's within the precision's
    bound (cosine: fp32 0.99999, bf16 0.999, int8 0.96)."""
    import json
    import os
    import subprocess
    import sys

    from bertforge.tasks.embedding import SentenceEncoder

    lines = _sentences(24)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    proc = subprocess.run([sys.executable, "-c", _NO_AMX_SCRIPT, json.dumps(lines)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    capped = json.loads(proc.stdout.strip().splitlines()[-1])
    assert capped["units"] == units and not capped["int8_with_bf16"]
    assert capped["bf16_packed"] == (isa != "AVX2")
    for precision, bound in (("fp32", 0.99999), ("bf16", 0.999), ("int8", 0.96)):
        here = SentenceEncoder(minilm_dir, precision=precision).encode(lines)
        cos = (torch.tensor(capped[precision]) * here).sum(1)
        assert cos.min() >= bound, (precision, cos.min())
