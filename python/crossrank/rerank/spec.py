"""Reranker specs: the one string form ``crossrank serve --model`` and ``crossrank eval --reranker`` take.

====================================  ==================  ===========================================
spec                                  kind                builds
====================================  ==================  ===========================================
``MODEL`` (hub id, directory, .onnx)  ``"cross-encoder"``  :class:`~crossrank.CrossEncoder`
``dense:MODEL``                       ``"dense"``          :class:`~crossrank.DenseReranker`
``colbert:MODEL``                     ``"colbert"``        :class:`~crossrank.ColBERTReranker`
``llm:BASE_URL@MODEL``                ``"llm"``            :class:`~crossrank.LLMReranker`
``pointwise:MODEL``                   ``"pointwise"``      :class:`~crossrank.LLMPointwiseReranker`
====================================  ==================  ===========================================

A plain local directory holding a sentence-transformers *bi-encoder* (``modules.json`` with a Pooling
module, e.g. all-MiniLM-L6-v2) is read as ``dense:`` (a cross-encoder could not score with it).
Anything else that looks like ``word:rest`` and is not an existing path is refused, so a typo such as
``dens:model`` fails at once instead of being looked up on the hub.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

from ..types import Precision, Reranker

__all__ = ["RerankerKind", "load_reranker", "parse_reranker_spec"]

RerankerKind = Literal["cross-encoder", "dense", "colbert", "llm", "pointwise"]

_PREFIXES: dict[str, RerankerKind] = {
    "dense": "dense",
    "colbert": "colbert",
    "llm": "llm",
    "pointwise": "pointwise",
}
# A prefix is a word before the first ':'; "C:\\models" or "C:/models" is a Windows path, not a prefix.
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_.+-]*):")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_EXAMPLES = (
    "cross-encoder/ms-marco-MiniLM-L-6-v2, ./my-model, model.onnx, dense:MODEL, colbert:MODEL, "
    "llm:http://localhost:8000/v1@MODEL or pointwise:MODEL"
)


def _is_bi_encoder(model: str) -> bool:
    """Whether ``model`` is a local sentence-transformers bi-encoder directory (has a Pooling module)."""
    modules = Path(model).expanduser() / "modules.json"
    if not modules.is_file():
        return False
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
        return any(str(m.get("type", "")).endswith(".Pooling") for m in entries)
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def parse_reranker_spec(spec: str) -> tuple[RerankerKind, str]:
    """Split a reranker spec into its kind and target, checking its shape (nothing is loaded).

    Parameters
    ----------
    spec : str
        ``MODEL``, ``dense:MODEL``, ``colbert:MODEL`` or ``llm:BASE_URL@MODEL`` (see the module
        docstring).

    Returns
    -------
    kind : {"cross-encoder", "dense", "colbert", "llm"}
    target : str
        The model (hub id, directory or ``.onnx`` file); for ``llm`` the whole ``BASE_URL@MODEL``.

    Raises
    ------
    TypeError
        ``spec`` is not a str.
    ValueError
        An empty spec or model, an unknown ``word:`` prefix that is not an existing path, or an
        ``llm:`` spec without ``BASE_URL@MODEL``.

    Examples
    --------
    >>> parse_reranker_spec("dense:sentence-transformers/all-MiniLM-L6-v2")
    ('dense', 'sentence-transformers/all-MiniLM-L6-v2')
    >>> parse_reranker_spec("llm:http://localhost:8000/v1@qwen2.5")
    ('llm', 'http://localhost:8000/v1@qwen2.5')
    """
    if not isinstance(spec, str):
        raise TypeError(f"a reranker spec must be a str such as {_EXAMPLES}; got {type(spec).__name__}")
    if not spec.strip():
        raise ValueError(f"the reranker spec is empty; give a model such as {_EXAMPLES}")
    m = _PREFIX.match(spec)
    if m is None or _WINDOWS_DRIVE.match(spec) or Path(spec).expanduser().exists():
        return ("dense" if _is_bi_encoder(spec) else "cross-encoder"), spec
    prefix, target = m.group(1), spec[m.end() :]
    kind = _PREFIXES.get(prefix)
    if kind is None:
        raise ValueError(
            f"unknown reranker kind {prefix + ':'!r} in {spec!r} (and no such file or directory); "
            f"the kinds are dense:, colbert:, llm: and pointwise:, or a plain cross-encoder model, e.g. {_EXAMPLES}"
        )
    if not target.strip():
        raise ValueError(f"the reranker spec {spec!r} names no model; write {prefix}:MODEL")
    if kind == "llm":
        url, at, model = target.rpartition("@")
        if not at or not url.strip() or not model.strip():
            raise ValueError(
                f"an LLM reranker spec is 'llm:BASE_URL@MODEL', e.g. "
                f"'llm:http://localhost:8000/v1@Qwen/Qwen2.5-7B-Instruct'; got {spec!r}"
            )
    return kind, target


def _check_options(kind: RerankerKind, options: dict[str, Any], *targets: Callable[..., Any]) -> None:
    """Refuse an option no constructor of ``targets`` takes by keyword (a clear error, not a TypeError)."""
    names = {
        p.name
        for fn in targets
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"option(s) {', '.join(unknown)} do not apply to {kind} rerankers; "
            f"it takes {', '.join(sorted(names))}"
        )


def load_reranker(
    spec: str,
    *,
    precision: Precision | None = None,
    num_threads: int | None = None,
    max_length: int | None = None,
    **options: Any,
) -> Reranker:
    """Build the reranker a spec names (see :func:`parse_reranker_spec` and the module docstring).

    Parameters
    ----------
    spec : str
        ``MODEL``, ``dense:MODEL``, ``colbert:MODEL`` or ``llm:BASE_URL@MODEL``.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}, optional
        Inference precision of a local model; None keeps each reranker's default. An ``llm``
        reranker runs no local model and takes only None or ``"auto"``.
    num_threads : int, optional
        Inference threads of a local model (None: the CPU quota); an ``llm`` reranker ignores it
        (its concurrency is the ``max_concurrency`` option).
    max_length : int, optional
        Token limit of the model: per query-document pair for a cross-encoder, per document for
        ``dense`` (the embedder's) and ``colbert`` (``doc_maxlen``). Not accepted for ``llm`` (use
        the ``max_passage_tokens`` option).
    **options
        Passed to the reranker's constructor (for ``dense`` also the :class:`~crossrank.Embedder`'s
        options); a name the constructor does not take is a ``ValueError`` listing the accepted ones.

    Returns
    -------
    Reranker
        An object with ``score``, ``score_batch`` and ``rank`` (:class:`crossrank.types.Reranker`).

    Raises
    ------
    ValueError
        A malformed spec, an option the reranker kind does not take, or a bad option value.
    crossrank.errors.ModelNotFoundError
        The model cannot be found.
    ImportError
        The ``llm`` kind without the ``openai`` package (``pip install "crossrank[llm]"``).
    """
    kind, target = parse_reranker_spec(spec)
    local: dict[str, Any] = {}
    if precision is not None:
        local["precision"] = precision
    if num_threads is not None:
        local["num_threads"] = num_threads
    if kind == "llm":
        if max_length is not None:
            raise ValueError(
                "max_length does not apply to an llm reranker; pass max_passage_tokens= to cut passages"
            )
        if precision not in (None, "auto"):
            raise ValueError(f"precision={precision!r} does not apply to an llm reranker (no local model)")
        from .llm import LLMReranker, parse_llm_spec

        _check_options(kind, options, LLMReranker.__init__)
        # parse_llm_spec wants the prefix; rebuild it from the checked target.
        return cast(Reranker, parse_llm_spec("llm:" + target, **options))
    if kind == "pointwise":
        from .pointwise import LLMPointwiseReranker

        _check_options(kind, options, LLMPointwiseReranker.__init__)
        if max_length is not None:
            local["max_length"] = max_length
        return cast(Reranker, LLMPointwiseReranker(target, **local, **options))
    if kind == "cross-encoder":
        from .cross_encoder import CrossEncoder

        _check_options(kind, options, CrossEncoder.__init__)
        if max_length is not None:
            local["max_length"] = max_length
        return cast(Reranker, CrossEncoder(target, **local, **options))
    if kind == "dense":
        from ..models.embedder import Embedder
        from .dense import DenseReranker

        _check_options(kind, options, DenseReranker.__init__, Embedder.__init__)
        if max_length is not None:
            local["max_length"] = max_length
        return cast(Reranker, DenseReranker(target, **local, **options))
    from .colbert import ColBERTReranker

    _check_options(kind, options, ColBERTReranker.__init__)
    if max_length is not None:
        if "doc_maxlen" in options:
            raise ValueError("give max_length or doc_maxlen for a colbert reranker, not both")
        local["doc_maxlen"] = max_length
    return cast(Reranker, ColBERTReranker(target, **local, **options))
