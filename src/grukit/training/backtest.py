"""Rolling-origin backtests: K successive test windows at the end of a series.

Fold k (1..K) tests the H points [o_k, o_k + H), o_k = T − (K − k + 1)·H, so the folds
tile the last K·H points and fold K's window is the usual test part. With ``refit`` each
fold trains its own run (ensemble, calibration and all: forecast.run_forecast) on the
first o_k + H points — its own split puts the fold's window in test, validation before
it — into DIR/fold-k. Without ``refit`` one run is trained as fold 1's (DIR/model) and
rolled forward: for fold k its models read the L points before o_k (scaled as fold 1's
training part was) and its calibration is fold 1's. Each fold scores the GRU (MAE, the
80% interval's coverage, pinball, CRPS) and naive, seasonal naive and Holt-Winters
fitted on the points before o_k; summary.json holds every fold and their mean ± std
(sample standard deviation; 0 with one fold); backtest.png draws the folds' forecasts.

The folder follows run_group.py's rules (overwrite, resume: finished folds are kept).

Letters: T points, K folds, H horizon, L lookback, Q quantiles.
"""

from __future__ import annotations

import io
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .._extras import require
from ..data.series import Series
from .checkpoint import atomic_write
from .forecast import run_forecast
from .forecast_config import ForecastConfig, load_series
from .forecast_eval import baseline_forecasts, baseline_scores, combine, test_report
from .forecast_job import forecast_levels, prepare, series_sha256, truncate
from .forecast_predict import load_models
from .metrics import mase_scale
from .rolling import earliest_origin
from .run_dir import RunDir
from .run_group import open_group, part_mode

__all__ = ["backtest_forecast", "fold_origins"]

GROUP = "forecast-backtest"
#: What each fold reports for the GRU, and for the baselines.
GRU_FIGURES = ("mae", "coverage", "coverage_raw", "pinball", "crps")
BASE_FIGURES = ("mae", "pinball", "crps")


def fold_origins(c: ForecastConfig, n: int, folds: int) -> list[int]:
    """The K folds' first test indices o_k = n − (K − k + 1)·H, checked: fold 1 needs a
    whole run before it (diff + L + H + 1 training points, validation, and with rolling
    calibration room for its origins)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ValueError(f"backtest_forecast: expected folds a positive int, got {folds!r}")
    need = earliest_origin(c)
    if c.calibration == "rolling":
        need += c.horizon + (c.calibration_folds - 1) * max(c.calibration_step, 1)
    most = (n - need) // c.horizon
    if folds > most:
        raise ValueError(
            f"backtest_forecast: expected at most {max(most, 0)} folds of {c.horizon} points "
            f"(the horizon) on a series of {n} points, the first fold after at least {need} "
            f"(a run's diff + lookback + horizon + 1 + validation, and room for rolling "
            f"calibration origins), got {folds}"
        )
    return [n - (folds - k + 1) * c.horizon for k in range(1, folds + 1)]


def backtest_forecast(
    config: ForecastConfig,
    out: str | os.PathLike[str],
    *,
    folds: int,
    refit: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Backtest ``config`` over ``folds`` rolling origins into ``out`` (module docstring);
    returns summary.json's dict. resume/overwrite: run_group.py's rules."""
    series = load_series(config)
    origins = fold_origins(config, len(series), folds)
    parts = [f"fold-{k + 1}" for k in range(folds)] if refit else ["model"]
    group = {"config": {**config.to_dict(), "folds": folds, "refit": refit},
             "data_sha256": series_sha256(series),
             "group": {"kind": GROUP, "parts": parts, "origins": origins}}  # fmt: skip
    run = open_group("backtest_forecast", GROUP, out, group, resume=resume, overwrite=overwrite)
    h = config.horizon
    if refit:
        records = []
        for k, o in enumerate(origins):
            d = run.path / parts[k]
            s = run_forecast(config, d, series=truncate(series, o + h),
                             resume=part_mode(RunDir(d), resume), show_progress=show_progress,
                             label=f"(fold {k + 1}/{folds})")  # fmt: skip
            records.append(_record(k, o, s["test"], s["baselines"], s["forecast"], s["notes"]))
    else:
        records = _rolled(config, series, origins, run.path / "model", resume, show_progress)
    summary = _summary(config, series, origins, refit, records)
    run.write_summary(summary)
    plot_backtest(run.file("backtest.png"), series, summary)
    return summary


def _record(
    k: int,
    origin: int,
    test: dict[str, Any],
    baselines: dict[str, dict[str, float]],
    forecast: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    return {
        "fold": k + 1,
        "origin": origin,
        "gru": {m: test[m] for m in GRU_FIGURES},
        **{name: {m: b[m] for m in BASE_FIGURES} for name, b in baselines.items()},
        "forecast": {key: forecast[key] for key in ("time", "actual", "median", "lower", "upper")},
        "notes": notes,
    }


def _rolled(
    c: ForecastConfig,
    series: Series,
    origins: list[int],
    where: Path,
    resume: bool,
    show_progress: bool,
) -> list[dict[str, Any]]:
    """No refit: fold 1's run, its models rolled forward to every later origin."""
    h, lookback = c.horizon, c.lookback
    first = truncate(series, origins[0] + h)
    s1 = run_forecast(c, where, series=first, resume=part_mode(RunDir(where), resume),
                      show_progress=show_progress, label="(fold 1, not refitted)")  # fmt: skip
    records = [_record(0, origins[0], s1["test"], s1["baselines"], s1["forecast"], s1["notes"])]
    run = RunDir(where)
    models = load_models(run, run.read_config(), c.backend)
    p1 = prepare(c, first)  # fold 1's scaling and transforms
    z = p1.scaler.transform(p1.transform.forward(series.values))  # (T, C)
    y = series.values[:, 0]
    levels = np.round(models[0].quantiles.double().numpy(), 6)
    mi, cal = models[0].median_index, s1["calibration"]
    for k, o in enumerate(origins[1:], start=1):
        q = combine(
            np.stack(
                [
                    forecast_levels(
                        m, None, z[o - lookback : o], y[:o], scaler=p1.scaler, tf=p1.transform
                    )
                    for m in models
                ]
            )
        )  # (K, H, Q) → (H, Q); fmt: skip
        actual, scale = y[o : o + h], mase_scale(y[: o - c.validation], c.season)
        test = test_report(q, actual, levels, mi, cal, scale)
        base, notes = baseline_forecasts(y[:o], h, c)
        tl = series.timeline
        forecast = {
            "time": [tl.to_text(t) for t in tl.ordinals[o : o + h]] if tl else [*range(o, o + h)],
            "actual": actual.tolist(), "median": q[:, mi].tolist(),
            "lower": test["lower"].tolist(), "upper": test["upper"].tolist(),
        }  # fmt: skip
        scores = baseline_scores(actual, base, scale, levels)
        records.append(_record(k, o, test, scores, forecast, notes))
    return records


def _summary(
    c: ForecastConfig, series: Series, origins: list[int], refit: bool,
    records: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    """Every fold and the mean and sample std over folds of each method's figures."""
    methods = [m for m in ("gru", "naive", "seasonal_naive", "holt_winters")
               if all(m in r for r in records)]  # fmt: skip
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for m in methods:
        figures = GRU_FIGURES if m == "gru" else BASE_FIGURES
        values = {f: [float(r[m][f]) for r in records] for f in figures}
        mean[m] = {f: statistics.fmean(v) for f, v in values.items()}
        std[m] = {f: statistics.stdev(v) if len(v) > 1 else 0.0 for f, v in values.items()}
    notes = sorted({n for r in records for n in r["notes"]})
    return {
        "dataset": series.name,
        "target": series.columns[0],
        "folds": len(records),
        "refit": refit,
        "horizon": c.horizon,
        "ensemble": c.ensemble,
        "calibration": c.calibration,
        "origins": origins,
        "methods": methods,
        "mean": mean,
        "std": std,
        "fold_results": records,
        "notes": notes,
    }


def plot_backtest(path: str | os.PathLike[str], series: Series, summary: dict[str, Any]) -> None:
    """backtest.png: the series' recent history and each fold's median and interval."""
    figure = require("matplotlib.figure", "cli", "backtest_forecast (its plot)")
    fig = figure.Figure(figsize=(8.0, 4.2))
    ax = fig.subplots()
    xs, y = series.times(), series.values[:, 0]
    h, first = summary["horizon"], summary["origins"][0]
    lo = max(0, first - 2 * h)
    ax.plot(xs[lo:], y[lo:], color="black", lw=1.4, label="actual")
    for r in summary["fold_results"]:
        o, f = r["origin"], r["forecast"]
        fx = xs[o : o + h]
        label = "GRU forecast" if r["fold"] == 1 else None
        ax.fill_between(fx, f["lower"], f["upper"], color="tab:blue", alpha=0.2,
                        label="80% interval" if r["fold"] == 1 else None)  # fmt: skip
        ax.plot(fx, f["median"], color="tab:blue", lw=1.6, label=label)
        ax.axvline(xs[o], color="0.6", lw=0.8, ls=":")
    g, sd = summary["mean"]["gru"], summary["std"]["gru"]
    ax.set_title(f"{summary['dataset']}: {summary['folds']}-fold backtest"
                 f"{'' if summary['refit'] else ' (no refit)'}, GRU MAE {g['mae']:.3g} ± "
                 f"{sd['mae']:.2g}, coverage {g['coverage']:.2f}")  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
