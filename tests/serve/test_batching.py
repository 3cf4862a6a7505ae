"""The dynamic batcher on its own, with plain Python functions (no model): grouping, limits, timeouts,
errors that stay with their request, kinds kept apart, shutdown."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bertforge.serve.batching import DynamicBatcher, QueueFull, RequestTimeout, ShuttingDown


class Recorder:
    """A batch function that records the groups it was called with; optionally held at a gate."""

    def __init__(self, gate: threading.Event | None = None):
        self.groups: list[list] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, payloads: list) -> list:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if "bad" in payloads:
            raise ValueError("bad payload")
        self.groups.append(list(payloads))
        return [p * 2 for p in payloads]


def started(**kwargs) -> DynamicBatcher:
    return DynamicBatcher(**kwargs).start()


async def gather(batcher: DynamicBatcher, kind: str, payloads: list, timeout=None) -> list:
    return await asyncio.gather(*(batcher.submit(kind, p, timeout) for p in payloads), return_exceptions=True)


def test_concurrent_requests_are_one_call_with_every_result_in_its_place():
    fn = Recorder()
    b = started(max_batch=32, max_wait_ms=200)
    b.register("x", fn)
    try:
        results = asyncio.run(gather(b, "x", list(range(10))))
    finally:
        b.stop()
    assert results == [2 * i for i in range(10)]
    assert len(fn.groups) == 1 and sorted(fn.groups[0]) == list(range(10))
    assert b.stats.batches == 1 and b.stats.largest_batch == 10 and b.stats.jobs == 10


def test_groups_never_exceed_max_batch_and_are_sorted_by_cost():
    gate = threading.Event()
    fn = Recorder(gate)
    b = started(max_batch=4, max_wait_ms=0)
    b.register("x", fn, cost=lambda p: -p)  # cost: descending payloads first

    async def go():
        first = b.submit("x", 100)  # holds the worker at the gate while the others queue up
        task = asyncio.ensure_future(first)
        await asyncio.sleep(0)
        while not fn.entered.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(b.submit("x", p)) for p in range(10)]
        await asyncio.sleep(0.01)
        gate.set()
        return await task, await asyncio.gather(*rest)

    try:
        first, rest = asyncio.run(go())
    finally:
        b.stop()
    assert first == 200 and rest == [2 * p for p in range(10)]
    assert [len(g) for g in fn.groups] == [1, 4, 4, 2]
    for group in fn.groups:
        assert group == sorted(group, reverse=True)  # sorted by cost inside each group
    assert sorted(p for g in fn.groups[1:] for p in g) == list(range(10))


def test_a_lone_request_waits_at_most_max_wait():
    b = started(max_batch=32, max_wait_ms=30)
    b.register("x", Recorder())
    try:
        t = time.perf_counter()
        assert asyncio.run(b.submit("x", 1)) == 2
        waited = time.perf_counter() - t
    finally:
        b.stop()
    assert 0.025 <= waited < 1.0


def test_queue_full_is_refused_at_once():
    gate = threading.Event()
    fn = Recorder(gate)
    b = started(max_batch=1, max_wait_ms=0, max_queue=2)
    b.register("x", fn)
    try:
        running = b.submit_nowait("x", 0)
        assert fn.entered.wait(5)  # the worker holds job 0; the queue is empty again
        queued = [b.submit_nowait("x", 1), b.submit_nowait("x", 2)]
        t = time.perf_counter()
        with pytest.raises(QueueFull, match="already waiting"):
            b.submit_nowait("x", 3)
        assert time.perf_counter() - t < 0.05  # refused at once, not after a wait
        assert b.stats.rejected == 1
        gate.set()
        assert [f.result(5) for f in [running, *queued]] == [0, 2, 4]
    finally:
        gate.set()
        b.stop()


def test_a_timed_out_request_is_dropped_before_it_runs():
    gate = threading.Event()
    fn = Recorder(gate)
    b = started(max_batch=1, max_wait_ms=0)
    b.register("x", fn)
    try:
        blocker = b.submit_nowait("x", 0)
        assert fn.entered.wait(5)
        t = time.perf_counter()
        with pytest.raises(RequestTimeout, match="within 0.1 s"):
            asyncio.run(b.submit("x", 7, timeout=0.1))
        assert 0.09 <= time.perf_counter() - t < 2
        gate.set()
        assert blocker.result(5) == 0
        assert asyncio.run(b.submit("x", 8)) == 16  # the worker went on
    finally:
        gate.set()
        b.stop()
    assert [7] not in fn.groups and b.stats.timed_out == 1


def test_a_bad_request_fails_alone_and_its_group_still_gets_answers():
    fn = Recorder()
    b = started(max_batch=8, max_wait_ms=200)
    b.register("x", fn)
    try:
        results = asyncio.run(gather(b, "x", [1, "bad", 3]))
    finally:
        b.stop()
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and "bad payload" in str(results[1])
    assert b.stats.failed == 1


def test_kinds_are_never_mixed_in_one_call():
    a, c = Recorder(), Recorder()
    b = started(max_batch=8, max_wait_ms=100)
    b.register("a", a)
    b.register("c", c)

    async def go():
        return await asyncio.gather(*(b.submit("a" if i % 2 else "c", i) for i in range(8)))

    try:
        assert asyncio.run(go()) == [2 * i for i in range(8)]
    finally:
        b.stop()
    assert sorted(p for g in a.groups for p in g) == [1, 3, 5, 7]
    assert sorted(p for g in c.groups for p in g) == [0, 2, 4, 6]


def test_stop_fails_queued_requests_and_refuses_new_ones():
    gate = threading.Event()
    fn = Recorder(gate)
    b = started(max_batch=1, max_wait_ms=0)
    b.register("x", fn)
    running = b.submit_nowait("x", 0)
    assert fn.entered.wait(5)
    queued = b.submit_nowait("x", 1)
    stopper = threading.Thread(target=b.stop)
    stopper.start()
    with pytest.raises(ShuttingDown):
        queued.result(5)
    gate.set()
    stopper.join(5)
    assert running.result(5) == 0  # the running group finishes
    with pytest.raises(ShuttingDown):
        b.submit_nowait("x", 2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(max_batch=0)
    b = started()
    try:
        with pytest.raises(KeyError, match="no function registered"):
            b.submit_nowait("nope", 1)
    finally:
        b.stop()
