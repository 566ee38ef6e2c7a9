"""`crossrank serve`: run the Cohere / Jina / TEI compatible rerank server."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

_HELP_MODEL = (
    "the reranker: a cross-encoder (local model directory, .onnx file or Hugging Face id), "
    "'dense:MODEL' (bi-encoder similarity), 'colbert:MODEL' (late interaction) or "
    "'llm:BASE_URL@MODEL' (listwise LLM over an OpenAI-compatible API); or 'py:module:callable' "
    "for any object with score, score_batch and rank (crossrank.types.Reranker)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a reranker over HTTP (Cohere v1/v2, Jina and TEI APIs)",
        description="Serve a reranker (cross-encoder, dense:, colbert: or llm:) over HTTP with "
        "cross-request batching. Endpoints: "
        "POST /v1/rerank, /v2/rerank (Cohere; /v1 also Jina), /rerank (TEI), /embed (TEI), / and "
        "/invocations (TEI: rerank or embed by body), /v1/embeddings (OpenAI), GET /info (TEI), "
        "/health, /metrics (Prometheus), /openapi.json. API keys: --api-key or "
        "CROSSRANK_API_KEYS=k1,k2 (preferred: command lines are visible to other users).",
    )
    p.add_argument("--model", required=True, help=_HELP_MODEL)
    p.add_argument(
        "--embed-model",
        default=None,
        help="bi-encoder for POST /embed: a model directory, .onnx file or hub id (a 'dense:' prefix is "
        "allowed), or 'py:module:callable'",
    )
    p.add_argument(
        "--embed-matryoshka",
        default="auto",
        metavar="auto|any|off|N,N,...",
        help="which 'dimensions' embed requests may ask for (the first N values, re-normalized): auto "
        "(any size when the model card tags Matryoshka training, else refused), any, off, or a list of "
        "sizes such as 768,512,256,128,64",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: local only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="model token limit: per query-document pair (cross-encoder), per document (dense:, colbert:)",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="token budget of one model batch (local models: not llm:)",
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="inference precision of a local model (default: the reranker's own default)",
    )
    p.add_argument("--num-threads", type=int, default=None, help="inference threads (default: CPU quota)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a step waits for more requests")
    p.add_argument("--max-step-pairs", type=int, default=4096, help="most pairs merged into one step")
    p.add_argument("--max-queue", type=int, default=16384, help="most waiting pairs before answering 429")
    p.add_argument(
        "--max-documents",
        type=int,
        default=None,
        help="most documents per request (413 above; default 10000, Cohere's limit, or --max-queue if smaller)",
    )
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="largest body (413 above)")
    p.add_argument("--request-timeout-s", type=float, default=60.0, help="per-request deadline (504 after)")
    p.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on every endpoint but /health (repeatable)",
    )
    p.add_argument(
        "--auto-truncate",
        action="store_true",
        help="cut too-long texts of TEI requests that do not say truncate, and of OpenAI embeddings "
        "requests (default: answer 413, as TEI does)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    ray = p.add_argument_group('Ray Serve (pip install "crossrank[ray]"; see crossrank.ray.serve)')
    ray.add_argument("--ray", action="store_true", help="serve on Ray Serve: the same API, replicated")
    ray.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="Ray cluster HOST:PORT or 'auto' (default: local)",
    )
    ray.add_argument("--replicas", type=int, default=1, help="model replicas (with --ray; default 1)")
    ray.add_argument(
        "--autoscale", default=None, metavar="MIN:MAX", help="autoscale model replicas (with --ray)"
    )
    ray.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs (= threads) per model replica")
    p.set_defaults(func=run)


def _load_object(spec: str) -> Any:
    """Import ``module:attr`` and call it when callable (a factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected 'py:module:callable', got 'py:{spec}'")
    obj = getattr(importlib.import_module(module_name), attr)
    return obj() if callable(obj) else obj


def load_models(args: argparse.Namespace) -> tuple[Any, Any]:
    """Build the reranker (and the embed model, if asked) named on the command line.

    The reranker comes from :func:`crossrank.rerank.spec.load_reranker` (any of its four kinds) or,
    for ``py:module:callable``, from the caller's factory; either must meet
    :class:`crossrank.types.Reranker`.
    """
    from ..rerank.spec import load_reranker
    from ..server import adapters
    from ..types import Reranker

    if args.model.startswith("py:"):
        model = _load_object(args.model[3:])
        if not isinstance(model, Reranker):
            raise ValueError(
                f"--model {args.model} gave a {type(model).__name__}, which lacks score, score_batch and "
                "rank (crossrank.types.Reranker)"
            )
    else:
        options: dict[str, Any] = {}
        if args.max_batch_tokens is not None:
            options["max_batch_tokens"] = args.max_batch_tokens
        model = load_reranker(
            args.model,
            precision=args.precision,
            num_threads=args.num_threads,
            max_length=args.max_length,
            **options,
        )
    embed_model = None
    if args.embed_model:
        if args.embed_model.startswith("py:"):
            embed_model = _load_object(args.embed_model[3:])
        else:
            embed_model = adapters.EmbedderModel.load(
                args.embed_model, num_threads=args.num_threads, matryoshka=args.embed_matryoshka
            )
    return model, embed_model


def server_config(args: argparse.Namespace) -> Any:
    """The :class:`~crossrank.server.app.ServerConfig` of these flags (also Ray Serve's gateway's)."""
    from ..server.app import ServerConfig
    from ..server.auth import load_keys

    return ServerConfig(
        max_wait_ms=args.max_wait_ms,
        max_step_pairs=args.max_step_pairs,
        max_queue_pairs=args.max_queue,
        max_documents=args.max_documents,
        max_body_bytes=args.max_body_bytes,
        request_timeout_s=args.request_timeout_s,
        api_keys=load_keys(args.api_key),
        auto_truncate=bool(getattr(args, "auto_truncate", False)),
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server.app import create_app
        from ..server.logs import configure_logging
    except ImportError as exc:
        raise ImportError(
            f'crossrank serve needs the server extra ({exc}); pip install "crossrank[server]"'
        ) from exc

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if getattr(args, "ray", False):
        from ..ray.serve import run_cli

        return run_cli(args)
    configure_logging(args.log_level)
    log = logging.getLogger("crossrank.server")
    config = server_config(args)
    model, embed_model = load_models(args)
    # A py: factory's object names itself (its ``name`` attribute); a spec is its own name.
    name = None if args.model.startswith("py:") else args.model
    app = create_app(model, name=name, embed_model=embed_model, config=config)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            loop=loop,
            log_config=None,  # our JSON logging (configure_logging) stays in place
            access_log=False,  # the Gateway middleware writes the access log, with request ids
            lifespan="on",
            # SIGTERM: stop accepting, let in-flight requests finish (at most their deadline), then
            # the lifespan shutdown drains the batcher.
            timeout_graceful_shutdown=args.request_timeout_s + 5,
            timeout_keep_alive=5,
        )
    )
    log.info(
        "starting",
        extra={
            "fields": {
                "host": args.host,
                "port": args.port,
                "loop": loop,
                "auth": bool(config.api_keys),
                "api_keys": len(config.api_keys),
            }
        },
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    from ..cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
