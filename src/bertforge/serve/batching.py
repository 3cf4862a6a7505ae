"""Dynamic batching: many concurrent requests, one inference worker, one model call per group.

    batcher = DynamicBatcher(max_batch=32, max_wait_ms=5, max_queue=256)
    batcher.register("qa", engine.qa_batch, cost=lambda job: len(job.context))
    batcher.start()
    answer = await batcher.submit("qa", job, timeout=30)   # from any asyncio handler
    batcher.stop()

Why: on a 2-core CPU, 16 users each running the model in their own thread make 16 sets of OpenMP threads
fight over 2 cores, and every small matrix product pays a thread barrier. One worker that runs the model
on a whole group of requests pays those costs once per group. The worker:

1. sleeps until a job arrives;
2. waits at most `max_wait_ms` after that job arrived (or until `max_batch` jobs of its kind are queued),
   so when the worker was busy the group is already there and nothing waits;
3. takes up to `max_batch` jobs of the oldest job's kind (jobs of other kinds keep their place), sorts
   them by `cost` (their length: similar lengths share a padded batch) and calls the kind's function
   once with all of them;
4. hands each result to its own request. When the group call raises, every job of the group is rerun
   alone, so a bad request fails alone and its neighbours still get their answers.

The queue is bounded: `submit` raises `QueueFull` at once when `max_queue` jobs wait (the server answers
503 instead of growing without bound). A job whose request timed out before the worker reached it is
dropped unrun (`concurrent.futures.Future.cancel`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

log = logging.getLogger("bertforge.serve")

__all__ = ["BatcherStats", "DynamicBatcher", "QueueFull", "RequestTimeout", "ShuttingDown"]


class QueueFull(RuntimeError):
    """The queue holds `max_queue` jobs: the server is overloaded (HTTP 503)."""


class RequestTimeout(RuntimeError):
    """The job was not answered within its timeout (HTTP 503)."""


class ShuttingDown(RuntimeError):
    """The batcher stopped before it ran the job (HTTP 503)."""


@dataclass
class _Kind:
    fn: Callable[[list], Sequence]  # a group of payloads -> one result per payload, same order
    max_batch: int
    cost: Callable[[Any], float]


@dataclass
class _Job:
    kind: str
    payload: Any
    future: concurrent.futures.Future
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class BatcherStats:
    """Counters for /health and the tests: how many groups ran and how big they were."""

    jobs: int = 0  # jobs run (a rerun after a failed group counts once)
    batches: int = 0  # model calls made
    largest_batch: int = 0
    rejected: int = 0  # QueueFull
    timed_out: int = 0  # cancelled before they ran
    failed: int = 0  # jobs that ended with an exception
    batch_sizes: dict[int, int] = field(default_factory=dict)  # size -> how many groups of that size

    def to_dict(self) -> dict:
        mean = self.jobs / self.batches if self.batches else 0.0
        return {"jobs": self.jobs, "batches": self.batches, "mean_batch": round(mean, 2),
                "largest_batch": self.largest_batch, "rejected": self.rejected, "timed_out": self.timed_out,
                "failed": self.failed}


class DynamicBatcher:
    """One worker thread that runs queued jobs in groups; see the module docstring."""

    def __init__(self, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256,
                 on_batch_done: Optional[Callable[[], None]] = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch and max_queue must be >= 1 and max_wait_ms >= 0, got "
                             f"{max_batch}, {max_queue}, {max_wait_ms}")
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self.on_batch_done = on_batch_done  # e.g. give freed memory back to the OS now and then
        self.stats = BatcherStats()
        self._kinds: dict[str, _Kind] = {}
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    # ---- setup -----------------------------------------------------------------------------------

    def register(self, kind: str, fn: Callable[[list], Sequence], max_batch: Optional[int] = None,
                 cost: Callable[[Any], float] = lambda payload: 0) -> None:
        """Jobs of `kind` are run as `fn([payload, ...])`, at most `max_batch` (default: the batcher's) at once."""
        self._kinds[kind] = _Kind(fn, min(max_batch or self.max_batch, self.max_batch), cost)

    def start(self) -> DynamicBatcher:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="bertforge-inference", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running group, fail the queued jobs with `ShuttingDown`, join the worker."""
        with self._cond:
            self._stopping = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in dropped:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ShuttingDown("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def queued(self) -> int:
        return len(self._pending)

    # ---- submitting ------------------------------------------------------------------------------

    def submit_nowait(self, kind: str, payload: Any) -> concurrent.futures.Future:
        """Queue one job; a thread-safe future of its result. Raises QueueFull at once when full."""
        if kind not in self._kinds:
            raise KeyError(f"no function registered for {kind!r}")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._stopping or self._thread is None:
                raise ShuttingDown("the inference worker is not running")
            if len(self._pending) >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFull(f"{len(self._pending)} requests are already waiting (the queue holds "
                                f"{self.max_queue}): try again in a moment")
            self._pending.append(_Job(kind, payload, future))
            self._cond.notify()
        return future

    async def submit(self, kind: str, payload: Any, timeout: Optional[float] = None) -> Any:
        """Queue one job and await its result; RequestTimeout after `timeout` seconds (the job is then
        dropped if the worker has not started it)."""
        future = self.submit_nowait(kind, payload)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            if future.cancel():  # still queued: it will never run
                with self._cond:
                    self.stats.timed_out += 1
            raise RequestTimeout(f"no answer within {timeout:g} s: the server is busy, try again") from None

    # ---- the worker ------------------------------------------------------------------------------

    def _next_group(self) -> Optional[list[_Job]]:
        """Block until a group is ready (see the module docstring); None when stopping."""
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            first = self._pending[0]
            limit = self._kinds[first.kind].max_batch
            deadline = first.enqueued + self.max_wait
            while not self._stopping:
                same = sum(1 for j in self._pending if j.kind == first.kind)
                left = deadline - time.monotonic()
                if same >= limit or left <= 0:
                    break
                self._cond.wait(left)
            group, rest = [], deque()
            for job in self._pending:
                (group if job.kind == first.kind and len(group) < limit else rest).append(job)
            self._pending = rest
            return group

    def _work(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            live = [j for j in group if j.future.set_running_or_notify_cancel()]  # skips timed-out jobs
            if live:
                self._run(live)
                self._after_batch()

    def _after_batch(self) -> None:
        if self.on_batch_done is None:
            return
        try:
            self.on_batch_done()
        except Exception:  # noqa: BLE001 - housekeeping must never stop the worker
            log.exception("on_batch_done failed")

    def _run(self, jobs: list[_Job]) -> None:
        kind = self._kinds[jobs[0].kind]
        jobs.sort(key=lambda j: kind.cost(j.payload))  # similar lengths side by side
        try:
            results = self._call(kind, [j.payload for j in jobs])
        except Exception as group_error:  # noqa: BLE001 - reported per job below
            if len(jobs) == 1:
                self._fail(jobs[0], group_error)
                return
            for job in jobs:  # find the culprit: each job alone
                try:
                    job.future.set_result(self._call(kind, [job.payload])[0])
                except Exception as e:  # noqa: BLE001
                    self._fail(job, e)
            return
        for job, result in zip(jobs, results):
            job.future.set_result(result)

    def _call(self, kind: _Kind, payloads: list) -> Sequence:
        results = kind.fn(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"a batch function returned {len(results)} results for {len(payloads)} jobs")
        self.stats.batches += 1
        self.stats.jobs += len(payloads)
        self.stats.largest_batch = max(self.stats.largest_batch, len(payloads))
        self.stats.batch_sizes[len(payloads)] = self.stats.batch_sizes.get(len(payloads), 0) + 1
        return results

    def _fail(self, job: _Job, error: Exception) -> None:
        self.stats.failed += 1
        if not isinstance(error, ValueError):  # a user error (BertforgeError is one) is not worth a traceback
            log.error("inference failed", exc_info=error)
        job.future.set_exception(error)
