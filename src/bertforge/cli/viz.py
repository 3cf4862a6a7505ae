"""`bertforge viz attention|positional|embeddings|masks`: the notes' pictures, as PNG (and HTML)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertforge.cli import flags

IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")  # bertforge.viz.IMAGE_SUFFIXES (no torch here)


def register(sub) -> None:
    p = sub.add_parser("viz", help="pictures: attention heads, positional encoding, word vectors, masks")
    vsub = p.add_subparsers(dest="viz_command", metavar="PICTURE")
    vsub.required = True
    picture = "the picture; its extension picks the format: " + ", ".join(IMAGE_SUFFIXES)

    a = vsub.add_parser("attention", help="attention heads of a BERT model for one text")
    a.add_argument("text", help="the sentence to look at")
    flags.model(a, "BERT directory (default: all-MiniLM-L6-v2)")
    a.add_argument("--layer", type=flags.non_negative_int, default=0, help="which layer (0: the first)")
    a.add_argument("--head", type=flags.non_negative_int, default=None,
                   help="one head, drawn large (default: all heads)")
    flags.max_seq_length(a, 128, "tokens of the text looked at (a longer text is cut)")
    flags.out(a, picture, required=False, metavar="FILE", default=Path("attention.png"))
    a.add_argument("--html", type=Path, default=None, metavar="FILE",
                   help="also write a self-contained HTML explorer (.html)")
    flags.device_flag(a, default="cpu")
    a.set_defaults(func=run_attention)

    pe = vsub.add_parser("positional", help="the sinusoidal positional encoding")
    flags.max_seq_length(pe, 64, "positions drawn")
    flags.alias(pe, "--max-len", "max_seq_length", type=flags.positive_int)
    pe.add_argument("--d-model", type=flags.positive_int, default=128, help="dimensions of the encoding (at least 2)")
    pe.add_argument("--dims", type=flags.non_negative_int, nargs="+", default=[0, 1, 10, 11, 40, 41],
                    help="dimensions drawn as curves over position (each below --d-model)")
    flags.out(pe, picture, required=False, metavar="FILE", default=Path("positional.png"))
    pe.set_defaults(func=run_positional)

    e = vsub.add_parser("embeddings", help="word vectors projected to 2-D with PCA")
    e.add_argument("--vectors", type=Path, required=True, help="word2vec text or binary file")
    e.add_argument("--words", nargs="+", required=True, help="the words to place (at least two)")
    flags.out(e, picture, required=False, metavar="FILE", default=Path("embeddings.png"))
    e.set_defaults(func=run_embeddings)

    m = vsub.add_parser("masks", help="padding and look-ahead masks for a batch of given lengths")
    m.add_argument("--lengths", type=flags.positive_int, nargs="+", default=[6, 4, 3], help="real tokens per example")
    m.add_argument("--row", type=flags.non_negative_int, default=1, help="which example to draw as (Q, K)")
    flags.out(m, picture, required=False, metavar="FILE", default=Path("masks.png"))
    m.set_defaults(func=run_masks)


def _check_outputs(args: argparse.Namespace) -> None:
    """The picture (and HTML) paths, refused before any work when they cannot be written."""
    from bertforge.fileio import check_output_file

    check_output_file(args.out, IMAGE_SUFFIXES)
    if getattr(args, "html", None) is not None:
        check_output_file(args.html, (".html", ".htm"), flag="--html")


def _done(path: Path) -> int:
    print(f"wrote {path}", file=sys.stderr)
    return 0


def run_attention(args: argparse.Namespace) -> int:
    from bertforge.inference import check_device
    from bertforge.models.bert.checkpoint import minilm_path
    from bertforge.models.bert.modeling import BertModel
    from bertforge.tokenizer.tokenizer import Tokenizer, check_fits
    from bertforge.viz import attention_figure, model_attentions, save_figure, write_attention_html

    _check_outputs(args)
    if not args.text.strip():
        raise ValueError("give a non-empty text to look at")
    model_dir = args.model or minilm_path()
    model = BertModel.from_pretrained(model_dir)
    tokenizer = Tokenizer.from_pretrained(model_dir)
    check_fits(tokenizer, model.config, model_dir, exact=False)
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    if not 0 <= args.layer < L:
        raise ValueError(f"--layer {args.layer} out of range: the model has {L} layers (0..{L - 1})")
    if args.head is not None and not 0 <= args.head < H:
        raise ValueError(f"--head {args.head} out of range: the model has {H} heads (0..{H - 1})")
    model.to(check_device(args.device))
    tokens, att = model_attentions(model, tokenizer, args.text, max_length=args.max_seq_length)  # (L, H, T, T)
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

    _check_outputs(args)
    if args.d_model < 2:
        raise ValueError(f"--d-model must be >= 2 (a sine and a cosine), got {args.d_model}")
    save_figure(positional_encoding_figure(args.max_seq_length, args.d_model, args.dims), args.out)
    return _done(args.out)


def run_embeddings(args: argparse.Namespace) -> int:
    from bertforge.models.word2vec.keyed_vectors import KeyedVectors
    from bertforge.viz import embedding_figure, save_figure

    _check_outputs(args)
    kv = KeyedVectors.load_word2vec_format(args.vectors)
    save_figure(embedding_figure(kv, args.words, title=f"{args.vectors.name}: PCA to 2-D"), args.out)
    return _done(args.out)


def run_masks(args: argparse.Namespace) -> int:
    import torch

    from bertforge.viz import check_memory, masks_figure, save_figure

    _check_outputs(args)
    if args.row >= len(args.lengths):
        raise ValueError(f"--row {args.row} out of range: --lengths gives {len(args.lengths)} examples "
                         f"(0..{len(args.lengths) - 1})")
    K = max(args.lengths)
    check_memory(100.0 * K * max(K, len(args.lengths)), f"masks of length {K} for {len(args.lengths)} examples",
                 "choose shorter lengths or fewer examples (e.g. at most 1000)")
    mask = torch.tensor([[1] * n + [0] * (K - n) for n in args.lengths])
    save_figure(masks_figure(mask, row=args.row), args.out)
    return _done(args.out)
