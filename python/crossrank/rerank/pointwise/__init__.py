"""Pointwise LLM rerankers (Qwen3-Reranker, mxbai-rerank-v2) with a shared-prefix key/value cache.

* :mod:`.template`: prompt templates and scoring tokens (built in, or from a JSON file);
* :mod:`.prompt`: token ids of the prefix, documents and tail (only the document is ever cut);
* :mod:`.scoring`: scoring token ids and the score (probability of the positive token, or raw);
* :mod:`.prefix_cache`: running batches with the prefix's keys/values, or whole prompts;
* :mod:`.reranker`: :class:`LLMPointwiseReranker`.
"""

from .reranker import LLMPointwiseReranker
from .template import BUILTIN_TEMPLATES, PromptTemplate

__all__ = ["BUILTIN_TEMPLATES", "LLMPointwiseReranker", "PromptTemplate"]
