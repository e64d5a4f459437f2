"""PNG plots of what people would rather look at than read: curves and forecasts.

Drawn with matplotlib's Agg backend (no screen needed) and written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402

__all__ = ["plot_curves", "plot_forecast"]


def _save(fig, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def plot_curves(
    path: str | os.PathLike,
    curves: Mapping[str, Sequence[float]],
    *,
    x: Sequence[float] | None = None,
    xlabel: str = "epoch",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
) -> None:
    """One line per named curve (e.g. {"train": [...], "validation": [...]}) against x
    (default 1, 2, …)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, ys in curves.items():
        xs = list(x) if x is not None else list(range(1, len(ys) + 1))
        ax.plot(xs[: len(ys)], list(ys), label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_forecast(
    path: str | os.PathLike,
    history: tuple[Sequence, Sequence[float]],
    actual: tuple[Sequence, Sequence[float]] | None,
    forecast: tuple[Sequence, Sequence[float]],
    *,
    interval: tuple[Sequence[float], Sequence[float]] | None = None,
    baselines: Mapping[str, Sequence[float]] | None = None,
    title: str = "",
    ylabel: str = "",
) -> None:
    """History, test actuals, the forecast and its prediction interval.

    Each series is (x values, y values); x may be dates or numbers. ``interval`` is
    (lower, upper) on the forecast's x; ``baselines`` are drawn dashed on it too.
    """
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    ax.plot(history[0], history[1], color="0.35", lw=1.2, label="history")
    if actual is not None:
        ax.plot(actual[0], actual[1], color="black", lw=1.6, label="actual")
    if interval is not None:
        ax.fill_between(
            forecast[0], interval[0], interval[1], color="tab:blue", alpha=0.2, label="80% interval"
        )
    for name, ys in (baselines or {}).items():
        ax.plot(forecast[0], ys, ls="--", lw=1.0, label=name)
    ax.plot(forecast[0], forecast[1], color="tab:blue", lw=1.8, label="GRU forecast")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    _save(fig, path)
