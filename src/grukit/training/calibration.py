"""Split-conformal calibration of a forecast's outer-quantile interval.

The scores are metrics.conformal_margin's s = max(lo − y, y − hi), pooled over the H
steps of every calibration window (with validation = H there is one validation window,
so a margin per step would rest on one point), on the log scale when the series is
logged (its errors grow with the level: the interval becomes lo·e^{−q̂}, hi·e^{q̂}) and
in the series' units otherwise.

Where the calibration windows come from (``ForecastConfig.calibration``):

- ``"validation"``: the kept model's forecasts of the validation windows. The same
  points chose the kept epoch, so their scores are optimistic: the margin applied is
  max(q̂, 0) (widen only).
- ``"rolling"``: the validation windows above pooled with rolling-origin refits
  (rolling.py): for each of ``calibration_folds`` origins before the test part, a model
  trained on the series up to that origin (with its own validation part for epoch
  selection) forecasts the H points after it. Those points took no part in that model's
  training or selection, so their scores are honest out-of-sample errors, if of a model
  trained on less data (pessimistic, where the validation windows are optimistic); q̂ of
  the pooled scores is applied as it is (narrowing too).

Letters: N windows, H horizon, Q quantiles.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .metrics import apply_margin, conformal_margin
from .run_dir import RunDir

__all__ = ["alpha_of", "calibrate", "calibrated_interval", "no_calibration", "stored_calibration"]

METHODS = ("split-conformal",)
SOURCES = ("validation", "rolling")


def alpha_of(levels: np.ndarray) -> float:
    """1 − the probability between the outer quantile levels (0.2 for 10%–90%)."""
    qs = np.asarray(levels, dtype=np.float64)
    return round(1.0 - float(qs[-1] - qs[0]), 6)


def no_calibration(alpha: float, note: str, **extra: Any) -> dict[str, Any]:
    """summary.json's "calibration" when nothing is calibrated: the raw interval."""
    return {"method": "none", "alpha": alpha, **extra, "note": note}


def calibrate(
    q: np.ndarray, y: np.ndarray, alpha: float, *, log: bool, source: str
) -> dict[str, Any]:
    """The calibration of quantile forecasts q (N, H, Q) of actuals y (N, H) from
    ``source`` ("validation": widen only; "rolling": q̂ as it is; see the module
    docstring), summary.json's "calibration". Too few points for the level: method
    "none", the raw interval."""
    if source not in SOURCES:
        raise ValueError(f"calibrate: expected source in {list(SOURCES)}, got {source!r}")
    q, y = np.asarray(q, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if q.ndim != 3 or y.shape != q.shape[:2]:
        raise ValueError(
            f"calibrate: expected q (N, H, Q) and y (N, H), got {q.shape} and {y.shape}"
        )
    f = np.log if log else np.asarray
    margin = conformal_margin(f(q[..., 0]), f(q[..., -1]), f(y), alpha)
    inside = float(np.mean((y >= q[..., 0]) & (y <= q[..., -1])))
    if not math.isfinite(margin):
        return no_calibration(
            alpha,
            f"{y.size} {source} points are too few to calibrate a {1 - alpha:.0%} interval: "
            "the interval is the quantile head's raw one",
            points=int(y.size),
        )
    applied = max(margin, 0.0) if source == "validation" else margin
    return {"method": "split-conformal", "source": source, "alpha": alpha,
            "scale": "log" if log else "units", "margin": applied, "conformal_margin": margin,
            "points": int(y.size), "windows": int(y.shape[0]),
            f"{source}_coverage_raw": inside}  # fmt: skip


def calibrated_interval(
    q: np.ndarray, median_index: int, calibration: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The interval (lower, upper) (H,) each of quantile forecasts q (H, Q) under a stored
    ``calibration`` (``calibrate``'s dict; None or method "none": the raw outer quantiles).
    The bounds never cross the median (metrics.apply_margin)."""
    lo, med, hi = q[:, 0], q[:, median_index], q[:, -1]
    if not calibration or calibration.get("method") != "split-conformal":
        return lo, hi
    margin = float(calibration["margin"])
    if calibration["scale"] == "log":
        a, b = apply_margin(np.log(lo), np.log(med), np.log(hi), margin)
        return np.exp(a), np.exp(b)
    return apply_margin(lo, med, hi, margin)


def stored_calibration(run: RunDir, owner: str = "predict_forecast") -> dict[str, Any] | None:
    """The calibration summary.json stores (``calibrate``), checked; None when the run has
    no summary (interrupted) or nothing was calibrated: the raw interval."""
    if not run.summary.is_file():
        return None
    cal = json.loads(run.summary.read_text()).get("calibration")
    if cal is None or (isinstance(cal, dict) and cal.get("method") == "none"):
        return None
    ok = (
        isinstance(cal, dict)
        and cal.get("method") in METHODS
        and cal.get("scale") in ("log", "units")
        and isinstance(cal.get("margin"), (int, float))
        and math.isfinite(cal["margin"])
    )
    if not ok:
        raise ValueError(
            f"{owner}: expected a split-conformal calibration in {run.summary}, got {cal!r}"
        )
    return dict(cal)
