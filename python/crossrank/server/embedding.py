"""The embed routes' options, shared by TEI ``/embed`` and OpenAI ``/v1/embeddings``.

``prompt_name``, ``dimensions`` and ``truncation_direction`` are honoured or refused with 422, never
ignored. What a model allows comes from its optional capabilities (see
:class:`~crossrank.server.model.EmbedModel`): ``prompts``, ``matryoshka_dims`` and
``left_truncation``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import numpy as np

from .errors import ApiError
from .model import EmbedModel

#: One text of an embed step: (text with its prompt, truncation direction "right" or "left").
EmbedItem = tuple[str, str]


def direction(value: str) -> str:
    """TEI's "Left"/"Right" (or huggingface_hub's "left"/"right") as "left"/"right"."""
    return value.lower()


def prepare(
    model: EmbedModel, texts: Sequence[str], *, prompt_name: str | None, truncation_direction: str
) -> list[EmbedItem]:
    """The step items of one request: the prompt prepended, the direction checked.

    Parameters
    ----------
    model
        The embed model.
    texts
        The request's inputs.
    prompt_name
        A prompt the model declares, or None.
    truncation_direction
        "left" or "right".

    Raises
    ------
    ApiError
        422: the model declares no such prompt, or cannot truncate from the left.
    """
    prefix = ""
    if prompt_name is not None:
        prompts: dict[str, str] = dict(getattr(model, "prompts", None) or {})
        if prompt_name not in prompts:
            have = ", ".join(repr(p) for p in sorted(prompts)) or "none"
            raise ApiError(
                422,
                "validation",
                f"prompt_name {prompt_name!r} is not a prompt of this model (it declares: {have}); "
                "prompts come from the model's config_sentence_transformers.json",
                param="prompt_name",
            )
        prefix = prompts[prompt_name]
    side = direction(truncation_direction)
    if side == "left" and not getattr(model, "left_truncation", False):
        raise ApiError(
            422,
            "validation",
            "truncation_direction left: this embed model cannot truncate from the left; send Right",
            param="truncation_direction",
        )
    return [(prefix + t, side) for t in texts]


def check_dimensions(model: EmbedModel, dimensions: int | None) -> None:
    """Refuse ``dimensions`` before any work when the model does not allow it.

    Parameters
    ----------
    model
        The embed model.
    dimensions
        The requested size, or None.

    Raises
    ------
    ApiError
        422: the model is not Matryoshka-trained (``matryoshka_dims`` None), or the size is not one
        of its listed sizes.
    """
    if dimensions is None:
        return
    allowed = getattr(model, "matryoshka_dims", None)
    if allowed is None:
        raise ApiError(
            422,
            "validation",
            f"dimensions={dimensions}: this embed model was not declared Matryoshka-trained, so its "
            "vectors cannot be shortened; omit dimensions (or start the server with "
            "--embed-matryoshka any if the model was trained for it)",
            param="dimensions",
        )
    if allowed != "any" and dimensions not in allowed:
        raise ApiError(
            422,
            "validation",
            f"dimensions={dimensions} is not one of this model's sizes {list(allowed)}",
            param="dimensions",
        )


def finish(vectors: np.ndarray, *, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Shorten to ``dimensions`` (Matryoshka) and then L2-normalize when asked.

    Parameters
    ----------
    vectors
        float32 ``[n, dim]`` as the model returned them.
    dimensions
        Keep the first N values, or None.
    normalize
        Divide each row by its norm (after shortening).

    Raises
    ------
    ApiError
        422: ``dimensions`` is larger than the model's.
    """
    if dimensions is not None:
        if dimensions > vectors.shape[1]:
            raise ApiError(
                422,
                "validation",
                f"dimensions={dimensions} is more than this model's {vectors.shape[1]} dimensions",
                param="dimensions",
            )
        vectors = vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def embed_step(model: EmbedModel, items: Sequence[EmbedItem]) -> np.ndarray:
    """Embed one step's merged items, one model call per run of equal direction (in order).

    Parameters
    ----------
    model
        The embed model.
    items
        ``(text, direction)`` of every request in the step.
    """
    parts: list[np.ndarray] = []
    for side, group in groupby(items, key=lambda item: item[1]):
        texts = [t for t, _ in group]
        embed: Any = model.embed  # only models with left_truncation take the keyword
        out = np.asarray(
            embed(texts, truncation_direction=side) if side == "left" else embed(texts), np.float32
        )
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise RuntimeError(f"embed model returned shape {out.shape} for {len(texts)} texts")
        parts.append(out)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def refuse_too_long(model: EmbedModel, items: Sequence[EmbedItem], *, param: str, remedy: str) -> None:
    """Answer 413 when a text is longer than the model takes (the request did not ask to truncate).

    Blocking (it tokenizes): call it on a worker thread. A model without ``max_length`` and
    ``input_lengths`` is trusted to take any length.

    Parameters
    ----------
    model
        The embed model.
    items
        The request's items (prompts prepended).
    param
        The request field named in the error ("inputs" or "input").
    remedy
        What the client can do, for the message (TEI has ``truncate``; OpenAI's body has no such field).

    Raises
    ------
    ApiError
        413 naming the first text that is too long, its length and the limit.
    """
    limit = getattr(model, "max_length", None)
    lengths: Any = getattr(model, "input_lengths", None)
    if not isinstance(limit, int) or not callable(lengths):
        return
    counts = lengths([t for t, _ in items])
    for i, n in enumerate(counts):
        if int(n) > limit:
            raise ApiError(
                413,
                "validation",
                f"{param}[{i}] has {int(n)} tokens, more than the model's limit of {limit}; {remedy}",
                param=param,
            )


def token_counts(model: EmbedModel, items: Sequence[EmbedItem]) -> int | None:
    """Total tokens the model reads for ``items`` (None when it cannot count them).

    Parameters
    ----------
    model
        The embed model (its optional ``count_tokens``).
    items
        The request's items.
    """
    count: Any = getattr(model, "count_tokens", None)
    if not callable(count):
        return None
    total = 0
    for side, group in groupby(items, key=lambda item: item[1]):
        total += int(sum(count([t for t, _ in group], truncation_direction=side)))
    return total


def openai_data(vectors: np.ndarray, encoding_format: str) -> list[dict[str, Any]]:
    """OpenAI's ``data`` list: floats, or base64 of the little-endian float32 bytes.

    Parameters
    ----------
    vectors
        float32 ``[n, dim]``.
    encoding_format
        "float" or "base64".
    """
    rows: list[dict[str, Any]] = []
    little = np.ascontiguousarray(vectors, dtype="<f4")
    for i in range(little.shape[0]):
        value: Any = (
            base64.b64encode(little[i].tobytes()).decode("ascii")
            if encoding_format == "base64"
            else little[i]
        )
        rows.append({"object": "embedding", "index": i, "embedding": value})
    return rows
