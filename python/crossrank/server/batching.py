"""Cross-request dynamic batching.

Requests submit their items (query-document pairs, or texts to embed) to a :class:`Batcher`.
One collector task on the event loop merges the items of every request waiting at that moment
into one *step* and hands the merged list to ``process`` on a single inference thread; the
model's own packer then sorts the merged pairs by token length and cuts them into
token-budgeted batches, so pairs of concurrent requests share batches. Each request gets back
its own slice of the step's result, in its original order.

Policy:

* The first request of a step waits at most ``max_wait_s`` for company; a step starts at once
  when ``max_step_items`` are pending or when the previous step just finished and requests
  queued meanwhile (they already waited longer than ``max_wait_s``). Under load this is
  continuous batching: the inference thread is never idle while work is pending.
* The queue is bounded in items (``max_queue_items``): a submit that would exceed it raises
  :class:`QueueFull` at once (the server answers 429 with ``Retry-After``), so memory and
  latency stay bounded instead of queueing forever.
* Each request has a deadline: when it expires before the request's step started, its items
  are removed from the queue and never run; :class:`DeadlineExceeded` is raised either way.
* A cancelled submit (the client went away) removes its items the same way.
* An exception in ``process`` fails only the requests of that step (:class:`InferenceError`);
  the collector keeps serving.
* :meth:`Batcher.close` refuses new work and finishes everything already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from .metrics import Metrics

log = logging.getLogger("crossrank.server")

In = TypeVar("In")
Out = TypeVar("Out", bound="Sliceable")


class Sliceable(Protocol):
    """A step result: one row per merged item, sliced to give each request its rows."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Sliceable: ...


class BatcherError(Exception):
    """Base class of the errors a submit can raise."""


class QueueFull(BatcherError):
    """The queue has no room for the request's items; retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(BatcherError):
    """The request's deadline expired before its result was ready."""


class ShuttingDown(BatcherError):
    """The batcher is closing and accepts no new work."""


class InferenceError(BatcherError):
    """``process`` raised while running the request's step."""


@dataclass(eq=False)
class _Job(Generic[In]):
    items: Sequence[In]
    future: asyncio.Future
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)
    started: bool = False


class Batcher(Generic[In, Out]):
    """Merge the items of concurrent requests into shared inference steps.

    Parameters
    ----------
    process
        Called on the inference thread with the merged items of one step; returns a result
        of the same length that slicing splits back per request (``PairScores``, an array).
    executor
        Runs ``process``; a single-thread executor shared by every batcher of the server so
        that inference steps never run concurrently (the model uses all cores itself).
    max_wait_s
        How long the first request of a step waits for others to join it.
    max_step_items
        Most items merged into one step (a request larger than this runs alone).
    max_queue_items
        Most items waiting (not yet started); beyond it :meth:`submit` raises :class:`QueueFull`.
    metrics
        Where batch sizes, waits and inference times are recorded.
    name
        Label for logs.
    """

    def __init__(
        self,
        process: Callable[[list[In]], Out],
        *,
        executor: Executor,
        max_wait_s: float = 0.005,
        max_step_items: int = 4096,
        max_queue_items: int = 16384,
        metrics: Metrics | None = None,
        name: str = "rerank",
    ) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if max_step_items < 1 or max_queue_items < 1:
            raise ValueError(
                f"max_step_items and max_queue_items must be >= 1, got {max_step_items} and {max_queue_items}"
            )
        self._process = process
        self._executor = executor
        self.max_wait_s = max_wait_s
        self.max_step_items = max_step_items
        self.max_queue_items = max_queue_items
        self._metrics = metrics
        self.name = name
        self._pending: deque[_Job[In]] = deque()
        self._pending_items = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._step_started: float | None = None
        # Exponential moving average of items per second, for Retry-After.
        self._items_per_s = 0.0

    # -- state ---------------------------------------------------------------------------------
    @property
    def pending_items(self) -> int:
        """Number of items accepted and not yet started."""
        return self._pending_items

    @property
    def pending_requests(self) -> int:
        """Number of requests accepted and not yet started."""
        return len(self._pending)

    @property
    def step_running_s(self) -> float:
        """Seconds the current inference step has been running (0 when idle)."""
        started = self._step_started
        return 0.0 if started is None else time.monotonic() - started

    @property
    def alive(self) -> bool:
        """Whether the collector task is running."""
        return self._task is not None and not self._task.done()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the collector task on the running event loop."""
        if self._task is not None:
            raise RuntimeError("Batcher.start() was already called")
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name=f"batcher-{self.name}")

    async def close(self) -> None:
        """Refuse new work, finish all accepted work, then stop the collector."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task

    # -- submit --------------------------------------------------------------------------------
    async def submit(self, items: Sequence[In], *, timeout_s: float) -> Out:
        """Queue ``items`` and wait for their slice of a step's result.

        Parameters
        ----------
        items
            The request's items, in order; must not be empty.
        timeout_s
            Seconds from now until the request's deadline.

        Returns
        -------
        The rows of the step result for ``items``, in the same order.

        Raises
        ------
        QueueFull, ShuttingDown, DeadlineExceeded, InferenceError
            See the module docstring.
        ValueError
            When ``items`` is empty.
        """
        if not items:
            raise ValueError("submit() needs at least one item")
        if self._closing or not self.alive:
            raise ShuttingDown("the server is shutting down; retry against another replica")
        if self._pending_items + len(items) > self.max_queue_items:
            self._reject("queue_full")
            raise QueueFull(
                f"the queue is full ({self._pending_items} of {self.max_queue_items} items waiting); "
                "retry later",
                self.retry_after_s(len(items)),
            )
        loop = asyncio.get_running_loop()
        job: _Job[In] = _Job(items, loop.create_future(), time.monotonic() + timeout_s)
        self._pending.append(job)
        self._pending_items += len(items)
        assert self._wakeup is not None  # set by start(), checked through .alive above
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout=max(timeout_s, 0.0))
        except asyncio.TimeoutError:
            self._withdraw(job, "deadline")
            raise DeadlineExceeded(
                f"the request did not finish within its deadline of {timeout_s:.3g} s"
            ) from None
        except asyncio.CancelledError:
            self._withdraw(job, "cancelled")
            raise

    def retry_after_s(self, extra_items: int = 0) -> int:
        """Seconds until the queue has probably drained enough to accept ``extra_items``."""
        if self._items_per_s <= 0:
            return 1
        return int(min(60, max(1, math.ceil((self._pending_items + extra_items) / self._items_per_s))))

    def _withdraw(self, job: _Job[In], reason: str) -> None:
        if not job.started:
            with contextlib.suppress(ValueError):
                self._pending.remove(job)
                self._pending_items -= len(job.items)
        if not job.future.done():
            job.future.cancel()
        self._reject(reason)

    def _reject(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rejected.inc(reason=reason)

    # -- collector -----------------------------------------------------------------------------
    async def _collect(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Give the oldest request up to max_wait_s for company, unless the step is full.
            oldest = self._pending[0].enqueued
            while (
                not self._closing
                and self._pending
                and self._pending_items < self.max_step_items
                and (remaining := oldest + self.max_wait_s - time.monotonic()) > 0
            ):
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=remaining)
            try:
                step = self._take_step()
                if step:
                    await self._run_step(loop, step)
            except Exception:  # a bug here must not kill the collector and strand every request
                log.exception("batcher %s: unexpected error in the collector", self.name)

    def _take_step(self) -> list[_Job[In]]:
        now = time.monotonic()
        step: list[_Job[In]] = []
        n = 0
        while self._pending and (not step or n + len(self._pending[0].items) <= self.max_step_items):
            job = self._pending.popleft()
            self._pending_items -= len(job.items)
            if job.future.done():  # withdrawn meanwhile
                continue
            if now >= job.deadline:
                job.future.set_exception(DeadlineExceeded("the request's deadline expired in the queue"))
                continue
            job.started = True
            step.append(job)
            n += len(job.items)
            if self._metrics is not None:
                self._metrics.queue_wait_seconds.observe(now - job.enqueued)
        return step

    async def _run_step(self, loop: asyncio.AbstractEventLoop, step: list[_Job[In]]) -> None:
        merged: list[In] = [item for job in step for item in job.items]
        t0 = time.perf_counter()
        self._step_started = time.monotonic()
        try:
            result = await loop.run_in_executor(self._executor, self._process, merged)
            if len(result) != len(merged):
                raise RuntimeError(f"process returned {len(result)} rows for {len(merged)} items")
        except Exception as exc:
            log.exception("inference step of %d items failed", len(merged))
            if self._metrics is not None:
                self._metrics.inference_errors.inc()
            # A BatcherError from ``process`` keeps its meaning (a remote model's QueueFull is still a
            # 429, its replica dying a retryable ShuttingDown); anything else is an inference failure.
            error = (
                exc
                if isinstance(exc, BatcherError)
                else InferenceError(f"inference failed: {type(exc).__name__}: {exc}")
            )
            for job in step:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._step_started = None
        elapsed = time.perf_counter() - t0
        rate = len(merged) / max(elapsed, 1e-9)
        self._items_per_s = rate if self._items_per_s == 0 else 0.8 * self._items_per_s + 0.2 * rate
        if self._metrics is not None:
            self._metrics.inference_seconds.observe(elapsed)
            self._metrics.batch_pairs.observe(len(merged))
            self._metrics.batch_requests.observe(len(step))
        offset = 0
        for job in step:
            end = offset + len(job.items)
            if not job.future.done():
                job.future.set_result(result[offset:end])
            offset = end
