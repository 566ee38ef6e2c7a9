"""``crossrank train``: fine-tune a cross-encoder from any Hugging Face encoder checkpoint.

Needs the ``[train]`` extra (torch, transformers); nothing here is imported by ``import crossrank``.
The entry point is :func:`crossrank.train.train` (CLI: ``crossrank train``). One concept per module:
``data`` (train / dev queries), ``negatives`` (hard negatives from crossrank's first stage),
``batching`` (token-budgeted groups), ``losses``, ``loop``, ``checkpoints``, ``evaluate_dev``,
``output`` (the model directory) and ``api``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    # Lazy: keeps `import crossrank.train` cheap (torch loads only when training starts).
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
