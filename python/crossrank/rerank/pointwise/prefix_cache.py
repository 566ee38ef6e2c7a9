"""Running prompt batches through a causal-LM graph, with or without a shared-prefix key/value cache.

With the cache, a query's prefix runs once (``prefix.onnx``, batch 1) and every batch of candidates runs
only its suffix (document + template tail) against the prefix's keys/values (``model.onnx``'s
``past_key_values.*``, broadcast to the batch's rows inside the graph, never copied). Rows are
right-padded; position ids continue from the prefix; the attention mask covers prefix + suffix; the graph
gathers each row's last real token and multiplies only the two scoring rows of the output layer.

Without it (``prefix_cache=False``, no ``prefix.onnx``, a graph without past inputs, or a backend that
refuses them) every row is the whole prompt: the same graph with an empty past, or any plain causal-LM
graph (``input_ids``/``attention_mask`` -> logits ``[batch, seq, vocab]`` or ``[batch, vocab]``).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from ...text.packing import Batch

__all__ = ["CausalScorer"]


class CausalScorer:
    """Scores right-padded prompt batches on an ONNX causal LM (thread-safe: the backends are).

    Parameters
    ----------
    model : InferenceBackend
        ``model.onnx`` (``crossrank export --task causal-lm-reranker``), or a plain causal-LM graph.
    prefix : InferenceBackend, optional
        ``prefix.onnx``; None runs whole prompts.
    score_ids : tuple of int
        The positive and negative token ids.
    kv_shape : tuple of int
        ``(kv_heads, head_dim)`` of the model's keys/values.
    """

    def __init__(
        self, model: Any, prefix: Any | None, score_ids: tuple[int, int], kv_shape: tuple[int, int]
    ) -> None:
        self.kv_shape = kv_shape
        self.model = model
        self.prefix = prefix
        self.score_ids = np.asarray(score_ids, np.int64)
        names = list(model.input_names)
        self.pasts = [n for n in names if n.startswith("past_key_values.")]
        self.crossrank_graph = "score_ids" in names and "last_index" in names
        self.n_layers = len(self.pasts) // 2
        self.can_cache = self.crossrank_graph and bool(self.pasts) and prefix is not None
        self._lock = threading.Lock()
        self._empty: list[np.ndarray] | None = None

    def disable_cache(self, why: BaseException) -> None:
        """Run whole prompts from now on (after the backend refused the past inputs); warns once.

        Parameters
        ----------
        why : BaseException
            What the backend raised (quoted in the warning).
        """
        with self._lock:
            if self.can_cache:
                warnings.warn(
                    f"the backend cannot run the key/value cache graph ({type(why).__name__}: {why}); "
                    "scoring whole prompts instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self.can_cache = False

    def prefix_state(self, prefix_ids: np.ndarray) -> list[np.ndarray]:
        """Run the prefix once; return its keys/values (``present.*``, batch 1) in past-input order.

        Parameters
        ----------
        prefix_ids : numpy.ndarray
            int64 ``[P]``.
        """
        assert self.prefix is not None
        p = len(prefix_ids)
        out = self.prefix.run(
            {
                "input_ids": prefix_ids[None],
                "attention_mask": np.ones((1, p), np.int64),
                "position_ids": np.arange(p, dtype=np.int64)[None],
            }
        )
        return [np.asarray(x) for x in out]

    def _empty_past(self) -> list[np.ndarray]:
        """Zero-length keys/values ``[1, kv_heads, 0, head_dim]``: the graph then reads whole prompts."""
        if self._empty is None:
            self._empty = [
                np.zeros((1, *self.kv_shape[:1], 0, self.kv_shape[1]), np.float32) for _ in self.pasts
            ]
        return self._empty

    def run(self, batch: Batch, prefix_len: int, past: list[np.ndarray] | None) -> np.ndarray:
        """Scoring logits ``[rows, 2]`` of one batch of whole prompts (rows start with the prefix).

        Parameters
        ----------
        batch : Batch
            Right-padded rows: the ``prefix_len`` prefix ids, then document and tail.
        prefix_len : int
            Tokens of the shared prefix at the start of every row.
        past : list of numpy.ndarray, optional
            The prefix's keys/values (:meth:`prefix_state`): run only the suffixes against them.
        """
        ids, mask = batch.input_ids, batch.attention_mask
        last = batch.n_tokens.astype(np.int64) - 1
        rows, width = ids.shape
        if past is not None:
            suffix = np.ascontiguousarray(ids[:, prefix_len:])
            feeds = {
                "input_ids": suffix,
                "attention_mask": mask,
                "position_ids": np.broadcast_to(
                    np.arange(prefix_len, width, dtype=np.int64), suffix.shape
                ).copy(),
                "last_index": last - prefix_len,
                "score_ids": self.score_ids,
                **dict(zip(self.pasts, past, strict=True)),
            }
            return np.asarray(self.model.run(feeds)[0], np.float32)
        positions = np.broadcast_to(np.arange(width, dtype=np.int64), ids.shape).copy()
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        if self.crossrank_graph:
            feeds |= {"last_index": last, "score_ids": self.score_ids}
            feeds |= dict(zip(self.pasts, self._empty_past(), strict=True))
            return np.asarray(self.model.run(feeds)[0], np.float32)
        logits = np.asarray(self.model.run(feeds)[0])
        if logits.ndim == 3:  # [rows, seq, vocab]: the last real token of each row
            logits = logits[np.arange(rows), last]
        return np.asarray(logits[:, self.score_ids], np.float32)
