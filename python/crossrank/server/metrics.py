"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

Only three kinds are needed (counter, gauge, histogram), so a small dependency-free
implementation is kept here instead of ``prometheus_client``. All updates take a lock:
the event loop and the inference thread both record values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelKey = tuple[tuple[str, str], ...]

# Latency buckets in seconds: 1 ms .. 60 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Batch sizes in pairs / requests.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = key + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, lock: threading.Lock) -> None:
        self.name = name
        self.help = help_text
        self._lock = lock

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(self._samples())
        return lines

    def _samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing value per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, lock: threading.Lock) -> None:
        super().__init__(name, help_text, lock)
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def _samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items:
            return [f"{self.name} 0"]
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read from a callback at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, lock: threading.Lock, read: Callable[[], float]) -> None:
        super().__init__(name, help_text, lock)
        self._read = read

    def _samples(self) -> list[str]:
        return [f"{self.name} {_number(self._read())}"]


class Histogram(_Metric):
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, lock: threading.Lock, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text, lock)
        self._bounds = tuple(sorted(buckets))
        self._series: dict[LabelKey, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * (len(self._bounds) + 1), [0.0]))
            # counts[i] is the number of observations in (bounds[i-1], bounds[i]]; the last is +Inf.
            for i, bound in enumerate(self._bounds):
                if value <= bound:
                    counts[i] += 1
                    break
            else:
                counts[-1] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(tuple(sorted(labels.items())))
            return sum(series[0]) if series else 0

    def _samples(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._series.items())
        lines = []
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip((*self._bounds, math.inf), counts, strict=True):
                running += n
                lines.append(f"{self.name}_bucket{_labels(key, (('le', _number(bound)),))} {running}")
            lines.append(f"{self.name}_sum{_labels(key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(key)} {running}")
        return lines


class Metrics:
    """The server's metrics registry.

    Parameters
    ----------
    queue_pairs, queue_requests
        Callbacks giving the current number of pending (not yet started) pairs and requests.
    """

    def __init__(self, *, queue_pairs: Callable[[], float], queue_requests: Callable[[], float]) -> None:
        lock = threading.Lock()
        self.requests = Counter("crossrank_requests_total", "HTTP requests by route and status code.", lock)
        self.request_seconds = Histogram(
            "crossrank_request_duration_seconds",
            "HTTP request latency by route, from first byte to response.",
            lock,
            LATENCY_BUCKETS,
        )
        self.rejected = Counter(
            "crossrank_rejected_total",
            "Requests refused before inference, by reason (queue_full, deadline, cancelled, shutting_down).",
            lock,
        )
        self.batch_pairs = Histogram(
            "crossrank_batch_pairs", "Pairs (or texts) per merged inference step.", lock, SIZE_BUCKETS
        )
        self.batch_requests = Histogram(
            "crossrank_batch_requests", "Requests merged into one inference step.", lock, SIZE_BUCKETS
        )
        self.inference_seconds = Histogram(
            "crossrank_inference_duration_seconds", "Wall time of one inference step.", lock, LATENCY_BUCKETS
        )
        self.queue_wait_seconds = Histogram(
            "crossrank_queue_wait_seconds",
            "Time a request waited before its inference step started.",
            lock,
            LATENCY_BUCKETS,
        )
        self.tokens = Counter("crossrank_tokens_total", "Tokens fed to the model.", lock)
        self.pairs = Counter("crossrank_pairs_total", "Query-document pairs scored.", lock)
        self.truncated = Counter(
            "crossrank_truncated_pairs_total", "Pairs truncated to the model's maximum length.", lock
        )
        self.inference_errors = Counter(
            "crossrank_inference_errors_total", "Inference steps that raised an exception.", lock
        )
        self._all: list[_Metric] = [
            self.requests,
            self.request_seconds,
            self.rejected,
            Gauge("crossrank_queue_pairs", "Pairs waiting for an inference step.", lock, queue_pairs),
            Gauge(
                "crossrank_queue_requests", "Requests waiting for an inference step.", lock, queue_requests
            ),
            self.batch_pairs,
            self.batch_requests,
            self.inference_seconds,
            self.queue_wait_seconds,
            self.tokens,
            self.pairs,
            self.truncated,
            self.inference_errors,
        ]

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format."""
        lines: list[str] = []
        for metric in self._all:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
