"""What this build of crossrank contains and what it will use on this machine."""

from __future__ import annotations

import platform
from typing import Any

from . import _core


def build_info() -> dict[str, Any]:
    """Return the version, the SIMD paths compiled in / usable / active, and default threads.

    Returns
    -------
    dict
        ``version`` (str), ``simd_compiled`` / ``simd_available`` (list of str, weakest first),
        ``simd_active`` (str), ``num_threads`` (int, used when ``num_threads=None``),
        ``machine`` and ``python`` (str), ``maxsim_kernels`` (dict: storage dtype -> the MaxSim kernel
        the active SIMD path uses, e.g. ``"avx512bf16-dpbf16/bf16"``).
    """
    return {
        "version": _core.__version__,
        "simd_compiled": list(_core.simd_compiled()),
        "simd_available": list(_core.simd_available()),
        "simd_active": _core.simd_active(),
        "num_threads": _core.default_num_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "maxsim_kernels": {dt: _core.maxsim_kernel(dt) for dt in ("fp32", "fp16", "bf16")},
    }
