"""Listwise reranking with a large language model (RankGPT-style sliding window).

- :mod:`.rankgpt`: the method itself, free of I/O (windows, prompt, answer parsing and repair,
  passage truncation, scores from the final order);
- :mod:`.client`: the OpenAI-compatible HTTP client (retries, backoff, ``Retry-After``, concurrency
  bound, deadline, token and cost accounting);
- :mod:`.reranker`: :class:`LLMReranker`, which joins them behind the :class:`crossrank.types.Reranker`
  protocol, and :func:`parse_llm_spec` for ``llm:BASE_URL@MODEL`` strings.
"""

from __future__ import annotations

from .client import ChatClient, LLMRequestError, LLMUsage
from .rankgpt import (
    SYSTEM_PROMPT,
    LLMRepairs,
    build_messages,
    parse_permutation,
    sliding_windows,
)
from .reranker import LLMCall, LLMRankResult, LLMReranker, parse_llm_spec

__all__ = [
    "SYSTEM_PROMPT",
    "ChatClient",
    "LLMCall",
    "LLMRankResult",
    "LLMRepairs",
    "LLMRequestError",
    "LLMReranker",
    "LLMUsage",
    "build_messages",
    "parse_llm_spec",
    "parse_permutation",
    "sliding_windows",
]
