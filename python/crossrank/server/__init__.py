"""``crossrank serve``: a Cohere / Jina / TEI compatible rerank server with cross-request batching.

It serves any :class:`crossrank.types.Reranker` (cross-encoder, dense, ColBERT, LLM, or your own)
through :class:`ServedReranker`. Needs the ``server`` extra: ``pip install "crossrank[server]"``.
"""

from __future__ import annotations

from .adapters import ServedReranker
from .model import EmbedModel, PairPredictor, PairScores

__all__ = ["EmbedModel", "PairPredictor", "PairScores", "ServedReranker", "ServerConfig", "create_app"]


def __getattr__(name: str) -> object:
    # The app needs FastAPI; import it lazily so the protocols work without the extra.
    if name in ("ServerConfig", "create_app"):
        try:
            from ..server import app
        except ImportError as exc:
            raise ImportError(
                f'crossrank.server needs FastAPI and uvicorn ({exc}); pip install "crossrank[server]"'
            ) from exc
        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
