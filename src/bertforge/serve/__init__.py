"""`bertforge serve`: a local web page and JSON API over bertforge's models, with dynamic batching.

    from bertforge.serve import Engine, ServeConfig, create_app, serve_in_thread
    app = create_app(Engine.load(), ServeConfig(max_batch=32, max_wait_ms=5))
    with serve_in_thread(app) as url:           # http://127.0.0.1:<free port>
        ...

Modules: `batching` (the dynamic batcher: one inference worker, bounded queue, timeouts), `engine` (the
models and one batch function per request kind), `app` (routes, limits, JSON errors, the page's
security headers), `server` (uvicorn on a pre-bound socket), `static/index.html` (the page).
docs/serve.md has the API, the batching design and its measurements.
"""
from bertforge.serve.app import ApiError, ServeConfig, create_app, page_html
from bertforge.serve.batching import DynamicBatcher, QueueFull, RequestTimeout, ShuttingDown
from bertforge.serve.engine import DocsBackend, Engine, load_docs
from bertforge.serve.server import bind, is_loopback, serve_forever, serve_in_thread

__all__ = ["ApiError", "DocsBackend", "DynamicBatcher", "Engine", "QueueFull", "RequestTimeout", "ServeConfig",
           "ShuttingDown", "bind", "create_app", "is_loopback", "load_docs", "page_html", "serve_forever",
           "serve_in_thread"]
