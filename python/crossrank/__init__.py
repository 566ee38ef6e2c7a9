"""crossrank: fast, exact two-stage retrieval and reranking.

The public API is the names in ``__all__``; everything else is private and may change.
"""

from __future__ import annotations

from . import errors
from ._build_info import build_info
from ._core import __version__
from .analyzer import Analyzer
from .bm25 import BM25Index, Results
from .calibration import Calibrator, relevance_score
from .colbert import ColBERTReranker
from .cross_encoder import CrossEncoder
from .dense import DenseIndex, DenseReranker, DenseRetriever, Embedder
from .evaluate import evaluate
from .fusion import fuse
from .llm import LLMRankResult, LLMReranker
from .maxsim import PackedDocs, PackedDocStore, maxsim, maxsim_batch
from .pipeline import Pipeline

__all__ = [
    "Analyzer",
    "BM25Index",
    "Calibrator",
    "ColBERTReranker",
    "CrossEncoder",
    "DenseIndex",
    "DenseReranker",
    "DenseRetriever",
    "Embedder",
    "LLMRankResult",
    "LLMReranker",
    "PackedDocStore",
    "PackedDocs",
    "Pipeline",
    "Results",
    "__version__",
    "build_info",
    "errors",
    "evaluate",
    "fuse",
    "maxsim",
    "maxsim_batch",
    "relevance_score",
]
