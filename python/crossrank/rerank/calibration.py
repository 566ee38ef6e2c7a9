"""Calibrated relevance scores: map a reranker's logits to probabilities a user can threshold.

A cross-encoder's raw output is a logit ``x``; ``sigmoid(x)`` is its activation (``relevance_score``
without calibration). Fitted on labelled (logit, relevant?) pairs, a :class:`Calibrator` returns

    p = sigmoid(a * x + b),   a > 0

* temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): ``b = 0``,
  ``a = 1 / T``;
* Platt scaling (Platt, "Probabilistic Outputs for Support Vector Machines", 1999): ``a`` and ``b`` free,
  fitted to Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` by default.

Both minimise the mean log-loss (binary cross-entropy) with Newton's method in float64 (the loss is
convex in ``(a, b)``), with a backtracking line search. ``a > 0`` keeps the scores monotone in the logits,
so calibration never changes a ranking; a fit that would need ``a <= 0`` (labels anti-correlated with the
logits) raises instead of inverting the order. The fitted parameters are saved as a small JSON file
(``calibration.json`` beside the model).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._common import atomic_write_json, manifest_body, manifest_field, read_manifest_file
from ..errors import StateError

__all__ = ["CALIBRATION_FILE", "Calibrator", "log_loss", "relevance_score", "sigmoid"]

CALIBRATION_FILE = "calibration.json"
_FORMAT = "crossrank-calibration"
_VERSION = 1


def sigmoid(x: Any) -> np.ndarray:
    """Return ``1 / (1 + exp(-x))`` in float64 without overflow.

    Parameters
    ----------
    x : array_like of float, any shape

    Returns
    -------
    numpy.ndarray of float64, same shape as ``x``, values in [0, 1]
    """
    z = np.asarray(x, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softplus(z: np.ndarray) -> np.ndarray:
    # log(1 + exp(z)) computed stably
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _bce(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    # softplus(z) - t z written so that a z that overflowed to +-inf gives inf or 0, never inf - inf
    with np.errstate(invalid="ignore"):
        pos = np.where(t > 0, t * _softplus(-z), 0.0)
        neg = np.where(t < 1, (1.0 - t) * _softplus(z), 0.0)
    return pos + neg


def _check_pairs(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(logits)
    y = np.asarray(labels)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"logits and labels must be 1-D (one value per pair), got shapes {x.shape} and {y.shape}"
        )
    if x.shape != y.shape:
        raise ValueError(f"logits and labels must have the same length, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("need at least one (logit, label) pair, got none")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"logits must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("logits must be finite; drop or fix the NaN/inf entries")
    if y.dtype == bool:
        y = y.astype(np.float64)
    elif not np.issubdtype(y.dtype, np.number) or not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0/1 (or bool); for graded qrels pass `grades > 0`")
    return x, y.astype(np.float64)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def log_loss(logits: Any, labels: Any, *, a: float = 1.0, b: float = 0.0) -> float:
    """Return the mean binary log-loss of ``sigmoid(a * logits + b)`` against 0/1 ``labels``.

    Computed from the logits (``softplus(z) - y * z``), so saturated probabilities cost their true
    (large, finite) loss instead of ``log(0)``.

    Parameters
    ----------
    logits : array_like of float, shape (n,)
    labels : array_like of {0, 1} or bool, shape (n,)
    a, b : float
        Slope and intercept applied to the logits.
    """
    x, y = _check_pairs(logits, labels)
    with np.errstate(over="ignore"):
        return float(np.mean(_bce(a * x + b, y)))


def _newton(x: np.ndarray, t: np.ndarray, *, fit_intercept: bool, max_iter: int = 100) -> tuple[float, float]:
    """Minimise mean(softplus(a x + b) - t (a x + b)) over a (and b); float64 Newton + backtracking."""
    design = np.stack([x, np.ones_like(x)], axis=1) if fit_intercept else x[:, None]
    w = np.zeros(design.shape[1])
    w[0] = 1.0  # start from the model's own activation

    def loss(v: np.ndarray) -> float:
        with np.errstate(over="ignore"):
            return float(np.mean(_bce(design @ v, t)))

    f = loss(w)
    n = x.size
    for _ in range(max_iter):
        p = sigmoid(design @ w)
        grad = design.T @ (p - t) / n
        hess = (design.T * (p * (1.0 - p))) @ design / n
        hess += 1e-12 * np.eye(len(w))  # keeps a separable or constant set solvable
        step = np.linalg.solve(hess, grad)
        lr = 1.0
        while True:
            w_new = w - lr * step
            f_new = loss(w_new)
            if f_new <= f + 1e-4 * lr * float(grad @ -step) or lr < 1e-10:
                break
            lr *= 0.5
        if f_new > f:  # no step length helps: at the optimum up to rounding
            break
        converged = abs(f - f_new) <= 1e-12 * max(1.0, abs(f)) and float(np.max(np.abs(lr * step))) < 1e-9
        w, f = w_new, f_new
        if converged:
            break
    return float(w[0]), float(w[1]) if fit_intercept else 0.0


@dataclass(frozen=True)
class Calibrator:
    """``p = sigmoid(a * logit + b)`` with ``a > 0``: a monotone map from logits to [0, 1].

    Use :meth:`fit` to fit one; the attributes below are also the constructor's parameters.

    Attributes
    ----------
    method : {"identity", "temperature", "platt"}
        How it was made: ``identity`` (not fitted; by default ``a=1, b=0``), ``temperature``
        (slope only, ``b=0``) or ``platt`` (slope and intercept).
    a, b : float
        Slope (``1 / temperature``, finite and > 0) and intercept (finite).
    n_pairs : int
        Pairs it was fitted on (0 for identity).
    log_loss_before, log_loss_after : float or None
        Mean log-loss on the fitting pairs with ``sigmoid(logit)`` and with this calibration; None
        when it was not fitted (identity, or built by hand).

    Raises
    ------
    ValueError
        An unknown ``method``, or ``a`` / ``b`` not finite or ``a <= 0``.

    Notes
    -----
    Thread safety: a Calibrator is immutable (a frozen dataclass), so one instance may be shared
    across threads.
    """

    method: Literal["identity", "temperature", "platt"] = "identity"
    a: float = 1.0
    b: float = 0.0
    n_pairs: int = 0
    log_loss_before: float | None = None
    log_loss_after: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ("identity", "temperature", "platt"):
            raise ValueError(f"method must be 'identity', 'temperature' or 'platt', got {self.method!r}")
        if not (math.isfinite(self.a) and self.a > 0 and math.isfinite(self.b)):
            raise ValueError(
                f"a calibrator needs a finite slope a > 0 (monotone scores) and a finite b, got a={self.a}, b={self.b}"
            )

    @property
    def temperature(self) -> float:
        """``1 / a``."""
        return 1.0 / self.a

    @classmethod
    def fit(
        cls,
        logits: Any,
        labels: Any,
        *,
        method: Literal["temperature", "platt"] = "platt",
        platt_targets: bool = True,
    ) -> Calibrator:
        """Fit temperature or Platt scaling on labelled pairs.

        Parameters
        ----------
        logits : array_like of float, shape (n,)
            The model's raw outputs for (query, passage) pairs.
        labels : array_like of {0, 1} or bool, shape (n,)
            1 when the passage is relevant (for graded qrels pass ``grades > 0``).
        method : {"temperature", "platt"}
        platt_targets : bool
            Platt only: fit to Platt's smoothed targets instead of the raw 0/1 labels (less over-confident
            on small sets).

        Returns
        -------
        Calibrator

        Raises
        ------
        ValueError
            Shapes differ, no pairs, non-finite logits, labels not 0/1, only one class present, or the
            labels fall as the logits rise (a fit would invert the ranking).
        TypeError
            Logits are not real numbers.
        """
        if method not in ("temperature", "platt"):
            raise ValueError(f"method must be 'temperature' or 'platt', got {method!r}")
        x, y = _check_pairs(logits, labels)
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            raise ValueError(
                f"need both relevant and non-relevant pairs to calibrate, got {n_pos} relevant and "
                f"{n_neg} non-relevant; add the model's non-relevant candidates (or relevant ones)"
            )
        t = y
        if method == "platt" and platt_targets:
            t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        with np.errstate(all="ignore"):  # an overflow shows as non-finite a, b: handled below
            a, b = _newton(x, t, fit_intercept=method == "platt")
        scale = float(np.max(np.abs(x)))
        if not (math.isfinite(a) and math.isfinite(b)) and scale > 1.0:
            # Logits near the float64 limit overflow a x + b: fit on x / scale, then undo the scale.
            a, b = _newton(x / scale, t, fit_intercept=method == "platt")
            a /= scale
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(
                f"the fit did not converge to finite parameters (a={a}, b={b}) on logits in "
                f"[{x.min():.4g}, {x.max():.4g}]; rescale the logits to a moderate range"
            )
        if method == "temperature" and not a > 0:
            raise ValueError(
                f"temperature scaling needs logits whose sign marks relevance (sigmoid(0) = 0.5), but these "
                f"would need a negative slope ({a:.4g}): the logits are not centred (e.g. cosine "
                "similarities, all positive); use method='platt', which also fits an intercept"
            )
        if not (a > 0 and math.isfinite(a) and math.isfinite(b)):
            raise ValueError(
                f"the labels do not rise with the logits (fitted slope {a:.4g}); calibrating would invert "
                "the ranking. Check that logits and labels are aligned and that higher logits mean relevant"
            )
        return cls(
            method=method,
            a=a,
            b=b,
            n_pairs=int(x.size),
            log_loss_before=log_loss(x, y),
            log_loss_after=log_loss(x, y, a=a, b=b),
        )

    def __call__(self, logits: Any) -> np.ndarray:
        """Return calibrated relevance probabilities.

        Parameters
        ----------
        logits : array_like of float, any shape

        Returns
        -------
        numpy.ndarray of float64, same shape, values in [0, 1], non-decreasing in the logits
        """
        with np.errstate(over="ignore"):  # a * logit beyond float64 is +-inf: probability 1 or 0
            return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    # ----------------------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready description (with the format tag and ``format_version``)."""
        return manifest_body(
            _FORMAT,
            _VERSION,
            method=self.method,
            a=self.a,
            b=self.b,
            # Derived and diagnostic fields: a non-finite value (1 / a for a subnormal a, the loss of
            # logits near the float64 limit) is stored as null, never as JSON's non-standard Infinity /
            # NaN that strict readers refuse. Loading reads only a and b.
            temperature=_finite_or_none(self.temperature),
            n_pairs=self.n_pairs,
            log_loss_before=_finite_or_none(self.log_loss_before),
            log_loss_after=_finite_or_none(self.log_loss_after),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the calibration as JSON; a directory (a model's) gets ``calibration.json`` inside.

        The file is written to a temporary sibling and renamed over the old one, so a reader (or
        a kill) never sees half a file.

        Parameters
        ----------
        path : path-like
            A file, or a directory to hold ``calibration.json``.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        p = Path(path)
        if p.is_dir():
            p = p / CALIBRATION_FILE
        atomic_write_json(p, self.to_dict())
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibrator:
        """Read a calibration written by :meth:`save` (a file, or a directory holding ``calibration.json``).

        Files of format version 1 written before the ``format_version`` key (``"version": 1``)
        still load.

        Parameters
        ----------
        path : path-like
            The file, or the directory holding ``calibration.json``.

        Raises
        ------
        FileNotFoundError
            No such file.
        StateError
            The file is not valid JSON, not a crossrank calibration, of a newer version, or holds
            invalid parameters (the message names the file and the field).
        """
        p = Path(path)
        if p.is_dir():
            p = p / CALIBRATION_FILE
        data, _ = read_manifest_file(p, _FORMAT, _VERSION, label="calibration")
        where = f"{p}: invalid calibration"
        method = manifest_field(data, "method", str, where)
        a = manifest_field(data, "a", (int, float), where)
        b = manifest_field(data, "b", (int, float), where)
        n_pairs = manifest_field(data, "n_pairs", int, where) if "n_pairs" in data else 0
        losses = []
        for key in ("log_loss_before", "log_loss_after"):
            value = data.get(key)
            if value is not None:
                value = float(manifest_field(data, key, (int, float), where))
            losses.append(value)
        try:
            return cls(
                method=method,
                a=float(a),
                b=float(b),
                n_pairs=n_pairs,
                log_loss_before=losses[0],
                log_loss_after=losses[1],
            )
        except ValueError as e:
            raise StateError(f"{where}: {e}") from None


def relevance_score(logits: Any, calibrator: Calibrator | None = None) -> np.ndarray:
    """Return relevance in [0, 1]: ``sigmoid(logits)``, or the calibrated probability when given one.

    Parameters
    ----------
    logits : array_like of float, any shape
    calibrator : Calibrator, optional

    Returns
    -------
    numpy.ndarray of float64, same shape as ``logits``; monotone (non-decreasing) in the logits
    """
    return sigmoid(logits) if calibrator is None else calibrator(logits)
