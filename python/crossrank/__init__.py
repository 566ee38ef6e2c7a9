"""crossrank: fast, exact two-stage retrieval and reranking.

The public API is the names in ``__all__``; everything else is private and may change.
"""

from __future__ import annotations

from . import errors
from ._build_info import build_info
from ._core import __version__
from .eval.evaluate import evaluate
from .models.embedder import Embedder
from .pipeline import Pipeline
from .rerank.calibration import Calibrator, relevance_score
from .rerank.colbert import ColBERTReranker
from .rerank.cross_encoder import CrossEncoder
from .rerank.dense import DenseReranker
from .rerank.llm import LLMRankResult, LLMReranker
from .rerank.maxsim import PackedDocs, PackedDocStore, maxsim, maxsim_batch
from .retrieve.bm25 import BM25Index, Results
from .retrieve.dense import DenseIndex, DenseRetriever
from .retrieve.fusion import fuse
from .text.analyzer import Analyzer

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
