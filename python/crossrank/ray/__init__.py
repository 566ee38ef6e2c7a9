"""crossrank on Ray: a Ray Serve deployment of any reranker and cluster-wide batch reranking.

Everything here sits behind the ``[ray]`` extra (``pip install "crossrank[ray]"``). Ray itself is
imported only when a function that needs it runs: importing this package (or ``crossrank``) does not
import ray, and :func:`rerank_run` without an address runs in process with no Ray at all.

* :func:`serve_app` / ``crossrank serve --ray``: the ``crossrank serve`` HTTP API (the same FastAPI
  application) on Ray Serve, with model replicas scaled separately (:mod:`crossrank.ray.serve`).
* :func:`serve_pipeline`: a first stage and a reranker as two deployments composed by handles.
* :func:`rerank_run` / ``crossrank rerank-run``: rerank a TREC run with Ray Data's ``map_batches``
  over an actor pool, resumably (:mod:`crossrank.ray.rerank_run`).
* :func:`connect`: join (or start) a cluster with a one-line error for an address that cannot be
  reached.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cluster import assigned_cpus, connect
    from .rerank_run import rerank_run
    from .serve import RemoteReranker, serve_app, serve_pipeline

_LAZY = {
    "assigned_cpus": "._cluster",
    "connect": "._cluster",
    "rerank_run": ".rerank_run",
    "RemoteReranker": ".serve",
    "serve_app": ".serve",
    "serve_pipeline": ".serve",
}

__all__ = ["RemoteReranker", "assigned_cpus", "connect", "rerank_run", "serve_app", "serve_pipeline"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
