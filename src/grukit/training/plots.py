"""PNG plots of what people would rather look at than read: curves and forecasts.

Drawn on a ``matplotlib.figure.Figure`` (rendered by Agg: no screen needed, and no change
to pyplot's global backend) and written atomically. matplotlib comes with the ``cli``
extra (``pip install 'grukit[cli]'``) and is imported on first use.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._extras import require
from .checkpoint import atomic_write

__all__ = ["interval_label", "plot_curves", "plot_forecast"]


#: Values along an axis: a sequence or a NumPy array.
Points = Sequence[Any] | np.ndarray[Any, Any]


def _figure(what: str, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A new (figure, axes), matplotlib imported on first use; ``what`` names the caller."""
    figure = require("matplotlib.figure", "cli", what)
    fig = figure.Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buf.getvalue())


def interval_label(quantiles: tuple[float, float]) -> str:
    """The legend label of the band between two quantile levels: the probability it holds,
    e.g. (0.1, 0.9) → "80% interval", (0.025, 0.975) → "95% interval"."""
    lo, hi = quantiles
    if not 0 < lo < hi < 1:
        raise ValueError(
            f"plot_forecast: expected interval quantiles 0 < lower < upper < 1, got {quantiles}"
        )
    return f"{(hi - lo) * 100:.3g}% interval"


def plot_curves(
    path: str | os.PathLike[str],
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
    fig, ax = _figure("grukit.training.plot_curves", (6.4, 4.0))
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


def forecast_figure(
    history: tuple[Points, Points],
    actual: tuple[Points, Points] | None,
    forecast: tuple[Points, Points],
    *,
    interval: tuple[Points, Points] | None = None,
    interval_quantiles: tuple[float, float] = (0.1, 0.9),
    baselines: Mapping[str, Points] | None = None,
    title: str = "",
    ylabel: str = "",
) -> Any:
    """The matplotlib Figure ``plot_forecast`` writes (arguments as there)."""
    label = interval_label(interval_quantiles) if interval is not None else ""
    fig, ax = _figure("grukit.training.plot_forecast", (8.0, 4.2))
    ax.plot(history[0], history[1], color="0.35", lw=1.2, label="history")
    if actual is not None:
        ax.plot(actual[0], actual[1], color="black", lw=1.6, label="actual")
    if interval is not None:
        ax.fill_between(
            forecast[0], interval[0], interval[1], color="tab:blue", alpha=0.2, label=label
        )
    for name, ys in (baselines or {}).items():
        ax.plot(forecast[0], ys, ls="--", lw=1.0, label=name)
    ax.plot(forecast[0], forecast[1], color="tab:blue", lw=1.8, label="GRU forecast")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def plot_forecast(
    path: str | os.PathLike[str],
    history: tuple[Points, Points],
    actual: tuple[Points, Points] | None,
    forecast: tuple[Points, Points],
    *,
    interval: tuple[Points, Points] | None = None,
    interval_quantiles: tuple[float, float] = (0.1, 0.9),
    baselines: Mapping[str, Points] | None = None,
    title: str = "",
    ylabel: str = "",
) -> None:
    """History, test actuals, the forecast and its prediction interval.

    Each series is (x values, y values); x may be dates or numbers. ``interval`` is
    (lower, upper) on the forecast's x, the forecast's quantiles at the levels
    ``interval_quantiles`` (lower, upper), which name it in the legend ((0.1, 0.9): "80%
    interval"); ``baselines`` are drawn dashed on the forecast's x too.
    """
    fig = forecast_figure(
        history,
        actual,
        forecast,
        interval=interval,
        interval_quantiles=interval_quantiles,
        baselines=baselines,
        title=title,
        ylabel=ylabel,
    )
    _save(fig, path)
