"""The one error type the HTTP layer raises, and its JSON body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as ``{"message", "error_type", "request_id"}`` with ``status``.

    Parameters
    ----------
    status
        HTTP status code (4xx for the client's mistakes, 429/503/504 for load, 5xx otherwise).
    error_type
        Machine-readable kind: ``validation``, ``too_large``, ``unauthorized``, ``overloaded``,
        ``unavailable``, ``timeout``, ``not_found``, ``not_implemented``, ``inference``, ``internal``.
    message
        What was wrong and how to fix it.
    headers
        Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}
        self.details = details

    def body(self, request_id: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.message,
            "error_type": self.error_type,
            "request_id": request_id,
        }
        if self.details is not None:
            out["details"] = self.details
        return out
