"""The one error type the HTTP layer raises, and its JSON bodies (the common one and OpenAI's)."""

from __future__ import annotations

from typing import Any

#: OpenAI's error ``type`` per status (what the openai SDK and its users expect to read).
_OPENAI_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """An error answered with ``status`` and a JSON body naming what was wrong and the fix.

    The common body carries the message under the field each client family reads, so that every
    client shows it: ``message`` (Cohere), ``error`` (TEI, ``huggingface_hub``, haystack) and
    ``detail`` (Jina, FastAPI-style clients), plus ``error_type`` and ``request_id``. The
    OpenAI-compatible route answers ``{"error": {"message", "type", "param", "code"}}`` instead
    (:meth:`openai_body`).

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
    details
        Per-field validation errors (``loc``, ``msg``, ``type``), when there are several.
    param
        The request field at fault, when one is (OpenAI's ``param``).
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}
        self.details = details
        self.param = param

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The common error body.

        Parameters
        ----------
        request_id
            The request's id (also in the ``X-Request-ID`` header).
        """
        out: dict[str, Any] = {
            "message": self.message,
            "error": self.message,
            "detail": self.message,
            "error_type": self.error_type,
            "request_id": request_id,
        }
        if self.details is not None:
            out["details"] = self.details
        return out

    def openai_body(self) -> dict[str, Any]:
        """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        if self.status >= 500:
            kind = "server_error"
        else:
            kind = _OPENAI_TYPES.get(self.status, "invalid_request_error")
        code = "invalid_api_key" if self.status == 401 else self.error_type
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": code}}
