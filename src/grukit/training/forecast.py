"""Train a ``Forecaster`` on a series, evaluate it and its baselines, predict ahead.

``train_forecast(config, out)`` runs the whole job into a run directory (DESIGN.md
§3) through the one training loop (trainer.py: its checkpoint, resume, divergence and
interruption rules, the same as the language model's): config.json (config, scaling,
transforms, split, the data's sha256), model.safetensors (by default the weights of the
epoch with the best validation MAE), checkpoint.safetensors, metrics.jsonl, summary.json,
forecast.png and curves.png. ``predict_forecast(run)`` forecasts the H steps after the end
of a series.

Letters: T time, C columns, L lookback, H horizon, Q quantiles, N windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._extras import MissingExtraError
from ..backends import resolve as resolve_backend
from ..data.series import (
    BUNDLED,
    Scaler,
    Series,
    Split,
    Transform,
    chronological_split,
    window_indices,
)
from ..models.forecaster import Forecaster
from .checkpoint import load_weights
from .forecast_config import PRESETS, ForecastConfig, forecast_config, load_series
from .integrity import TrainingDiverged, check_state_dict
from .metrics import (
    apply_margin,
    conformal_margin,
    forecast_metrics,
    holt_winters,
    interval_metrics,
    mase_scale,
    naive,
    point_interval_metrics,
    seasonal_naive,
)
from .plots import plot_curves, plot_forecast
from .run_dir import RunDir
from .trainer import describe_run, train

__all__ = [
    "PRESETS",
    "ForecastConfig",
    "TrainingDiverged",
    "forecast_config",
    "load_series",
    "predict_forecast",
    "train_forecast",
]


#: How the baselines are named in plots and reports.
BASELINE_LABELS = {
    "naive": "naive",
    "seasonal_naive": "seasonal naive",
    "holt_winters": "Holt-Winters",
}


def series_sha256(series: Series) -> str:
    """sha256 of a series' values (T, C), columns and timestamps: what a run trains on,
    stored in config.json so that resuming on changed data is refused."""
    h = hashlib.sha256(json.dumps(series.columns).encode())
    h.update(np.ascontiguousarray(series.values, dtype=np.float64).tobytes())
    if series.timeline is not None:
        h.update(np.asarray(series.timeline.ordinals, dtype=np.int64).tobytes())
    return h.hexdigest()


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


def _check_backend(model: Forecaster, dtype: torch.dtype = torch.float32) -> None:
    """Refuse a backend that cannot run the encoder before any file is written."""
    enc = model.encoder
    x = torch.zeros(1, 1, model.input_size, dtype=dtype)  # (N, L, I)
    resolve_backend("Forecaster", enc.backend, enc.spec, x)


class ForecastJob:
    """The forecaster as a ``trainer.Job``: shuffled batches of training windows (the
    permutation drawn from torch's RNG, which the checkpoint keeps), pinball loss over
    the quantiles, the median's MAE (in the series' units) on the validation windows."""

    name, kind, config_key, unit = "train_forecast", "forecast", "config", "window"

    def __init__(self, config: ForecastConfig) -> None:
        self.config = c = config
        self.series = load_series(c)
        self.title = f"forecast {self.series.name}"
        self.prepared = p = prepare(c, self.series)
        torch.manual_seed(c.seed)
        self.model = Forecaster(
            self.series.values.shape[1],
            c.horizon,
            c.hidden_size,
            c.num_layers,
            strategy=c.strategy,
            dropout=c.dropout,
            backend=c.backend,
        )
        _check_backend(self.model)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay
        )
        self.x, self.y = _windows(p.z, p.train)  # (N, L, C), (N, H, C)
        self.val_starts = p.val[1][:, 0] if len(p.val[1]) else np.zeros(0, dtype=np.int64)

    def run_config(self) -> dict[str, Any]:
        s, p = self.series, self.prepared
        return {
            "config": self.config.to_dict(),
            "model": self.model.config(),
            "columns": s.columns,
            "transform": p.transform.to_dict(),
            "scaler": p.scaler.to_dict(),
            "split": p.split.to_dict(),
            "frequency": s.timeline.label() if s.timeline else "index",
            "data_sha256": series_sha256(s),
        }

    def batches(self, epoch: int) -> Sequence[torch.Tensor]:
        perm = torch.randperm(self.x.shape[0])
        return [
            perm[i : i + self.config.batch_size]
            for i in range(0, len(perm), self.config.batch_size)
        ]

    def loss(self, batch: torch.Tensor, carry: None) -> tuple[torch.Tensor, None, int]:
        return self.model.loss(self.x[batch], self.y[batch]), None, len(batch)

    def validate(self) -> float | None:
        if not self.val_starts.size:
            return None
        return _evaluate(self.model, self.prepared, self.val_starts, self.config.lookback)

    def figures(self, train_loss: float, score: float | None) -> dict[str, float | None]:
        return {"train_pinball": train_loss, "val_mae": score}

    def weights_metadata(self) -> dict[str, Any]:
        return self.model.config()

    def draw(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        s = self.series
        plot_curves(
            run.file("curves.png"),
            {
                "validation MAE": [
                    r["val_mae"] if r["val_mae"] is not None else np.nan for r in records
                ]
            },  # fmt: skip
            ylabel=f"MAE ({s.unit})" if s.unit else "MAE",
            title=f"{s.name}: validation MAE per epoch",
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
    """Train, keep the best validation epoch (``config.keep``), evaluate on test; returns
    summary.json's dict.

    ``trainer.train``'s options and rules (the same as ``train_lm``'s): overwrite, resume
    (the same data; ``epochs`` may grow), until_epoch. Raises TrainingDiverged when the
    loss, the validation MAE or a weight becomes non-finite.
    """
    job, run, result = train(lambda: ForecastJob(config), out, resume=resume, overwrite=overwrite,
                             show_progress=show_progress, until_epoch=until_epoch)  # fmt: skip
    c, p, model = job.config, job.prepared, job.model
    calibration = calibrate(model, p, c)
    summary = _evaluate_test(model, p, c, job.series, calibration)
    kept = [r for r in result.records if r["epoch"] == result.kept_epoch]
    summary["val_mae"] = kept[0]["val_mae"] if kept else None
    summary["validation_baselines"] = _validation_baselines(p, c, job.val_starts)
    summary["warnings"] = _warnings(summary)
    summary.update(result.summary(job.unit))
    if result.world.main:  # the one process that writes (distributed.py)
        run.write_summary(summary)
        _plot_forecast(run, p, c, summary)
    return summary


def _window_forecasts(
    model: Forecaster, p: Prepared, starts: np.ndarray, lookback: int
) -> tuple[np.ndarray, np.ndarray]:
    """Quantile forecasts (N, H, Q) and actuals (N, H), in the series' units, of the
    windows whose targets start at each index in ``starts`` (N,)."""
    y, h = p.series.values[:, 0], model.horizon
    q = [forecast_levels(model, p, p.z[t - lookback : t], y[:t]) for t in starts]
    return np.array(q).reshape(len(q), h, -1), np.array([y[t : t + h] for t in starts])


def _alpha(model: Forecaster) -> float:
    """1 − the probability between the outer quantile levels (0.2 for 10%–90%)."""
    qs: list[float] = model.quantiles.tolist()
    return round(1.0 - (qs[-1] - qs[0]), 6)


def calibrate(model: Forecaster, p: Prepared, c: ForecastConfig) -> dict[str, Any]:
    """Split-conformal calibration of the outer-quantile interval on the validation windows
    (metrics.conformal_margin), summary.json's "calibration": one margin pooled over the H
    steps of every validation window (with the default validation = H there is one window,
    so a margin per step would rest on one point), on the log scale when the config logs
    the series (its errors grow with the level) and in the series' units otherwise. Without
    validation points, or with too few for the level, method "none": the raw interval.

    The margin applied is max(q̂, 0): the interval is widened, never narrowed, because the
    same validation points chose the kept epoch (the least validation MAE), so their
    scores are optimistic and a negative q̂ would narrow on biased evidence (on airline it
    took test coverage from 0.49 to 0.28). q̂ itself is kept as "conformal_margin"."""
    alpha, scale = _alpha(model), "log" if c.log else "units"
    starts = p.val[1][:, 0] if len(p.val[1]) else np.zeros(0, dtype=np.int64)
    if not starts.size:
        return {"method": "none", "alpha": alpha, "note": "no validation part (validation 0): "
                "nothing to calibrate on, the interval is the quantile head's raw one"}  # fmt: skip
    q, y = _window_forecasts(model, p, starts, c.lookback)  # (N, H, Q), (N, H)
    f = np.log if c.log else np.asarray
    margin = conformal_margin(f(q[..., 0]), f(q[..., -1]), f(y), alpha)
    inside = float(np.mean((y >= q[..., 0]) & (y <= q[..., -1])))
    if not math.isfinite(margin):
        return {"method": "none", "alpha": alpha, "points": int(y.size), "note": f"{y.size} "
                f"validation points are too few to calibrate a {1 - alpha:.0%} interval: the "
                "interval is the quantile head's raw one"}  # fmt: skip
    return {"method": "split-conformal", "alpha": alpha, "scale": scale,
            "margin": max(margin, 0.0), "conformal_margin": margin,
            "points": int(y.size), "windows": int(starts.size),
            "validation_coverage_raw": inside}  # fmt: skip


def calibrated_interval(q: np.ndarray, median_index: int, calibration: dict[str, Any] | None
                        ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The interval (lower, upper) (H,) each of quantile forecasts q (H, Q) under a stored
    ``calibration`` (``calibrate``'s dict; None or method "none": the raw outer quantiles)."""
    lo, med, hi = q[:, 0], q[:, median_index], q[:, -1]
    if not calibration or calibration.get("method") != "split-conformal":
        return lo, hi
    margin = float(calibration["margin"])
    if calibration["scale"] == "log":
        a, b = apply_margin(np.log(lo), np.log(med), np.log(hi), margin)
        return np.exp(a), np.exp(b)
    return apply_margin(lo, med, hi, margin)


def _evaluate_test(
    model: Forecaster, p: Prepared, c: ForecastConfig, s: Series, calibration: dict[str, Any]
) -> dict[str, Any]:
    y, t0, h = s.values[:, 0], p.split.test_start, c.horizon
    q = forecast_levels(model, p, p.z[t0 - c.lookback : t0], y[:t0])  # (H, Q)
    med = q[:, model.median_index]
    levels = np.round(model.quantiles.double().numpy(), 6)  # float32 buffer: 0.1 not 0.1000000015
    lo, hi = calibrated_interval(q, model.median_index, calibration)
    actual, scale = y[t0:], mase_scale(y[: p.split.train_end], c.season)
    q_cal = q.copy()
    q_cal[:, 0], q_cal[:, -1] = lo, hi
    raw = interval_metrics(actual, q, levels)
    test = {**forecast_metrics(actual, med, scale), **interval_metrics(actual, q_cal, levels),
            **{f"{k}_raw": v for k, v in raw.items()}}  # fmt: skip
    base = {"naive": naive(y[:t0], h), "seasonal_naive": seasonal_naive(y[:t0], h, c.season)}
    notes = []
    try:  # fitted on everything before test, as naive and seasonal naive are
        base["holt_winters"] = holt_winters(y[:t0], h, c.season, multiplicative=c.log)
    except (MissingExtraError, ValueError) as err:
        notes.append(f"Holt-Winters baseline skipped: {err}")
    labels = [s.timeline.to_text(o) for o in s.timeline.ordinals[t0:]] if s.timeline else None
    return {
        "dataset": s.name,
        "target": s.columns[0],
        "test": test,
        "baselines": {
            k: {**forecast_metrics(actual, v, scale), **point_interval_metrics(actual, v, levels)}
            for k, v in base.items()
        },
        "notes": notes,
        "horizon": h,
        "test_points": int(actual.shape[0]),
        "season": c.season,
        "mase_scale": scale,
        "interval": [round(float(model.quantiles[0]), 6), round(float(model.quantiles[-1]), 6)],
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
            "median": med.tolist(),
            "lower": lo.tolist(),
            "upper": hi.tolist(),
            "lower_raw": q[:, 0].tolist(),
            "upper_raw": q[:, -1].tolist(),
            **{k: v.tolist() for k, v in base.items()},
        },
    }


def _validation_baselines(p: Prepared, c: ForecastConfig, starts: np.ndarray) -> dict[str, float]:
    """The baselines' validation MAE, computed as the GRU's is (``_evaluate``): the mean
    over validation windows of the MAE of the forecast from everything before the window."""
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


def _warnings(summary: dict[str, Any]) -> list[str]:
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


def _plot_forecast(run: RunDir, p: Prepared, c: ForecastConfig, summary: dict[str, Any]) -> None:
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
        title=f"{s.name}: test MAE GRU {summary['test']['mae']:.3g}, "
        + ", ".join(
            f"{BASELINE_LABELS[k]} {v['mae']:.3g}"
            for k, v in summary["baselines"].items()
            if k != "naive"
        ),  # fmt: skip
        ylabel=f"{s.columns[0]} ({s.unit})" if s.unit else s.columns[0],
    )


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
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"predict_forecast: expected a valid config in {run.config}, got: "
                         f"{err!r}") from None  # fmt: skip
    if not isinstance(cfg["columns"], list) or not cfg["columns"]:
        raise ValueError(f"predict_forecast: expected a list of columns in {run.config}")
    return c, {**cfg, "tf": tf, "scaler_obj": scaler}


def _stored_calibration(run: RunDir) -> dict[str, Any] | None:
    """The interval calibration summary.json stores (``calibrate``), checked; None when the
    run has no summary (interrupted) or predates calibration: the raw interval."""
    if not run.summary.is_file():
        return None
    cal = json.loads(run.summary.read_text()).get("calibration")
    if cal is None or (isinstance(cal, dict) and cal.get("method") == "none"):
        return None
    ok = (
        isinstance(cal, dict)
        and cal.get("method") == "split-conformal"
        and cal.get("scale") in ("log", "units")
        and isinstance(cal.get("margin"), (int, float))
        and math.isfinite(cal["margin"])
    )
    if not ok:
        raise ValueError(
            f"predict_forecast: expected a split-conformal calibration in {run.summary}, "
            f"got {cal!r}"
        )
    return dict(cal)


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
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"predict_forecast: expected a forecaster's config in {run.model}, "
                         f"got: {err!r}") from None  # fmt: skip
    state = check_state_dict("predict_forecast", state, model.state_dict(), run.model)
    model.load_state_dict(state)
    return model


def predict_forecast(
    run_dir: str | os.PathLike[str],
    *,
    csv: str | None = None,
    columns: list[str] | None = None,
    date_column: str | None = None,
) -> dict[str, Any]:
    """The next H values after the end of the run's series (or of ``csv``):
    {"time": [...], "lower", "median", "upper", ...}.

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
    model = load_model(run, c.backend)
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
    q = forecast_levels(model, None, z, series.values[:, 0], scaler=scaler, tf=tf)
    calibration = _stored_calibration(run)
    lo, hi = calibrated_interval(q, model.median_index, calibration)
    _, labels = series.future(c.horizon)
    qs = model.quantiles.tolist()
    return {
        "series": series.name,
        "target": series.columns[0],
        "time": labels,
        "lower": lo.tolist(),
        "median": q[:, model.median_index].tolist(),
        "upper": hi.tolist(),
        "lower_raw": q[:, 0].tolist(),
        "upper_raw": q[:, -1].tolist(),
        "interval": [round(qs[0], 6), round(qs[-1], 6)],
        "calibration": calibration,
        "data": series.fill_report(),
    }
