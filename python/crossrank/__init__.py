"""crossrank: fast, exact two-stage retrieval and reranking.

The public API is the names in ``__all__``; everything else is private and may change.
"""

from __future__ import annotations

from . import errors
from ._build_info import build_info
from ._core import __version__
from .analyzer import Analyzer
from .bm25 import BM25Index, Results
from .cross_encoder import CrossEncoder
from .dense import DenseIndex, DenseReranker, DenseRetriever, Embedder
from .evaluate import evaluate
from .fusion import fuse
from .pipeline import Pipeline

__all__ = [
    "Analyzer",
    "BM25Index",
    "CrossEncoder",
    "DenseIndex",
    "DenseReranker",
    "DenseRetriever",
    "Embedder",
    "Pipeline",
    "Results",
    "__version__",
    "build_info",
    "errors",
    "evaluate",
    "fuse",
]
