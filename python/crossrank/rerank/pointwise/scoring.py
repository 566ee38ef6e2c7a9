"""Scoring tokens and the score of a pointwise LLM reranker.

The model reads the next-token logits of two tokens after the prompt, ``positive`` ("yes", "1") and
``negative`` ("no", "0"). The relevance score is the probability of ``positive`` in the softmax over these
two, ``exp(lp) / (exp(lp) + exp(ln)) = sigmoid(lp - ln)`` (0..1); ``raw`` scores are ``lp - ln``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relevance", "scoring_token_ids"]


def _token_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token``: a vocabulary entry (or its byte-level spelling), else a text of one token."""
    direct = tokenizer.token_to_id(token)
    if direct is not None:
        return int(direct)
    ids = tokenizer.encode(token, add_special_tokens=False).ids
    return int(ids[0]) if len(ids) == 1 else None


def scoring_token_ids(
    tokenizer: Any, positive: str, negative: str, vocab_size: int | None = None
) -> tuple[int, int]:
    """Return the ids of the positive and negative scoring tokens.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        The model's tokenizer.
    positive, negative : str
        The template's scoring tokens.
    vocab_size : int, optional
        The model's vocabulary (rows of its output layer); ids at or past it are refused.

    Raises
    ------
    ValueError
        A token that is not one token of the vocabulary (the message names it).
    """
    out = []
    for role, token in (("positive", positive), ("negative", negative)):
        tid = _token_id(tokenizer, token)
        if tid is None or (vocab_size is not None and tid >= vocab_size):
            raise ValueError(
                f"the model's vocabulary has no single token {token!r} (the template's {role} scoring token); "
                "pick a template whose scoring tokens the model has, or declare them in a template file"
            )
        out.append(tid)
    return out[0], out[1]


def relevance(logits: np.ndarray, raw: bool = False) -> np.ndarray:
    """Scores from the two scoring logits.

    Parameters
    ----------
    logits : numpy.ndarray
        ``[n, 2]``: the positive then the negative token's logit.
    raw : bool
        Return the logit difference instead of the probability.

    Returns
    -------
    numpy.ndarray
        float32 ``[n]``.
    """
    diff = logits[:, 0].astype(np.float64) - logits[:, 1].astype(np.float64)
    if raw:
        return diff.astype(np.float32)
    # sigmoid(diff), written to stay finite for any sign
    e = np.exp(-np.abs(diff))
    return np.where(diff >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)
