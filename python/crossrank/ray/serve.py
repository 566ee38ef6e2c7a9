"""``crossrank serve`` on Ray Serve: the same HTTP API, with model replicas scaled separately.

An application is two deployments:

* **gateway** (the HTTP ingress): the very FastAPI application of ``crossrank serve``
  (:func:`crossrank.server.app.create_app`, wrapped with ``serve.ingress``): every route, auth, limit,
  error shape, ``/health`` and ``/metrics``. Its model is a :class:`_RemoteServed`, which sends each
  request of a step to the model deployment through a ``DeploymentHandle``. It holds no model, so one
  or two replicas are enough; the gateway does no inference.
* **model** (``replicas`` or ``autoscale`` replicas, ``cpus_per_replica`` CPUs each): loads the
  reranker (and the embedder) once, with as many inference threads as CPUs Ray assigned it, and runs
  crossrank's own cross-request :class:`~crossrank.server.batching.Batcher` on one inference thread.

Batching: each model replica keeps crossrank's batcher rather than ``serve.batch``. Requests routed to
a replica while it is busy are merged into one step, and the model's packer cuts the step into
*token*-budgeted batches (sorted by length), so pairs of different requests share batches. ``serve.batch``
counts calls, not tokens: a batch of 8 requests of 1,000 documents and one of 8 single-pair requests
would be the same "size", and its batch would pad across requests rather than pack by length.

A model replica that dies mid-request: the gateway's call fails with an actor error, and it sends the
request again (``retries`` times) through the handle, which routes it to a live replica; when none
answers in time the request gets ``503`` with ``Retry-After`` (retryable), never a hang (every call has
the request's deadline) and never a silent loss. Graceful shutdown: a replica being stopped refuses new
work (503, retried elsewhere by the gateway) and finishes what it accepted.

:func:`serve_pipeline` composes a first stage and the model deployment through handles
(:class:`PipelineDeployment`), so retrieval and reranking scale separately.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import Any

import numpy as np

from ..rerank.base import RerankerBase
from ..types import Scores
from ._cluster import assigned_cpus, require_ray

__all__ = [
    "PipelineDeployment",
    "RemoteReranker",
    "parse_autoscale",
    "run_cli",
    "serve_app",
    "serve_args",
    "serve_pipeline",
]

MODEL_DEPLOYMENT = "crossrank-model"
GATEWAY_DEPLOYMENT = "crossrank-gateway"
FIRST_STAGE_DEPLOYMENT = "crossrank-first-stage"
PIPELINE_DEPLOYMENT = "crossrank-pipeline"

# Attribute values copied from the replica's adapters to the gateway's stand-ins (plain data only).
_PLAIN = (str, int, float, bool, type(None))


def serve_args(model: str, *options: str) -> argparse.Namespace:
    """The ``crossrank serve`` arguments for ``model``: the command's defaults plus ``options``.

    Parameters
    ----------
    model : str
        ``--model``: a reranker spec or ``py:module:callable``.
    *options : str
        More ``crossrank serve`` flags, e.g. ``"--embed-model", "dense:m", "--max-wait-ms", "2"``.
    """
    from ..cli import build_parser

    return build_parser().parse_args(["serve", "--model", model, *options])


def _plain_attributes(obj: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(obj).items()
        if not k.startswith("_")
        and (isinstance(v, _PLAIN) or (isinstance(v, tuple) and all(isinstance(x, _PLAIN) for x in v)))
    }


# --------------------------------------------------------------------------------------------------
# The model deployment
# --------------------------------------------------------------------------------------------------
class ModelReplica:
    """One model replica: the reranker (and embedder) behind crossrank's batcher.

    One instance per Ray Serve replica (an actor); its methods run on the replica's event loop, and
    inference runs on its single inference thread only.

    Parameters
    ----------
    args : argparse.Namespace
        ``crossrank serve`` arguments (see :func:`serve_args`); ``num_threads`` None becomes the CPUs Ray
        assigned this replica.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from ..cli.serve import load_models, server_config
        from ..server.adapters import ServedReranker
        from ..server.batching import Batcher

        args = argparse.Namespace(**vars(args))
        if args.num_threads is None:
            args.num_threads = assigned_cpus()
        self.threads = args.num_threads
        self.config = server_config(args)
        model, embed_model = load_models(args)
        self.served = ServedReranker(model, name=None if args.model.startswith("py:") else args.model)
        self.embed_model = embed_model
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossrank-inference")
        self.keys = itertools.count()
        self.rerank: Batcher[Any, Any] = Batcher(
            self.served.score_items,
            executor=self.executor,
            max_wait_s=self.config.max_wait_ms / 1000,
            max_step_items=self.config.max_step_pairs,
            max_queue_items=self.config.max_queue_pairs,
            name="rerank",
        )

    def _started(self) -> Any:
        """The batcher, its collector started on this replica's event loop at first use."""
        if self.rerank._task is None:
            self.rerank.start()
        return self.rerank

    def info(self) -> dict[str, Any]:
        """What the gateway mirrors: the served reranker's and embedder's plain attributes, threads."""
        return {
            "served": _plain_attributes(self.served),
            "embed": None if self.embed_model is None else _plain_attributes(self.embed_model),
            "threads": self.threads,
        }

    async def score_items(self, items: list[tuple[int, str, str]], timeout_s: float) -> Any:
        """Score one request's ``(key, query, document)`` items through the batcher.

        Parameters
        ----------
        items : list of (int, str, str)
            The request's items (one key).
        timeout_s : float
            The request's remaining deadline.
        """
        return await self._started().submit(items, timeout_s=timeout_s)

    async def score_batch(
        self, queries: list[str], documents: list[list[str]], timeout_s: float
    ) -> list[Scores]:
        """Score several queries' documents through the batcher (for :class:`RemoteReranker`).

        Parameters
        ----------
        queries : list of str
            The queries.
        documents : list of list of str
            Each query's documents.
        timeout_s : float
            Deadline of the call.
        """
        jobs = []
        for q, docs in zip(queries, documents, strict=True):
            key = next(self.keys)
            if docs:
                jobs.append(self._started().submit([(key, q, d) for d in docs], timeout_s=timeout_s))
        results = iter(await asyncio.gather(*jobs))
        out = []
        for docs in documents:
            if not docs:
                out.append(Scores.empty())
                continue
            rows = next(results)
            out.append(Scores(np.asarray(rows.relevance, np.float32), np.asarray(rows.truncated, bool)))
        return out

    async def call(
        self, target: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float
    ) -> Any:
        """Run an adapter method here: ``served.METHOD`` (tokenizer work, on a worker thread) or
        ``embed.METHOD`` (on the inference thread, serialized with scoring).

        Parameters
        ----------
        target : {"served", "embed"}
            Which adapter.
        method : str
            A public method name.
        args, kwargs
            Its arguments.
        timeout_s : float
            Deadline of the call.
        """
        obj = self.served if target == "served" else self.embed_model
        if obj is None or method.startswith("_"):
            raise AttributeError(f"no {target}.{method} on this replica")
        fn = getattr(obj, method)
        work: Any
        if target == "embed":
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        else:
            work = asyncio.to_thread(fn, *args, **kwargs)
        return await asyncio.wait_for(work, timeout=timeout_s)

    def check_health(self) -> None:
        """Ray Serve's health check: a dead collector task makes the replica unhealthy (restarted)."""
        if self.rerank._task is not None and not self.rerank.alive:
            raise RuntimeError("the rerank batcher has stopped")

    async def __del__(self) -> None:
        # Graceful shutdown: refuse new work, finish what was accepted.
        await self.rerank.close()
        self.executor.shutdown(wait=True)


# --------------------------------------------------------------------------------------------------
# The gateway: crossrank's FastAPI app over a remote model
# --------------------------------------------------------------------------------------------------
def _actor_failure() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the replica (or its process) went away": retry elsewhere, else 503."""
    from ray import exceptions as rex

    names = (
        "RayActorError",
        "ActorDiedError",
        "ActorUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
    )
    kinds: tuple[type[BaseException], ...] = tuple(getattr(rex, n) for n in names if hasattr(rex, n))
    try:
        from ray.serve.exceptions import DeploymentUnavailableError

        kinds += (DeploymentUnavailableError,)
    except ImportError:  # older Ray
        pass
    return kinds


class _Remote:
    """Calls into the model deployment with deadlines, retries on dead replicas, and typed errors."""

    def __init__(self, handle: Any, timeout_s: float, retries: int) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self.retries = retries
        self.failures = _actor_failure()

    def many(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``handle.METHOD.remote(*args, timeout)`` for every ``args`` at once; wait for all; retry the
        ones whose replica died. Called from a worker thread (never the event loop).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # on an event loop (e.g. create_app asking can_cut_left()): Ray refuses to block there
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(self.many, method, calls).result()
        from ray.exceptions import RayTaskError

        from ..server.batching import BatcherError, ShuttingDown

        deadline = time.monotonic() + self.timeout_s
        out: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        attempt = 0
        while todo:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShuttingDown("no model replica answered within the request's deadline; retry")
            sent = [(i, getattr(self.handle, method).remote(*calls[i], left)) for i in todo]
            failed: list[int] = []
            for i, response in sent:
                try:
                    out[i] = response.result(timeout_s=max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    raise ShuttingDown(
                        "no model replica answered within the request's deadline; retry"
                    ) from None
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BatcherError):
                        raise cause from None  # QueueFull -> 429, DeadlineExceeded -> 504, ...
                    if isinstance(cause, self.failures):
                        failed.append(i)
                        continue
                    raise
                except self.failures:
                    failed.append(i)
            todo = failed
            attempt += 1
            if todo and attempt > self.retries:
                raise ShuttingDown(
                    f"the model replica serving this request died and {self.retries} retries failed; retry"
                )
        return out


def _remote_served_class() -> type:
    """A :class:`~crossrank.server.adapters.ServedReranker` whose work runs on the model deployment."""
    from ..server.adapters import ServedReranker
    from ..server.model import PairScores

    class RemoteServed(ServedReranker):
        """The gateway's model: splits a step per request and scores each on a model replica.

        Used from the gateway's single inference thread (score_items) and worker threads (the
        forwarded tokenizer methods); ``_Remote`` holds no per-call state, so that is safe.
        """

        def __init__(self, remote: _Remote, attributes: dict[str, Any]) -> None:
            # No ServedReranker.__init__: there is no local reranker; mirror the replica's attributes.
            self.remote = remote
            self.reranker = None  # type: ignore[assignment]
            self.predictor = None
            self.__dict__.update(attributes)

        def score_items(self, items: Sequence[Any]) -> PairScores:
            groups = [list(rows) for _, rows in groupby(items, key=lambda item: item[0])]
            parts = self.remote.many("score_items", [(g,) for g in groups])
            return PairScores.concat(parts)

    def forward(method: str) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self.remote.many("call", [("served", method, args, kwargs)])[0]

        call.__name__ = method
        return call

    for name, value in vars(ServedReranker).items():
        if callable(value) and not name.startswith("_") and name != "score_items":
            setattr(RemoteServed, name, forward(name))
    return RemoteServed


class _RemoteEmbed:
    """The gateway's embed model: every method runs on a model replica (its inference thread)."""

    def __init__(self, remote: _Remote, attributes: dict[str, Any]) -> None:
        self.remote = remote
        self.name = str(attributes.get("name", "embedder"))
        self.__dict__.update(attributes)

    def embed(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Embed ``texts`` on a model replica.

        Parameters
        ----------
        texts : sequence of str
            The texts.
        **kwargs
            Passed to the replica's embed model.
        """
        return np.asarray(self.remote.many("call", [("embed", "embed", (list(texts),), kwargs)])[0])

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.remote.many("call", [("embed", method, args, kwargs)])[0]

        return call


def _build_gateway_app(args: argparse.Namespace, retries: int) -> Callable[[], Any]:
    """The ingress builder: evaluated on each gateway replica, it returns ``create_app(...)``."""

    def build() -> Any:
        from ray import serve

        from ..cli.serve import server_config
        from ..server.app import create_app

        config = server_config(args)
        app_name = serve.get_replica_context().app_name
        handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=app_name)
        remote = _Remote(handle, config.request_timeout_s, retries)
        # The builder runs on the replica's event loop, where a blocking .result() is refused; the
        # handle's router runs on its own loop, so a worker thread may wait for it.
        with ThreadPoolExecutor(max_workers=1) as pool:
            info = pool.submit(lambda: handle.info.remote().result(timeout_s=120.0)).result()
        served = _remote_served_class()(remote, info["served"])
        embed = None if info["embed"] is None else _RemoteEmbed(remote, info["embed"])
        return create_app(served, embed_model=embed, config=config)

    return build


def serve_app(
    model: str | argparse.Namespace,
    *,
    replicas: int = 1,
    autoscale: tuple[int, int] | None = None,
    cpus_per_replica: float = 1.0,
    gateway_replicas: int = 1,
    max_ongoing_requests: int = 256,
    retries: int = 2,
    options: Sequence[str] = (),
) -> Any:
    """A Ray Serve application serving ``model`` with ``crossrank serve``'s HTTP API.

    Run it with ``serve.run(app, route_prefix="/")``; the endpoints are those of ``crossrank serve``
    (Cohere v1/v2, Jina, TEI rerank and embed, ``/health``, ``/metrics``) on the Serve proxy's port.

    Parameters
    ----------
    model : str or argparse.Namespace
        A reranker spec (or ``py:module:callable``), or parsed ``crossrank serve`` arguments.
    replicas : int
        Model replicas (ignored with ``autoscale``).
    autoscale : (int, int), optional
        ``(min, max)`` model replicas, scaled by Ray Serve on ongoing requests.
    cpus_per_replica : float
        CPUs per model replica (``ray_actor_options``); its inference threads follow it.
    gateway_replicas : int
        HTTP ingress replicas (no model; light).
    max_ongoing_requests : int
        Requests one replica holds at once; high, so the batcher sees enough to merge.
    retries : int
        Times the gateway resends a request whose model replica died before answering 503.
    options : sequence of str
        More ``crossrank serve`` flags when ``model`` is a str (``--embed-model``, ``--max-wait-ms``, ...).

    Returns
    -------
    ray.serve.Application
        The bound application (gateway -> model).

    Raises
    ------
    ValueError
        Bad counts, or an autoscale range with min > max.
    ImportError
        Ray Serve is not installed.
    """
    require_ray()
    from ray import serve

    args = model if isinstance(model, argparse.Namespace) else serve_args(model, *options)
    for name, v in (("replicas", replicas), ("gateway_replicas", gateway_replicas), ("retries", retries + 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not cpus_per_replica > 0:
        raise ValueError(f"cpus_per_replica must be > 0, got {cpus_per_replica!r}")
    scaling: dict[str, Any] = {"num_replicas": replicas}
    if autoscale is not None:
        lo, hi = autoscale
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f"autoscale must be MIN:MAX with 0 <= MIN <= MAX and MAX >= 1, got {lo}:{hi}")
        scaling = {
            "autoscaling_config": {"min_replicas": lo, "max_replicas": hi, "target_ongoing_requests": 8},
        }
    model_deployment = serve.deployment(
        name=MODEL_DEPLOYMENT,
        ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=max_ongoing_requests,
        graceful_shutdown_timeout_s=args.request_timeout_s + 5,
        **scaling,
    )(ModelReplica)

    class Gateway:
        """The HTTP ingress replica (the app is built by ``serve.ingress``'s builder)."""

        def __init__(self, model_app: Any) -> None:
            self.model_app = model_app  # bound for the dependency; the app looks the handle up by name

    gateway = serve.deployment(
        name=GATEWAY_DEPLOYMENT,
        num_replicas=gateway_replicas,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=max(max_ongoing_requests, 1024),
        graceful_shutdown_timeout_s=args.request_timeout_s + 5,
    )(serve.ingress(_build_gateway_app(args, retries))(Gateway))
    return gateway.bind(model_deployment.bind(args))


# --------------------------------------------------------------------------------------------------
# Composition: first stage -> reranker
# --------------------------------------------------------------------------------------------------
class RemoteReranker(RerankerBase):
    """A :class:`crossrank.types.Reranker` whose scoring runs on the model deployment (by handle).

    Safe to share across threads (no per-call state). Do not call it from a replica's event loop
    thread: it blocks on the response (use a worker thread, as :class:`PipelineDeployment` does).

    Parameters
    ----------
    handle : ray.serve.handle.DeploymentHandle
        Handle of a :class:`ModelReplica` deployment.
    timeout_s : float
        Deadline of each call.
    retries : int
        Resends after a replica died.
    """

    def __init__(self, handle: Any, *, timeout_s: float = 60.0, retries: int = 2) -> None:
        self.remote = _Remote(handle, timeout_s, retries)
        self.name = "remote"

    def _score_many(self, queries: list[str], docs_per_query: list[list[str]]) -> list[Scores]:
        result: list[Scores] = self.remote.many("score_batch", [(queries, docs_per_query)])[0]
        return result


class _RemoteRetriever:
    """The first-stage deployment as a :class:`crossrank.types.Retriever` (blocking calls).

    One call returns the hits and their texts; the texts wait in ``texts`` for the pipeline's document
    lookups (no call per candidate). Shared by concurrent searches: entries are only added (the same
    id always has the same text), and the cache is cleared when it grows past ``_MAX_CACHED``.
    """

    _MAX_CACHED = 200_000

    def __init__(self, handle: Any, timeout_s: float) -> None:
        self.handle = handle
        self.timeout_s = timeout_s
        self.texts: dict[Any, str] = {}

    def search(self, queries: Sequence[str], *, k: int = 10) -> Any:
        from ..types import Hits

        ids, scores, texts = self.handle.search_with_texts.remote(list(queries), k).result(
            timeout_s=self.timeout_s
        )
        if len(self.texts) > self._MAX_CACHED:
            self.texts.clear()
        self.texts.update(texts)
        return Hits(ids, scores)


class FirstStage:
    """The first-stage deployment: a retriever and the documents' texts, built by ``factory``.

    Parameters
    ----------
    factory : callable
        Called once per replica; returns ``(retriever, documents)`` where ``retriever`` meets
        :class:`crossrank.types.Retriever` and ``documents`` maps a document id to its text.
    """

    def __init__(self, factory: Callable[[], tuple[Any, Any]]) -> None:
        self.retriever, self.documents = factory()

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and scores of each query.

        Parameters
        ----------
        queries : list of str
            The queries.
        k : int
            Candidates per query.
        """
        hits = self.retriever.search(queries, k=k)
        return np.asarray(hits.ids), np.asarray(hits.scores)

    def search_with_texts(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray, dict[Any, str]]:
        """:meth:`search` plus the texts of every hit (one round trip for the pipeline).

        Parameters
        ----------
        queries : list of str
            The queries.
        k : int
            Candidates per query.
        """
        ids, scores = self.search(queries, k)
        texts: dict[Any, str] = {}
        for i in set(ids.reshape(-1).tolist()):
            if i is not None:
                try:
                    texts[i] = self.documents[i]
                except (KeyError, IndexError, TypeError):  # an unfilled place, or not a text we hold
                    continue
        return ids, scores, texts

    def texts(self, ids: list[Any]) -> list[str]:
        """The texts of ``ids``.

        Parameters
        ----------
        ids : list
            Document ids as the retriever returns them.
        """
        return [self.documents[i] for i in ids]


class BM25FirstStage:
    """A picklable first-stage factory for :func:`serve_pipeline`: BM25 over ``texts`` (built per replica).

    Parameters
    ----------
    texts : sequence of str
        The documents.
    ids : sequence of str
        Their ids (unique).
    **bm25
        Passed to :meth:`crossrank.BM25Index.build` (``variant``, ``k1``, ``b``, ...).
    """

    def __init__(self, texts: Sequence[str], ids: Sequence[str], **bm25: Any) -> None:
        if len(texts) != len(ids):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        self.texts, self.ids, self.bm25 = list(texts), [str(i) for i in ids], bm25

    def __call__(self) -> tuple[Any, dict[str, str]]:
        from ..retrieve.bm25 import BM25Index

        index = BM25Index.build(self.texts, ids=self.ids, num_threads=assigned_cpus(), **self.bm25)
        return index, dict(zip(self.ids, self.texts, strict=True))


class PipelineDeployment:
    """Retrieve with the first-stage deployment, rerank with the model deployment (both by handle).

    A :class:`crossrank.Pipeline` whose retriever and reranker are remote: the same fusion, cut and
    tie rules as in process. HTTP: ``POST {"query": str, "top_k": int?}`` answers
    ``{"ids": [...], "scores": [...], "candidates": n}``.

    Parameters
    ----------
    first : DeploymentHandle
        The :class:`FirstStage` deployment.
    model : DeploymentHandle
        The :class:`ModelReplica` deployment.
    depth : int
        Candidates reranked per query.
    top_k : int
        Results returned by default.
    timeout_s : float
        Deadline of each remote call.
    """

    def __init__(self, first: Any, model: Any, depth: int, top_k: int, timeout_s: float) -> None:
        from ..pipeline import Pipeline

        self.first = first
        self.top_k = top_k
        self.timeout_s = timeout_s
        self.retriever = _RemoteRetriever(first, timeout_s)
        self.pipeline = Pipeline(
            [self.retriever],
            documents=self._text,
            reranker=RemoteReranker(model, timeout_s=timeout_s),
            depth=depth,
            top_k=top_k,
        )

    def _text(self, doc_id: Any) -> str:
        text = self.retriever.texts.get(doc_id)
        if text is None:  # evicted meanwhile: ask the first stage
            text = self.first.texts.remote([doc_id]).result(timeout_s=self.timeout_s)[0]
        return str(text)

    async def search(self, query: str, top_k: int | None = None) -> dict[str, Any]:
        """Search and rerank one query.

        Parameters
        ----------
        query : str
            The query.
        top_k : int, optional
            Results to return (default: the deployment's).
        """
        result = await asyncio.to_thread(self.pipeline.search, query)
        k = self.top_k if top_k is None else top_k
        ids = [i.item() if isinstance(i, np.generic) else i for i in result.ids[:k]]
        return {"ids": ids, "scores": [float(s) for s in result.scores[:k]], "candidates": result.candidates}

    async def __call__(self, request: Any) -> dict[str, Any]:
        body = await request.json()
        return await self.search(str(body["query"]), body.get("top_k"))


def serve_pipeline(
    first_stage: Callable[[], tuple[Any, Any]],
    model: str | argparse.Namespace,
    *,
    depth: int = 100,
    top_k: int = 10,
    first_replicas: int = 1,
    model_replicas: int = 1,
    cpus_per_replica: float = 1.0,
    first_cpus: float = 1.0,
    options: Sequence[str] = (),
) -> Any:
    """A Ray Serve application: first stage -> reranker, each its own deployment, composed by handles.

    Parameters
    ----------
    first_stage : callable
        Builds ``(retriever, documents)`` on each first-stage replica (see :class:`FirstStage`).
    model : str or argparse.Namespace
        The reranker, as in :func:`serve_app`.
    depth, top_k : int
        Candidates reranked, results returned.
    first_replicas, model_replicas : int
        Replicas of each stage (they scale separately).
    cpus_per_replica : float
        CPUs per model replica.
    first_cpus : float
        CPUs per first-stage replica.
    options : sequence of str
        More ``crossrank serve`` flags when ``model`` is a str.

    Returns
    -------
    ray.serve.Application
        The bound application (pipeline -> first stage, model).
    """
    require_ray()
    from ray import serve

    args = model if isinstance(model, argparse.Namespace) else serve_args(model, *options)
    first = serve.deployment(
        name=FIRST_STAGE_DEPLOYMENT, num_replicas=first_replicas, ray_actor_options={"num_cpus": first_cpus}
    )(FirstStage)
    reranker = serve.deployment(
        name=MODEL_DEPLOYMENT,
        num_replicas=model_replicas,
        ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=256,
    )(ModelReplica)
    pipeline = serve.deployment(
        name=PIPELINE_DEPLOYMENT,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=256,
    )(PipelineDeployment)
    return pipeline.bind(first.bind(first_stage), reranker.bind(args), depth, top_k, args.request_timeout_s)


def parse_autoscale(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` -> ``(min, max)``.

    Parameters
    ----------
    text : str
        Two non-negative ints separated by a colon, MIN <= MAX, MAX >= 1.

    Raises
    ------
    ValueError
        Anything else (the message names ``--autoscale``).
    """
    lo, sep, hi = text.partition(":")
    if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
        raise ValueError(f"--autoscale must be MIN:MAX (e.g. 1:4), got {text!r}")
    bounds = int(lo), int(hi)
    if bounds[0] > bounds[1] or bounds[1] < 1:
        raise ValueError(f"--autoscale needs MIN <= MAX and MAX >= 1, got {text!r}")
    return bounds


def run_cli(args: argparse.Namespace) -> int:
    """``crossrank serve --ray``: deploy :func:`serve_app` and block until interrupted.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``crossrank serve`` arguments (``--host``/``--port`` become the Serve proxy's).
    """
    import signal
    import threading

    ray = require_ray()
    from ray import serve

    from ._cluster import connect

    autoscale = parse_autoscale(args.autoscale) if args.autoscale else None
    if isinstance(args.replicas, bool) or args.replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {args.replicas}")
    started_here = not ray.is_initialized() and args.ray_address in (None, "local")
    connect(args.ray_address)
    app = serve_app(args, replicas=args.replicas, autoscale=autoscale, cpus_per_replica=args.cpus_per_replica)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(app, name="crossrank", route_prefix="/")
    print(
        f"crossrank serve --ray: http://{args.host}:{args.port} ({args.replicas if autoscale is None else autoscale} "
        "model replicas); Ctrl-C stops",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete("crossrank")  # graceful: replicas finish accepted work
        if started_here:
            serve.shutdown()
            ray.shutdown()
    return 0
