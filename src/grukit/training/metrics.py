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
season repeated when the horizon is longer than the season.
"""

from __future__ import annotations

import numpy as np

__all__ = ["forecast_metrics", "naive", "seasonal_naive", "mase_scale"]


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
