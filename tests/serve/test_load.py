"""A bounded load test over real HTTP on 127.0.0.1: 400 requests, 16 at a time, the real shipped model.
0 errors, every answer equal to the answer of an independent answerer called one question at a time,
and the server really grouped them. Stops by itself (a deadline on the whole run)."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bertforge.serve import Engine, ServeConfig, create_app, serve_in_thread

from .helpers import PAIRS, PARAGRAPHS, SHORT_PAIRS, same_answers

REQUESTS, CONCURRENCY, DEADLINE_S = 400, 16, 600


async def hammer(url: str, bodies: list[dict], concurrency: int = CONCURRENCY) -> list:
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


def load_test(real_qa, reference_qa, pairs, requests: int = REQUESTS, concurrency: int = CONCURRENCY,
              max_growth_mb: float = 150) -> dict:
    """`requests` requests, `concurrency` at a time: no error, the one-by-one answers, real groups, and
    resident memory after the load within `max_growth_mb` of the memory after a warm-up."""
    top_k = 2
    bodies = [{"question": q, "context": c, "top_k": top_k} for q, c in (pairs * requests)[:requests]]
    want = {(q, c): reference_qa.answer(q, c, top_k=top_k) for q, c in pairs}  # one by one
    app = create_app(Engine(qa=real_qa), ServeConfig())  # the defaults a user gets
    with serve_in_thread(app) as url:
        asyncio.run(hammer(url, bodies[:32], concurrency))  # warm-up: first shapes, first allocations
        before = httpx.get(url + "/health").json()
        t0 = time.perf_counter()
        responses = asyncio.run(hammer(url, bodies, concurrency))
        seconds = time.perf_counter() - t0
        health = httpx.get(url + "/health").json()
    errors = [r if isinstance(r, Exception) else f"{r.status_code} {r.text[:200]}"
              for r in responses if isinstance(r, Exception) or r.status_code != 200]
    assert not errors, errors[:5]
    for body, r in zip(bodies, responses):
        assert same_answers(r.json()["answers"], want[(body["question"], body["context"])]), body
    stats = {k: v - before["batching"][k] if k in ("jobs", "batches") else v for k, v in health["batching"].items()}
    stats["mean_batch"] = round(stats["jobs"] / max(1, stats["batches"]), 2)
    assert stats["jobs"] == requests and stats["rejected"] == stats["timed_out"] == stats["failed"] == 0
    assert stats["mean_batch"] > 1.5, stats  # the clients were served by groups, not one by one
    print(f"\n{requests} requests at concurrency {concurrency}: {requests / seconds:.1f} req/s, {stats}, "
          f"resident {before['rss_mb']} -> {health['rss_mb']} MB")
    if before["rss_mb"] is not None:  # Linux: the process did not keep what the load allocated
        assert health["rss_mb"] - before["rss_mb"] < max_growth_mb
    return stats


def test_load_short_contexts(real_qa, reference_qa):
    load_test(real_qa, reference_qa, SHORT_PAIRS)


@pytest.mark.slow
def test_load_paragraphs(real_qa, reference_qa):
    load_test(real_qa, reference_qa, PAIRS)


def varied_pairs() -> list[tuple[str, str]]:
    """64 contexts of 1 to 4 paragraphs in every order (250 to 1,700 characters): groups of many shapes,
    which is what fragments the heap."""
    from itertools import permutations

    pairs = []
    for n in range(1, len(PARAGRAPHS) + 1):
        for order in permutations(range(len(PARAGRAPHS)), n):
            context = " ".join(PARAGRAPHS[i][0] for i in order)
            question = PARAGRAPHS[order[-1]][1][len(pairs) % len(PARAGRAPHS[order[-1]][1])]
            pairs.append((question, context))
    return pairs


@pytest.mark.slow
def test_memory_stays_flat_under_a_long_load(real_qa, reference_qa):
    """960 requests of varied lengths at concurrency 32: the resident memory after the load is within
    120 MB of the memory after the warm-up (without the server's heap trimming it is not: see app.py)."""
    load_test(real_qa, reference_qa, varied_pairs(), requests=960, concurrency=32, max_growth_mb=120)
