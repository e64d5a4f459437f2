"""Forecast metrics and the baselines every forecast is compared with.

For actuals y_t and forecasts ŷ_t over the H test points:

    MAE   = mean |y − ŷ|
    RMSE  = sqrt(mean (y − ŷ)²)
    MAPE  = 100 · mean |y − ŷ| / |y|                       (percent)
    sMAPE = 100 · mean 2|y − ŷ| / (|y| + |ŷ|)              (percent, 0..200)
    MASE  = MAE / mean_{t=m..T_train−1} |y_t − y_{t−m}|    (Hyndman & Koehler 2006)

MASE's scale is the in-sample MAE of the seasonal naive forecast (lag m = the
season) on the training part; MASE < 1 beats that in-sample one-step baseline.

Baselines, from the history y_0..y_{T−1} (T = the forecast origin):
naive ŷ_{T+k} = y_{T−1}; seasonal naive ŷ_{T+k} = y_{T−m+(k mod m)}, i.e. the last
season repeated when the horizon is longer than the season. Holt-Winters (``holt_winters``,
statsmodels' ``ExponentialSmoothing``: additive trend, additive or multiplicative season)
is fitted on the same history.

For an interval of quantile forecasts q_{t,j} at levels τ_j (j = 1..Q):

    pinball = mean_t mean_j ρ_{τ_j}(y_t − q_{t,j}),   ρ_τ(u) = max(τu, (τ−1)u)
    CRPS   ≈ 2 · pinball

CRPS(F, y) = ∫₀¹ 2ρ_τ(y − F⁻¹(τ)) dτ; the approximation replaces the integral by the
mean over the Q levels (Gneiting & Raftery 2007; a coarse rule with Q = 3). A point
forecast is every quantile at once: its CRPS is exactly its MAE, and its pinball over
levels symmetric about 0.5 is MAE/2.

Split-conformal calibration of an interval (conformalized quantile regression, Romano,
Patterson & Candès 2019): on n calibration points the scores are
s_i = max(lo_i − y_i, y_i − hi_i) (negative inside the interval); the margin
q̂ = the k-th smallest score, k = ⌈(n+1)(1−α)⌉, and the calibrated interval is
[lo − q̂, hi + q̂]. On exchangeable points P(y ∈ interval) ≥ 1 − α.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .._extras import require

__all__ = [
    "apply_margin",
    "conformal_margin",
    "forecast_metrics",
    "holt_winters",
    "interval_metrics",
    "mase_scale",
    "naive",
    "pinball",
    "point_interval_metrics",
    "seasonal_naive",
]


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """history (T,) → (H,): the last value repeated."""
    history = np.asarray(history, dtype=np.float64)
    return np.full(horizon, history[-1])


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """history (T,) → (H,): the value one season before, the last season repeated."""
    history = np.asarray(history, dtype=np.float64)
    if season < 1 or season > history.shape[0]:
        raise ValueError(
            f"seasonal_naive: expected 1 <= season <= {history.shape[0]} (history), got {season}"
        )
    last = history[-season:]  # (m,)
    return last[np.arange(horizon) % season]


def mase_scale(train: np.ndarray, season: int) -> float:
    """In-sample seasonal naive MAE on the training part: mean |y_t − y_{t−m}|."""
    train = np.asarray(train, dtype=np.float64)
    if train.shape[0] <= season:
        raise ValueError(
            f"mase_scale: expected more than {season} (season) training points, "
            f"got {train.shape[0]}"
        )
    return float(np.mean(np.abs(train[season:] - train[:-season])))


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, scale: float) -> dict[str, float]:
    """MAE, RMSE, MAPE, sMAPE (percent) and MASE of ``forecast`` against ``actual``."""
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.shape != f.shape:
        raise ValueError(f"forecast_metrics: expected equal shapes, got {y.shape} and {f.shape}")
    err = np.abs(y - f)
    mae = float(err.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(err / np.abs(y)) * 100.0)
        smape = float(np.mean(np.where(err == 0, 0.0, 2 * err / (np.abs(y) + np.abs(f)))) * 100.0)
        mase = mae / scale if scale > 0 else float("inf")
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean((y - f) ** 2))),
        "mape": mape,
        "smape": smape,
        "mase": float(mase),
    }


def pinball(actual: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> float:
    """Mean pinball loss: actual (H,), quantiles (H, Q) at ``levels`` (Q,) → a float."""
    y = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    tau = np.asarray(levels, dtype=np.float64)
    if q.shape != (*y.shape, tau.shape[0]):
        raise ValueError(
            f"pinball: expected quantiles of shape {(*y.shape, tau.shape[0])} (actual, levels), "
            f"got {q.shape}"
        )
    u = y[..., None] - q  # (H, Q)
    return float(np.mean(np.maximum(tau * u, (tau - 1.0) * u)))


def interval_metrics(
    actual: np.ndarray, quantiles: np.ndarray, levels: np.ndarray
) -> dict[str, float]:
    """pinball, CRPS (≈ 2·pinball) and the coverage of [first, last quantile] for
    quantile forecasts (H, Q) of actual (H,)."""
    y = np.asarray(actual, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    loss = pinball(y, q, levels)
    inside = (y >= q[:, 0]) & (y <= q[:, -1])
    return {"pinball": loss, "crps": 2.0 * loss, "coverage": float(np.mean(inside))}


def point_interval_metrics(
    actual: np.ndarray, forecast: np.ndarray, levels: np.ndarray
) -> dict[str, float]:
    """pinball at ``levels`` (Q,) of a point forecast (H,) taken as every quantile, and its
    CRPS, which is exactly its MAE."""
    f = np.asarray(forecast, dtype=np.float64)
    q = np.repeat(f[:, None], len(levels), axis=1)  # (H, Q)
    mae = float(np.mean(np.abs(np.asarray(actual, dtype=np.float64) - f)))
    return {"pinball": pinball(actual, q, levels), "crps": mae}


def conformal_margin(
    lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, alpha: float
) -> float:
    """The split-conformal margin q̂ (module docstring) from n calibration points: lower,
    upper, actual (n,) → the k-th smallest score, k = ⌈(n+1)(1−α)⌉; +inf when k > n (too
    few points for level 1 − α)."""
    lo, hi, y = (np.asarray(a, dtype=np.float64).ravel() for a in (lower, upper, actual))
    if not lo.shape == hi.shape == y.shape or y.size == 0:
        raise ValueError(
            f"conformal_margin: expected lower, upper and actual of one non-empty shape, got "
            f"{lo.shape}, {hi.shape}, {y.shape}"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"conformal_margin: expected 0 < alpha < 1, got {alpha}")
    scores = np.sort(np.maximum(lo - y, y - hi))  # (n,)
    n = scores.shape[0]
    k = math.ceil(round((n + 1) * (1.0 - alpha), 9))  # round: (n+1)(1−α) = 20 not 20.000…04
    return float(scores[k - 1]) if k <= n else math.inf


def apply_margin(
    lower: np.ndarray, median: np.ndarray, upper: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """[lower − margin, upper + margin] (H,) each; a negative margin narrows the interval,
    but never past the median (the bounds are clipped to it, so they cannot cross)."""
    lo = np.minimum(np.asarray(lower, dtype=np.float64) - margin, median)
    hi = np.maximum(np.asarray(upper, dtype=np.float64) + margin, median)
    return lo, hi


def holt_winters(
    history: np.ndarray, horizon: int, season: int, *, multiplicative: bool
) -> np.ndarray:
    """Holt-Winters forecast (H,) from history (T,): statsmodels' ExponentialSmoothing with
    an additive (linear) trend and a multiplicative or additive season of length
    ``season`` (none when season is 1 or the history holds under two seasons), parameters
    and initial states by maximum likelihood (``initialization_method="estimated"``).

    Needs statsmodels (the ``forecast`` extra): MissingExtraError without it."""
    hw = require("statsmodels.tsa.holtwinters", "forecast", "the Holt-Winters baseline")
    y = np.asarray(history, dtype=np.float64)
    seasonal = season > 1 and y.shape[0] >= 2 * season
    if multiplicative and not (y > 0).all():
        raise ValueError("holt_winters: expected positive values for a multiplicative season")
    model = hw.ExponentialSmoothing(
        y,
        trend="add",
        seasonal=("mul" if multiplicative else "add") if seasonal else None,
        seasonal_periods=season if seasonal else None,
        initialization_method="estimated",
    )
    with warnings.catch_warnings():  # convergence chatter; the forecast is checked below
        warnings.simplefilter("ignore")
        forecast = np.asarray(model.fit().forecast(horizon), dtype=np.float64)
    if forecast.shape != (horizon,) or not np.isfinite(forecast).all():
        raise ValueError(f"holt_winters: expected a finite forecast of {horizon} steps, got "
                         f"{forecast}")  # fmt: skip
    return forecast
