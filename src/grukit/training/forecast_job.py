"""The forecaster's training job for the one loop (trainer.py), and what it prepares:
the series on the model's scale, the windows of each part, quantile forecasts in the
series' units.

Letters: T time, C columns, L lookback, H horizon, Q quantiles, N windows, K models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.series import (
    Scaler,
    Series,
    Split,
    Transform,
    chronological_split,
    window_indices,
)
from ..models.forecaster import Forecaster
from ..models.recurrent import backend_name
from .forecast_config import ForecastConfig, load_series
from .plots import plot_curves
from .run_dir import RunDir

__all__ = [
    "ForecastJob",
    "Prepared",
    "forecast_levels",
    "prepare",
    "quantile_forecasts",
    "series_sha256",
    "truncate",
]


def series_sha256(series: Series) -> str:
    """sha256 of a series' values (T, C), columns and timestamps: what a run trains on,
    stored in config.json so that resuming on changed data is refused."""
    h = hashlib.sha256(json.dumps(series.columns).encode())
    h.update(np.ascontiguousarray(series.values, dtype=np.float64).tobytes())
    if series.timeline is not None:
        h.update(np.asarray(series.timeline.ordinals, dtype=np.int64).tobytes())
    return h.hexdigest()


def truncate(series: Series, n: int) -> Series:
    """The first ``n`` points of ``series`` (a backtest fold's or calibration origin's
    view: nothing after them is read)."""
    tl = series.timeline
    return dataclasses.replace(
        series,
        values=series.values[:n],
        timeline=dataclasses.replace(tl, ordinals=tl.ordinals[:n]) if tl is not None else None,
    )


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

    @property
    def val_starts(self) -> np.ndarray:
        """(N,) the first target index of each validation window."""
        return self.val[1][:, 0] if len(self.val[1]) else np.zeros(0, dtype=np.int64)


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


def quantile_forecasts(
    models: Sequence[Forecaster], p: Prepared, starts: np.ndarray, lookback: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each model's quantile forecasts (K, N, H, Q) and the actuals (N, H), in the
    series' units, of the windows whose targets start at each index in ``starts`` (N,)
    (the targets must lie in the series)."""
    y, h = p.series.values[:, 0], models[0].horizon
    q = [
        [forecast_levels(m, p, p.z[t - lookback : t], y[:t]) for t in starts] for m in models
    ]  # fmt: skip
    actual = np.array([y[t : t + h] for t in starts]).reshape(len(starts), h)
    return np.array(q).reshape(len(models), len(starts), h, len(models[0].quantiles)), actual


def _check_backend(model: Forecaster) -> None:
    """Refuse a backend that cannot run the encoder before any file is written."""
    backend_name("Forecaster", model.encoder)


class ForecastJob:
    """The forecaster as a ``trainer.Job``: shuffled batches of training windows (the
    permutation drawn from torch's RNG, which the checkpoint keeps), pinball loss over
    the quantiles, the median's MAE (in the series' units) on the validation windows.

    ``series``: what to train on (default: the config's; a backtest fold passes a
    truncated one); ``label``: added to the progress bar's title ("member 2/5")."""

    name, kind, config_key, unit = "train_forecast", "forecast", "config", "window"

    def __init__(
        self, config: ForecastConfig, series: Series | None = None, label: str = ""
    ) -> None:
        self.config = c = config
        self.series = series if series is not None else load_series(c)
        self.title = f"forecast {self.series.name}" + (f" {label}" if label else "")
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
            cell=c.cell,
            recurrent_dropout=c.recurrent_dropout,
            zoneout=c.zoneout,
        )
        _check_backend(self.model)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay
        )
        self.x, self.y = _windows(p.z, p.train)  # (N, L, C), (N, H, C)
        self.val_starts = p.val_starts

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
        q, y = quantile_forecasts([self.model], self.prepared, self.val_starts,
                                  self.config.lookback)  # fmt: skip
        med = q[0, :, :, self.model.median_index]  # (N, H)
        return float(np.mean([np.abs(m - a).mean() for m, a in zip(med, y, strict=True)]))

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
