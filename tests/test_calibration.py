"""Temperature and Platt scaling: fits against brute-force references, held-out log-loss, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crossrank.errors import StateError
from crossrank.rerank.calibration import CALIBRATION_FILE, Calibrator, log_loss, relevance_score, sigmoid


def synthetic(n: int, *, a: float, b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true relevance probability is sigmoid(a x + b): sigmoid(x) is miscalibrated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, size=n)
    p = 1.0 / (1.0 + np.exp(-(a * x + b)))
    return x, (rng.random(n) < p).astype(np.int64)


def reference_loss(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """The textbook formula with clipped probabilities (float64)."""
    p = np.clip(1.0 / (1.0 + np.exp(-(a * x + b))), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_sigmoid_is_stable() -> None:
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    got = sigmoid(x)
    assert np.all(np.isfinite(got))
    assert got[2] == 0.5
    assert got[0] == 0.0 and got[-1] == 1.0  # noqa: PT018
    np.testing.assert_allclose(sigmoid(x[1:4]), 1 / (1 + np.exp(-x[1:4])), rtol=1e-15)


def test_log_loss_matches_reference() -> None:
    x, y = synthetic(500, a=0.7, b=0.3, seed=1)
    assert log_loss(x, y, a=0.5, b=-0.2) == pytest.approx(reference_loss(x, y, 0.5, -0.2), rel=1e-12)


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_held_out_log_loss_improves(method: str) -> None:
    x, y = synthetic(20_000, a=0.4, b=-1.5 if method == "platt" else 0.0, seed=2)
    cal = Calibrator.fit(x[:10_000], y[:10_000], method=method)  # type: ignore[arg-type]
    before = log_loss(x[10_000:], y[10_000:])
    after = log_loss(x[10_000:], y[10_000:], a=cal.a, b=cal.b)
    assert after < before - 0.05
    assert cal.log_loss_after is not None and cal.log_loss_before is not None  # noqa: PT018
    assert cal.log_loss_after < cal.log_loss_before


def test_temperature_matches_grid_reference() -> None:
    x, y = synthetic(5_000, a=0.4, b=0.0, seed=3)
    cal = Calibrator.fit(x, y, method="temperature")
    assert cal.b == 0.0
    grid = np.linspace(0.05, 2.0, 3901)  # step 5e-4
    best = grid[np.argmin([reference_loss(x, y, a, 0.0) for a in grid])]
    assert cal.a == pytest.approx(best, abs=1e-3)
    assert cal.a == pytest.approx(0.4, abs=0.05)
    assert cal.temperature == pytest.approx(1 / cal.a)


def test_platt_matches_sklearn_and_recovers_truth() -> None:
    x, y = synthetic(20_000, a=0.6, b=-1.0, seed=4)
    cal = Calibrator.fit(x, y, method="platt", platt_targets=False)
    assert cal.a == pytest.approx(0.6, abs=0.05)
    assert cal.b == pytest.approx(-1.0, abs=0.08)
    lm = pytest.importorskip("sklearn.linear_model")
    ref = lm.LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert cal.a == pytest.approx(float(ref.coef_[0, 0]), rel=1e-4)
    assert cal.b == pytest.approx(float(ref.intercept_[0]), abs=1e-4)


def test_platt_targets_soften_small_sets() -> None:
    x = np.array([-2.0, -1.0, 1.0, 2.0])
    y = np.array([0, 0, 1, 1])  # separable: raw targets push the slope far out
    soft = Calibrator.fit(x, y, method="platt")
    hard = Calibrator.fit(x, y, method="platt", platt_targets=False)
    assert soft.a < hard.a
    assert 0.0 < float(soft(np.array([3.0]))[0]) < 1.0


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-50, 50)),
    st.floats(0.01, 10),
    st.floats(-5, 5),
)
def test_calibrated_scores_are_monotone_and_bounded(x: np.ndarray, a: float, b: float) -> None:
    cal = Calibrator("platt", a, b)
    xs = np.sort(x)
    p = cal(xs)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) >= 0)
    assert np.array_equal(relevance_score(xs), sigmoid(xs))
    assert np.array_equal(relevance_score(xs, cal), p)


def test_fit_keeps_ranking() -> None:
    x, y = synthetic(2_000, a=0.3, b=0.5, seed=5)
    cal = Calibrator.fit(x, y)
    assert np.array_equal(np.argsort(cal(x), kind="stable"), np.argsort(x, kind="stable"))


def test_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = synthetic(1_000, a=0.5, b=0.2, seed=6)
    cal = Calibrator.fit(x, y)
    written = cal.save(tmp_path)  # a model directory
    assert written == tmp_path / CALIBRATION_FILE
    assert Calibrator.load(tmp_path) == cal
    assert Calibrator.load(written) == cal
    data = json.loads(written.read_text())
    assert data["format"] == "crossrank-calibration" and data["method"] == "platt"  # noqa: PT018
    other = tmp_path / "t.json"
    Calibrator("temperature", 0.25, 0.0).save(other)
    assert Calibrator.load(other).temperature == 4.0


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        ('{"format": "other"}', "not a crossrank calibration"),
        ('{"format": "crossrank-calibration", "version": 99}', "version"),
        ('{"format": "crossrank-calibration", "version": 1, "method": "platt"}', "invalid calibration"),
        ('{"format": "crossrank-calibration", "version": 1, "method": "platt", "a": -1, "b": 0}', "invalid"),
        ('{"format": "crossrank-calibration", "version": 1, "method": "magic", "a": 1, "b": 0}', "invalid"),
        ("[1, 2]", "not a crossrank calibration"),
    ],
)
def test_load_rejects_bad_files(tmp_path, content: str, match: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(StateError, match=match):
        Calibrator.load(p)


def test_load_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        Calibrator.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("logits", "labels", "err", "match"),
    [
        ([0.1, 0.2], [1], ValueError, "same length"),
        ([], [], ValueError, "at least one"),
        ([[0.1]], [[1]], ValueError, "1-D"),
        ([0.1, np.nan], [0, 1], ValueError, "finite"),
        ([0.1, 0.2], [0, 2], ValueError, "0/1"),
        ([0.1, 0.2], [1, 1], ValueError, "both relevant and non-relevant"),
        (["a", "b"], [0, 1], TypeError, "real numbers"),
        ([1.0, 2.0, 3.0, 4.0], [1, 1, 0, 0], ValueError, "invert the ranking"),
    ],
)
def test_fit_rejects_bad_input(logits: object, labels: object, err: type[Exception], match: str) -> None:
    with pytest.raises(err, match=match):
        Calibrator.fit(logits, labels, method="platt")


def test_temperature_needs_centred_logits() -> None:
    x, y = synthetic(2_000, a=1.0, b=-4.0, seed=8)
    x = np.abs(x) / 10  # all positive, like cosine similarities: a zero intercept needs a < 0
    y = (x > 0.5).astype(np.int64)
    y[:50] = 1 - y[:50]
    with pytest.raises(ValueError, match="use method='platt'"):
        Calibrator.fit(x, y, method="temperature")
    cal = Calibrator.fit(x, y, method="platt")
    assert cal.a > 0
    assert cal.log_loss_after is not None and cal.log_loss_before is not None  # noqa: PT018
    assert cal.log_loss_after < cal.log_loss_before


def test_bad_method_and_parameters() -> None:
    with pytest.raises(ValueError, match="method"):
        Calibrator.fit([0.0, 1.0], [0, 1], method="isotonic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a > 0"):
        Calibrator("platt", 0.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        Calibrator("magic", 1.0, 0.0)  # type: ignore[arg-type]


def test_bool_labels_accepted() -> None:
    x, y = synthetic(500, a=1.0, b=0.0, seed=7)
    assert Calibrator.fit(x, y.astype(bool)) == Calibrator.fit(x, y)


def test_old_version_key_still_loads_and_saves_use_format_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "old.json"
    old.write_text(
        '{"format": "crossrank-calibration", "version": 1, "method": "platt", "a": 2.0, "b": -1.0}'
    )
    cal = Calibrator.load(old)
    assert (cal.a, cal.b, cal.method) == (2.0, -1.0, "platt")
    written = cal.save(tmp_path / "new.json")
    data = json.loads(written.read_text())
    assert data["format_version"] == 1 and "version" not in data  # noqa: PT018
    assert Calibrator.load(written) == cal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "old.json"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            '{"format": "crossrank-calibration", "format_version": 2, "method": "platt", "a": 1, "b": 0}',
            "upgrade",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": "1", "method": "platt", "a": 1, "b": 0}',
            "format version",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": 1, "method": "platt", "a": "1", "b": 0}',
            "field 'a'",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": 1, "method": 3, "a": 1, "b": 0}',
            "field 'method'",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": 1, "method": "platt", "a": 1, "b": 0, "n_pairs": 1.5}',
            "field 'n_pairs'",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": 1, "method": "platt", "a": 1, "b": 0, "log_loss_after": "x"}',
            "log_loss_after",
        ),
        (
            '{"format": "crossrank-calibration", "format_version": 1, "method": "platt", "a": NaN, "b": 0}',
            "invalid calibration",
        ),
        ('"just a string"', "not a crossrank calibration"),
    ],
)
def test_load_type_errors_are_state_errors(tmp_path, content: str, match: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(StateError, match=match):
        Calibrator.load(p)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from crossrank import _common

    Calibrator("temperature", 0.5, 0.0).save(tmp_path)
    before = (tmp_path / CALIBRATION_FILE).read_bytes()

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(_common, "write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        Calibrator("platt", 2.0, 1.0).save(tmp_path)
    assert (tmp_path / CALIBRATION_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CALIBRATION_FILE]
