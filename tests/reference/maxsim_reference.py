"""Slow, obvious float64 references for the MaxSim kernel and its storage conversions."""

from __future__ import annotations

import numpy as np


def maxsim_reference(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """score(q, d) = sum_i max_j q_i . d_j in float64; an empty doc or query scores 0."""
    q = np.asarray(query, dtype=np.float64)
    out = np.zeros(len(docs), dtype=np.float64)
    for n, d in enumerate(docs):
        d = np.asarray(d, dtype=np.float64)
        if len(d) == 0 or len(q) == 0:
            continue
        out[n] = sum(max(float(np.dot(qi, dj)) for dj in d) for qi in q)
    return out


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest even), returned as raw uint16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bf16_bits(h: np.ndarray) -> np.ndarray:
    return (h.astype(np.uint32) << 16).view(np.float32)


def error_bound(query: np.ndarray, docs: list[np.ndarray], per_dot: float) -> float:
    """Absolute tolerance: nq * per_dot * max |q_i| * max |d_j| (a bound on each dot's rounding)."""
    if len(query) == 0:
        return 0.0
    qn = float(np.linalg.norm(np.asarray(query, np.float64), axis=1).max())
    dn = max(
        (float(np.linalg.norm(np.asarray(d, np.float64), axis=1).max()) for d in docs if len(d)), default=0.0
    )
    return len(query) * per_dot * qn * dn + 1e-30
