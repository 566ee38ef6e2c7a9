"""The ASGI application: Cohere, Jina and TEI rerank routes, TEI and OpenAI embed, health and metrics.

Built on FastAPI (Starlette) for its pydantic request validation and generated OpenAPI
document, served by uvicorn (uvloop when installed). Responses are serialized with orjson
(NumPy arrays and floats directly). Cross-cutting concerns (request id, API keys, body size
limit, access log, request metrics) live in one plain ASGI middleware, :class:`Gateway`, that
buffers the body itself so oversized bodies are refused before any parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse as StarletteJSONResponse

from ..types import Reranker
from . import embedding
from .adapters import RerankItem, ServedReranker
from .auth import KeyChecker
from .batching import Batcher, DeadlineExceeded, InferenceError, QueueFull, ShuttingDown, Sliceable
from .embedding import EmbedItem
from .errors import ApiError
from .metrics import CONTENT_TYPE, Metrics
from .model import EmbedModel, PairScores
from .schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    ErrorResponse,
    HealthResponse,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    OpenAIErrorResponse,
    RerankDocument,
    TEIEmbedRequest,
    TEIInfo,
    TEIRank,
    TEIRerankRequest,
    embed_request_models,
    rerank_request_model,
)

access_log = logging.getLogger("crossrank.server.access")
log = logging.getLogger("crossrank.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T", bound=Sliceable)

#: Routes reported by name in metrics; anything else is "other" (bounded label cardinality).
ROUTES = (
    "/v1/rerank",
    "/v2/rerank",
    "/rerank",
    "/embed",
    "/",
    "/invocations",
    "/v1/embeddings",
    "/info",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
)
#: The route answering OpenAI-shaped errors.
OPENAI_ROUTE = "/v1/embeddings"
#: Cohere's document limit: the default of ``max_documents`` (capped by ``max_queue_pairs``).
DEFAULT_MAX_DOCUMENTS = 10_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True)
class ServerConfig:
    """Limits and batching knobs of one server.

    Attributes
    ----------
    max_wait_ms
        How long the first request of a step waits for others to join it.
    max_step_pairs
        Most pairs merged into one inference step.
    max_queue_pairs
        Most pairs waiting; beyond it requests are refused with 429 and ``Retry-After``.
    max_documents
        Most documents (or texts) in one request; more is refused with 413. Default (None): 10,000,
        Cohere's limit, or ``max_queue_pairs`` when that is smaller (a request must fit the queue).
    max_body_bytes
        Largest request body; larger is refused with 413 before parsing.
    request_timeout_s
        Per-request deadline; past it the request is answered 504 (and its pairs dropped
        when they have not started).
    api_keys
        Accepted bearer keys; empty means no authentication.
    auto_truncate
        What a TEI request that does not say ``truncate`` (and every OpenAI embeddings request) gets
        for a too-long text: False (TEI's default) answers 413, True cuts it to the model's length.
    """

    max_wait_ms: float = 5.0
    max_step_pairs: int = 4096
    max_queue_pairs: int = 16384
    max_documents: int | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    request_timeout_s: float = 60.0
    api_keys: tuple[str, ...] = ()
    auto_truncate: bool = False

    def __post_init__(self) -> None:
        if self.max_documents is None:
            object.__setattr__(self, "max_documents", min(DEFAULT_MAX_DOCUMENTS, self.max_queue_pairs))
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        for name in ("max_step_pairs", "max_queue_pairs", "max_documents", "max_body_bytes"):
            if getattr(self, name) < 1:  # max_documents is set by now
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.documents_limit > self.max_queue_pairs:
            raise ValueError(
                f"max_documents ({self.max_documents}) must not exceed max_queue_pairs "
                f"({self.max_queue_pairs}): such a request could never be queued"
            )

    def truncates(self, requested: bool | None) -> bool:
        """Whether a TEI request's too-long texts are cut.

        Parameters
        ----------
        requested
            The request's ``truncate`` field; None when the request leaves it out, and then
            ``auto_truncate`` (``--auto-truncate``) decides.
        """
        return self.auto_truncate if requested is None else requested

    @property
    def documents_limit(self) -> int:
        """``max_documents`` as resolved (never None after construction)."""
        assert self.max_documents is not None
        return self.max_documents


class JSONResponse(StarletteJSONResponse):
    """A response serialized by orjson (NumPy arrays and scalars allowed)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _error_response(exc: ApiError, request_id: str | None, path: str = "") -> JSONResponse:
    """The error in the shape the route's clients read (OpenAI's on the OpenAI route)."""
    body = exc.openai_body() if path == OPENAI_ROUTE else exc.body(request_id)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


class _State:
    """Everything the routes share: the models, the batchers and the metrics.

    One single-thread executor runs every inference step, so the reranker and the embedder are only
    ever called from that one thread, one step at a time.
    """

    def __init__(self, model: ServedReranker, embed_model: EmbedModel | None, config: ServerConfig) -> None:
        self.model = model
        # Request keys: they tell apart the requests merged into one step.
        self.request_keys = itertools.count()
        self.embed_model = embed_model
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossrank-inference")
        self.metrics = Metrics(
            queue_pairs=lambda: sum(b.pending_items for b in self.batchers),
            queue_requests=lambda: sum(b.pending_requests for b in self.batchers),
        )
        self.rerank: Batcher[RerankItem, PairScores] = Batcher(
            self._score,
            executor=self.executor,
            max_wait_s=config.max_wait_ms / 1000,
            max_step_items=config.max_step_pairs,
            max_queue_items=config.max_queue_pairs,
            metrics=self.metrics,
            name="rerank",
        )
        self.embed: Batcher[EmbedItem, np.ndarray] | None = None
        if embed_model is not None:
            self.embed = Batcher(
                self._embed,
                executor=self.executor,
                max_wait_s=config.max_wait_ms / 1000,
                max_step_items=config.max_step_pairs,
                max_queue_items=config.max_queue_pairs,
                metrics=self.metrics,
                name="embed",
            )
        self.shutting_down = False

    @property
    def batchers(self) -> list[Batcher[Any, Any]]:
        return [b for b in (self.rerank, self.embed) if b is not None]

    def _score(self, items: list[RerankItem]) -> PairScores:
        out = self.model.score_items(items)
        self.metrics.pairs.inc(len(items))
        if out.num_tokens is not None:
            self.metrics.tokens.inc(float(np.sum(out.num_tokens)))
        self.metrics.truncated.inc(float(np.count_nonzero(out.truncated)))
        return out

    def items(self, query: str, texts: Sequence[str]) -> list[RerankItem]:
        """One request's items for the rerank batcher (a fresh key per request)."""
        key = next(self.request_keys)
        return [(key, query, t) for t in texts]

    def _embed(self, items: list[EmbedItem]) -> np.ndarray:
        assert self.embed_model is not None  # this batcher exists only with an embed model
        return embedding.embed_step(self.embed_model, items)


class Gateway:
    """Plain ASGI middleware: request id, API keys, body limit, access log and request metrics."""

    def __init__(self, app: ASGIApp, state: _State) -> None:
        self.app = app
        self.state = state
        self.keys = KeyChecker(state.config.api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        path = scope.get("path", "")
        try:
            body: bytes | None = None
            error = self._refuse(path, headers)
            if error is None:
                body, error = await self._read_body(receive)
            if error is None and body:
                error = _parse_json(scope, body)
            if error is not None:
                await _error_response(error, request_id, path)(scope, receive, send_with_id)
            elif body is not None:  # None: the client went away while sending
                await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = path if path in ROUTES else "other"
            code = str(status) if status else "disconnected"
            self.state.metrics.requests.inc(route=route, status=code)
            self.state.metrics.request_seconds.observe(elapsed, route=route)
            client = scope.get("client")
            access_log.info(
                "access",
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": path,
                        "status": status or None,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": f"{client[0]}:{client[1]}" if client else None,
                    }
                },
            )

    def _refuse(self, path: str, headers: dict[bytes, bytes]) -> ApiError | None:
        if path != "/health" and not self.keys.check(headers.get(b"authorization")):
            return ApiError(
                401,
                "unauthorized",
                "missing or invalid API key: send the header 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        length = headers.get(b"content-length")
        limit = self.state.config.max_body_bytes
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return ApiError(400, "validation", "the Content-Length header is not an integer")
            if n > limit:
                return _too_large_body(n, limit)
        return None

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, ApiError | None]:
        limit = self.state.config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None, _too_large_body(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


_PARSED_BODY = "crossrank_parsed_body"


def _parse_json(scope: Scope, body: bytes) -> ApiError | None:
    """Parse the body once, strictly, and keep it in the scope for :class:`_ParsedBodyRoute`."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ApiError(
            400,
            "validation",
            f"the request body is not valid UTF-8 (byte {exc.start}); send UTF-8 encoded JSON",
        )
    try:
        # orjson is strict where the stdlib is lax: lone surrogates (which the tokenizer cannot
        # take), NaN and infinities are refused here, before any validation.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return ApiError(400, "validation", f"the request body is not valid JSON: {exc}")
    scope["state"][_PARSED_BODY] = parsed
    _as_json(scope)
    return None


class _ParsedBodyRoute(APIRoute):
    """Hand FastAPI the body the :class:`Gateway` already parsed with orjson (no second parse)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            state = request.scope.get("state") or {}
            if _PARSED_BODY in state:
                # Starlette's Request.json() returns this cached value instead of parsing again.
                request._json = state[_PARSED_BODY]
            return await handler(request)

        return route_handler


def _as_json(scope: Scope) -> None:
    """Parse every body as JSON, whatever Content-Type says (``curl -d`` sends a form type)."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    scope["headers"] = headers


def _too_large_body(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the request body has {size} bytes, more than this server's limit of {limit}; "
        "send fewer or shorter documents (or raise --max-body-bytes)",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """Give the buffered body once, then the client's own messages (for disconnect detection)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _submit(batcher: Batcher[Any, T], items: Sequence[Any], request: Request, state: _State) -> T:
    """Submit to a batcher, racing the client's disconnect; map batcher errors to HTTP errors."""
    job = asyncio.ensure_future(batcher.submit(items, timeout_s=state.config.request_timeout_s))
    gone = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():
            # The client went away: withdraw its work (cancelling the submit removes it from the
            # queue when it has not started) and answer nobody.
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
            raise ApiError(499, "cancelled", "the client closed the connection")
        return job.result()
    except QueueFull as exc:
        raise ApiError(429, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
    except ShuttingDown as exc:
        raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "1"}) from None
    except DeadlineExceeded as exc:
        raise ApiError(504, "timeout", f"{exc}; send fewer documents or raise --request-timeout-s") from None
    except InferenceError as exc:
        raise ApiError(500, "inference", str(exc)) from None
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()


def _check_count(n: int, what: str, state: _State) -> None:
    limit = state.config.documents_limit
    if n > limit:
        raise ApiError(
            413,
            "too_large",
            f"the request has {n} {what}, more than this server's limit of {limit}; "
            "split it into several requests (or raise --max-documents)",
            param=what,
        )


def _document_fields(doc: RerankDocument) -> dict[str, Any]:
    """A document object's fields as the client sent them (no ``text`` when it sent none)."""
    fields = doc.model_dump()
    if fields.get("text") is None and "text" not in (doc.model_fields_set or ()):
        fields.pop("text", None)
    return fields


def _field_text(value: Any) -> str:
    """A document field's value as rank_fields text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode("utf-8")


def _rank_texts(
    documents: Sequence[str | RerankDocument], rank_fields: list[str] | None
) -> tuple[list[str], int]:
    """The text scored for each document, and how many documents lack some of ``rank_fields``.

    Without ``rank_fields`` (or with exactly ``["text"]``) a document's text as it is; otherwise one
    ``key: value`` line per named field the document has, in ``rank_fields``' order (Cohere's
    format). A string document is the object ``{"text": ...}``.
    """
    if rank_fields is None or rank_fields == ["text"]:
        texts: list[str] = []
        lacking = 0
        for i, d in enumerate(documents):
            if isinstance(d, str):
                texts.append(d)
            elif d.text is not None:
                texts.append(d.text)
            elif rank_fields is None:
                raise ApiError(
                    422,
                    "validation",
                    f"invalid request: documents.{i}.text: Field required (or name the fields to score "
                    "in rank_fields)",
                )
            else:
                texts.append("")
                lacking += 1
        return texts, lacking
    texts = []
    lacking = 0
    for d in documents:
        fields: dict[str, Any] = {"text": d} if isinstance(d, str) else _document_fields(d)
        lines = [f"{k}: {_field_text(fields[k])}" for k in rank_fields if k in fields]
        lacking += len(lines) < len(rank_fields)
        texts.append("\n".join(lines))
    return texts, lacking


def _limit(served: ServedReranker) -> str:
    """`` of N tokens`` when the model's limit is known (for messages)."""
    return "" if served.max_length is None else f" of {served.max_length} tokens"


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed request"),
        (401, "Missing or invalid API key"),
        (413, "Too many documents, a body too large, or (TEI without truncate) a too-long input"),
        (422, "Invalid request body"),
        (429, "Queue full; retry after Retry-After seconds"),
        (503, "Shutting down"),
        (504, "Deadline exceeded"),
    )
}
_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorResponse, "description": spec["description"]} for code, spec in _ERRORS.items()
}
_NO_EMBED: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorResponse, "description": "No embedding model"}
}


def create_app(
    model: Reranker | ServedReranker,
    *,
    name: str | None = None,
    embed_model: EmbedModel | None = None,
    config: ServerConfig | None = None,
) -> FastAPI:
    """Build the ASGI application serving ``model`` (and ``embed_model`` for ``/embed``).

    The application calls ``model`` from a single inference thread only (see
    :class:`~crossrank.server.adapters.ServedReranker`).

    Parameters
    ----------
    model
        The reranker behind every rerank route: any :class:`crossrank.types.Reranker` (a
        cross-encoder, dense, ColBERT or LLM reranker, or your own), or one already wrapped.
    name
        Reported in responses and ``/health`` (default: see :class:`ServedReranker`); only for an
        unwrapped ``model``.
    embed_model
        The dense embedder behind ``/embed``; without one ``/embed`` answers 501.
    config
        Limits and batching knobs (defaults: :class:`ServerConfig`).

    Returns
    -------
    fastapi.FastAPI
        The application, with the :class:`Gateway` middleware installed.
    """
    served = model if isinstance(model, ServedReranker) else ServedReranker(model, name=name)
    state = _State(served, embed_model, config or ServerConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for batcher in state.batchers:
            batcher.start()
        log.info("ready", extra={"fields": {"model": served.name, "max_length": served.max_length}})
        try:
            yield
        finally:
            # uvicorn has already waited for in-flight requests; finish whatever is still queued.
            state.shutting_down = True
            for batcher in state.batchers:
                await batcher.close()
            state.executor.shutdown(wait=True)
            log.info("stopped", extra={"fields": {}})

    from .._core import __version__

    app = FastAPI(
        title="crossrank rerank server",
        version=__version__,
        description="Cohere (v1, v2), Jina and TEI compatible reranking with cross-request batching.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        redoc_url=None,
    )
    app.state.crossrank = state
    app.router.route_class = _ParsedBodyRoute

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _error_response(exc, request.state.request_id, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")).removeprefix("Value error, "),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request", "type": ""}
        if first["type"] == "json_invalid":
            at = first["loc"][-1] if first["loc"] else "?"
            message = f"the request body is not valid JSON (error at character {at})"
        else:
            # Drop the model names pydantic puts in the path of a union body (TEI's POST /).
            parts = [str(p) for p in first["loc"][1:] if p not in ("TEIRerankRequest", "TEIEmbedRequest")]
            where = ".".join(parts) or "body"
            message = f"invalid request: {where}: {first['msg']}"
            if request.url.path in ("/", "/invocations"):
                message += " (the body is a TEI rerank request: query and texts, or an embed request: inputs)"
        param = ".".join(str(p) for p in first["loc"][1:2]) or None
        err = ApiError(422, "validation", message, details=details, param=param)
        return _error_response(err, request.state.request_id, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kinds = {400: "validation", 404: "not_found", 405: "method_not_allowed"}
        err = ApiError(
            exc.status_code,
            kinds.get(exc.status_code, "http"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return _error_response(err, request.state.request_id, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        err = ApiError(500, "internal", f"internal error: {type(exc).__name__}")
        return _error_response(err, request.state.request_id, request.url.path)

    async def cohere_rerank(body: CohereRerankRequest, request: Request, version: str) -> Response:
        _check_count(len(body.documents), "documents", state)
        texts, lacking = _rank_texts(body.documents, body.rank_fields)
        doc_cut = np.zeros(len(texts), dtype=bool)
        limit = body.max_tokens_per_doc
        if limit is not None and (served.max_length is None or limit < served.max_length):
            cut = await asyncio.to_thread(lambda: [served.truncate_document(t, limit) for t in texts])
            texts = [t for t, _ in cut]
            doc_cut = np.array([c for _, c in cut], dtype=bool)
        scores: PairScores = await _submit(state.rerank, state.items(body.query, texts), request, state)
        order = np.argsort(-scores.relevance, kind="stable")
        if body.top_n is not None:
            order = order[: body.top_n]
        relevance = scores.relevance.tolist()
        results: list[dict[str, Any]] = []
        for i in order.tolist():
            item: dict[str, Any] = {"index": i, "relevance_score": relevance[i]}
            if body.return_documents:
                doc = body.documents[i]
                item["document"] = {"text": doc} if isinstance(doc, str) else _document_fields(doc)
            results.append(item)
        meta: dict[str, Any] = {
            "api_version": {"version": version},
            # Cohere bills one search unit per query with up to 100 documents.
            "billed_units": {"search_units": max(1, math.ceil(len(texts) / 100))},
        }
        tokens = None if scores.num_tokens is None else int(np.sum(scores.num_tokens))
        if tokens is not None:  # only what the model reported; never a guess
            meta["tokens"] = {"input_tokens": tokens}
        warnings: list[str] = []
        n_cut = int(np.count_nonzero(scores.truncated | doc_cut))
        if n_cut:
            warnings.append(
                f"{n_cut} of {len(texts)} documents were truncated (max_tokens_per_doc or the model's "
                f"limit{_limit(served)})"
            )
        if lacking:
            warnings.append(
                f"{lacking} of {len(texts)} documents lack some of rank_fields {body.rank_fields}"
            )
        if warnings:
            meta["warnings"] = warnings
        out: dict[str, Any] = {"id": request.state.request_id, "results": results, "meta": meta}
        if version == "1":
            out["model"] = body.model or served.name
            if tokens is not None:
                out["usage"] = {"total_tokens": tokens}
        return JSONResponse(out)

    @app.post(
        "/v1/rerank",
        response_model=CohereRerankResponse,
        responses=_ERRORS,
        summary="Rerank documents (Cohere v1 and Jina shape)",
    )
    async def rerank_v1(body: CohereRerankRequest, request: Request) -> Response:
        return await cohere_rerank(body, request, "1")

    @app.post(
        "/v2/rerank",
        response_model=CohereRerankResponse,
        responses=_ERRORS,
        summary="Rerank documents (Cohere v2 shape)",
    )
    async def rerank_v2(body: CohereRerankRequest, request: Request) -> Response:
        return await cohere_rerank(body, request, "2")

    async def tei_rerank(body: TEIRerankRequest, request: Request) -> Response:
        _check_count(len(body.texts), "texts", state)
        texts = list(body.texts)
        doc_cut = np.zeros(len(texts), dtype=bool)
        truncate = state.config.truncates(body.truncate)
        if truncate and embedding.direction(body.truncation_direction) == "left":
            try:
                cut = await asyncio.to_thread(lambda: [served.cut_left(body.query, t) for t in texts])
            except ValueError as exc:
                raise ApiError(422, "validation", str(exc)) from None
            texts = [t for t, _ in cut]
            doc_cut = np.array([c for _, c in cut], dtype=bool)
        scores: PairScores = await _submit(state.rerank, state.items(body.query, texts), request, state)
        if not truncate and bool(np.any(scores.truncated)):
            first = int(np.flatnonzero(scores.truncated)[0])
            raise ApiError(
                413,
                "validation",
                f"texts[{first}] with the query is longer than the model's limit{_limit(served)}; "
                "send truncate=true to cut it (or start the server with --auto-truncate)",
            )
        state.metrics.truncated.inc(float(np.count_nonzero(doc_cut & ~scores.truncated)))
        values = scores.logits if body.raw_scores else scores.relevance
        order = np.argsort(-values, kind="stable")
        listed = values.tolist()
        ranks: list[dict[str, Any]] = []
        for i in order.tolist():
            item: dict[str, Any] = {"index": i, "score": listed[i]}
            if body.return_text:
                item["text"] = body.texts[i]
            ranks.append(item)
        return JSONResponse(ranks)

    # The request schemas say what this server's models allow (prompt names, Matryoshka sizes, left
    # truncation); the handlers get them as their body annotation.
    rerank_body = rerank_request_model(left=served.can_cut_left())
    embed_body: type[TEIEmbedRequest] = TEIEmbedRequest
    openai_body: type[OpenAIEmbeddingRequest] = OpenAIEmbeddingRequest
    if embed_model is not None:
        embed_body, openai_body = embed_request_models(
            prompts=tuple(sorted(getattr(embed_model, "prompts", None) or {})),
            matryoshka=getattr(embed_model, "matryoshka_dims", None),
            dim=getattr(embed_model, "dim", None),
            left=bool(getattr(embed_model, "left_truncation", False)),
        )

    def add_route(path: str, handler: Callable[..., Any], body: Any, **kwargs: Any) -> None:
        handler.__annotations__["body"] = body
        app.add_api_route(path, handler, methods=["POST"], **kwargs)

    async def rerank_tei(body: TEIRerankRequest, request: Request) -> Response:
        return await tei_rerank(body, request)

    add_route(
        "/rerank",
        rerank_tei,
        rerank_body,
        response_model=list[TEIRank],
        responses=_ERRORS,
        summary="Rerank texts (TEI shape)",
    )

    def need_embed_model() -> EmbedModel:
        if embed_model is None or state.embed is None:
            raise ApiError(
                501,
                "not_implemented",
                "this server has no embedding model; start it with --embed-model to enable embeddings",
            )
        return embed_model

    async def tei_embed(body: TEIEmbedRequest, request: Request) -> Response:
        model = need_embed_model()
        assert state.embed is not None
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        _check_count(len(texts), "inputs", state)
        embedding.check_dimensions(model, body.dimensions)
        items = embedding.prepare(
            model, texts, prompt_name=body.prompt_name, truncation_direction=body.truncation_direction
        )
        if not state.config.truncates(body.truncate):
            await asyncio.to_thread(
                embedding.refuse_too_long,
                model,
                items,
                param="inputs",
                remedy="send truncate=true to cut it (or start the server with --auto-truncate)",
            )
        vectors: np.ndarray = await _submit(state.embed, items, request, state)
        return JSONResponse(embedding.finish(vectors, dimensions=body.dimensions, normalize=body.normalize))

    async def embed(body: TEIEmbedRequest, request: Request) -> Response:
        return await tei_embed(body, request)

    add_route(
        "/embed",
        embed,
        embed_body,
        response_model=list[list[float]],
        responses={**_ERRORS, **_NO_EMBED},
        summary="Embed texts (TEI shape)",
        # Only advertised when it works; without an embed model it answers 501.
        include_in_schema=embed_model is not None,
    )

    # TEI's root and SageMaker routes take either body: a valid rerank body (query + texts) is a
    # rerank, anything else an embed. Without an embed model they take only the rerank body.
    async def tei_any(body: TEIRerankRequest | TEIEmbedRequest, request: Request) -> Response:
        if isinstance(body, TEIRerankRequest):
            return await tei_rerank(body, request)
        return await tei_embed(body, request)

    if embed_model is not None:
        any_body: Any = Annotated[rerank_body | embed_body, Field(union_mode="left_to_right")]
        any_model: Any = list[TEIRank] | list[list[float]]
    else:
        any_body, any_model = rerank_body, list[TEIRank]
    for path in ("/", "/invocations"):
        add_route(
            path,
            tei_any,
            any_body,
            response_model=any_model,
            responses=_ERRORS,
            summary=f"TEI's {path} route: rerank (query + texts) or embed (inputs)",
            name=f"tei_any{path.replace('/', '_')}",
        )

    async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> Response:
        model = need_embed_model()
        assert state.embed is not None
        texts: list[str] = [body.input] if isinstance(body.input, str) else list(body.input)
        _check_count(len(texts), "input", state)
        embedding.check_dimensions(model, body.dimensions)
        items = embedding.prepare(model, texts, prompt_name=None, truncation_direction="right")
        if not state.config.auto_truncate:  # OpenAI refuses a too-long input too (no truncate field)
            await asyncio.to_thread(
                embedding.refuse_too_long,
                model,
                items,
                param="input",
                remedy="shorten it (or start the server with --auto-truncate to cut it)",
            )
        vectors: np.ndarray = await _submit(state.embed, items, request, state)
        # OpenAI's vectors are unit length.
        vectors = embedding.finish(vectors, dimensions=body.dimensions, normalize=True)
        out: dict[str, Any] = {
            "object": "list",
            "data": embedding.openai_data(vectors, body.encoding_format),
            "model": body.model or model.name,
        }
        tokens = await asyncio.to_thread(embedding.token_counts, model, items)
        if tokens is not None:  # only what the model counted; never a guess
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(out)

    add_route(
        OPENAI_ROUTE,
        openai_embeddings,
        openai_body,
        response_model=OpenAIEmbeddingResponse,
        responses={
            **_OPENAI_ERRORS,
            501: {"model": OpenAIErrorResponse, "description": "No embedding model"},
        },
        summary="Embed texts (OpenAI shape)",
        include_in_schema=embed_model is not None,
    )

    @app.get("/info", response_model=TEIInfo, summary="Server and model information (TEI shape)")
    async def info() -> Response:
        id2label = {"0": "LABEL_0", "1": "LABEL_1"} if served.num_labels == 2 else {"0": "LABEL_0"}
        body: dict[str, Any] = {
            "model_id": served.name,
            "model_sha": None,
            "model_dtype": "float32",
            "model_type": {
                "reranker": {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}
            },
            "max_concurrent_requests": state.config.max_queue_pairs,
            "max_input_length": served.max_length,
            "max_batch_tokens": state.config.max_step_pairs,
            "max_batch_requests": None,
            "max_client_batch_size": state.config.documents_limit,
            "auto_truncate": state.config.auto_truncate,
            "tokenization_workers": 1,
            "version": __version__,
            "sha": None,
            "docker_label": None,
        }
        if embed_model is not None:
            dims = getattr(embed_model, "matryoshka_dims", None)
            body["embedding_model"] = {
                "model_id": embed_model.name,
                "max_input_length": getattr(embed_model, "max_length", None),
                "prompts": sorted(getattr(embed_model, "prompts", None) or {}),
                "matryoshka_dims": list(dims) if isinstance(dims, tuple) else dims,
            }
        return JSONResponse(body)

    @app.get("/health", response_model=HealthResponse, summary="Liveness and readiness")
    async def health() -> Response:
        # A step running far past every deadline means a stuck model: report it, so that an
        # orchestrator restarts the replica.
        stuck = any(b.step_running_s > 2 * state.config.request_timeout_s for b in state.batchers)
        alive = all(b.alive for b in state.batchers) and not stuck
        status = "shutting_down" if state.shutting_down else ("ok" if alive else "unhealthy")
        body = {
            "status": status,
            "model": served.name,
            "embed_model": embed_model.name if embed_model is not None else None,
            "max_length": served.max_length,
            "queue_pairs": sum(b.pending_items for b in state.batchers),
            "queue_requests": sum(b.pending_requests for b in state.batchers),
        }
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(Gateway, state=state)
    return app
