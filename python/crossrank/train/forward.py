"""Run the model over packed micro-batches and return one logit per pair, in pair order."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ..text.packing import Batch

__all__ = ["autocast", "forward_pairs"]


def autocast(torch: Any, bf16: bool) -> Any:
    """bf16 autocast on the model's device type when ``bf16``, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def forward_pairs(
    model: Any, batches: Sequence[Batch], n_pairs: int, *, bf16: bool, device: Any = None
) -> Any:
    """Logits of every pair, float32 ``[n_pairs]`` (differentiable when grad is enabled).

    Parameters
    ----------
    model : transformers sequence-classification model
        One label.
    batches : sequence of Batch
        Micro-batches from :func:`crossrank.text.packing.plan_pairs` (no windows).
    n_pairs : int
        Pairs in the plan.
    bf16 : bool
        Run under bf16 autocast.
    device : torch.device, optional
        Where the model lives (default CPU).
    """
    import torch

    uses_types = getattr(model.config, "type_vocab_size", 0) and model.config.type_vocab_size > 1
    out = torch.zeros(n_pairs, dtype=torch.float32, device=device)
    parts = []
    index = []
    for b in batches:
        kwargs = {
            "input_ids": torch.from_numpy(b.input_ids).to(device),
            "attention_mask": torch.from_numpy(b.attention_mask).to(device),
        }
        if uses_types:
            kwargs["token_type_ids"] = torch.from_numpy(b.token_type_ids).to(device)
        with autocast(torch, bf16):
            logits = model(**kwargs).logits
        parts.append(logits[:, 0].float())
        index.append(torch.from_numpy(b.pair_index).to(device))
    if not parts:
        return out
    return out.index_put((torch.cat(index),), torch.cat(parts))
