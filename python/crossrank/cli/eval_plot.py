"""The NDCG@10-vs-latency plot of ``crossrank eval``.

Latency is on a log axis that starts at the smallest latency measured, labelled in plain milliseconds
(1, 2, 5, 10, ...; never "0" or 10^0). Rows are drawn three ways:

- full pipelines (first stage + rerank): filled circles;
- re-ranking-only rows (a given run reranked: the first stage's latency is not in the figure): hollow
  diamonds;
- a given run (no latency measured at all): a dashed horizontal line at its NDCG@10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LATENCY_LABEL = "mean latency per query (ms, log scale)"


def _ms_label(value: float, _pos: object = None) -> str:
    """Plain milliseconds: 0.5, 1, 20, 1000 (no exponents, no trailing zeros)."""
    return f"{value:g}" if value < 1e5 else f"{value:.0f}"


def latency_limits(latencies: Sequence[float]) -> tuple[float, float]:
    """Axis limits: the smallest latency measured, and the largest times 3 (room for the labels).

    Raises
    ------
    ValueError
        No positive latency to place on a log axis.
    """
    pos = [x for x in latencies if x > 0 and math.isfinite(x)]
    if not pos:
        raise ValueError("no positive latency to plot")
    lo, hi = min(pos), max(pos)
    return lo, max(hi * 3.0, lo * 10.0)


def make_figure(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """Draw the rows (``crossrank eval`` report rows) on a new Agg figure and return it.

    Parameters
    ----------
    rows : sequence of dict
        Each with ``name``, ``metrics["nDCG@10"]``, ``latency_ms`` (None or ``{"mean": ...}``) and
        ``rerank_only`` (its latency excludes the first stage).
    title : str
        The figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=(6.5, 4.2))
    FigureCanvasAgg(fig)  # no pyplot: no global figure state, no GUI backend
    ax = fig.add_subplot(1, 1, 1)
    timed = [r for r in rows if r.get("latency_ms") and r["latency_ms"]["mean"] > 0]
    given = [r for r in rows if not r.get("latency_ms")]
    styles: dict[bool, dict[str, Any]] = {
        False: {"marker": "o", "label": "full pipeline", "facecolors": "C0", "edgecolors": "C0"},
        True: {
            "marker": "D",
            "label": "re-ranking only (first-stage latency not included)",
            "facecolors": "none",
            "edgecolors": "C3",
        },
    }
    for flag, style in styles.items():
        group = [r for r in timed if bool(r.get("rerank_only")) == flag]
        if not group:
            continue
        xs = [r["latency_ms"]["mean"] for r in group]
        ys = [r["metrics"]["nDCG@10"] for r in group]
        ax.scatter(xs, ys, s=40, linewidths=1.5, zorder=3, clip_on=False, **style)
        for r, x, y in zip(group, xs, ys, strict=True):
            ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for i, r in enumerate(given):
        y = r["metrics"]["nDCG@10"]
        ax.axhline(
            y,
            color="0.45",
            linestyle="--",
            linewidth=1.0,
            zorder=1,
            label="given run (latency not measured)" if i == 0 else None,
        )
        ax.annotate(
            r["name"],
            (0.01, y),
            xycoords=("axes fraction", "data"),
            textcoords="offset points",
            xytext=(2, 3),
            fontsize=8,
            color="0.3",
        )
    if timed:
        ax.set_xscale("log")
        ax.set_xlim(*latency_limits([r["latency_ms"]["mean"] for r in timed]))
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_ms_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xticks([])
    ax.margins(y=0.15)
    ax.set_xlabel(LATENCY_LABEL)
    ax.set_ylabel("NDCG@10")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig


def visible_tick_labels(fig: Any) -> list[str]:
    """The x tick labels a reader sees (inside the axis limits), read back from a drawn figure."""
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi and t.get_text()]


def save_plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> bool:
    """Write the plot to ``path``; False (and nothing written) when matplotlib is missing.

    Parameters
    ----------
    rows : sequence of dict
        As :func:`make_figure`.
    path : Path
        The PNG to write.
    title : str
        The figure title.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    fig = make_figure(rows, title)
    fig.savefig(path, dpi=120)
    return True
