"""In-process adapters: any crossrank reranker (or :class:`~crossrank.Pipeline`) inside LangChain, LlamaIndex and Haystack.

==========================  =====================================  ==============================
name                        what the framework sees                extra
==========================  =====================================  ==============================
:class:`LangChainReranker`  a ``BaseDocumentCompressor``           ``crossrank[langchain]``
:class:`LlamaIndexReranker` a ``BaseNodePostprocessor``            ``crossrank[llamaindex]``
:class:`HaystackRanker`     a Haystack 2.x ``@component`` ranker   ``crossrank[haystack]``
==========================  =====================================  ==============================

Each wraps a protocol reranker (:class:`crossrank.types.Reranker`: every crossrank reranker, or your
own class), a :class:`~crossrank.Pipeline` (its reranker and ``rerank_fusion``; the framework's
retriever is the first stage) or a reranker spec string (:mod:`crossrank.rerank.spec`). The names are
imported on first use: ``import crossrank.integrations`` imports no framework, and using a name whose
framework is missing raises an ImportError naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .haystack import HaystackRanker
    from .langchain import LangChainReranker
    from .llamaindex import LlamaIndexReranker

_LAZY = {
    "HaystackRanker": ".haystack",
    "LangChainReranker": ".langchain",
    "LlamaIndexReranker": ".llamaindex",
}

__all__ = ["HaystackRanker", "LangChainReranker", "LlamaIndexReranker"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crossrank.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
