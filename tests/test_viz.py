"""Pictures: each renders to PNG, and the numbers drawn are the numbers they claim to show."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from bertforge.cli.main import main
from bertforge.models.word2vec.keyed_vectors import KeyedVectors
from bertforge.nn import combine_masks, look_ahead_mask, padding_mask
from bertforge.viz import (
    attention_figure,
    attention_html,
    embedding_figure,
    masks_figure,
    model_attentions,
    pca_2d,
    positional_encoding_figure,
    save_figure,
)

TEXT = "Check the battery log and find out whether it ran down please."
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    from bertforge.models.bert.modeling import BertModel
    from bertforge.tokenizer.tokenizer import Tokenizer

    model = BertModel.from_pretrained(minilm_dir)
    tokenizer = Tokenizer.from_pretrained(minilm_dir)
    tokens, att = model_attentions(model, tokenizer, TEXT)
    return model, tokenizer, tokens, att


def test_attentions_are_the_models_and_hf_transformers(minilm, minilm_dir):
    model, tokenizer, tokens, att = minilm
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "battery" in tokens
    assert att.shape == (6, 12, len(tokens), len(tokens))
    torch.testing.assert_close(att.sum(-1), torch.ones(6, 12, len(tokens)))  # rows are distributions
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel.from_pretrained(str(minilm_dir), attn_implementation="eager").eval()
    ids = torch.tensor([tokenizer.encode(TEXT).input_ids])
    with torch.no_grad():
        ref = torch.stack([a[0] for a in hf(ids, output_attentions=True).attentions])
    torch.testing.assert_close(att, ref, rtol=1e-4, atol=1e-5)


def test_attention_grid_draws_the_layers_probabilities(minilm, tmp_path):
    _, _, tokens, att = minilm
    fig = attention_figure(att[2], tokens, title="layer 2")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 12
    for h, ax in enumerate(drawn):
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), att[2, h].numpy())
        assert [t.get_text() for t in ax.get_xticklabels()] == tokens
        assert [t.get_text() for t in ax.get_yticklabels()] == tokens
        assert ax.get_title() == f"head {h}"
    save_figure(fig, tmp_path / "grid.png")
    assert_png(tmp_path / "grid.png")


def test_one_head_large(minilm, tmp_path):
    _, _, tokens, att = minilm
    fig = attention_figure(att[5], tokens, heads=[7])
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), att[5, 7].numpy())
    assert ax.get_xlabel().startswith("key") and ax.get_ylabel().startswith("query")
    with pytest.raises(ValueError, match="head 12 out of range"):
        attention_figure(att[5], tokens, heads=[12])
    with pytest.raises(ValueError, match="tokens"):
        attention_figure(att[5], tokens[:-1])


def test_attention_html_is_self_contained_and_holds_the_probabilities(minilm, tmp_path):
    _, _, tokens, att = minilm
    page = attention_html(tokens, att, title="MiniLM </script> test", layer=3, head=1)
    data = json.loads(re.search(r'<script id="attention-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    assert data["tokens"] == tokens and data["layer"] == 3 and data["head"] == 1
    np.testing.assert_allclose(np.array(data["attentions"]), att.numpy(), atol=5e-6)  # 5 decimals
    assert "http" not in page and " src=" not in page and "<link" not in page  # nothing fetched
    assert page.count("<script") == 2 and "onmouseenter" in page and 'id="layer"' in page and 'id="head"' in page
    assert "&lt;/script&gt;" in page  # the title is escaped


NODE_DOM_STUB = r"""
// Just enough DOM for the page's script; then hover a token, switch to the mean over heads, hover again.
const fs = require("fs");
function el() {
  const e = {children: [], style: {}, className: "", textContent: "", value: "", title: "", options: [],
    appendChild(c) { this.children.push(c); return c; },
    add(o) { this.options.push(o); },
    insertRow() { return this.appendChild(el()); },
    insertCell() { return this.appendChild(el()); },
    set innerHTML(v) { this.children.length = 0; }};
  Object.defineProperty(e, "childNodes", {get() { return e.children; }});
  return e;
}
const els = {}, page = fs.readFileSync(process.argv[2], "utf8");
global.Option = function (text, value) { this.text = text; this.value = value; };
global.document = {createElement: el, getElementById(id) {
  if (id === "attention-data") return {textContent: page.match(/application\/json">([\s\S]*?)<\/script>/)[1]};
  return els[id] || (els[id] = el());
}};
eval(page.match(/<script>([\s\S]*?)<\/script>/)[1]);
const shades = () => els.tokens.children.map(t => parseFloat(t.style.background.split(",")[3]));
els.tokens.children[3].onmouseenter();
const out = {head: shades(), info: els.info.textContent, rows: els.grid.children.length};
els.head.value = "mean"; els.head.onchange(); els.tokens.children[3].onmouseenter();
out.mean = shades();
console.log(JSON.stringify(out));
"""


def test_attention_html_script_runs_and_shades_by_the_probabilities(minilm, tmp_path):
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's JavaScript is not run")
    _, _, tokens, att = minilm
    page = tmp_path / "a.html"
    page.write_text(attention_html(tokens, att, layer=2, head=5), encoding="utf-8")
    (tmp_path / "stub.js").write_text(NODE_DOM_STUB, encoding="utf-8")
    out = json.loads(subprocess.run([node, str(tmp_path / "stub.js"), str(page)], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    np.testing.assert_allclose(out["head"], att[2, 5, 3].numpy(), atol=6e-4)  # shades: 3 decimals
    np.testing.assert_allclose(out["mean"], att[2, :, 3].mean(0).numpy(), atol=6e-4)
    best = int(att[2, 5, 3].argmax())
    assert out["info"].startswith(f"\u201c{tokens[3]}\u201d attends most to \u201c{tokens[best]}\u201d")
    assert out["rows"] == len(tokens) + 1  # header row + one per query token


def test_positional_encoding_picture_is_the_formula(tmp_path):
    fig = positional_encoding_figure(max_len=50, d_model=64, dims=(0, 1, 20, 63))
    heat = np.asarray(fig.axes[0].images[0].get_array())
    assert heat.shape == (50, 64)
    for pos in (0, 1, 17, 49):
        for d in (0, 1, 2, 21, 62, 63):
            angle = pos / 10000 ** ((d - d % 2) / 64)
            expected = math.sin(angle) if d % 2 == 0 else math.cos(angle)
            assert heat[pos, d] == pytest.approx(expected, abs=1e-6)
    curves = fig.axes[1].lines
    assert len(curves) == 4
    for line, d in zip(curves, (0, 1, 20, 63)):
        np.testing.assert_array_equal(line.get_ydata(), heat[:, d])
    save_figure(fig, tmp_path / "pe.png")
    assert_png(tmp_path / "pe.png")
    with pytest.raises(ValueError, match="out of range"):
        positional_encoding_figure(d_model=16, dims=(16,))


def test_embedding_picture_is_pca_of_the_chosen_words(tmp_path):
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "paris", "france", "rome", "italy"]
    kv = KeyedVectors(words + ["other"], rng.normal(size=(9, 20)))
    chosen = words[:6]
    fig = embedding_figure(kv, chosen)
    ax = fig.axes[0]
    offsets = np.asarray(ax.collections[0].get_offsets())
    ref = decomposition.PCA(n_components=2).fit_transform(np.stack([kv[w] for w in chosen]))
    signs = np.sign((offsets * ref).sum(0))  # a principal axis is defined up to its sign
    np.testing.assert_allclose(offsets, ref * signs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pca_2d(np.stack([kv[w] for w in chosen]))[0], offsets)
    assert [t.get_text() for t in ax.texts] == chosen
    save_figure(fig, tmp_path / "emb.png")
    assert_png(tmp_path / "emb.png")
    with pytest.raises(ValueError, match="not in the vocabulary: zebra"):
        embedding_figure(kv, ["king", "zebra"])


def test_masks_picture_is_padding_and_look_ahead(tmp_path):
    am = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    fig = masks_figure(am, row=1)
    images = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    pad = padding_mask(am)[1, 0].expand(5, 5)
    ahead = look_ahead_mask(5)
    for got, want in zip(images, [am.bool(), pad, ahead, combine_masks(pad, ahead)]):
        np.testing.assert_array_equal(got, want.numpy().astype(np.float32))
    assert images[3][4].tolist() == [1, 1, 1, 0, 0]  # the last query: earlier real tokens only
    save_figure(fig, tmp_path / "masks.png")
    assert_png(tmp_path / "masks.png")
    with pytest.raises(ValueError):
        masks_figure(torch.ones(5))


def test_cli_pictures(tmp_path, capsys, minilm_dir):
    out = tmp_path / "att.png"
    html = tmp_path / "att.html"
    assert main(["viz", "attention", "--model", str(minilm_dir), "The cat sat.", "--layer", "1", "--head", "2",
                 "--out", str(out), "--html", str(html)]) == 0
    assert_png(out)
    assert "attention-data" in html.read_text(encoding="utf-8")
    assert main(["viz", "attention", "The cat sat.", "--layer", "6", "--out", str(out)]) == 2  # default: MiniLM
    assert "--layer 6 out of range" in capsys.readouterr().err
    assert main(["viz", "positional", "--max-len", "20", "--d-model", "16", "--dims", "0", "1",
                 "--out", str(tmp_path / "pe.png")]) == 0
    assert main(["viz", "masks", "--lengths", "4", "2", "--out", str(tmp_path / "m.png")]) == 0
    vec = tmp_path / "v.txt"
    KeyedVectors(["a", "b", "c"], np.eye(3)).save_word2vec_format(vec)
    assert main(["viz", "embeddings", "--vectors", str(vec), "--words", "a", "b", "c",
                 "--out", str(tmp_path / "e.png")]) == 0
    for name in ("pe.png", "m.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
