"""`bertforge viz attention|positional|embeddings|masks`: the notes' pictures, as PNG (and HTML)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("viz", help="pictures: attention heads, positional encoding, word vectors, masks")
    vsub = p.add_subparsers(dest="viz_command", metavar="PICTURE")
    vsub.required = True

    a = vsub.add_parser("attention", help="attention heads of a BERT model for one text")
    a.add_argument("text", help="the sentence to look at")
    a.add_argument("--model", type=Path, default=None, help="BERT directory (default: all-MiniLM-L6-v2)")
    a.add_argument("--layer", type=int, default=0)
    a.add_argument("--head", type=int, default=None, help="one head, drawn large (default: all heads)")
    a.add_argument("--out", type=Path, default=Path("attention.png"))
    a.add_argument("--html", type=Path, default=None, help="also write a self-contained HTML explorer")
    a.set_defaults(func=run_attention)

    pe = vsub.add_parser("positional", help="the sinusoidal positional encoding")
    pe.add_argument("--max-len", type=int, default=64)
    pe.add_argument("--d-model", type=int, default=128)
    pe.add_argument("--dims", type=int, nargs="+", default=[0, 1, 10, 11, 40, 41])
    pe.add_argument("--out", type=Path, default=Path("positional.png"))
    pe.set_defaults(func=run_positional)

    e = vsub.add_parser("embeddings", help="word vectors projected to 2-D with PCA")
    e.add_argument("--vectors", type=Path, required=True, help="word2vec text or binary file")
    e.add_argument("--words", nargs="+", required=True)
    e.add_argument("--out", type=Path, default=Path("embeddings.png"))
    e.set_defaults(func=run_embeddings)

    m = vsub.add_parser("masks", help="padding and look-ahead masks for a batch of given lengths")
    m.add_argument("--lengths", type=int, nargs="+", default=[6, 4, 3], help="real tokens per example")
    m.add_argument("--row", type=int, default=1, help="which example to draw as (Q, K)")
    m.add_argument("--out", type=Path, default=Path("masks.png"))
    m.set_defaults(func=run_masks)


def _done(path: Path) -> int:
    print(f"wrote {path}", file=sys.stderr)
    return 0


def run_attention(args: argparse.Namespace) -> int:
    from bertforge.models.bert.modeling import BertModel
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.tokenizer.tokenizer import Tokenizer
    from bertforge.viz import attention_figure, model_attentions, save_figure, write_attention_html

    model_dir = args.model or minilm_path()
    model = BertModel.from_pretrained(model_dir)
    tokenizer = Tokenizer.from_pretrained(model_dir)
    tokens, att = model_attentions(model, tokenizer, args.text)  # (L, H, T, T)
    L, H = att.shape[:2]
    if not 0 <= args.layer < L:
        raise ValueError(f"--layer {args.layer} out of range: the model has {L} layers (0..{L - 1})")
    if args.head is not None and not 0 <= args.head < H:
        raise ValueError(f"--head {args.head} out of range: the model has {H} heads (0..{H - 1})")
    heads = None if args.head is None else [args.head]
    name = "all-MiniLM-L6-v2" if args.model is None else Path(model_dir).name
    title = f"{name}: layer {args.layer}" + ("" if args.head is None else f", head {args.head}")
    save_figure(attention_figure(att[args.layer], tokens, heads=heads, title=title), args.out)
    if args.html:
        write_attention_html(args.html, tokens, att, title=f"{name}: {args.text}",
                             layer=args.layer, head=args.head)
        print(f"wrote {args.html}", file=sys.stderr)
    return _done(args.out)


def run_positional(args: argparse.Namespace) -> int:
    from bertforge.viz import positional_encoding_figure, save_figure

    if args.max_len < 1 or args.d_model < 2:
        raise ValueError("need --max-len >= 1 and --d-model >= 2")
    save_figure(positional_encoding_figure(args.max_len, args.d_model, args.dims), args.out)
    return _done(args.out)


def run_embeddings(args: argparse.Namespace) -> int:
    from bertforge.models.word2vec.keyed_vectors import KeyedVectors
    from bertforge.viz import embedding_figure, save_figure

    kv = KeyedVectors.load_word2vec_format(args.vectors)
    save_figure(embedding_figure(kv, args.words, title=f"{args.vectors.name}: PCA to 2-D"), args.out)
    return _done(args.out)


def run_masks(args: argparse.Namespace) -> int:
    import torch

    from bertforge.viz import masks_figure, save_figure

    if not args.lengths or min(args.lengths) < 1:
        raise ValueError("--lengths must be positive numbers of tokens")
    K = max(args.lengths)
    mask = torch.tensor([[1] * n + [0] * (K - n) for n in args.lengths])
    save_figure(masks_figure(mask, row=args.row), args.out)
    return _done(args.out)
