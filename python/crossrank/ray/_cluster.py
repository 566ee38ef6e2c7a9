"""Joining a Ray cluster, and what Ray gives the current worker (its CPUs)."""

from __future__ import annotations

import math
import socket
from types import ModuleType
from typing import Any

# How long an address may take to accept a TCP connection before it counts as unreachable; ray.init
# itself retries an unreachable GCS for minutes.
_PROBE_TIMEOUT_S = 3.0


def require_ray() -> ModuleType:
    """Import ray, or raise an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f'this needs Ray ({exc}); pip install "crossrank[ray]"') from exc
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port`` or ``ray://host:port``; None for ``auto`` / ``local``."""
    if address in ("auto", "local"):
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, 'auto' or 'local'")
    return host.strip("[]"), int(port)


def connect(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs: Any) -> None:
    """Join the Ray cluster at ``address`` (or start a local one); when Ray is already up, only check the address.

    Parameters
    ----------
    address : str, optional
        ``HOST:PORT`` of a running cluster's head (``ray start --head``), ``ray://HOST:PORT`` (Ray
        Client), ``"auto"`` (the cluster this machine belongs to) or None / ``"local"`` (start a local
        one for this process).
    num_cpus : int, optional
        CPUs of a local cluster (None: every core); not allowed with an address.
    **init_kwargs
        Passed to ``ray.init``.

    Raises
    ------
    ValueError
        The address is malformed or nothing accepts a connection there within 3 s (one line naming it;
        ``ray.init`` alone would retry for minutes).
    ImportError
        Ray is not installed.
    """
    ray = require_ray()
    remote = address is not None and address != "local"
    if remote and num_cpus is not None:
        raise ValueError("num_cpus applies only to a local cluster, not to one joined by address")
    target = _host_port(address) if address is not None and remote else None
    if target is not None:  # probed even when Ray is up: a wrong address is an error, not ignored
        try:
            with socket.create_connection(target, timeout=_PROBE_TIMEOUT_S):
                pass
        except OSError as exc:
            raise ValueError(
                f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
                "start it with 'ray start --head' or check the address"
            ) from None
    if ray.is_initialized():
        return
    init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("log_to_driver", False)
    if not remote:
        ray.init(address="local", num_cpus=num_cpus, **init_kwargs)
        return
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot join the Ray cluster at {address}: {first}") from None


def assigned_cpus(default: int = 1) -> int:
    """CPUs Ray assigned to the current task or actor (rounded up, at least 1); ``default`` outside Ray.

    Replicas and Ray Data actors size their inference threads with this, so that replicas sharing a
    node do not oversubscribe its cores.

    Parameters
    ----------
    default : int
        Returned when not running inside a Ray worker, or when no CPU was assigned.
    """
    try:
        import ray
    except ImportError:
        return default
    if not ray.is_initialized():
        return default
    cpus = float(ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0))
    return max(1, math.ceil(cpus - 1e-9)) if cpus > 0 else default
