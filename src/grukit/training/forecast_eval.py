"""What a trained forecaster (or an ensemble of them) scores: the test forecast against
the baselines, its interval's coverage and pinball loss, the baselines' validation
errors and the warnings they call for, and forecast.png.

Letters: H horizon, Q quantiles, N windows, K models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._extras import MissingExtraError
from ..data.series import Series
from .calibration import calibrated_interval
from .forecast_config import ForecastConfig
from .forecast_job import Prepared
from .metrics import (
    forecast_metrics,
    holt_winters,
    interval_metrics,
    mase_scale,
    naive,
    point_interval_metrics,
    seasonal_naive,
)
from .plots import plot_forecast
from .run_dir import RunDir

__all__ = [
    "BASELINE_LABELS",
    "baseline_forecasts",
    "baseline_scores",
    "combine",
    "plot_run",
    "summary_core",
    "test_report",
    "validation_baselines",
    "validation_mae",
    "warnings_for",
]

#: How the baselines are named in plots and reports.
BASELINE_LABELS = {
    "naive": "naive",
    "seasonal_naive": "seasonal naive",
    "holt_winters": "Holt-Winters",
}


def combine(q: np.ndarray) -> np.ndarray:
    """An ensemble's forecast: the median over its K models of each quantile at each
    step, q (K, ..., Q) → (..., Q). (Medians of non-decreasing vectors are
    non-decreasing, so the quantiles still never cross.)"""
    return np.asarray(np.median(np.asarray(q, dtype=np.float64), axis=0))


def baseline_forecasts(
    history: np.ndarray, horizon: int, c: ForecastConfig
) -> tuple[dict[str, np.ndarray], list[str]]:
    """naive, seasonal naive and Holt-Winters forecasts (H,) from ``history`` (T,), and
    notes (Holt-Winters skipped: statsmodels missing, or its fit failed)."""
    base = {
        "naive": naive(history, horizon),
        "seasonal_naive": seasonal_naive(history, horizon, c.season),
    }
    notes = []
    try:  # fitted on everything before the forecast, as naive and seasonal naive are
        base["holt_winters"] = holt_winters(history, horizon, c.season, multiplicative=c.log)
    except (MissingExtraError, ValueError) as err:
        notes.append(f"Holt-Winters baseline skipped: {err}")
    return base, notes


def baseline_scores(
    actual: np.ndarray, base: dict[str, np.ndarray], scale: float, levels: np.ndarray
) -> dict[str, dict[str, float]]:
    """Each baseline's point metrics and its pinball/CRPS as a forecast of every quantile."""
    return {
        k: {**forecast_metrics(actual, v, scale), **point_interval_metrics(actual, v, levels)}
        for k, v in base.items()
    }


def test_report(
    q: np.ndarray,
    actual: np.ndarray,
    levels: np.ndarray,
    median_index: int,
    calibration: dict[str, Any] | None,
    scale: float,
) -> dict[str, Any]:
    """summary.json's "test" of quantile forecasts q (H, Q) of ``actual`` (H,): MAE … MASE
    of the median, then coverage, pinball and CRPS of the calibrated interval and (with
    "_raw") of the raw one; plus the bounds (H,) under "lower", "upper"."""
    lo, hi = calibrated_interval(q, median_index, calibration)
    q_cal = q.copy()
    q_cal[:, 0], q_cal[:, -1] = lo, hi
    raw = interval_metrics(actual, q, levels)
    return {**forecast_metrics(actual, q[:, median_index], scale),
            **interval_metrics(actual, q_cal, levels),
            **{f"{k}_raw": v for k, v in raw.items()}, "lower": lo, "upper": hi}  # fmt: skip


def summary_core(
    q: np.ndarray,
    p: Prepared,
    c: ForecastConfig,
    s: Series,
    calibration: dict[str, Any],
    levels: np.ndarray,
    median_index: int,
    baselines: tuple[dict[str, np.ndarray], list[str]],
) -> dict[str, Any]:
    """summary.json's figures of a test forecast q (H, Q) (one model's or an ensemble's):
    the test metrics, the baselines' (``baseline_forecasts`` from everything before test),
    the forecast."""
    y, t0, h = s.values[:, 0], p.split.test_start, c.horizon
    actual, scale = y[t0:], mase_scale(y[: p.split.train_end], c.season)
    test = test_report(q, actual, levels, median_index, calibration, scale)
    lo, hi = test.pop("lower"), test.pop("upper")
    base, notes = baselines
    labels = [s.timeline.to_text(o) for o in s.timeline.ordinals[t0:]] if s.timeline else None
    return {
        "dataset": s.name,
        "target": s.columns[0],
        "test": test,
        "baselines": baseline_scores(actual, base, scale, levels),
        "notes": list(notes),
        "horizon": h,
        "test_points": int(actual.shape[0]),
        "season": c.season,
        "mase_scale": scale,
        "interval": [round(float(levels[0]), 6), round(float(levels[-1]), 6)],
        "calibration": calibration,
        "split": {
            "train": p.split.train_end,
            "validation": p.split.test_start - p.split.train_end,
            "test": h,
        },
        "data": s.fill_report(),
        "frequency": s.timeline.label() if s.timeline else "index",
        "forecast": {
            "time": labels if labels else list(range(t0, t0 + h)),
            "actual": actual.tolist(),
            "median": q[:, median_index].tolist(),
            "lower": lo.tolist(),
            "upper": hi.tolist(),
            "lower_raw": q[:, 0].tolist(),
            "upper_raw": q[:, -1].tolist(),
            **{k: v.tolist() for k, v in base.items()},
        },
    }


def validation_baselines(p: Prepared, c: ForecastConfig) -> dict[str, float]:
    """The baselines' validation MAE, computed as the GRU's is (ForecastJob.validate): the
    mean over validation windows of the MAE of the forecast from everything before it."""
    starts = p.val_starts
    if not starts.size:
        return {}
    y, h = p.series.values[:, 0], c.horizon

    def mae(forecasts: list[np.ndarray]) -> float:
        return float(
            np.mean(
                [np.abs(f - y[t : t + h]).mean() for f, t in zip(forecasts, starts, strict=True)]
            )
        )

    return {
        "naive": mae([naive(y[:t], h) for t in starts]),
        "seasonal_naive": mae([seasonal_naive(y[:t], h, c.season) for t in starts]),
    }


def validation_mae(q: np.ndarray, actual: np.ndarray, median_index: int) -> float | None:
    """The validation MAE of quantile forecasts q (N, H, Q) of actual (N, H): the mean
    over windows of each window's MAE (None without windows)."""
    if not actual.size:
        return None
    med = q[..., median_index]  # (N, H)
    return float(np.mean([np.abs(m - a).mean() for m, a in zip(med, actual, strict=True)]))


def warnings_for(summary: dict[str, Any]) -> list[str]:
    """Plain statements of what the user must know: a baseline beat the GRU on validation."""
    gru, out = summary.get("val_mae"), []
    for name, mae in summary["validation_baselines"].items():
        if gru is not None and mae < gru:
            out.append(
                f"the GRU's validation MAE ({gru:.4g}) is worse than {name.replace('_', ' ')}'s "
                f"({mae:.4g}) on the same validation windows: on this series "
                f"{name.replace('_', ' ')} is the better forecast (more epochs, another lookback "
                "or transforms may help)"
            )
    return out


def plot_run(run: RunDir, p: Prepared, c: ForecastConfig, summary: dict[str, Any],
             what: str = "GRU") -> None:  # fmt: skip
    """forecast.png: recent history, test actuals, the forecast, its interval, baselines."""
    s, t0 = p.series, p.split.test_start
    xs, y = s.times(), s.values[:, 0]
    first = max(0, t0 - max(4 * c.season, 3 * c.horizon))  # recent history only
    f = summary["forecast"]
    plot_forecast(
        run.file("forecast.png"),
        history=(xs[first:t0], y[first:t0]),
        actual=(xs[t0:], y[t0:]),
        forecast=(xs[t0:], f["median"]),
        interval=(f["lower"], f["upper"]),
        interval_quantiles=(summary["interval"][0], summary["interval"][1]),
        baselines={BASELINE_LABELS[name]: f[name] for name in summary["baselines"]},
        title=f"{s.name}: test MAE {what} {summary['test']['mae']:.3g}, "
        + ", ".join(
            f"{BASELINE_LABELS[k]} {v['mae']:.3g}"
            for k, v in summary["baselines"].items()
            if k != "naive"
        ),  # fmt: skip
        ylabel=f"{s.columns[0]} ({s.unit})" if s.unit else s.columns[0],
    )
