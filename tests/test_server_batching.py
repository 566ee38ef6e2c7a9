"""The cross-request batcher, driven directly with a fake process function."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")

from crossrank.server.batching import (
    Batcher,
    DeadlineExceeded,
    InferenceError,
    QueueFull,
    ShuttingDown,
)
from crossrank.server.metrics import Metrics


class Recorder:
    """process(): returns each item times 10 as an array; records every step; can block or fail."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.steps: list[list[int]] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def __call__(self, items: list[int]) -> np.ndarray:
        self.gate.wait(10)
        self.steps.append(list(items))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        return np.asarray(items, dtype=np.int64) * 10


def run(coro):
    return asyncio.run(coro)


def make(rec: Recorder, **kw) -> tuple[Batcher, ThreadPoolExecutor]:
    ex = ThreadPoolExecutor(max_workers=1)
    kw.setdefault("max_wait_s", 0.02)
    b = Batcher(rec, executor=ex, metrics=Metrics(queue_pairs=lambda: 0, queue_requests=lambda: 0), **kw)
    return b, ex


def test_concurrent_requests_share_one_step_and_get_their_own_rows_in_order():
    rec = Recorder()

    async def main():
        b, ex = make(rec)
        b.start()
        reqs = [list(range(i * 100, i * 100 + n)) for i, n in enumerate([3, 1, 5, 2])]
        outs = await asyncio.gather(*(b.submit(r, timeout_s=5) for r in reqs))
        await b.close()
        ex.shutdown()
        return reqs, outs

    reqs, outs = run(main())
    assert len(rec.steps) == 1  # all four arrived within max_wait
    assert sorted(rec.steps[0]) == sorted(x for r in reqs for x in r)
    for r, o in zip(reqs, outs, strict=True):
        assert o.tolist() == [x * 10 for x in r]


def test_step_size_is_capped_but_a_big_request_runs_whole():
    rec = Recorder()

    async def main():
        b, ex = make(rec, max_step_items=4)
        b.start()
        outs = await asyncio.gather(
            b.submit([1, 2, 3], timeout_s=5),
            b.submit([4, 5], timeout_s=5),
            b.submit(list(range(10)), timeout_s=5),
        )
        await b.close()
        ex.shutdown()
        return outs

    outs = run(main())
    assert [len(s) for s in rec.steps] == [3, 2, 10]
    assert outs[2].tolist() == [x * 10 for x in range(10)]


def test_queue_full_is_refused_at_once_with_retry_after():
    rec = Recorder()
    rec.gate.clear()  # the first step blocks, so later requests stay queued

    async def main():
        b, ex = make(rec, max_queue_items=5, max_wait_s=0)
        b.start()
        first = asyncio.ensure_future(b.submit([1, 2, 3, 4, 5], timeout_s=5))
        await asyncio.sleep(0.05)  # first is running (not queued)
        second = asyncio.ensure_future(b.submit([6, 7, 8], timeout_s=5))
        await asyncio.sleep(0.01)
        assert b.pending_items == 3
        with pytest.raises(QueueFull) as info:
            await b.submit([9, 10, 11], timeout_s=5)
        assert 1 <= info.value.retry_after_s <= 60
        rec.gate.set()
        outs = await asyncio.gather(first, second)
        await b.close()
        ex.shutdown()
        return outs

    outs = run(main())
    assert outs[1].tolist() == [60, 70, 80]
    assert all(9 not in s for s in rec.steps)


def test_deadline_in_queue_drops_the_items_and_raises():
    rec = Recorder()
    rec.gate.clear()

    async def main():
        b, ex = make(rec, max_wait_s=0)
        b.start()
        first = asyncio.ensure_future(b.submit([1], timeout_s=5))
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceeded):
            await b.submit([2, 3], timeout_s=0.05)
        assert b.pending_items == 0
        rec.gate.set()
        await first
        await b.close()
        ex.shutdown()

    run(main())
    assert rec.steps == [[1]]  # the expired request never ran


def test_cancelled_submit_is_withdrawn_from_the_queue():
    rec = Recorder()
    rec.gate.clear()

    async def main():
        b, ex = make(rec, max_wait_s=0)
        b.start()
        first = asyncio.ensure_future(b.submit([1], timeout_s=5))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(b.submit([2, 3], timeout_s=5))
        await asyncio.sleep(0.01)
        assert b.pending_items == 2
        gone.cancel()
        await asyncio.sleep(0.01)
        assert b.pending_items == 0
        third = asyncio.ensure_future(b.submit([4], timeout_s=5))
        rec.gate.set()
        await asyncio.gather(first, third)
        await b.close()
        ex.shutdown()

    run(main())
    assert rec.steps == [[1], [4]]


def test_a_failing_step_fails_only_its_requests_and_the_worker_lives_on():
    rec = Recorder()

    async def main():
        b, ex = make(rec)
        b.start()
        rec.fail_next = True
        results = await asyncio.gather(
            b.submit([1], timeout_s=5), b.submit([2], timeout_s=5), return_exceptions=True
        )
        assert all(isinstance(r, InferenceError) for r in results)
        ok = await b.submit([3], timeout_s=5)
        assert b.alive
        await b.close()
        ex.shutdown()
        return ok

    assert run(main()).tolist() == [30]


def test_close_finishes_accepted_work_and_refuses_new_work():
    rec = Recorder(delay_s=0.05)

    async def main():
        b, ex = make(rec, max_step_items=2, max_wait_s=0)
        b.start()
        pending = [asyncio.ensure_future(b.submit([i, i + 1], timeout_s=5)) for i in range(0, 8, 2)]
        await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(b.close())
        await asyncio.sleep(0)
        with pytest.raises(ShuttingDown):
            await b.submit([99], timeout_s=5)
        outs = await asyncio.gather(*pending)
        await closing
        assert not b.alive
        ex.shutdown()
        return outs

    outs = run(main())
    assert [o.tolist() for o in outs] == [[i * 10, (i + 1) * 10] for i in range(0, 8, 2)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_concurrent_load_routes_every_row_to_its_request(seed):
    rng = random.Random(seed)
    rec = Recorder()

    async def client(b: Batcher, cid: int) -> list[tuple[list[int], list[int]]]:
        got = []
        for j in range(10):
            await asyncio.sleep(rng.random() * 0.003)
            items = [cid * 10_000 + j * 100 + k for k in range(rng.randint(1, 30))]
            out = await b.submit(items, timeout_s=10)
            got.append((items, out.tolist()))
        return got

    async def main():
        b, ex = make(rec, max_wait_s=0.002, max_step_items=64)
        b.start()
        res = await asyncio.gather(*(client(b, c) for c in range(8)))
        await b.close()
        ex.shutdown()
        return res

    submitted = []
    for per_client in run(main()):
        for items, out in per_client:
            assert out == [x * 10 for x in items]
            submitted.extend(items)
    assert max(len(s) for s in rec.steps) > 30  # requests of different clients were merged
    assert sorted(x for s in rec.steps for x in s) == sorted(submitted)  # each item ran exactly once


def test_invalid_arguments_raise_value_error():
    ex = ThreadPoolExecutor(max_workers=1)
    with pytest.raises(ValueError, match="max_wait_s"):
        Batcher(lambda x: x, executor=ex, max_wait_s=-1)
    with pytest.raises(ValueError, match="max_step_items"):
        Batcher(lambda x: x, executor=ex, max_step_items=0)

    async def empty():
        b = Batcher(lambda x: x, executor=ex)
        b.start()
        with pytest.raises(ValueError, match="at least one"):
            await b.submit([], timeout_s=1)
        await b.close()

    run(empty())
    ex.shutdown()
