"""The JSON API in-process (FastAPI's TestClient): every endpoint against the library called directly,
every error status with a JSON body and no traceback, the size limit, the queue-full and timeout 503s."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import pytest
import torch
from fastapi.testclient import TestClient

from bertforge.serve import Engine, ServeConfig, create_app
from bertforge.serve.engine import QAJob

from .helpers import PAIRS

CONTEXT = "Paris is the capital and largest city of France. It lies on the Seine."


def client(engine: Engine, **config) -> TestClient:
    return TestClient(create_app(engine, ServeConfig(**config)))


@pytest.fixture(scope="module")
def api(tiny_engine):
    with client(tiny_engine) as c:
        yield c


def assert_error(r, status: int, code: str, *words: str) -> dict:
    """A JSON error with the status, its code, a message naming `words`, and no traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and body["error"] == code, body
    for w in words:
        assert w in body["message"], body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


# ---- every endpoint, against the library called directly ------------------------------------------

def test_health_and_info(api, tiny_engine):
    h = api.get("/health").json()
    assert h["status"] == "ok" and h["queued"] == 0 and set(h["batching"]) >= {"jobs", "batches", "mean_batch"}
    assert h["rss_mb"] is None or h["rss_mb"] > 10
    info = api.get("/api/info").json()
    assert info["features"] == {"qa": True, "docs": False, "embed": True, "fill-mask": True}
    assert "--docs" in info["unavailable"]["docs"]
    assert info["limits"]["max_body_bytes"] == 1_000_000 and info["limits"]["max_top_k"] == 10
    assert info["example"]["context"] and info["example"]["question"]


def test_qa_answers_are_the_answerers(api, tiny_engine):
    r = api.post("/api/qa", json={"question": "What is the capital of France?", "context": CONTEXT, "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "context" and body["question"] == "What is the capital of France?"
    result = tiny_engine.qa.ask("What is the capital of France?", CONTEXT, top_k=3)
    want = result.answers
    assert [a["text"] for a in body["answers"]] == [a.text for a in want] and len(want) == 3
    assert body["no_answer_probability"] == pytest.approx(result.no_answer_probability, abs=1e-6)
    for got, ref in zip(body["answers"], want):
        assert CONTEXT[got["start"]:got["end"]] == got["text"]  # offsets index the context
        assert got["probability"] == pytest.approx(ref.probability, abs=1e-6) and "file" not in got


def test_no_answer_is_an_empty_list(tiny_engine):
    @dataclass
    class Unanswering(Engine):
        def qa_batch(self, jobs):  # a model with a null score returns [] for "no answer"
            return [{"answers": [], "no_answer_probability": 0.875} for _ in jobs]

    with client(Unanswering(qa=tiny_engine.qa)) as c:
        r = c.post("/api/qa", json={"question": "What colour is the sky?", "context": CONTEXT})
    assert r.status_code == 200 and r.json()["answers"] == [] and r.json()["no_answer_probability"] == 0.875


def test_a_model_that_says_no_answer_gives_an_empty_list(tiny_models):
    """A QA model whose null score always wins (a threshold below every null odds) answers nothing."""
    from bertforge.tasks.qa.answerer import QuestionAnswerer

    qa = QuestionAnswerer(tiny_models["qa"], null_threshold=-1e9)
    with client(Engine(qa=qa)) as c:
        body = c.post("/api/qa", json={"question": "Who?", "context": CONTEXT, "top_k": 3}).json()
    want = qa.ask("Who?", CONTEXT, top_k=3)
    assert body["answers"] == want.answers == []
    assert body["no_answer_probability"] == pytest.approx(want.no_answer_probability)
    assert body["no_answer_probability"] > 0


def test_embed_equals_the_encoder_one_by_one(api, tiny_engine):
    sentences = ["A man plays a guitar.", "Someone plays an instrument.", "Shares fell today at the close."]
    r = api.post("/api/embed", json={"sentences": sentences})
    assert r.status_code == 200, r.text
    got = torch.tensor(r.json()["vectors"])
    assert r.json()["dim"] == got.shape[1] == 32
    want = torch.cat([tiny_engine.encoder.encode([s]) for s in sentences])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(3))


def test_fill_mask_equals_fill_mask(api, tiny_engine):
    from bertforge.models.bert.pretraining import fill_mask

    text = "Paris is the [MASK] of [MASK]."
    r = api.post("/api/fill-mask", json={"text": text, "top_k": 4})
    assert r.status_code == 200, r.text
    masks = r.json()["masks"]
    want = fill_mask(*tiny_engine.mlm, text, top_k=4)
    assert [m["mask"] for m in masks] == [0, 1]
    for m, ref in zip(masks, want):
        assert [(c["token"], round(c["probability"], 6)) for c in m["candidates"]] == [(t, round(p, 6)) for t, p in ref]


def test_attention_equals_model_attentions_and_keeps_the_fast_path(api, tiny_models, tiny_engine):
    from bertforge.models.bert.modeling import BertModel
    from bertforge.viz import model_attentions

    text = "The animal didn't cross the street because it was too tired."
    r = api.post("/api/attention", json={"text": text})
    assert r.status_code == 200, r.text
    body = r.json()
    # an independent copy of the encoder (its new pooler is unused)
    fresh = BertModel.from_pretrained(tiny_models["qa"])
    tokens, att = model_attentions(fresh, tiny_engine.qa.tokenizer, text)
    assert body["tokens"] == tokens and (body["layers"], body["heads"]) == att.shape[:2] and not body["truncated"]
    torch.testing.assert_close(torch.tensor(body["attentions"], dtype=torch.float64), att.double(),
                               rtol=0, atol=6e-5)  # 4 decimals
    assert tiny_engine.qa.model.bert.config.attn_implementation == "sdpa"  # QA goes back to the fast kernel


def test_attention_of_a_long_text_is_truncated(tiny_engine):
    with client(tiny_engine, max_attention_tokens=8) as c:
        body = c.post("/api/attention", json={"text": "one two three four five six seven eight nine ten"}).json()
    assert len(body["tokens"]) == 8 and body["truncated"] and body["tokens"][-1] == "[SEP]"


def test_attention_page_is_the_viz_explorer_escaped(api):
    r = api.get("/attention", params={"text": "</script><b>bold</b>", "layer": 1, "head": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>Attention: &lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;</title>" in page
    data = json.loads(page.split('<script id="attention-data" type="application/json">')[1].split("</script>")[0])
    assert data["layer"] == 1 and data["head"] == 2 and "<" in data["tokens"]
    assert "script-src 'sha256-" in r.headers["content-security-policy"]
    assert_error(api.get("/attention", params={"text": "hi", "layer": 99}), 422, "invalid_request", "layers")


def test_the_page_is_self_contained(api):
    r = api.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert 'id="ask"' in page and 'id="attn-frame"' in page
    for external in ("http://", "https://", "//cdn", "src=\"//"):
        assert external not in page  # nothing fetched from outside this machine
    script = page.split("<script>")[1]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script  # user text goes in by textContent only
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_openapi_documents_every_endpoint_with_the_limits(api):
    schema = api.get("/openapi.json").json()
    assert {"/health", "/api/info", "/api/qa", "/api/embed", "/api/fill-mask", "/api/attention",
            "/attention"} <= set(schema["paths"])
    qa = schema["components"]["schemas"]["QARequest"]["properties"]
    assert qa["top_k"]["maximum"] == 10 and qa["question"]["maxLength"] == 1000
    assert api.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


# ---- error statuses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"context": CONTEXT}, "question"),                                   # missing
    ({"question": "   ", "context": CONTEXT}, "question"),                # blank
    ({"question": "q" * 1001, "context": CONTEXT}, "question"),           # too long
    ({"question": "Where?", "context": CONTEXT, "top_k": 0}, "top_k"),    # out of range
    ({"question": "Where?", "context": CONTEXT, "top_k": 11}, "top_k"),
    ({"question": "Where?", "context": 42}, "context"),                   # wrong type
    ({"question": "Where?", "context": "  "}, "context"),                 # empty context
])
def test_qa_422_names_the_field(api, body, field):
    assert_error(api.post("/api/qa", json=body), 422, "invalid_request", field)


def test_qa_limits_are_configurable(tiny_engine):
    with client(tiny_engine, max_question_chars=5, max_top_k=2, max_context_chars=20) as c:
        assert_error(c.post("/api/qa", json={"question": "Who is?", "context": CONTEXT}),
                     422, "invalid_request", "question")
        assert_error(c.post("/api/qa", json={"question": "Who?", "context": CONTEXT}),
                     422, "invalid_request", "context")
        assert_error(c.post("/api/qa", json={"question": "Who?", "context": "Ann is.", "top_k": 3}),
                     422, "invalid_request", "top_k")
        assert c.post("/api/qa", json={"question": "Who?", "context": "Ann is.", "top_k": 2}).status_code == 200


@pytest.mark.parametrize("path, body, field", [
    ("/api/embed", {"sentences": []}, "sentences"),
    ("/api/embed", {"sentences": ["ok", " "]}, "sentence 1"),
    ("/api/embed", {"sentences": ["x" * 2001]}, "2001 characters"),
    ("/api/embed", {"sentences": ["s"] * 65}, "sentences"),
    ("/api/fill-mask", {"text": "a [MASK]", "top_k": 0}, "top_k"),
    ("/api/attention", {"text": ""}, "text"),
])
def test_other_endpoints_422(api, path, body, field):
    assert_error(api.post(path, json=body), 422, "invalid_request", field)


def test_400_for_what_the_model_refuses_or_a_body_that_is_not_json(api):
    assert_error(api.post("/api/fill-mask", json={"text": "no mask here"}), 400, "bad_input", "[MASK]")
    assert_error(api.post("/api/qa", json={"question": "Where?"}), 400, "no_context", "context", "--docs")
    bad = api.post("/api/qa", content=b'{"question": "Where?", ', headers={"content-type": "application/json"})
    assert_error(bad, 400, "not_json", "not valid JSON")
    assert_error(api.post("/api/qa", content=b"{}", headers={"content-type": "text/plain"}), 415, "not_json",
                 "application/json")


def test_404_405_are_json(api):
    assert_error(api.get("/api/nothing"), 404, "not_found", "/api/nothing")
    assert_error(api.get("/api/qa"), 405, "method_not_allowed", "GET")


def test_413_by_content_length_and_by_counting_a_chunked_body(tiny_engine):
    with client(tiny_engine, max_body_bytes=2_000) as c:
        ok = {"question": "Where?", "context": "x " * 900}
        assert c.post("/api/qa", json=ok).status_code == 200
        big = json.dumps({"question": "Where?", "context": "x " * 1100}).encode()
        assert_error(c.post("/api/qa", content=big, headers={"content-type": "application/json"}), 413, "too_large",
                     "2,000 bytes", "--max-body-bytes")

        def chunks():  # no Content-Length: the server must count what it reads
            for i in range(0, len(big), 500):
                yield big[i:i + 500]

        r = c.post("/api/qa", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "too_large", "2,000 bytes")


def test_503_when_a_feature_is_not_served(tiny_engine):
    bare = Engine(qa=tiny_engine.qa)
    with client(bare) as c:
        assert_error(c.post("/api/fill-mask", json={"text": "a [MASK]"}), 503, "not_available", "--mlm-model")
        assert_error(c.post("/api/embed", json={"sentences": ["a"]}), 503, "not_available", "--embed-model")
        assert c.get("/api/info").json()["features"]["fill-mask"] is False


class Gated(Engine):
    """The tiny engine, its QA function held at a gate: a busy server on demand."""

    gate: threading.Event
    entered: threading.Event
    seen: list

    def qa_batch(self, jobs):
        self.entered.set()
        assert self.gate.wait(10)
        self.seen.extend(j.question for j in jobs)
        return super().qa_batch(jobs)


def gated(tiny_engine) -> Gated:
    g = Gated(qa=tiny_engine.qa)
    g.gate, g.entered, g.seen = threading.Event(), threading.Event(), []
    return g


def test_503_at_once_when_the_queue_is_full(tiny_engine):
    engine = gated(tiny_engine)
    app = create_app(engine, ServeConfig(max_queue=2, max_batch=1, max_wait_ms=0))
    with TestClient(app) as c:
        batcher = app.state.batcher
        held = batcher.submit_nowait("qa", QAJob("Who?", CONTEXT))
        assert engine.entered.wait(5)  # the worker is busy with it
        waiting = [batcher.submit_nowait("qa", QAJob("Who?", CONTEXT)) for _ in range(2)]  # the queue is full
        r = c.post("/api/qa", json={"question": "Where?", "context": CONTEXT})
        assert_error(r, 503, "overloaded", "busy", "queue holds 2")
        assert r.headers["retry-after"] == "1"
        assert c.get("/health").json()["batching"]["rejected"] == 1
        engine.gate.set()
        assert all(len(f.result(10)) >= 1 for f in [held, *waiting])
        assert c.post("/api/qa", json={"question": "Where?", "context": CONTEXT}).status_code == 200


def test_503_on_timeout_and_the_request_is_never_run(tiny_engine):
    engine = gated(tiny_engine)
    app = create_app(engine, ServeConfig(timeout_s=0.2, max_batch=1, max_wait_ms=0))
    with TestClient(app) as c:
        held = app.state.batcher.submit_nowait("qa", QAJob("held", CONTEXT))
        assert engine.entered.wait(5)
        assert_error(c.post("/api/qa", json={"question": "late?", "context": CONTEXT}), 503, "timeout", "0.2 s")
        engine.gate.set()
        held.result(10)
        assert c.get("/health").json()["batching"]["timed_out"] == 1
    assert "late?" not in engine.seen


def test_500_is_json_without_the_error_inside(tiny_engine):
    class Broken(Engine):
        def attention_batch(self, jobs):
            raise RuntimeError("secret internal detail")

    with TestClient(create_app(Broken(qa=tiny_engine.qa)), raise_server_exceptions=False) as c:
        r = c.post("/api/attention", json={"text": "hello"})
    body = assert_error(r, 500, "internal_error", "bug")
    assert "secret" not in json.dumps(body)


def test_host_check_refuses_a_rebound_name(tiny_engine):
    with client(tiny_engine, allowed_hosts=("127.0.0.1", "localhost", "::1")) as c:
        assert_error(c.get("/health", headers={"host": "evil.example:8000"}), 400, "bad_host", "evil.example")
        assert c.get("/health", headers={"host": "127.0.0.1:8000"}).status_code == 200
        assert c.get("/health", headers={"host": "localhost"}).status_code == 200
        assert c.get("/health", headers={"host": "[::1]:8000"}).status_code == 200


def test_a_bad_request_in_a_batch_fails_alone(tiny_engine):
    """One request the model refuses, grouped with good ones: only it gets 400."""
    from .helpers import post_all

    app = create_app(tiny_engine, ServeConfig(max_wait_ms=200))
    texts = ["a [MASK] b", "no mask", "c [MASK] d"]
    rs = post_all(app, "/api/fill-mask", [{"text": t} for t in texts])
    assert [r.status_code for r in rs] == [200, 400, 200]


def test_tiny_batched_answers_equal_one_by_one(tiny_engine):
    """Through the server, concurrent requests grouped into one model call answer exactly as one call
    each (the tiny model: fast; the real model is checked in test_answers.py)."""
    from .helpers import post_all

    app = create_app(tiny_engine, ServeConfig(max_wait_ms=300))
    rs = post_all(app, "/api/qa", [{"question": q, "context": c, "top_k": 2} for q, c in PAIRS])
    assert app.state.batcher.stats.largest_batch == len(PAIRS)  # one group
    for r, (q, c) in zip(rs, PAIRS):
        want = tiny_engine.qa.answer(q, c, top_k=2)
        assert [(a["text"], a["start"]) for a in r.json()["answers"]] == [(a.text, a.start) for a in want]
