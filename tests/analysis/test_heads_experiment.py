"""bertforge.analysis.heads against hand-computed cases and an independent masking, and the heads experiment's
--short mode end to end (tiny sizes)."""
from __future__ import annotations

import json
import math
import runpy
import sys

import pytest
import torch

from bertforge.analysis.heads import (
    ablate_each_head,
    attention_entropy,
    head_roles,
    keep_one_head_per_layer,
    main_role,
    masked_heads,
)
from bertforge.models.bert.config import BertConfig
from bertforge.models.bert.modeling import BertModel
from tests.helpers import ROOT, require_data

RECIPE = ROOT / "recipes" / "heads_experiment.py"


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig.preset("tiny", vocab_size=40, hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0)).eval()


def test_masking_a_head_equals_zeroing_its_columns_of_w_o():
    """Independent reference: head h's output enters W_O through columns h*d_k..(h+1)*d_k of its weight."""
    model = tiny_bert()
    ids = torch.randint(5, 40, (2, 7), generator=torch.Generator().manual_seed(1))
    gates = torch.ones(2, 4)
    gates[1, 2] = 0.0
    gates[0, 0] = 0.0
    with masked_heads(model, gates):
        masked = model(ids).last_hidden_state
    assert not torch.equal(masked, model(ids).last_hidden_state)  # the hook is gone after the block
    d_k = 32 // 4
    with torch.no_grad():
        for l, h in ((1, 2), (0, 0)):
            model.encoder.layers[l].self_attn.w_o.weight[:, h * d_k:(h + 1) * d_k] = 0.0
    torch.testing.assert_close(masked, model(ids).last_hidden_state)


def test_ablation_and_keep_one_head_with_a_score_that_counts_gates():
    """A fake model whose 'score' is the sum of active gates times a weight per head: deltas are exact."""
    model = tiny_bert()
    weight = torch.arange(8, dtype=torch.float32).view(2, 4)
    active = {}

    def score() -> float:  # reads the gates through the hooks' effect on W_O's input
        x = torch.ones(1, 1, 32)
        total = 0.0
        for l, layer in enumerate(model.encoder.layers):
            seen = {}
            hook = layer.self_attn.w_o.register_forward_hook(lambda m, a, o, seen=seen: seen.setdefault("x", a[0]))
            layer.self_attn.w_o(x)
            hook.remove()
            on = seen["x"].view(4, 8)[:, 0]  # gate per head
            total += float((on * weight[l]).sum())
        active["last"] = total
        return total

    base, delta = ablate_each_head(model, score)
    assert base == weight.sum()
    torch.testing.assert_close(delta, -weight)
    kept = keep_one_head_per_layer(model, score, delta, higher_is_better=True)
    # keeping only the most important head (largest weight) of a layer loses the other three
    assert kept.tolist() == [-(0 + 1 + 2), -(4 + 5 + 6)]


def test_entropy_and_roles_on_hand_made_attention():
    T = 4
    ids = torch.tensor([[2, 7, 9, 3]])  # [CLS] a b [SEP]
    mask = torch.ones(1, T, dtype=torch.long)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    for i in range(1, T):
        prev[i, i - 1] = 1.0
    uniform = torch.full((T, T), 1.0 / T)
    to_sep = torch.zeros(T, T)
    to_sep[:, 3] = 1.0
    probs = torch.stack([prev, uniform, to_sep])[None]  # (1, 3, T, T)
    ent = attention_entropy(probs, mask)
    torch.testing.assert_close(ent, torch.tensor([0.0, math.log(T), 0.0]), atol=1e-5, rtol=0)
    roles = head_roles(probs, ids, mask, cls_id=2, sep_id=3, punct_ids=set())
    assert roles["argmax"]["previous"][0] == pytest.approx(3 / 4)  # query 0 has no previous token
    assert roles["argmax"]["[SEP]"][2] == 1.0
    assert roles["mass"]["[CLS]"][1] == pytest.approx(1 / T)
    assert roles["mass"]["next"][1] == pytest.approx(3 / 4 / T)  # 3 of 4 queries have a next token
    assert main_role(roles["argmax"]) == ["previous", None, "[SEP]"]


def test_short_mode_runs_end_to_end(tmp_path, minilm_dir, monkeypatch):
    data = require_data("corpus").parent
    require_data("glue", "SST-2")
    monkeypatch.setattr(sys, "argv", [str(RECIPE), "--short", "--out", str(tmp_path), "--data", str(data)])
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(RECIPE), run_name="__main__")
    torch.set_num_threads(threads)
    assert done.value.code == 0
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["h"], r["seed"]) for r in records] == [(1, 0), (2, 0), (4, 0)]
    for r in records:
        assert len(r["mlm_ablation"]) == 1 and len(r["mlm_ablation"][0]) == r["h"]
        assert 0.0 <= r["sst2_accuracy"] <= 1.0 and math.isfinite(r["mlm_loss"])
        assert all(0.0 <= e <= math.log(32) + 1e-4 for e in r["layers"][0]["entropy"])
    minilm = json.loads((tmp_path / "minilm.json").read_text())
    assert len(minilm["ablation"]) == 6 and len(minilm["ablation"][0]) == 12 and minilm["spearman"] > 0.5
    assert "| 4 | 8 |" in (tmp_path / "table.md").read_text()
    for name in ("quality", "roles", "pruning", "minilm"):
        assert (tmp_path / "img" / f"heads_{name}.png").stat().st_size > 5000
    # Resumable: a second run finds every unit done and only re-reports.
    monkeypatch.setattr(sys, "argv", [str(RECIPE), "--short", "--out", str(tmp_path), "--data", str(data)])
    with pytest.raises(SystemExit):
        runpy.run_path(str(RECIPE), run_name="__main__")
    torch.set_num_threads(threads)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3


def test_minilm_roles_match_hf_attentions(minilm_dir):
    """Independent reference: the [CLS] / [SEP] attention mass read off HF BertModel's own attentions."""
    transformers = pytest.importorskip("transformers")
    from bertforge.analysis.heads import attention_report, punctuation_ids
    from bertforge.tokenizer.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(minilm_dir)
    batch = tok.encode_batch(["A man is playing a guitar.", "The cat sat on the mat."], padding=True,
                             return_tensors="pt")
    ours = BertModel.from_pretrained(minilm_dir)
    ours.set_attn_implementation("eager")
    layers = attention_report(ours, [{"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}],
                              tok.cls_token_id, tok.sep_token_id, punctuation_ids(tok))
    hf = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        att = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True).attentions
    mask = batch.attention_mask.bool()
    for l, a in enumerate(att):  # (B, H, T, T): mean over real queries of the mass on [CLS] (position 0)
        per_row = [(a[b][:, mask[b]][:, :, 0].sum(-1), int(mask[b].sum())) for b in range(2)]
        expected = sum(m for m, _ in per_row) / sum(n for _, n in per_row)
        torch.testing.assert_close(torch.tensor(layers[l]["mass_[CLS]"]), expected, atol=1e-4, rtol=1e-4)
