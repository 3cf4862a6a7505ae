"""Pictures of what the notes describe: attention heads, positional encodings, word vectors, masks.

Every function returns a matplotlib `Figure` built with the object-oriented API (no pyplot, no global
backend switch; PNGs are rendered by Agg) and draws exactly the numbers it is given, so a test can read
them back from the figure (`ax.images[0].get_array()`, `ax.lines[i].get_ydata()`,
`ax.collections[0].get_offsets()`). `attention_html` writes one self-contained HTML page (data as JSON,
plain JavaScript, no server, no network) to explore every layer and head.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
from torch import Tensor

from bertforge.errors import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from bertforge.fileio import atomic_path, atomic_write_text
from bertforge.nn import combine_masks, look_ahead_mask, padding_mask, sinusoidal_positional_encoding

IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")  # what save_figure writes, by the file's extension
MEMORY_BUDGET = 2 << 30  # bytes a picture may take while it is drawn; larger requests are refused up front


def check_memory(need: float, what: str, advice: str) -> None:
    """Refuse work that would take more than MEMORY_BUDGET bytes, with the estimate (not an OOM kill)."""
    if need > MEMORY_BUDGET:
        raise ValueError(f"{what} would need about {need / 1e9:.1f} GB of memory (the limit is "
                         f"{MEMORY_BUDGET / 1e9:.1f} GB): {advice}")


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure atomically in the format its extension names (.png, .svg, .pdf, .jpg; none: PNG)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if f".{fmt}" not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot write a {path.suffix} picture: use one of {', '.join(IMAGE_SUFFIXES)}")
    width, height = fig.get_size_inches() * dpi
    check_memory(width * height * 4, f"a picture of {width:.0f} x {height:.0f} pixels", "draw less at once")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg" if fmt == "jpg" else fmt, dpi=dpi, bbox_inches="tight")
    return path


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def model_attentions(model, tokenizer, text: str, max_length: int = 128) -> tuple[list[str], Tensor]:
    """Run a BERT model on one text; returns (tokens, attention probabilities (L, H, T, T)).

    Switches the model to the explicit attention path first: the fused kernel does not return the
    probabilities (D3).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("give a non-empty text to look at")
    limit = model.config.max_position_embeddings
    if max_length > limit:
        raise ValueError(f"max_length {max_length} is more than the {limit} positions of the model: use "
                         f"--max-seq-length {limit} or less")
    enc = tokenizer.encode(text, max_length=max_length, truncation=True)
    model.set_attn_implementation("eager")
    model.eval()
    ids = torch.tensor([enc.input_ids], device=next(model.parameters()).device)
    out = model(ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    return list(enc.tokens), torch.stack([a[0] for a in out.attentions]).cpu()  # (L, H, T, T)


def attention_figure(attn, tokens: Sequence[str], heads: Optional[Sequence[int]] = None,
                     title: Optional[str] = None, cols: int = 4) -> Figure:
    """Heat maps of attention probabilities: rows = queries (attending), columns = keys (attended to).

    attn: (H, T, T) for one layer, or (T, T) for one head. `heads` picks which heads to draw (default all):
    one head is drawn large, several as a grid, each with the tokens on both axes.
    """
    a = _np(attn)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"attention must be (heads, T, T) or (T, T), got shape {a.shape}")
    if a.shape[1] != len(tokens):
        raise ValueError(f"{len(tokens)} tokens for an attention matrix of size {a.shape[1]}")
    heads = list(range(a.shape[0])) if heads is None else list(heads)
    for h in heads:
        if not 0 <= h < a.shape[0]:
            raise ValueError(f"head {h} out of range: this layer has {a.shape[0]} heads")
    n = len(heads)
    cols = 1 if n == 1 else min(cols, n)
    rows = math.ceil(n / cols)
    T = len(tokens)
    cell = max(2.6, 0.28 * T) if n == 1 else max(2.2, 0.17 * T)
    Figure = require("matplotlib.figure", "plots").Figure  # optional: the pictures extra
    fig = Figure(figsize=(cell * cols + 1.0, cell * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        im = ax.imshow(a[heads[k]], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"head {heads[k]}", fontsize=9)
        fs = 8 if n == 1 else 5
        ax.set_xticks(range(T), tokens, rotation=90, fontsize=fs)
        ax.set_yticks(range(T), tokens, fontsize=fs)
        if n == 1:
            ax.set_xlabel("key (attended to)")
            ax.set_ylabel("query (attending)")
            fig.colorbar(im, ax=ax, shrink=0.8, label="attention probability")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
#tokens span{display:inline-block;padding:3px 5px;margin:2px;border-radius:4px;cursor:pointer;border:1px solid #ddd}
#tokens span.q{outline:2px solid #c00}
table{border-collapse:collapse;margin-top:1em;font-size:11px}
td{width:18px;height:18px;padding:0}
th{font-weight:normal;padding:0 4px;white-space:nowrap}
th.col{writing-mode:vertical-rl;transform:rotate(180deg);height:auto}
#info{min-height:1.4em;margin:.6em 0;color:#555}
</style></head><body>
<h2>__TITLE__</h2>
<p>Hover a token: the others are shaded by how much it attends to them (its row of the attention matrix).
Choose the layer and the head; "mean" averages the heads.</p>
<label>layer <select id="layer"></select></label>
<label>head <select id="head"></select></label>
<div id="info"></div>
<div id="tokens"></div>
<table id="grid"></table>
<script id="attention-data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("attention-data").textContent);
const L = D.attentions.length, H = D.attentions[0].length, T = D.tokens.length;
const layerSel = document.getElementById("layer"), headSel = document.getElementById("head");
for (let l = 0; l < L; l++) layerSel.add(new Option(String(l), String(l)));
headSel.add(new Option("mean", "mean"));
for (let h = 0; h < H; h++) headSel.add(new Option(String(h), String(h)));
layerSel.value = String(D.layer); headSel.value = D.head === null ? "mean" : String(D.head);
function matrix() {
  const a = D.attentions[+layerSel.value];
  if (headSel.value !== "mean") return a[+headSel.value];
  return a[0].map((row, i) => row.map((_, j) => a.reduce((s, h) => s + h[i][j], 0) / H));
}
function shade(p) { return "rgba(30,90,200," + p.toFixed(3) + ")"; }
function draw() {
  const m = matrix(), tok = document.getElementById("tokens"), grid = document.getElementById("grid");
  tok.innerHTML = ""; grid.innerHTML = "";
  D.tokens.forEach((t, i) => {
    const s = document.createElement("span"); s.textContent = t;
    s.onmouseenter = () => {
      tok.childNodes.forEach((c, j) => { c.style.background = shade(m[i][j]); c.className = j === i ? "q" : ""; });
      const best = m[i].indexOf(Math.max(...m[i]));
      document.getElementById("info").textContent =
        "\\u201c" + t + "\\u201d attends most to \\u201c" + D.tokens[best] + "\\u201d (" + m[i][best].toFixed(3) + ")";
    };
    tok.appendChild(s);
  });
  const head = grid.insertRow(); head.appendChild(document.createElement("th"));
  D.tokens.forEach(t => {
    const th = document.createElement("th"); th.className = "col"; th.textContent = t; head.appendChild(th);
  });
  m.forEach((row, i) => {
    const tr = grid.insertRow();
    const th = document.createElement("th"); th.textContent = D.tokens[i]; tr.appendChild(th);
    row.forEach((p, j) => { const td = tr.insertCell(); td.style.background = shade(p);
      td.title = D.tokens[i] + " \\u2192 " + D.tokens[j] + ": " + p.toFixed(4); });
  });
}
layerSel.onchange = draw; headSel.onchange = draw; draw();
</script></body></html>
"""


def attention_html(tokens: Sequence[str], attentions, title: str = "Attention", layer: int = 0,
                   head: Optional[int] = None, decimals: int = 5) -> str:
    """One self-contained HTML page for attentions (L, H, T, T): pick layer and head, hover a token."""
    a = _np(attentions)
    if a.ndim != 4 or a.shape[2] != a.shape[3] or a.shape[2] != len(tokens):
        raise ValueError(f"attentions must be (layers, heads, T, T) with T = {len(tokens)} tokens, got {a.shape}")
    data = {"tokens": list(tokens), "layer": layer, "head": head,
            "attentions": np.round(a.astype(np.float64), decimals).tolist()}
    payload = json.dumps(data, ensure_ascii=True).replace("</", "<\\/")  # safe inside <script>
    return _HTML.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_attention_html(path: str | Path, tokens: Sequence[str], attentions, **kwargs) -> Path:
    atomic_write_text(path, attention_html(tokens, attentions, **kwargs))
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Positional encoding, word vectors, masks
# ---------------------------------------------------------------------------------------------


def positional_encoding_figure(max_len: int = 64, d_model: int = 128,
                               dims: Sequence[int] = (0, 1, 10, 11, 40, 41)) -> Figure:
    """Left: PE (positions x dimensions) as a heat map; right: a few dimensions as curves over position.

    PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (Vaswani et al. 3.5): low dimensions
    oscillate fast, high ones slowly, so each position gets a distinct pattern.
    """
    for d in dims:
        if not 0 <= d < d_model:
            raise ValueError(f"dimension {d} out of range for d_model={d_model}")
    # the encoding in float64 and float32, its angles, and matplotlib's normalised copies: ~40 bytes a cell
    check_memory(40.0 * max_len * d_model, f"a positional encoding of {max_len} positions x {d_model} dimensions",
                 "choose fewer positions or dimensions (e.g. 512 x 512)")
    pe = sinusoidal_positional_encoding(max_len, d_model).numpy()  # (max_len, d_model)
    Figure = require("matplotlib.figure", "plots").Figure  # optional: the pictures extra
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_map, ax_curves = fig.subplots(1, 2, width_ratios=[1.3, 1])
    im = ax_map.imshow(pe, cmap="RdBu", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax_map.set_xlabel("dimension")
    ax_map.set_ylabel("position")
    ax_map.set_title(f"sinusoidal positional encoding (d_model = {d_model})")
    fig.colorbar(im, ax=ax_map)
    for d in dims:
        kind = "sin" if d % 2 == 0 else "cos"
        ax_curves.plot(np.arange(max_len), pe[:, d], label=f"dim {d} ({kind}, i = {d // 2})")
    ax_curves.set_xlabel("position")
    ax_curves.set_ylabel("PE value")
    ax_curves.set_title("a few dimensions")
    ax_curves.legend(fontsize=7, loc="lower left")
    return fig


def pca_2d(vectors) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the rows: returns (coordinates (N, 2), components (2, D)).

    Centre, SVD, project on the two leading right-singular vectors; signs fixed so the largest-magnitude
    entry of each component is positive (as scikit-learn's svd_flip does for the loadings).
    """
    x = _np(vectors).astype(np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least two vectors (N, D) for PCA, got shape {x.shape}")
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    comps = comps * np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
    return x @ comps.T, comps


def embedding_figure(kv, words: Sequence[str], title: str = "word vectors, PCA to 2-D") -> Figure:
    """Scatter of the chosen words' vectors projected on their first two principal components, labelled."""
    missing = [w for w in words if w not in kv]
    if missing:
        raise ValueError(f"not in the vocabulary: {', '.join(missing)}")
    if len(words) < 2:
        raise ValueError("choose at least two words")
    coords, _ = pca_2d(np.stack([kv[w] for w in words]))
    Figure = require("matplotlib.figure", "plots").Figure  # optional: the pictures extra
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(coords[:, 0], coords[:, 1], s=18)
    for (x, y), w in zip(coords, words):
        ax.annotate(w, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    return fig


def masks_figure(attention_mask, row: int = 0) -> Figure:
    """Masks as "may attend" pictures (D2): a batch's padding mask, and for one example the padding mask
    as (Q, K), the look-ahead mask, and their AND (what a decoder's self-attention uses).

    attention_mask: (B, K) with 1 for real tokens and 0 for padding.
    """
    am = torch.as_tensor(attention_mask)
    if am.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, seq_len), got shape {tuple(am.shape)}")
    if not 0 <= row < am.size(0):
        raise ValueError(f"row {row} out of range for a batch of {am.size(0)}")
    K = am.size(1)
    # four (K, K) panels as bool, float32 and matplotlib's normalised copies: ~100 bytes a cell
    check_memory(100.0 * K * K, f"masks of length {K}", "choose shorter lengths (e.g. at most 1000)")
    pad = padding_mask(am)[row, 0].expand(K, K)  # (Q, K)
    ahead = look_ahead_mask(K)  # (Q, K)
    panels = [(am.bool(), "padding mask of the batch", "position", "example"),
              (pad, f"padding, example {row} (Q x K)", "key", "query"),
              (ahead, "look-ahead", "key", "query"),
              (combine_masks(pad, ahead), "padding AND look-ahead", "key", "query")]
    Figure = require("matplotlib.figure", "plots").Figure  # optional: the pictures extra
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    for ax, (m, title, xl, yl) in zip(fig.subplots(1, 4), panels):
        ax.imshow(m.numpy().astype(np.float32), cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.suptitle("white = may attend (True), black = masked (False)", fontsize=10)
    return fig
