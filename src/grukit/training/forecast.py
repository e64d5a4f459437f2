"""Train a ``Forecaster`` on a series, evaluate it and its baselines, predict ahead.

``train_forecast(config, out)`` runs the whole job into a run directory (DESIGN.md
§3): config.json (config, scaling, transforms, split), model.safetensors (the
weights of the epoch with the best validation MAE), checkpoint.safetensors (each
epoch, for ``resume``), metrics.jsonl, summary.json, forecast.png and curves.png.
``predict_forecast(run)`` forecasts the H steps after the end of a series.

Letters: T time, C columns, L lookback, H horizon, Q quantiles, N windows.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.series import (
    BUNDLED,
    Scaler,
    Series,
    Split,
    Transform,
    chronological_split,
    load_bundled,
    load_csv,
    window_indices,
)
from ..models.forecaster import Forecaster
from .checkpoint import load_weights, rng_state, save_weights, set_rng_state
from .metrics import forecast_metrics, mase_scale, naive, seasonal_naive
from .plots import plot_curves, plot_forecast
from .progress import progress
from .run_dir import RunDir

__all__ = ["ForecastConfig", "PRESETS", "train_forecast", "predict_forecast", "load_series"]


@dataclass
class ForecastConfig:
    """Everything a forecasting run needs. ``None`` means "the dataset's preset, else
    the generic default" (``resolve``)."""

    dataset: str | None = "airline"  # a bundled series, or None with csv
    csv: str | None = None  # a user CSV instead of dataset
    columns: list[str] = field(default_factory=list)  # CSV columns; the first is the target
    date_column: str | None = None  # CSV timestamps (None: rows are equally spaced)
    horizon: int | None = None  # H, test length; airline 24 (two years), co2 52, CSV one season
    validation: int | None = None  # points before test for model selection; default H
    season: int | None = None  # m: 12 monthly, 52 weekly, 7 daily (inferred from the dates)
    lookback: int | None = None  # L input steps; default two seasons (a cycle seen twice)
    log: bool | None = None  # log transform (multiplicative seasonality, as airline's)
    diff: int | None = None  # differencing lag (0 none; m removes trend and season)
    strategy: str = "direct"  # direct multi-step head; "recursive" feeds back medians
    hidden_size: int | None = None  # E; small series need few units (default 32)
    num_layers: int = 1  # one layer suffices for a few hundred windows
    dropout: float = 0.0
    epochs: int | None = None  # default 150: the best validation epoch is kept anyway
    batch_size: int = 32  # small batches: few windows on monthly data
    lr: float | None = None  # Adam; default 3e-3
    weight_decay: float = 1e-4  # a little L2 for a few hundred windows
    seed: int = 0
    backend: str = "auto"  # grukit.GRU backend


#: Settings for the bundled series, set once by hand and not tuned on test: log +
#: seasonal differencing (Box & Jenkins' airline model) for multiplicative seasonality,
#: seasonal differencing for CO2's additive one; lookback two seasons.
PRESETS: dict[str, dict[str, Any]] = {
    "airline": {"log": True, "diff": 12, "lookback": 24, "hidden_size": 32, "epochs": 150},
    "co2": {"log": False, "diff": 52, "lookback": 104, "hidden_size": 32, "epochs": 15},
}
_GENERIC = {"log": False, "diff": 0, "hidden_size": 32, "epochs": 150, "lr": 3e-3}


def load_series(config: ForecastConfig) -> Series:
    if config.csv is not None:
        if not config.columns:
            raise ValueError("forecast: expected --column NAME with --csv, got none")
        return load_csv(config.csv, list(config.columns), date_column=config.date_column)
    if config.dataset is None:
        raise ValueError("forecast: expected --dataset or --csv, got neither")
    return load_bundled(config.dataset)


def resolve(config: ForecastConfig, series: Series) -> ForecastConfig:
    """Fill every ``None`` from the preset, the series' frequency or generic defaults."""
    c = copy.deepcopy(config)
    preset = PRESETS.get(c.dataset, {}) if c.csv is None else {}
    for key, value in {**_GENERIC, **preset}.items():
        if getattr(c, key) is None:
            setattr(c, key, value)
    if c.season is None:
        c.season = series.default_season()
    if c.horizon is None:
        c.horizon = BUNDLED[c.dataset].horizon if c.csv is None else max(c.season, 1)
    if c.validation is None:
        c.validation = c.horizon
    if c.lookback is None:
        c.lookback = 2 * c.season if c.season > 1 else 2 * c.horizon
    for name in ("horizon", "lookback", "season", "hidden_size", "epochs", "batch_size"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"forecast: expected --{name.replace('_', '-')} >= 1, got {v!r}")
    if not isinstance(c.validation, int) or not (c.validation == 0 or c.validation >= c.horizon):
        raise ValueError(
            f"forecast: expected --validation 0 (keep the last epoch) or >= the horizon "
            f"({c.horizon}) so one validation window fits, got {c.validation!r}"
        )
    if not isinstance(c.diff, int) or c.diff < 0:
        raise ValueError(f"forecast: expected --diff >= 0 (a lag), got {c.diff!r}")
    if c.strategy not in ("direct", "recursive"):
        raise ValueError(f"forecast: expected --strategy direct or recursive, got {c.strategy!r}")
    return c


@dataclass
class Prepared:
    """The series on the model's scale and the windows of each part."""

    series: Series
    split: Split
    transform: Transform
    scaler: Scaler
    z: np.ndarray  # (T, C) scaled transformed values; the first `diff` rows NaN
    train: tuple[np.ndarray, np.ndarray]  # window indices (N, L), (N, H)
    val: tuple[np.ndarray, np.ndarray]


def prepare(c: ForecastConfig, series: Series) -> Prepared:
    n = len(series)
    split = chronological_split(
        n, c.horizon, c.validation, min_train=c.diff + c.lookback + c.horizon + 1
    )
    transform = Transform(log=bool(c.log), diff=c.diff)
    d = transform.forward(series.values)  # (T, C)
    scaler = Scaler.fit(d[: split.train_end])  # training rows only
    z = scaler.transform(d)
    train = window_indices(c.lookback, c.horizon, c.diff, 0, split.train_end)
    val = window_indices(c.lookback, c.horizon, c.diff, split.train_end, split.test_start)
    return Prepared(series, split, transform, scaler, z, train, val)


def _windows(z: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, ...]:
    x = torch.as_tensor(z[idx[0]], dtype=torch.float32)  # (N, L, C)
    y = torch.as_tensor(z[idx[1]], dtype=torch.float32)  # (N, H, C)
    return x, y


def forecast_levels(
    model: Forecaster, p: Prepared | None, x_z: np.ndarray, history: np.ndarray, **kw: Any
) -> np.ndarray:
    """Quantile forecasts in the series' units: x_z (L, C) scaled inputs, history (T,)
    target levels before the forecast → (H, Q)."""
    scaler, transform = (p.scaler, p.transform) if p is not None else (kw["scaler"], kw["tf"])
    model.eval()
    with torch.no_grad():
        q = model(torch.as_tensor(x_z[None], dtype=torch.float32))[0].double().numpy()  # (H, Q)
    return transform.invert(scaler.inverse(q, column=0), history)


def _evaluate(model: Forecaster, p: Prepared, targets_at: np.ndarray, lookback: int) -> float:
    """Mean absolute error (units) of the median over windows whose targets start at
    each index in ``targets_at``."""
    y = p.series.values[:, 0]
    errs = []
    for t in targets_at:
        q = forecast_levels(model, p, p.z[t - lookback : t], y[:t])
        errs.append(np.abs(q[:, model.median_index] - y[t : t + model.horizon]).mean())
    return float(np.mean(errs)) if errs else float("nan")


def train_forecast(
    config: ForecastConfig, out: str | os.PathLike, *, resume: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Train, keep the best validation epoch, evaluate on test; returns summary.json's dict."""
    series = load_series(config)
    c = resolve(config, series)
    p = prepare(c, series)
    run = RunDir(out).create()
    torch.manual_seed(c.seed)
    model = Forecaster(
        series.values.shape[1],
        c.horizon,
        c.hidden_size,
        c.num_layers,
        strategy=c.strategy,
        dropout=c.dropout,
        backend=c.backend,
    )
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    cfg = {
        "config": dataclasses.asdict(c),
        "model": model.config(),
        "columns": series.columns,
        "transform": p.transform.to_dict(),
        "scaler": p.scaler.to_dict(),
        "split": p.split.to_dict(),
        "frequency": series.timeline.label() if series.timeline else "index",
    }
    start, best = 1, {"epoch": 0, "val_mae": float("inf"), "model": None}
    if resume and run.has_checkpoint():
        old = dict(run.read_config().get("config", {}), epochs=c.epochs)  # may extend
        if old != cfg["config"]:
            diff = sorted(k for k in old if old.get(k) != cfg["config"].get(k))
            raise ValueError(
                f"forecast: expected --resume with the settings in {run.config}, got "
                f"different {', '.join(diff) or 'keys'}"
            )
        state = run.load_checkpoint()
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        best = state["best"]
        start = int(state["epoch"]) + 1
        run.keep_metrics_until(start - 1)
    else:
        run.keep_metrics_until(0)
    run.write_config(cfg)
    x_tr, y_tr = _windows(p.z, p.train)
    val_starts = p.val[1][:, 0] if len(p.val[1]) else np.zeros(0, dtype=np.int64)
    bar = progress(c.epochs, f"forecast {series.name}", unit="epoch", disable=quiet)
    bar.update(start - 1)
    for epoch in range(start, c.epochs + 1):
        model.train()
        perm = torch.randperm(x_tr.shape[0])
        total = 0.0
        for i in range(0, len(perm), c.batch_size):
            b = perm[i : i + c.batch_size]
            loss = model.loss(x_tr[b], y_tr[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(b)
        train_loss = total / len(perm)
        val_mae = _evaluate(model, p, val_starts, c.lookback) if val_starts.size else None
        score = val_mae if val_mae is not None else -float(epoch)  # no validation: the last
        if score < best["val_mae"]:
            best = {"epoch": epoch, "val_mae": score, "model": copy.deepcopy(model.state_dict())}
        run.append_metrics({"epoch": epoch, "train_pinball": train_loss, "val_mae": val_mae})
        run.save_checkpoint(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng_state(),
                "best": best,
            }
        )
        bar.update(1)
        bar.set_postfix(pinball=f"{train_loss:.4f}", val_mae=f"{score:.3g}")
    bar.close()
    model.load_state_dict(best["model"])
    save_weights(run.model, model.state_dict(), model.config())
    summary = _evaluate_test(model, p, c, series)
    summary["best_epoch"] = int(best["epoch"])
    summary["val_mae"] = float(best["val_mae"]) if val_starts.size else None
    run.write_summary(summary)
    _plots(run, p, c, summary)
    return summary


def _evaluate_test(model: Forecaster, p: Prepared, c: ForecastConfig, s: Series) -> dict:
    y, t0, h = s.values[:, 0], p.split.test_start, c.horizon
    q = forecast_levels(model, p, p.z[t0 - c.lookback : t0], y[:t0])  # (H, Q)
    lo, med, hi = q[:, 0], q[:, model.median_index], q[:, -1]
    actual, scale = y[t0:], mase_scale(y[: p.split.train_end], c.season)
    test = forecast_metrics(actual, med, scale)
    test["coverage"] = float(np.mean((actual >= lo) & (actual <= hi)))
    base = {"naive": naive(y[:t0], h), "seasonal_naive": seasonal_naive(y[:t0], h, c.season)}
    labels = [s.timeline.to_text(o) for o in s.timeline.ordinals[t0:]] if s.timeline else None
    return {
        "dataset": s.name,
        "target": s.columns[0],
        "test": test,
        "baselines": {k: forecast_metrics(actual, v, scale) for k, v in base.items()},
        "horizon": h,
        "test_points": int(actual.shape[0]),
        "season": c.season,
        "mase_scale": scale,
        "interval": [round(float(model.quantiles[0]), 6), round(float(model.quantiles[-1]), 6)],
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
            "median": med.tolist(),
            "lower": lo.tolist(),
            "upper": hi.tolist(),
            **{k: v.tolist() for k, v in base.items()},
        },
    }


def _plots(run: RunDir, p: Prepared, c: ForecastConfig, summary: dict) -> None:
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
        baselines={"seasonal naive": f["seasonal_naive"], "naive": f["naive"]},
        title=f"{s.name}: test MAE GRU {summary['test']['mae']:.3g}, seasonal naive "
        f"{summary['baselines']['seasonal_naive']['mae']:.3g}",
        ylabel=f"{s.columns[0]} ({s.unit})" if s.unit else s.columns[0],
    )
    m = run.read_metrics()
    plot_curves(
        run.file("curves.png"),
        {"validation MAE": [r["val_mae"] if r["val_mae"] is not None else np.nan for r in m]},
        ylabel=f"MAE ({s.unit})" if s.unit else "MAE",
        title=f"{s.name}: validation MAE per epoch",
    )


def predict_forecast(run_dir: str | os.PathLike, *, csv: str | None = None) -> dict[str, Any]:
    """The next H values after the end of the run's series (or ``csv``, with the
    run's columns): {"time": [...], "lower", "median", "upper", ...}."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    state, mcfg = load_weights(run.model)
    c = ForecastConfig(**cfg["config"])
    if csv is not None:
        c.csv, c.dataset = csv, None
    series = load_series(c)
    if series.columns != cfg["columns"]:
        raise ValueError(
            f"forecast predict: expected columns {cfg['columns']}, got {series.columns}"
        )
    need = c.lookback + c.diff
    if len(series) < need:
        raise ValueError(f"forecast predict: expected at least {need} rows, got {len(series)}")
    model = Forecaster(
        mcfg["input_size"],
        mcfg["horizon"],
        mcfg["hidden_size"],
        mcfg["num_layers"],
        quantiles=tuple(mcfg["quantiles"]),
        strategy=mcfg["strategy"],
        backend=c.backend,
    )
    model.load_state_dict(state)
    tf, scaler = Transform(**cfg["transform"]), Scaler.from_dict(cfg["scaler"])
    z = scaler.transform(tf.forward(series.values[-need:]))[-c.lookback :]  # (L, C)
    q = forecast_levels(model, None, z, series.values[:, 0], scaler=scaler, tf=tf)
    _, labels = series.future(c.horizon)
    return {
        "series": series.name,
        "target": series.columns[0],
        "time": labels,
        "lower": q[:, 0].tolist(),
        "median": q[:, model.median_index].tolist(),
        "upper": q[:, -1].tolist(),
        "interval": [mcfg["quantiles"][0], mcfg["quantiles"][-1]],
        "data": series.fill_report(),
    }
