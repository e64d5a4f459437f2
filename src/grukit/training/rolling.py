"""Rolling-origin refits before the test part: the scores of the ``"rolling"``
calibration (calibration.py).

Origins o_1 > o_2 > … > o_F: o_1 = test_start − H (its window [o_1, o_1 + H) ends where
test begins), o_j = o_1 − (j − 1)·step. At each origin the config's models are trained
on the series' first o_j + H points — their own chronological split puts [o_j, o_j + H)
in their test part, validation before it, training before that — and forecast the H
points from o_j, which none of them trained or selected an epoch on.

``calibration_step`` 0 puts the origins a quarter of the horizon apart, closer where the
series has no room: step = min(max(1, H // 4), (o_1 − o_min) // (F − 1)), o_min the
earliest origin whose training part still holds one window (diff + L + H + 1 points). The
nearest origins are the ones most like the test part: on co2, origins a whole horizon apart
reached back into 1998–2000, whose errors (an El Niño jump in the growth rate) are several
times the later years' (docs/forecasting.md).

Letters: F origins, K models, H horizon, Q quantiles.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..data.series import Series
from .ensemble import train_models
from .forecast_config import ForecastConfig
from .forecast_job import quantile_forecasts, truncate
from .run_dir import RunDir
from .run_group import part_mode

__all__ = ["calibration_origins", "earliest_origin", "refit_forecasts"]


def earliest_origin(c: ForecastConfig) -> int:
    """The least index a run's test part may start at: a training part of diff + L + H + 1
    points (one window), then validation."""
    return c.diff + c.lookback + c.horizon + 1 + c.validation


def calibration_origins(c: ForecastConfig, n: int, owner: str = "train_forecast") -> list[int]:
    """The F rolling-calibration origins (module docstring) for a series of n points."""
    test_start, f = n - c.horizon, c.calibration_folds
    first, least = test_start - c.horizon, earliest_origin(c)
    room = first - least
    quarter = max(1, c.horizon // 4)
    step = c.calibration_step or (min(quarter, room // (f - 1)) if f > 1 else quarter)
    if room < 0 or step < 1 or first - (f - 1) * step < least:
        raise ValueError(
            f"{owner}: expected a series long enough for {f} rolling calibration origins "
            f"(the first at {first}, the rest {c.calibration_step or 'at least 1'} apart, none "
            f"before {least}: diff + lookback + 2·horizon + 1 + validation), got {n} points; "
            "use fewer calibration folds, a shorter lookback, or validation calibration"
        )
    return [first - j * step for j in range(f)]


def refit_forecasts(
    c: ForecastConfig,
    series: Series,
    origins: list[int],
    out: str | os.PathLike[str],
    *,
    resume: bool,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Each model's raw quantile forecasts (K, F, H, Q) of the H points from each origin,
    trained on the points before it (into out/origin-j, ordinary runs or ensembles), and
    the actuals (F, H)."""
    qs, ys = [], []
    fold = dataclasses.replace(c, calibration="none")  # no calibration inside a fold
    for j, o in enumerate(origins):
        d = Path(out) / f"origin-{j + 1}"
        t = train_models(fold, d, truncate(series, o + c.horizon),
                         resume=part_mode(RunDir(d), resume), show_progress=show_progress,
                         label=f"(calibration origin {j + 1}/{len(origins)})")  # fmt: skip
        starts = np.array([t.prepared.split.test_start])
        q, y = quantile_forecasts(t.models, t.prepared, starts, c.lookback)  # (K, 1, H, Q)
        qs.append(q[:, 0])
        ys.append(y[0])
    return np.stack(qs, axis=1), np.stack(ys)
