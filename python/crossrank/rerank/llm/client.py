"""An OpenAI-compatible chat-completions client with retries, backoff, a concurrency bound and deadlines.

Any ``/v1/chat/completions`` endpoint works (OpenAI, vLLM, llama.cpp server, Ollama, ...), through the
official ``openai`` client (the optional extra ``pip install "crossrank[llm]"``). The client's own
retries are off: ours are deadline-aware (exponential backoff with jitter, ``Retry-After`` honoured), and
one semaphore bounds the requests in flight across every thread that shares the client.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import CrossrankError, missing_extra

__all__ = ["ChatClient", "ChatOutcome", "LLMRequestError", "LLMUsage"]


class LLMRequestError(CrossrankError):
    """A chat-completions request failed for good (non-retryable status, or retries exhausted)."""


@dataclass(frozen=True)
class LLMUsage:
    """Token and cost totals.

    ``n_requests`` counts HTTP attempts (retries included); ``n_retries`` the attempts after a failure;
    ``usage_missing`` the successful responses without a ``usage`` field (their tokens count as 0).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    n_requests: int = 0
    n_retries: int = 0
    usage_missing: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: LLMUsage) -> LLMUsage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return LLMUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.n_requests + other.n_requests,
            self.n_retries + other.n_retries,
            self.usage_missing + other.usage_missing,
        )


@dataclass(frozen=True)
class ChatOutcome:
    """The result of one :meth:`ChatClient.complete`.

    Attributes
    ----------
    status : {"ok", "failed", "timed_out"}
        ``failed``: the request failed for good and the caller chose ``on_error="keep"``.
    answer : str or None
        The model's answer (None unless ``ok``, or when the response had no text).
    attempts : int
        HTTP attempts made (1 + retries).
    usage : LLMUsage
        Tokens, cost and attempts of this completion.
    latency_s : float
        Wall time, retries and backoff included.
    """

    status: Literal["ok", "failed", "timed_out"]
    answer: str | None
    attempts: int
    usage: LLMUsage
    latency_s: float


class _DeadlineReached(Exception):
    pass


def positive(name: str, value: object, *, allow_none: bool = False, integer: bool = False) -> None:
    """Refuse a value that is not a positive (finite) number, or int with ``integer`` (``ValueError``)."""
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        what = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")


class ChatClient:
    """Chat completions with deadline-aware retries and a bound on requests in flight.

    One instance may be shared across threads: the ``openai`` client is thread-safe, the concurrency
    bound is a semaphore, and the jitter generator is locked.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``"http://localhost:8000/v1"``.
    model : str
        Model name as the server knows it.
    api_key : str, optional
        Defaults to ``$OPENAI_API_KEY``, else the placeholder ``"EMPTY"`` (local servers ignore it).
    max_concurrency : int
        Most requests in flight at once.
    max_retries : int
        Retries after a 408/409/429/5xx status, a timeout or a connection error.
    timeout : float
        Seconds per HTTP attempt.
    temperature : float
        Sampling temperature in [0, 2].
    max_tokens : int, optional
        Cap on completion tokens.
    price_per_1k_prompt, price_per_1k_completion : float, optional
        Prices for the cost accounting (``cost`` is None unless at least one is given).
    backoff_base, backoff_max : float
        Backoff ``backoff_base * 2**attempt`` capped at ``backoff_max``, times a jitter in [0.5, 1];
        a ``Retry-After`` header is honoured up to ``backoff_max``.
    seed : int, optional
        Seed of the jitter's random generator.

    Raises
    ------
    ImportError
        The ``openai`` package is missing (``pip install "crossrank[llm]"``).
    ValueError
        A parameter is out of range.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 4,
        max_retries: int = 3,
        timeout: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        price_per_1k_prompt: float | None = None,
        price_per_1k_completion: float | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        seed: int | None = None,
    ) -> None:
        try:
            import openai
        except ImportError as e:
            raise missing_extra("openai", "llm") from e
        if not isinstance(base_url, str) or not re.match(r"https?://", base_url):
            raise ValueError(
                f"base_url must be an http(s) URL such as 'http://localhost:8000/v1', got {base_url!r}"
            )
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        positive("max_concurrency", max_concurrency, integer=True)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        positive("timeout", timeout)
        positive("max_tokens", max_tokens, allow_none=True, integer=True)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0 <= temperature <= 2
        ):
            raise ValueError(f"temperature must be a number in [0, 2], got {temperature!r}")
        for name, price in (
            ("price_per_1k_prompt", price_per_1k_prompt),
            ("price_per_1k_completion", price_per_1k_completion),
        ):
            if price is not None and (
                isinstance(price, bool) or not isinstance(price, (int, float)) or not price >= 0
            ):
                raise ValueError(f"{name} must be a number >= 0 or None, got {price!r}")
        positive("backoff_base", backoff_base)
        positive("backoff_max", backoff_max)
        self.base_url = base_url
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._openai = openai
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=self.timeout, max_retries=0)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Price of a completion, or None without prices.

        Parameters
        ----------
        prompt_tokens, completion_tokens : int
            Token counts.
        """
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        return (
            prompt_tokens * (self.price_per_1k_prompt or 0.0)
            + completion_tokens * (self.price_per_1k_completion or 0.0)
        ) / 1000.0

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        with self._rng_lock:
            delay *= self._rng.uniform(0.5, 1.0)
        response = getattr(exc, "response", None)
        header = None if response is None else response.headers.get("retry-after")
        if header is not None:
            with contextlib.suppress(ValueError):  # an HTTP-date: keep our own schedule
                delay = max(delay, min(self.backoff_max, float(header)))
        return delay

    def _retryable(self, exc: Exception) -> bool:
        o = self._openai
        if isinstance(exc, o.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, o.APIStatusError):
            return exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return False

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        deadline_at: float | None = None,
        on_error: Literal["raise", "keep"] = "raise",
        what: str = "chat completion",
    ) -> ChatOutcome:
        """Send one chat completion, retrying what can be retried until ``deadline_at``.

        Parameters
        ----------
        messages : list of dict
            ``{"role", "content"}`` messages.
        deadline_at : float, optional
            A ``time.monotonic()`` instant; past it the outcome is ``timed_out`` (a request in flight
            is cut there, and no retry starts that could not finish before it).
        on_error : {"raise", "keep"}
            After a non-retryable status or exhausted retries: raise, or return a ``failed`` outcome.
        what : str
            Names the request in the error message.

        Returns
        -------
        ChatOutcome

        Raises
        ------
        LLMRequestError
            The request failed for good and ``on_error="raise"``.
        """
        t0 = time.monotonic()
        attempts = retries = 0

        def give_up(status: Literal["failed", "timed_out"]) -> ChatOutcome:
            return ChatOutcome(
                status,
                None,
                attempts,
                LLMUsage(n_requests=attempts, n_retries=retries),
                time.monotonic() - t0,
            )

        while True:
            remaining = None if deadline_at is None else deadline_at - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise _DeadlineReached
                if not self._slots.acquire(timeout=remaining):
                    raise _DeadlineReached
                try:
                    timeout = (
                        self.timeout
                        if deadline_at is None
                        else min(self.timeout, deadline_at - time.monotonic())
                    )
                    if timeout <= 0:
                        raise _DeadlineReached
                    attempts += 1
                    kwargs: dict[str, Any] = {}
                    if self.max_tokens is not None:
                        kwargs["max_tokens"] = self.max_tokens
                    resp = self._client.chat.completions.create(
                        model=self.model,
                        messages=messages,  # type: ignore[arg-type]
                        temperature=self.temperature,
                        timeout=timeout,
                        **kwargs,
                    )
                finally:
                    self._slots.release()
            except _DeadlineReached:
                return give_up("timed_out")
            except self._openai.OpenAIError as exc:
                if deadline_at is not None and time.monotonic() >= deadline_at - 1e-3:
                    return give_up("timed_out")
                if self._retryable(exc) and retries < self.max_retries:
                    delay = self._retry_delay(retries, exc)
                    if deadline_at is not None and time.monotonic() + delay >= deadline_at:
                        return give_up("timed_out")  # no attempt could finish in time
                    time.sleep(delay)
                    retries += 1
                    continue
                if on_error == "raise":
                    raise LLMRequestError(
                        f"{what} failed after {attempts} attempt(s) at {self.base_url} (model "
                        f"{self.model!r}): {exc}; check the URL, model name and API key, or pass "
                        "on_error='keep' to keep the order of failed windows"
                    ) from exc
                return give_up("failed")
            break

        answer: str | None = None
        try:
            content = resp.choices[0].message.content
            answer = content if isinstance(content, str) else None
        except (AttributeError, IndexError, TypeError):
            answer = None
        u = getattr(resp, "usage", None)
        pt = int(getattr(u, "prompt_tokens", 0) or 0) if u is not None else 0
        ct = int(getattr(u, "completion_tokens", 0) or 0) if u is not None else 0
        usage = LLMUsage(pt, ct, self.cost(pt, ct), attempts, retries, 0 if u is not None else 1)
        return ChatOutcome("ok", answer, attempts, usage, time.monotonic() - t0)
