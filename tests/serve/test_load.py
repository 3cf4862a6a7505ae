"""A bounded load test over real HTTP on 127.0.0.1: 400 requests, 16 at a time, the real shipped model.
0 errors, every answer equal to the answer of an independent answerer called one question at a time,
and the server really grouped them. Stops by itself (a deadline on the whole run)."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bertforge.serve import Engine, ServeConfig, create_app, serve_in_thread

from .helpers import PAIRS, SHORT_PAIRS, same_answers

REQUESTS, CONCURRENCY, DEADLINE_S = 400, 16, 300


async def hammer(url: str, bodies: list[dict], concurrency: int) -> list:
    """POST every body, `concurrency` in flight at a time; responses (or exceptions) in order."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def one(body):
            async with gate:
                try:
                    return await client.post("/api/qa", json=body)
                except httpx.HTTPError as e:
                    return e
        return await asyncio.wait_for(asyncio.gather(*(one(b) for b in bodies)), DEADLINE_S)


def load_test(real_qa, reference_qa, pairs) -> dict:
    top_k = 2
    bodies = [{"question": q, "context": c, "top_k": top_k} for q, c in (pairs * REQUESTS)[:REQUESTS]]
    want = {(q, c): reference_qa.answer(q, c, top_k=top_k) for q, c in pairs}  # one by one
    app = create_app(Engine(qa=real_qa), ServeConfig())  # the defaults a user gets
    with serve_in_thread(app) as url:
        t0 = time.perf_counter()
        responses = asyncio.run(hammer(url, bodies, CONCURRENCY))
        seconds = time.perf_counter() - t0
        health = httpx.get(url + "/health").json()
    errors = [r if isinstance(r, Exception) else f"{r.status_code} {r.text[:200]}"
              for r in responses if isinstance(r, Exception) or r.status_code != 200]
    assert not errors, errors[:5]
    for body, r in zip(bodies, responses):
        assert same_answers(r.json()["answers"], want[(body["question"], body["context"])]), body
    stats = health["batching"]
    assert stats["jobs"] == REQUESTS and stats["rejected"] == stats["timed_out"] == stats["failed"] == 0
    assert stats["mean_batch"] > 1.5, stats  # 16 clients were served by groups, not one by one
    print(f"\n{REQUESTS} requests at concurrency {CONCURRENCY}: {REQUESTS / seconds:.1f} req/s, {stats}")
    return stats


def test_load_short_contexts(real_qa, reference_qa):
    load_test(real_qa, reference_qa, SHORT_PAIRS)


@pytest.mark.slow
def test_load_paragraphs(real_qa, reference_qa):
    load_test(real_qa, reference_qa, PAIRS)
