"""crossrank: fast, exact two-stage retrieval and reranking.

The public API is the names in ``__all__``; everything else is private and may change.
"""

from __future__ import annotations

from . import errors
from ._build_info import build_info
from ._core import __version__
from .cross_encoder import CrossEncoder

__all__ = [
    "CrossEncoder",
    "__version__",
    "build_info",
    "errors",
]
