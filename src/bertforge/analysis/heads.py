"""What attention heads do, and what is lost without each: the measurements behind docs/heads.md.

The notes ask: "if the softmax can focus on a single element, we need many heads -- then will more heads
find more correlations?" Three published ways to look, each a function here:

- **Entropy** of each head's attention distribution (`attention_entropy`): low = the head looks at one
  or two tokens, high = it spreads its attention (log of the number of keys is uniform).
- **Roles** (`head_roles`; Clark et al. 2019, "What Does BERT Look At?"; Voita et al. 2019, "Analyzing
  Multi-Head Self-Attention"): for every query token, which key gets the most attention -- the previous
  token, the next token, itself, [CLS], [SEP], punctuation. A head "mainly" does X when X holds for more
  than half of its queries (Voita et al. call such positional heads when it holds for most tokens). A
  query counts only when its top key gets at least twice the uniform share (2 / number of keys): the
  argmax of a nearly flat distribution is an accident, not a role.
  Clark et al. also report the average attention mass on each kind of key; `head_roles` returns both.
- **Ablation** (`ablate_each_head`, `keep_one_head_per_layer`; Michel et al. 2019, "Are Sixteen Heads
  Really Better than One?"): multiply head h's output by a gate xi_h in {0, 1} before W_O and measure the
  change of a loss or score when one head (or all but one head of a layer) is switched off.

Masking works on any model built from bertforge's `MultiHeadAttention` (BERT, GPT, the encoder-decoder):
the gate is a forward pre-hook on `w_o`, the concatenation [head_1 ... head_h] being its input, so the
model code is unchanged and the hook is removed when the `with` block ends.

Shapes: L layers, H heads, B batch, T tokens; attention probabilities are (B, H, T, T) per layer.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Optional

import torch
from torch import Tensor, nn

from bertforge.errors import BertforgeError
from bertforge.nn import MultiHeadAttention

ROLES = ("previous", "next", "self", "[CLS]", "[SEP]", "punctuation")


def attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's self-attention modules in layer order (cross-attention excluded)."""
    return [m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)
            and not name.endswith("cross_attn")]


@contextmanager
def masked_heads(model: nn.Module, gates: Tensor) -> Iterator[None]:
    """Within the block, head h of layer l contributes gates[l, h] x its output (Michel et al.'s xi).

    gates: (L, H) of 0/1 (or any weights). Worked example, H = 4, d_k = 2: W_O's input is
    [o_1 o_1 | o_2 o_2 | o_3 o_3 | o_4 o_4]; gates [1, 0, 1, 1] zero the 3rd and 4th numbers, so W_O
    sees only heads 1, 3 and 4 (W_O's bias is kept, as in HF's `head_mask`).
    """
    layers = attention_modules(model)
    if gates.dim() != 2 or gates.size(0) != len(layers):
        raise BertforgeError(f"gates must be (layers, heads) = ({len(layers)}, H), got {tuple(gates.shape)}")
    handles = []
    for mha, g in zip(layers, gates):
        if g.numel() != mha.num_heads:
            raise BertforgeError(f"gates have {g.numel()} heads for a layer with {mha.num_heads}")

        def gate(module: nn.Module, args: tuple, g: Tensor = g, H: int = mha.num_heads) -> tuple:
            x = args[0]  # (..., D) = concatenated heads
            split = x.view(*x.shape[:-1], H, x.size(-1) // H)  # (..., H, d_k)
            return ((split * g.to(x.device, x.dtype)[:, None]).view(x.shape),)

        handles.append(mha.w_o.register_forward_pre_hook(gate))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def ablate_each_head(model: nn.Module, score: Callable[[], float]) -> tuple[float, Tensor]:
    """score() with all heads, and score(without head (l, h)) - score() for every head: (base, (L, H))."""
    layers = attention_modules(model)
    L, H = len(layers), layers[0].num_heads
    base = score()
    delta = torch.zeros(L, H)
    for l in range(L):
        for h in range(H):
            gates = torch.ones(L, H)
            gates[l, h] = 0.0
            with masked_heads(model, gates):
                delta[l, h] = score() - base
    return base, delta


def keep_one_head_per_layer(model: nn.Module, score: Callable[[], float], delta: Tensor,
                            higher_is_better: bool = False) -> Tensor:
    """For each layer alone: keep only its most important head (by `delta` from `ablate_each_head`) and
    mask the others; returns the score change per layer (L,). Michel et al., section 3.2."""
    L, H = delta.shape
    base = score()
    out = torch.zeros(L)
    for l in range(L):
        importance = -delta[l] if higher_is_better else delta[l]  # how much worse without the head
        gates = torch.ones(L, H)
        gates[l] = 0.0
        gates[l, int(importance.argmax())] = 1.0
        with masked_heads(model, gates):
            out[l] = score() - base
    return out


def attention_entropy(probs: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean over real query tokens of -sum_j p_ij log p_ij, per head: (B, H, T, T), (B, T) -> (H,) nats."""
    p = probs.float().clamp_min(1e-12)
    ent = -(probs.float() * p.log()).sum(-1)  # (B, H, T)
    q = attention_mask.bool()[:, None, :].expand_as(ent)
    return (ent * q).sum((0, 2)) / q.sum((0, 2)).clamp_min(1)


def punctuation_ids(tokenizer) -> set[int]:
    """Ids of vocabulary entries that are one punctuation character ('.', ',', '"', ...)."""
    ids = set()
    for token, i in tokenizer.vocab.items():
        if len(token) == 1 and (unicodedata.category(token).startswith("P") or token in "$+<=>^`|~"):
            ids.add(i)
    return ids


def head_roles(probs: Tensor, input_ids: Tensor, attention_mask: Tensor, cls_id: int, sep_id: int,
               punct_ids: set[int]) -> dict[str, dict[str, Tensor]]:
    """Per head, over real query tokens: the share whose most-attended key is each role ("argmax", (H,);
    peaked queries only, see the module doc), and the mean attention mass on each role ("mass", (H,))."""
    B, H, T, _ = probs.shape
    p = probs.float() * attention_mask[:, None, None, :].float()  # padding keys carry no mass
    real_q = attention_mask.bool()[:, None, :].expand(B, H, T)  # (B, H, T)
    top = p.argmax(-1)  # (B, H, T) most-attended key per query
    n_keys = attention_mask.sum(-1).clamp_min(1)[:, None, None].float()  # (B, 1, 1)
    peaked = p.amax(-1) >= 2.0 / n_keys  # (B, H, T): the top key stands out of a flat distribution
    i = torch.arange(T, device=probs.device)[None, None, :]
    punct = torch.zeros(int(input_ids.max()) + 1, dtype=torch.bool, device=probs.device)
    for t in punct_ids:
        if t < punct.numel():
            punct[t] = True
    is_punct_key = punct[input_ids]  # (B, T)
    offsets = {"previous": -1, "next": 1, "self": 0}
    argmax, mass = {}, {}
    n = real_q.sum((0, 2)).clamp_min(1)  # (H,)
    for role in ROLES:
        if role in offsets:
            hit = top == i + offsets[role]
            key = torch.eye(T, dtype=torch.bool, device=probs.device).roll(offsets[role], dims=1)  # (T, T): j = i+o
            if offsets[role] == -1:
                key[0, -1] = False
            elif offsets[role] == 1:
                key[-1, 0] = False
            m = (p * key).sum(-1)  # (B, H, T)
        else:
            wanted = {"[CLS]": input_ids == cls_id, "[SEP]": input_ids == sep_id, "punctuation": is_punct_key}[role]
            hit = wanted.gather(1, top.flatten(1)).view(B, H, T)
            m = (p * wanted[:, None, None, :]).sum(-1)
        argmax[role] = (hit & real_q & peaked).sum((0, 2)) / n
        mass[role] = (m * real_q).sum((0, 2)) / n
    return {"argmax": argmax, "mass": mass}


def main_role(argmax_share: dict[str, Tensor], threshold: float = 0.5) -> list[Optional[str]]:
    """For each head, the role holding for more than `threshold` of its queries (None: no single role)."""
    H = next(iter(argmax_share.values())).numel()
    out: list[Optional[str]] = []
    for h in range(H):
        best = max(ROLES, key=lambda r: float(argmax_share[r][h]))
        out.append(best if float(argmax_share[best][h]) > threshold else None)
    return out


@torch.no_grad()
def attention_report(model: nn.Module, batches: Sequence[dict[str, Tensor]], cls_id: int, sep_id: int,
                     punct_ids: set[int]) -> list[dict]:
    """Entropy and roles for every layer and head of a BERT-style model (needs output_attentions), averaged
    over `batches` (dicts with input_ids, attention_mask). Returns one dict per layer with (H,) lists."""
    was_training = model.training
    model.eval()
    sums: list[dict] = []
    total = 0
    for batch in batches:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True, unpad=False)
        attentions = getattr(out, "encoder", out).attentions  # a head model keeps the encoder's output
        w = int(mask.sum())
        for l, probs in enumerate(attentions):
            roles = head_roles(probs, ids, mask, cls_id, sep_id, punct_ids)
            entry = {"entropy": attention_entropy(probs, mask) * w,
                     **{f"argmax_{r}": roles["argmax"][r] * w for r in ROLES},
                     **{f"mass_{r}": roles["mass"][r] * w for r in ROLES}}
            if l == len(sums):
                sums.append(entry)
            else:
                sums[l] = {k: sums[l][k] + v for k, v in entry.items()}
        total += w
    model.train(was_training)
    return [{k: (v / total).tolist() for k, v in layer.items()} for layer in sums]
