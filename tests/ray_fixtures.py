"""One real local Ray cluster for the whole test session (2 CPUs, on 127.0.0.1, no dashboard),
started on first use and stopped at the end. Starting Ray costs seconds to tens of seconds on a busy
machine, so every Ray test shares this one; none talks to any other address."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from crossrank.ray import connect

    started = not ray.is_initialized()
    if started:
        connect("local", num_cpus=2, _node_ip_address="127.0.0.1")
    yield ray
    if started:
        ray.shutdown()
