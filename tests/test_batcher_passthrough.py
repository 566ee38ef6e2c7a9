"""A remote model's batcher errors keep their meaning through the gateway's Batcher (issue 14): a
``ShuttingDown`` raised by ``process`` (the model replica died, retries failed) stays a ShuttingDown (the
server answers a retryable 503), a ``QueueFull`` stays a 429; any other exception is an InferenceError."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from crossrank.server.batching import Batcher, InferenceError, QueueFull, ShuttingDown


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ShuttingDown("replica died; retry"), ShuttingDown),
        (QueueFull("full", 3), QueueFull),
        (RuntimeError("boom"), InferenceError),
    ],
)
def test_process_errors(raised, expected):
    def process(items):
        raise raised

    async def go():
        with ThreadPoolExecutor(1) as pool:
            b = Batcher(process, executor=pool, max_wait_s=0.0)
            b.start()
            try:
                with pytest.raises(expected) as info:
                    await b.submit([1, 2], timeout_s=10)
            finally:
                await b.close()
            return info.value

    err = asyncio.run(go())
    if expected is QueueFull:
        assert err.retry_after_s == 3
    if expected is InferenceError:
        assert "boom" in str(err)
