"""`bertforge serve [--host 127.0.0.1] [--port 8000] [--model DIR] [--docs INDEX]`: the page and the JSON API."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bertforge.cli import flags


def register(sub) -> None:
    p = sub.add_parser("serve", help="a local web page and JSON API (QA, embeddings, fill-mask, attention)",
                       description="Serve bertforge's models on this machine: a page to paste a text (or ask "
                                   "your indexed documents) and see the answer highlighted, an attention "
                                   "explorer, and a JSON API (schema at /openapi.json). Concurrent requests "
                                   "are batched into one model call. docs/serve.md has the details.")
    where = p.add_argument_group("where")
    where.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: only this machine; 0.0.0.0 opens it to "
                            "your network, without any authentication)")
    where.add_argument("--port", type=flags.non_negative_int, default=8000, help="TCP port (0: a free one)")
    models = p.add_argument_group("models")
    flags.model(models, help="the QA model directory (default: the shipped qa-minilm)")
    models.add_argument("--docs", type=Path, default=None, metavar="INDEX",
                        help="a document index (`bertforge index DIR`): the page and /api/qa can then ask it")
    models.add_argument("--embed-model", type=Path, default=None, metavar="DIR",
                        help="sentence-embedding model for /api/embed (default: all-MiniLM-L6-v2 when installed)")
    models.add_argument("--no-embed", action="store_true", help="do not load an embedding model (/api/embed off)")
    models.add_argument("--mlm-model", type=Path, default=None, metavar="DIR",
                        help="a model with a masked-LM head (`bertforge pretrain` output) for the fill-mask tab")
    flags.inference(models)
    batching = p.add_argument_group("batching")
    batching.add_argument("--max-batch", type=flags.positive_int, default=32,
                          help="requests grouped into one model call (1: no dynamic batching)")
    batching.add_argument("--max-wait-ms", type=flags.non_negative_float, default=5.0,
                          help="how long the first request of a group waits for others (milliseconds)")
    batching.add_argument("--max-queue", type=flags.positive_int, default=256,
                          help="requests allowed to wait; beyond it the server answers 503 at once")
    batching.add_argument("--timeout", type=flags.positive_float, default=30.0,
                          help="seconds a request may take, waiting included, before it gets 503")
    limits = p.add_argument_group("limits")
    limits.add_argument("--max-body-bytes", type=flags.positive_int, default=1_000_000,
                        help="largest request body (413 above)")
    limits.add_argument("--max-question-chars", type=flags.positive_int, default=1_000,
                        help="longest question (422 above)")
    limits.add_argument("--max-context-chars", type=flags.positive_int, default=100_000,
                        help="longest pasted context (422 above)")
    limits.add_argument("--max-top-k", type=flags.positive_int, default=10, help="largest top_k a request may ask")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from bertforge.serve import Engine, ServeConfig, create_app, is_loopback, serve_forever
        from bertforge.serve.server import LOOPBACK_NAMES
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("fastapi", "starlette", "uvicorn", "pydantic"):
            raise ValueError(f"`bertforge serve` needs {e.name}: pip install 'bertforge[serve]'") from None
        raise

    started = time.perf_counter()
    engine = Engine.load(args.model, embed_model=args.embed_model, embed=not args.no_embed, mlm_model=args.mlm_model,
                         docs_index=args.docs, device=args.device, precision=args.precision,
                         batch_size=args.batch_size, compile=args.compile)
    loopback = is_loopback(args.host)
    config = ServeConfig(max_body_bytes=args.max_body_bytes, max_question_chars=args.max_question_chars,
                         max_context_chars=args.max_context_chars, max_top_k=args.max_top_k,
                         max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                         timeout_s=args.timeout, allowed_hosts=LOOPBACK_NAMES if loopback else None)
    app = create_app(engine, config)
    say = lambda msg: print(f"bertforge serve: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    for feature, what in engine.names.items():
        say(f"{feature}: {what}")
    for feature in ("docs", "embed", "fill-mask"):
        if engine.why_off(feature):
            say(f"{feature}: off ({engine.why_off(feature)})")
    if not loopback:
        say(f"WARNING: listening on {args.host}: anyone who can reach this machine can use the server "
            "(there is no authentication); use --host 127.0.0.1 to keep it local")
    serve_forever(app, args.host, args.port,
                  announce=lambda url: say(f"models loaded in {time.perf_counter() - started:.1f} s; "
                                           f"open {url}/ (Ctrl-C to stop)"))
    say("stopped")
    return 0
