"""Train a ``Forecaster`` (or a seed ensemble of them) on a series, calibrate its
interval, evaluate it and its baselines; the public entry points of forecasting.

``train_forecast(config, out)`` runs the whole job into a run directory (DESIGN.md §3)
through the one training loop (trainer.py: its checkpoint, resume, divergence and
interruption rules, the same as the language model's): config.json (config, scaling,
transforms, split, the data's sha256), model.safetensors (by default the weights of the
epoch with the best validation MAE), checkpoint.safetensors, metrics.jsonl, summary.json,
forecast.png and curves.png. With ``config.ensemble`` K > 1 the run holds K member runs
(ensemble.py) and the forecast is the median of their quantiles; with
``config.calibration == "rolling"`` it holds the calibration origins' runs under
calibration/ (rolling.py). ``predict_forecast(run)`` (forecast_predict.py) forecasts the
H steps after the end of a series; ``backtest_forecast`` (backtest.py) rolls the origin.

Letters: K models, N windows, H horizon, Q quantiles.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.series import Series
from .calibration import alpha_of, calibrate, calibrated_interval, no_calibration
from .ensemble import Trained, train_models
from .forecast_config import PRESETS, ForecastConfig, forecast_config, load_series
from .forecast_eval import (
    baseline_forecasts,
    combine,
    plot_run,
    summary_core,
    validation_baselines,
    validation_mae,
    warnings_for,
)
from .forecast_job import ForecastJob, forecast_levels, prepare, quantile_forecasts
from .forecast_predict import load_model, predict_forecast
from .integrity import TrainingDiverged
from .rolling import calibration_origins, refit_forecasts

__all__ = [
    "PRESETS",
    "ForecastConfig",
    "ForecastJob",
    "TrainingDiverged",
    "calibrated_interval",
    "forecast_config",
    "forecast_levels",
    "load_model",
    "load_series",
    "predict_forecast",
    "run_forecast",
    "train_forecast",
]


_NO_VALIDATION = (
    "no validation part (validation 0): nothing to calibrate on, the interval is the "
    "quantile head's raw one"
)


def train_forecast(
    config: ForecastConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> dict[str, Any]:
    """Train (``config.ensemble`` models), keep the best validation epoch
    (``config.keep``), calibrate the interval (``config.calibration``), evaluate on test;
    returns summary.json's dict.

    ``trainer.train``'s options and rules (the same as ``train_lm``'s): overwrite, resume
    (the same data; ``epochs`` may grow; an ensemble keeps its finished members),
    until_epoch (every model stops after it). Raises TrainingDiverged when the loss, the
    validation MAE or a weight becomes non-finite.
    """
    return run_forecast(config, out, resume=resume, overwrite=overwrite,
                        show_progress=show_progress, until_epoch=until_epoch)  # fmt: skip


def run_forecast(
    config: ForecastConfig,
    out: str | os.PathLike[str],
    *,
    series: Series | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
    label: str = "",
) -> dict[str, Any]:
    """``train_forecast`` on ``series`` (default: the config's; a backtest fold passes the
    points before its window's end), the progress bar's title tagged with ``label``."""
    s = series if series is not None else load_series(config)
    if config.calibration == "rolling":  # refused before any file is written
        prepare(config, s)  # a series too short for the run itself: its own message first
        origins = calibration_origins(config, len(s))
    t = train_models(config, out, s, resume=resume, overwrite=overwrite,
                     show_progress=show_progress, until_epoch=until_epoch, label=label)  # fmt: skip
    c, p, m0 = config, t.prepared, t.models[0]
    levels = np.round(m0.quantiles.double().numpy(), 6)  # float32 buffer: 0.1 not 0.1000000015
    alpha, mi = alpha_of(levels), m0.median_index
    qv, yv = quantile_forecasts(t.models, p, p.val_starts, c.lookback)  # (K, N, H, Q), (N, H)
    if c.calibration == "rolling":  # the validation windows and the refits' windows, pooled
        qr, yr = refit_forecasts(c, s, origins, t.run.path / "calibration", resume=resume,
                                 show_progress=show_progress)  # fmt: skip
        qc, yc = np.concatenate((qv, qr), axis=1), np.concatenate((yv, yr))
    else:
        qc, yc = qv, yv

    def calibration(qk: np.ndarray) -> dict[str, Any]:
        if c.calibration == "none":
            return no_calibration(alpha, "calibration none: the quantile head's raw interval")
        if not yc.size:
            return no_calibration(alpha, _NO_VALIDATION)
        return calibrate(qk, yc, alpha, log=c.log, source=c.calibration)

    t0 = p.split.test_start
    qt, _ = quantile_forecasts(t.models, p, np.array([t0]), c.lookback)  # (K, 1, H, Q)
    base = baseline_forecasts(s.values[:t0, 0], c.horizon, c)
    common = {"validation_baselines": validation_baselines(p, c)}

    def summary_of(q_test: np.ndarray, q_cal: np.ndarray, q_val: np.ndarray) -> dict[str, Any]:
        out = summary_core(q_test, p, c, s, calibration(q_cal), levels, mi, base)
        out.update(common, val_mae=validation_mae(q_val, yv, mi))
        out["warnings"] = warnings_for(out)
        return out

    if c.ensemble == 1:
        summary = summary_of(qt[0, 0], qc[0], qv[0])
        summary.update(t.fits[0].summary("window"))
    else:
        summary = summary_of(combine(qt)[0], combine(qc), combine(qv))
        summary.update(_ensemble_figures(t, [summary_of(qt[k, 0], qc[k], qv[k])
                                             for k in range(c.ensemble)]))  # fmt: skip
    if t.fits[0].world.main:  # the one process that writes (distributed.py)
        t.run.write_summary(summary)
        plot_run(t.run, p, c, summary, "GRU" if c.ensemble == 1 else f"GRU ×{c.ensemble}")
    return summary


def _ensemble_figures(t: Trained, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The ensemble's training figures and its members' own summaries (also written to
    each member's summary.json, so that a member can be predicted alone)."""
    rows = []
    for k, (m, fit, run) in enumerate(zip(members, t.fits, t.members, strict=True)):
        m.update(fit.summary("window"))
        if fit.world.main:
            run.write_summary(m)
        rows.append({"run": run.path.name, "seed": t.run_config["group"]["seeds"][k],
                     "test": m["test"], "val_mae": m["val_mae"],
                     "calibration": m["calibration"], "best_epoch": m["best_epoch"],
                     "kept_epoch": m["kept_epoch"],
                     "epochs_completed": m["epochs_completed"]})  # fmt: skip
    examples = sum(f.totals["examples"] for f in t.fits)
    seconds = sum(f.totals["train_seconds"] for f in t.fits)
    return {
        "ensemble": {"size": len(members), "seeds": t.run_config["group"]["seeds"]},
        "members": rows,
        "epochs": t.fits[0].epochs,
        "windows_per_second": examples / max(seconds, 1e-12),
        "wall_seconds": sum(f.totals["wall_seconds"] for f in t.fits),
        "threads": members[0]["threads"],
        "world_size": members[0]["world_size"],
    }
