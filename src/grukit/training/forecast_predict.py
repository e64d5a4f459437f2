"""Forecast the H steps after the end of a series from a trained run (one model or a
seed ensemble), the interval calibrated as the run stored it.

Letters: L lookback, C columns, H horizon, Q quantiles, K models.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ..data.series import BUNDLED, Scaler, Transform
from ..models.forecaster import Forecaster
from .calibration import calibrated_interval, stored_calibration
from .checkpoint import load_weights
from .ensemble import GROUP
from .forecast_config import ForecastConfig, load_series
from .forecast_eval import combine
from .forecast_job import forecast_levels
from .integrity import check_state_dict
from .run_dir import RunDir
from .trainer import describe_run

__all__ = ["load_model", "load_models", "predict_forecast"]


def _run_config(run: RunDir) -> tuple[ForecastConfig, dict[str, Any]]:
    """(config, the whole config.json) of a forecast run; anything else is refused."""
    cfg = run.read_config()
    need = ("config", "columns", "transform", "scaler")
    if any(k not in cfg for k in need) or not isinstance(cfg["config"], dict):
        raise ValueError(
            f"predict_forecast: expected a forecast run's config.json in {run.path}, got "
            f"{describe_run(cfg)}"
        )
    try:
        c = ForecastConfig.from_dict(cfg["config"])
        tf, scaler = Transform(**cfg["transform"]), Scaler.from_dict(cfg["scaler"])
    except (TypeError, KeyError, AttributeError, ValueError) as err:
        raise ValueError(f"predict_forecast: expected a valid config in {run.config}, got: "
                         f"{err!r}") from None  # fmt: skip
    if not isinstance(cfg["columns"], list) or not cfg["columns"]:
        raise ValueError(f"predict_forecast: expected a list of columns in {run.config}")
    return c, {**cfg, "tf": tf, "scaler_obj": scaler}


def load_model(run: RunDir, backend: str = "auto") -> Forecaster:
    """The trained Forecaster of a forecasting run, its weights checked before loading."""
    state, mcfg = load_weights(run.model)
    try:
        model = Forecaster(
            mcfg["input_size"],
            mcfg["horizon"],
            mcfg["hidden_size"],
            mcfg["num_layers"],
            quantiles=tuple(mcfg["quantiles"]),
            strategy=mcfg["strategy"],
            backend=backend,
            cell=mcfg.get("cell", "gru"),  # runs from before the cell option: a GRU
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"predict_forecast: expected a forecaster's config in {run.model}, "
                         f"got: {err!r}") from None  # fmt: skip
    state = check_state_dict("predict_forecast", state, model.state_dict(), run.model)
    model.load_state_dict(state)
    return model


def load_models(run: RunDir, cfg: dict[str, Any], backend: str = "auto") -> list[Forecaster]:
    """The run's models: its own, or every member's of an ensemble (config.json's
    "group")."""
    group = cfg.get("group")
    if group is None:
        return [load_model(run, backend)]
    parts = group.get("parts") if isinstance(group, dict) else None
    if (
        not isinstance(parts, list)
        or not parts
        or group.get("kind") != GROUP
        or not all(isinstance(x, str) and "/" not in x and x not in ("", ".", "..") for x in parts)
    ):
        raise ValueError(
            f"predict_forecast: expected an ensemble's members in {run.config}, got {group!r}"
        )
    return [load_model(RunDir(run.path / part), backend) for part in parts]


def predict_forecast(
    run_dir: str | os.PathLike[str],
    *,
    csv: str | None = None,
    columns: list[str] | None = None,
    date_column: str | None = None,
) -> dict[str, Any]:
    """The next H values after the end of the run's series (or of ``csv``):
    {"time": [...], "lower", "median", "upper", ...}; an ensemble's: the median over its
    members of each quantile.

    ``csv`` is read with ``columns`` (as many as the run was trained on, the target first)
    and ``date_column``; by default the run's own (for a run on a bundled series, its
    column and date names)."""
    run = RunDir(run_dir)
    c, cfg = _run_config(run)
    if csv is not None:
        bundled = BUNDLED.get(c.dataset) if c.csv is None and c.dataset else None
        if date_column is None:
            date_column = bundled.date_column if bundled is not None else c.date_column
        c = dataclasses.replace(
            c,
            dataset=None,
            csv=csv,
            columns=tuple(columns or c.columns or cfg["columns"]),
            date_column=date_column,
        )
    elif columns or date_column:
        raise ValueError("predict_forecast: expected columns or a date column only with a CSV")
    models = load_models(run, cfg, c.backend)
    series = load_series(c)
    same = series.columns == cfg["columns"] if not columns else True
    if len(series.columns) != len(cfg["columns"]) or not same:
        raise ValueError(
            f"predict_forecast: expected columns {cfg['columns']} (the run's), got {series.columns}"
        )
    need = c.lookback + c.diff
    if len(series) < need:
        raise ValueError(f"predict_forecast: expected at least {need} rows, got {len(series)}")
    tf, scaler = cfg["tf"], cfg["scaler_obj"]
    z = scaler.transform(tf.forward(series.values[-need:]))[-c.lookback :]  # (L, C)
    history = series.values[:, 0]
    q = combine(
        np.stack([forecast_levels(m, None, z, history, scaler=scaler, tf=tf) for m in models])
    )  # (K, H, Q) → (H, Q)
    calibration = stored_calibration(run)
    mi = models[0].median_index
    lo, hi = calibrated_interval(q, mi, calibration)
    _, labels = series.future(c.horizon)
    qs = models[0].quantiles.tolist()
    return {
        "series": series.name,
        "target": series.columns[0],
        "time": labels,
        "lower": lo.tolist(),
        "median": q[:, mi].tolist(),
        "upper": hi.tolist(),
        "lower_raw": q[:, 0].tolist(),
        "upper_raw": q[:, -1].tolist(),
        "interval": [round(qs[0], 6), round(qs[-1], 6)],
        "calibration": calibration,
        "members": len(models),
        "data": series.fill_report(),
    }
