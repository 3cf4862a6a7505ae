"""The web app: the page, the JSON API and its errors, on top of an `Engine` and a `DynamicBatcher`.

    app = create_app(Engine.load(), ServeConfig())
    # GET  /                  the page (static/index.html: one file, no CDN)
    # GET  /health            liveness, queue depth, batching counters, resident memory
    # GET  /api/info          what is served (models, features on/off and why, limits)
    # POST /api/qa            {"question", "context" | none for the document index, "top_k"}
    # POST /api/embed         {"sentences": [...]} -> unit vectors
    # POST /api/fill-mask     {"text": "... [MASK] ...", "top_k"}   (with --mlm-model)
    # POST /api/attention     {"text"} -> tokens and attention probabilities (layers, heads, T, T)
    # GET  /attention?text=   the attention explorer page of bertforge.viz (the page's attention tab)
    # GET  /openapi.json      the API schema (no /docs: Swagger UI would load scripts from a CDN)

Errors are always JSON, `{"error": code, "message": what went wrong and how to fix it, "status": N}`:
400 bad input the model refuses (not JSON, no [MASK], no context and no documents), 404/405, 413 body
over `max_body_bytes`, 415 not JSON, 422 a field out of its limits, 503 overloaded (queue full), timed
out, or a feature that is not served; 500 only for a bug, logged by the server, never a traceback here.
"""
import base64
import hashlib
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from bertforge.serve.batching import DynamicBatcher, QueueFull, RequestTimeout, ShuttingDown
from bertforge.serve.engine import AttentionJob, DocsJob, EmbedJob, Engine, MaskJob, QAJob

log = logging.getLogger("bertforge.serve")

__all__ = ["ApiError", "ServeConfig", "create_app", "page_html"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching; every field is a `bertforge serve` flag (docs/serve.md)."""

    max_body_bytes: int = 1_000_000  # 413 above
    max_question_chars: int = 1_000  # 422 above
    max_context_chars: int = 100_000  # ~25k tokens, ~100 windows: a few seconds of model time
    max_top_k: int = 10
    max_top_passages: int = 20
    max_sentences: int = 64  # per /api/embed request
    max_sentence_chars: int = 2_000  # embed, fill-mask and attention texts
    max_attention_tokens: int = 64  # longer texts are truncated (L x H x T x T numbers go back)
    max_batch: int = 32  # requests grouped into one model call; 1 = no dynamic batching
    max_wait_ms: float = 5.0  # how long the first request of a group waits for company
    max_queue: int = 256  # requests waiting beyond this get 503 at once
    timeout_s: float = 30.0  # per request, queueing included
    allowed_hosts: Optional[tuple[str, ...]] = None  # Host header check (DNS rebinding); None: any


class ApiError(Exception):
    """An error with its HTTP status, a short code and a message that says how to fix it."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: Optional[dict] = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "status": status, **extra}, status, headers=headers)


# ---- request and response schemas (limits from the config, so /openapi.json shows the real ones) ----

def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"the {what} is empty")
    return value


def build_schemas(cfg: ServeConfig) -> dict[str, type[BaseModel]]:
    class QARequest(BaseModel):
        """A question about a `context`, or, without one, about the served document index."""

        question: str = Field(..., max_length=cfg.max_question_chars, examples=["Who wrote the novel?"])
        context: Optional[str] = Field(None, max_length=cfg.max_context_chars,
                                       description="the text to answer from; leave it out to ask the "
                                                   "document index the server was started with (--docs)")
        top_k: int = Field(1, ge=1, le=cfg.max_top_k, description="answers wanted, best first")
        top_passages: int = Field(5, ge=1, le=cfg.max_top_passages,
                                  description="document mode: passages read by the QA model")

        @field_validator("question")
        @classmethod
        def _question(cls, v: str) -> str:
            return _not_blank(v, "question")

    class Passage(BaseModel):
        text: str
        start: int = Field(description="character offset of the passage in its file")
        line: Optional[int] = None

    class Answer(BaseModel):
        text: str
        probability: float = Field(description="softmax over the candidate spans' scores")
        start: int = Field(description="character offset of the answer in the context (or file), end-exclusive")
        end: int
        score: Optional[float] = Field(None, description="start logit + end logit")
        sentence: str = Field(description="the sentence around the answer, the answer marked **like this**")
        file: Optional[str] = Field(None, description="document mode: the file, relative to the indexed folder")
        line: Optional[int] = Field(None, description="document mode: 1-based line of the answer")
        page: Optional[int] = None
        passage: Optional[Passage] = None

    class QAResponse(BaseModel):
        question: str
        source: str = Field(description="'context' or 'docs'")
        answers: list[Answer] = Field(description="best first; an empty list means no answer was found")
        no_answer_probability: Optional[float] = Field(
            None, description="the QA model's probability that the text holds no answer (pasted context)")

    class EmbedRequest(BaseModel):
        sentences: list[str] = Field(..., min_length=1, max_length=cfg.max_sentences)

        @field_validator("sentences")
        @classmethod
        def _each(cls, v: list[str]) -> list[str]:
            for i, s in enumerate(v):
                if len(s) > cfg.max_sentence_chars:
                    raise ValueError(f"sentence {i} has {len(s)} characters, more than {cfg.max_sentence_chars}")
                _not_blank(s, f"sentence {i}")
            return v

    class EmbedResponse(BaseModel):
        dim: int
        vectors: list[list[float]] = Field(description="one L2-normalised vector per sentence, in order")

    class FillMaskRequest(BaseModel):
        text: str = Field(..., max_length=cfg.max_sentence_chars, examples=["Paris is the [MASK] of France."])
        top_k: int = Field(5, ge=1, le=cfg.max_top_k)

        @field_validator("text")
        @classmethod
        def _text(cls, v: str) -> str:
            return _not_blank(v, "text")

    class Candidate(BaseModel):
        token: str
        probability: float

    class MaskPrediction(BaseModel):
        mask: int = Field(description="0 for the first [MASK] of the text, 1 for the second, ...")
        candidates: list[Candidate]

    class FillMaskResponse(BaseModel):
        masks: list[MaskPrediction]

    class AttentionRequest(BaseModel):
        text: str = Field(..., max_length=cfg.max_sentence_chars, examples=["The cat sat on the mat."])

        @field_validator("text")
        @classmethod
        def _text(cls, v: str) -> str:
            return _not_blank(v, "text")

    class AttentionResponse(BaseModel):
        tokens: list[str]
        layers: int
        heads: int
        attentions: list[list[list[list[float]]]] = Field(
            description="(layers, heads, T, T): row i = how much token i attends to each token")
        truncated: bool = Field(description=f"the text had more than {cfg.max_attention_tokens} tokens")

    return {c.__name__: c for c in (QARequest, QAResponse, EmbedRequest, EmbedResponse, FillMaskRequest,
                                    FillMaskResponse, AttentionRequest, AttentionResponse)}


# ---- the page and its Content-Security-Policy -------------------------------------------------------

def page_html() -> str:
    """The page: one static file shipped inside the package."""
    return resources.files("bertforge.serve").joinpath("static/index.html").read_text(encoding="utf-8")


class _InlineScripts(HTMLParser):
    """The text of every executable inline <script> of a page (as the browser hashes it; comments and
    JSON data blocks are not scripts)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._inside = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        kind = dict(attrs).get("type", "text/javascript").lower()
        self._inside = tag == "script" and "src" not in dict(attrs) and kind in ("text/javascript", "module", "")
        if self._inside:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.scripts[-1] += data


def _csp(html: str, frame_ancestors: str) -> str:
    """A policy that runs only this page's own inline scripts (by hash) and talks only to this server:
    should an escaping bug ever let text become markup, an injected script would still not run."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                      for s in _InlineScripts(html).scripts)
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
            f"frame-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            f"frame-ancestors {frame_ancestors}")


_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


# ---- the guard: Host check, body size, content type (plain ASGI: before anything reads the body) ----

class Guard:
    """413 for a body over the limit (by Content-Length, or counted while reading a chunked body), 415 for
    a POST that is not JSON, 400 for a Host that is not allowed (DNS rebinding onto 127.0.0.1)."""

    def __init__(self, app, max_body_bytes: int, allowed_hosts: Optional[tuple[str, ...]]):
        self.app, self.max_body_bytes, self.allowed_hosts = app, max_body_bytes, allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._check_headers(scope, headers)
        if problem is None and scope["method"] in ("POST", "PUT", "PATCH"):
            problem, receive = await self._read_body(receive)
        if problem is not None:
            return await problem(scope, receive, send)
        return await self.app(scope, receive, send)

    def _check_headers(self, scope, headers: dict) -> Optional[JSONResponse]:
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.allowed_hosts:
                return error_response(400, "bad_host", f"Host {host!r} is not served here: open the page at "
                                      f"http://127.0.0.1:<port>/ (the server answers only "
                                      f"{', '.join(self.allowed_hosts)})")
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return error_response(400, "bad_request", f"Content-Length {length!r} is not a number")
            if int(length) > self.max_body_bytes:
                return self._too_large(int(length))
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["path"].startswith("/api/") and ctype != "application/json":
            return error_response(415, "not_json", f"send a JSON body with 'Content-Type: application/json' "
                                  f"(got {ctype or 'no content type'})")
        return None

    def _too_large(self, size: Optional[int]) -> JSONResponse:
        got = f"{size:,} bytes" if size is not None else "more"
        return error_response(413, "too_large", f"the request body is {got}, over the limit of "
                              f"{self.max_body_bytes:,} bytes: send a shorter text (or start the server "
                              f"with a larger --max-body-bytes)")

    async def _read_body(self, receive):
        """Read the whole body (it is small: bounded by the limit), then replay it to the app."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return self._too_large(None), receive
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay


# ---- the app ---------------------------------------------------------------------------------------

def create_app(engine: Engine, config: ServeConfig = ServeConfig(),
               batcher: Optional[DynamicBatcher] = None) -> FastAPI:
    """The FastAPI app; its lifespan starts and stops the one inference worker."""
    import bertforge

    cfg = config
    if batcher is None:
        batcher = DynamicBatcher(cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, on_batch_done=_trim_memory())
    _register(batcher, engine)
    S = build_schemas(cfg)
    # The request models as local names for the endpoints' annotations, which FastAPI reads to parse and validate
    # the body (evaluated at def time: this module has no `from __future__ import annotations`). Written as
    # `S["QARequest"]` they worked the same, but linters take the quoted key for a forward reference (F821).
    QARequest, EmbedRequest = S["QARequest"], S["EmbedRequest"]
    FillMaskRequest, AttentionRequest = S["FillMaskRequest"], S["AttentionRequest"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(title="bertforge serve", version=getattr(bertforge, "__version__", "0.1.0"), lifespan=lifespan,
                  description="Question answering, sentence vectors, fill-mask and attention from bertforge's "
                              "models, served on this machine. Errors: JSON `{error, message, status}`.",
                  docs_url=None, redoc_url=None)  # their pages load scripts from a CDN
    app.state.engine, app.state.batcher, app.state.config = engine, batcher, cfg
    _install_error_handlers(app)
    page = page_html()
    example = _example()
    page_headers = {**_SECURITY_HEADERS, "Content-Security-Policy": _csp(page, "'none'")}

    async def run(kind: str, job: Any) -> Any:
        try:
            return await batcher.submit(kind, job, cfg.timeout_s)
        except QueueFull as e:
            raise ApiError(503, "overloaded", f"the server is busy: {e}", {"Retry-After": "1"}) from None
        except RequestTimeout as e:
            raise ApiError(503, "timeout", str(e), {"Retry-After": "1"}) from None
        except ShuttingDown as e:
            raise ApiError(503, "shutting_down", str(e)) from None
        except ValueError as e:  # BertforgeError and the library's other user errors
            raise ApiError(400, "bad_input", str(e)) from None

    def require(feature: str) -> None:
        why = engine.why_off(feature)
        if why:
            raise ApiError(503, "not_available", why)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=page_headers)

    @app.get("/health", tags=["server"], summary="liveness, queue depth, batching counters, memory")
    async def health() -> dict:
        return {"status": "ok", "queued": batcher.queued, "batching": batcher.stats.to_dict(),
                "rss_mb": _rss_mb()}

    @app.get("/api/info", tags=["server"], summary="what this server serves, and its limits")
    async def info() -> dict:
        features = {"qa": True, **{f: engine.why_off(f) is None for f in ("docs", "embed", "fill-mask")}}
        unavailable = {f: engine.why_off(f) for f in features if not features[f]}
        limits = {k: v for k, v in asdict(cfg).items() if k != "allowed_hosts"}
        return {"version": app.version, "models": engine.names, "features": features, "unavailable": unavailable,
                "limits": limits, "example": example}

    @app.post("/api/qa", tags=["models"], response_model=S["QAResponse"], response_model_exclude_none=True,
              summary="answer a question about a text, or about the served documents")
    async def qa(req: QARequest) -> dict:  # type: ignore[valid-type]
        if req.context is None:
            if engine.docs is None:
                raise ApiError(400, "no_context", "give a 'context' to answer from (this server has no document "
                                                  "index: start it with --docs INDEX to ask without one)")
            answers = await run("docs", DocsJob(req.question, req.top_k, req.top_passages))
            return {"question": req.question, "source": "docs", "answers": answers}
        if not req.context.strip():
            raise ApiError(422, "invalid_request", "context: the context is empty")
        found = await run("qa", QAJob(req.question, req.context, req.top_k))
        return {"question": req.question, "source": "context", **found}

    @app.post("/api/embed", tags=["models"], response_model=S["EmbedResponse"],
              summary="sentence vectors (mean pooling + L2 norm)")
    async def embed(req: EmbedRequest) -> JSONResponse:  # type: ignore[valid-type]
        require("embed")
        vectors = await run("embed", EmbedJob(list(req.sentences)))
        return JSONResponse({"dim": len(vectors[0]), "vectors": vectors})  # skips re-validating floats

    @app.post("/api/fill-mask", tags=["models"], response_model=S["FillMaskResponse"],
              summary="the likeliest tokens for each [MASK] (needs --mlm-model)")
    async def fill_mask(req: FillMaskRequest) -> dict:  # type: ignore[valid-type]
        require("fill-mask")
        return {"masks": await run("fill-mask", MaskJob(req.text, req.top_k))}

    @app.post("/api/attention", tags=["models"], response_model=S["AttentionResponse"],
              summary="attention probabilities of the QA model's encoder, every layer and head")
    async def attention(req: AttentionRequest) -> JSONResponse:  # type: ignore[valid-type]
        return JSONResponse(await run("attention", AttentionJob(req.text, cfg.max_attention_tokens)))

    @app.get("/attention", response_class=HTMLResponse, tags=["pages"],
             summary="the attention explorer page (bertforge.viz) for a text: layer and head pickers")
    async def attention_page(text: str = Query(..., max_length=cfg.max_sentence_chars),
                             layer: int = Query(0, ge=0), head: Optional[int] = Query(None, ge=0)) -> HTMLResponse:
        from bertforge.viz import attention_html

        _not_blank_or_422(text, "text")
        data = await run("attention", AttentionJob(text, cfg.max_attention_tokens))
        if layer >= data["layers"] or (head is not None and head >= data["heads"]):
            raise ApiError(422, "invalid_request", f"this model has {data['layers']} layers and {data['heads']} "
                                                   f"heads: choose layer < {data['layers']}, head < {data['heads']}")
        html = attention_html(data["tokens"], data["attentions"], title=f"Attention: {text}", layer=layer, head=head)
        headers = {**_SECURITY_HEADERS, "Content-Security-Policy": _csp(html, "'self'")}
        return HTMLResponse(html, headers=headers)

    return app


DEMO_PASSAGE = Path(__file__).resolve().parents[1] / "assets" / "demo_passage.txt"  # the one `make demo` reads


def _example() -> Optional[dict]:
    """The bundled demo passage and a question about it: the page starts with them filled in."""
    try:
        return {"context": DEMO_PASSAGE.read_text(encoding="utf-8"), "question": "What does BERT stand for?"}
    except OSError:
        return None


def _not_blank_or_422(value: str, what: str) -> None:
    if not value.strip():
        raise ApiError(422, "invalid_request", f"{what}: the {what} is empty")


def _register(batcher: DynamicBatcher, engine: Engine) -> None:
    """One batch function per request kind; sorted by length inside a group (the QA cost is the context
    length: similar lengths share padded windows)."""
    batcher.register("qa", engine.qa_batch, cost=lambda job: len(job.context) + len(job.question))
    batcher.register("docs", engine.docs_batch, cost=lambda job: len(job.question))
    batcher.register("embed", engine.embed_batch, cost=lambda job: sum(len(s) for s in job.sentences))
    batcher.register("fill-mask", engine.fill_mask_batch, max_batch=1)  # one text per model call anyway
    batcher.register("attention", engine.attention_batch, max_batch=1)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_response(400, "not_json", "the body is not valid JSON: send an object such as "
                                  '{"question": "...", "context": "..."}')
        fields = [{"field": ".".join(str(p) for p in err["loc"][1:]) or "body",
                   "message": _plain(err.get("msg", "invalid"))} for err in errors]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return error_response(422, "invalid_request", message, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"no such page or endpoint: {request.url.path} (see /openapi.json)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return error_response(e.status_code, codes.get(e.status_code, "http_error"), message,
                              getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.error("bug while serving %s %s", request.method, request.url.path, exc_info=e)
        return error_response(500, "internal_error", "the server failed on this request (a bug: the server log "
                              "has the details; please report it)")

    # The guard runs outside FastAPI's routing, so oversized bodies are refused before anything reads them.
    app.add_middleware(Guard, max_body_bytes=app.state.config.max_body_bytes,
                       allowed_hosts=app.state.config.allowed_hosts)


def _plain(msg: str) -> str:
    """pydantic's 'Value error, the question is empty' -> 'the question is empty'."""
    return msg.removeprefix("Value error, ")


def _rss_mb() -> Optional[float]:
    """Resident memory of this process in MB (Linux /proc); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _trim_memory(min_interval_s: float = 1.0):
    """After a model call, give glibc's free heap pages back to the OS, at most once per `min_interval_s`.

    Requests of every length make tensors of every shape, and the freed blocks stay in glibc's heap: a
    server answering 8 x 192 SQuAD paragraphs at concurrency 32 grew from 428 to 961 MB resident and was
    still growing; trimming after every group held it at 410-414 MB (peak 717 MB, within a group of 32)
    at the same requests/s. A trim costs ~5 ms after a lone request, ~13 ms after a group of 16; once a
    second bounds that below 1.5% of the time while under load (`training.trainer.release_free_memory`).
    """
    from bertforge.training.trainer import release_free_memory

    last = 0.0

    def maybe_trim() -> None:
        nonlocal last
        if time.monotonic() - last >= min_interval_s:
            release_free_memory()
            last = time.monotonic()

    return maybe_trim
