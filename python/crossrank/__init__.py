"""crossrank: fast, exact two-stage retrieval and reranking.

The public API is the names in ``__all__``: the first stages, the rerankers, the pipeline, the protocol
types and the evaluation entry points. Everything else lives in its subpackage (``crossrank.text``,
``crossrank.models``, ``crossrank.retrieve``, ``crossrank.rerank``, ``crossrank.eval``,
``crossrank.train``). Names are imported on first use, so ``import crossrank`` stays light (no ONNX
Runtime, FAISS, PyTorch or FastAPI).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._build_info import build_info
from ._core import __version__
from .types import Hits, RankedDoc, Reranker, Scores

if TYPE_CHECKING:
    from .eval.evaluate import evaluate
    from .models.embedder import Embedder
    from .pipeline import Pipeline
    from .rerank.colbert import ColBERTReranker
    from .rerank.cross_encoder import CrossEncoder
    from .rerank.dense import DenseReranker
    from .rerank.llm import LLMReranker
    from .rerank.pointwise import LLMPointwiseReranker
    from .retrieve.bm25 import BM25Index
    from .retrieve.dense import DenseRetriever
    from .retrieve.fusion import fuse
    from .text.analyzer import Analyzer

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "Analyzer": ".text.analyzer",
    "BM25Index": ".retrieve.bm25",
    "ColBERTReranker": ".rerank.colbert",
    "CrossEncoder": ".rerank.cross_encoder",
    "DenseReranker": ".rerank.dense",
    "DenseRetriever": ".retrieve.dense",
    "Embedder": ".models.embedder",
    "LLMReranker": ".rerank.llm",
    "LLMPointwiseReranker": ".rerank.pointwise",
    "Pipeline": ".pipeline",
    "evaluate": ".eval.evaluate",
    "fuse": ".retrieve.fusion",
}

__all__ = [
    "Analyzer",
    "BM25Index",
    "ColBERTReranker",
    "CrossEncoder",
    "DenseReranker",
    "DenseRetriever",
    "Embedder",
    "Hits",
    "LLMPointwiseReranker",
    "LLMReranker",
    "Pipeline",
    "RankedDoc",
    "Reranker",
    "Scores",
    "__version__",
    "build_info",
    "errors",
    "evaluate",
    "fuse",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crossrank' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
