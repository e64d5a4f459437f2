"""Train a ``Forecaster`` on a series, evaluate it and its baselines, predict ahead.

``train_forecast(config, out)`` runs the whole job into a run directory (DESIGN.md
§3): config.json (config, scaling, transforms, split), model.safetensors (the
weights of the epoch with the best validation MAE), checkpoint.safetensors (each
epoch, for ``resume``), metrics.jsonl, summary.json, forecast.png and curves.png.
``predict_forecast(run)`` forecasts the H steps after the end of a series.

As for the language model: config.json stores the sha256 of the series trained on; an
existing run is replaced only with ``overwrite=True`` (swapped in once the new run's first
checkpoint is written); ``resume=True`` refuses a missing run, changed data, a changed
config (only ``epochs`` may grow) and a checkpoint that fails its digest or invariants;
a non-finite loss, validation error or weight stops training (``TrainingDiverged``)
with the last good checkpoint kept.

Letters: T time, C columns, L lookback, H horizon, Q quantiles, N windows.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..backends import resolve as resolve_backend
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
from .integrity import (
    TrainingDiverged,
    check_epoch,
    check_optimizer_state,
    check_rng_state,
    check_state_dict,
    finite_number,
)
from .metrics import forecast_metrics, mase_scale, naive, seasonal_naive
from .plots import plot_curves, plot_forecast
from .progress import progress
from .run_dir import RunDir

__all__ = [
    "ForecastConfig",
    "PRESETS",
    "TrainingDiverged",
    "load_series",
    "predict_forecast",
    "train_forecast",
]


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
            raise ValueError("load_series: expected the CSV's columns to use, got none")
        return load_csv(config.csv, list(config.columns), date_column=config.date_column)
    if config.dataset is None:
        raise ValueError("load_series: expected a bundled dataset or a CSV, got neither")
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
    ints = ("horizon", "lookback", "season", "hidden_size", "epochs", "batch_size", "num_layers")
    for name in ints:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"ForecastConfig: expected {name} >= 1, got {v!r}")
    if not isinstance(c.validation, int) or not (c.validation == 0 or c.validation >= c.horizon):
        raise ValueError(
            f"ForecastConfig: expected validation 0 (keep the last epoch) or >= the horizon "
            f"({c.horizon}) so one validation window fits, got {c.validation!r}"
        )
    if not isinstance(c.diff, int) or c.diff < 0:
        raise ValueError(f"ForecastConfig: expected diff >= 0 (a lag), got {c.diff!r}")
    if c.strategy not in ("direct", "recursive"):
        raise ValueError(
            f"ForecastConfig: expected strategy 'direct' or 'recursive', got {c.strategy!r}"
        )
    if not isinstance(c.seed, int) or isinstance(c.seed, bool) or c.seed < 0:
        raise ValueError(f"ForecastConfig: expected seed to be an int >= 0, got {c.seed!r}")
    if finite_number("ForecastConfig", "lr", c.lr) <= 0:
        raise ValueError(f"ForecastConfig: expected lr > 0, got {c.lr}")
    if finite_number("ForecastConfig", "weight_decay", c.weight_decay) < 0:
        raise ValueError(f"ForecastConfig: expected weight_decay >= 0, got {c.weight_decay}")
    if not 0.0 <= finite_number("ForecastConfig", "dropout", c.dropout) < 1.0:
        raise ValueError(f"ForecastConfig: expected dropout in [0, 1), got {c.dropout}")
    return c


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


def _check_resume(run: RunDir, cfg: dict[str, Any]) -> bool:
    """Refuse a run whose config (``epochs`` aside) or data differ; True if epochs differ."""
    saved = run.read_config()
    old = saved.get("config")
    if not isinstance(old, dict) or "scaler" not in saved:
        raise ValueError(
            f"train_forecast: expected a forecast run to resume in {run.path}, "
            f"got keys {sorted(saved)[:8]} (a language-model run?)"
        )
    new = cfg["config"]
    diff = sorted(k for k in set(old) | set(new) if k != "epochs" and old.get(k) != new.get(k))
    if diff:
        got = ", ".join(f"{k} {new.get(k)!r} (the run's: {old.get(k)!r})" for k in diff)
        raise ValueError(
            f"train_forecast: expected the settings of the run in {run.path} to resume (only "
            f"epochs may change), got {got}"
        )
    if saved.get("data_sha256") != cfg["data_sha256"]:
        raise ValueError(
            f"train_forecast: expected the data the run in {run.path} trained on (sha256 "
            f"{str(saved.get('data_sha256'))[:12]}…) to resume, got different data (sha256 "
            f"{cfg['data_sha256'][:12]}…)"
        )
    return old.get("epochs") != new["epochs"]


def _load_checkpoint(run: RunDir, model: Forecaster, opt: torch.optim.Optimizer, epochs: int):
    """(epoch, best) of the run's checkpoint, loaded into model and opt after every check
    (digest, keys, dtypes, shapes, finite values, epoch in [0, epochs])."""
    state, where, owner = run.load_checkpoint(), run.checkpoint, "train_forecast"
    if set(state) != {"epoch", "model", "optimizer", "rng", "best"}:
        raise ValueError(
            f"{owner}: expected a forecast checkpoint in {where}, got keys "
            f"{sorted(map(str, state))[:8]}"
        )
    epoch = check_epoch(owner, state["epoch"], epochs, where)
    weights = check_state_dict(owner, state["model"], model.state_dict(), where)
    opt_state = check_optimizer_state(owner, state["optimizer"], opt, where)
    rng = check_rng_state(owner, state["rng"], where)
    best = state["best"]
    if not isinstance(best, dict) or set(best) != {"epoch", "val_mae", "model"}:
        raise ValueError(f"{owner}: expected the best epoch's record in {where}, got another")
    check_epoch(owner, best["epoch"], epoch, where)
    if best["model"] is None:
        if epoch > 0:
            raise ValueError(f"{owner}: expected the best epoch's weights in {where}, got none")
    else:
        check_state_dict(owner, best["model"], model.state_dict(), where)
        finite_number(owner, "the best validation MAE", best["val_mae"])
    model.load_state_dict(weights)
    opt.load_state_dict(opt_state)
    set_rng_state(rng)
    return epoch, best


def _check_backend(model: Forecaster, dtype: torch.dtype = torch.float32) -> None:
    """Refuse a backend that cannot run the encoder before any file is written."""
    enc = model.encoder
    x = torch.zeros(1, 1, model.input_size, dtype=dtype)  # (N, L, I)
    resolve_backend("Forecaster", enc.backend, enc.spec, x)


def train_forecast(
    config: ForecastConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train, keep the best validation epoch, evaluate on test; returns summary.json's dict.

    Everything is checked (config, data, model, backend) before a file is written.
    overwrite: replace a run already in ``out`` (swapped in once the new run's config and
        first checkpoint are written); without it a folder holding files is refused.
    resume: continue the run in ``out`` (refused if there is none). Its config must equal
        ``config`` resolved, except ``epochs`` (which may extend it), and the data the same.
    Raises TrainingDiverged when the loss, the validation MAE or a weight becomes non-finite.
    """
    run = RunDir(out)
    if resume:
        run.check_resumable()
    else:
        run.check_new(overwrite=overwrite)
    series = load_series(config)
    c = resolve(config, series)
    p = prepare(c, series)
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
    _check_backend(model)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    cfg = {
        "config": dataclasses.asdict(c),
        "model": model.config(),
        "columns": series.columns,
        "transform": p.transform.to_dict(),
        "scaler": p.scaler.to_dict(),
        "split": p.split.to_dict(),
        "frequency": series.timeline.label() if series.timeline else "index",
        "data_sha256": series_sha256(series),
    }
    best: dict[str, Any] = {"epoch": 0, "val_mae": None, "model": None}
    if resume:
        extended = _check_resume(run, cfg)
        done, best = _load_checkpoint(run, model, opt, c.epochs)
        run.keep_metrics_until(done)
        if extended:
            run.write_config(cfg)
    else:
        first = {"epoch": 0, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "rng": rng_state(), "best": best}  # fmt: skip
        run.begin(cfg, first, overwrite=overwrite)
        done = 0
    x_tr, y_tr = _windows(p.z, p.train)
    val_starts = p.val[1][:, 0] if len(p.val[1]) else np.zeros(0, dtype=np.int64)
    bar = progress(c.epochs, f"forecast {series.name}", unit="epoch", disable=quiet)
    bar.update(done)

    def diverged(what: str, epoch: int) -> TrainingDiverged:
        bar.close()
        return TrainingDiverged(
            f"train_forecast: expected finite training, got {what} in epoch {epoch}; stopped, "
            f"keeping the last good checkpoint (epoch {epoch - 1}) in {run.path} (a lower "
            "learning rate may help)"
        )

    for epoch in range(done + 1, c.epochs + 1):
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
            if not math.isfinite(total):
                raise diverged(f"a loss of {loss.item()}", epoch)
        train_loss = total / len(perm)
        val_mae = _evaluate(model, p, val_starts, c.lookback) if val_starts.size else None
        if val_mae is not None and not math.isfinite(val_mae):
            raise diverged(f"a validation MAE of {val_mae}", epoch)
        if not all(bool(torch.isfinite(w).all()) for w in model.parameters()):
            raise diverged("non-finite weights", epoch)
        score = val_mae if val_mae is not None else -float(epoch)  # no validation: the last
        if best["model"] is None or score < best["val_mae"]:
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


def _run_config(run: RunDir) -> tuple[ForecastConfig, dict[str, Any]]:
    """(config, the whole config.json) of a forecast run; anything else is refused."""
    cfg = run.read_config()
    need = ("config", "columns", "transform", "scaler")
    if any(k not in cfg for k in need) or not isinstance(cfg["config"], dict):
        kind = "a language-model run" if "lm" in cfg else "another file"
        raise ValueError(
            f"predict_forecast: expected a forecast run's config.json in "
            f"{run.path}, got {kind} (keys {sorted(cfg)[:8]})"
        )
    try:
        c = ForecastConfig(**cfg["config"])
        tf, scaler = Transform(**cfg["transform"]), Scaler.from_dict(cfg["scaler"])
    except (TypeError, KeyError, AttributeError) as err:
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
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"predict_forecast: expected a forecaster's config in {run.model}, "
                         f"got: {err!r}") from None  # fmt: skip
    state = check_state_dict("predict_forecast", state, model.state_dict(), run.model)
    model.load_state_dict(state)
    return model


def predict_forecast(
    run_dir: str | os.PathLike,
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
        bundled = BUNDLED.get(c.dataset) if c.csv is None else None
        c.csv, c.dataset = csv, None
        c.columns = list(columns) if columns else list(c.columns or cfg["columns"])
        if date_column is not None:
            c.date_column = date_column
        elif bundled is not None:
            c.date_column = bundled.date_column
    elif columns or date_column:
        raise ValueError("predict_forecast: expected columns or a date column only with a CSV")
    if any(not isinstance(getattr(c, k), int) for k in ("lookback", "diff", "horizon")):
        raise ValueError(f"predict_forecast: expected a resolved config in {run.config}")
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
    _, labels = series.future(c.horizon)
    qs = model.quantiles.tolist()
    return {
        "series": series.name,
        "target": series.columns[0],
        "time": labels,
        "lower": q[:, 0].tolist(),
        "median": q[:, model.median_index].tolist(),
        "upper": q[:, -1].tolist(),
        "interval": [round(qs[0], 6), round(qs[-1], 6)],
        "data": series.fill_report(),
    }
