"""Seed ensembles: K forecasters trained alike but for their seeds (seed, seed+1, …),
whose forecast is the median of their quantiles at each step (forecast_eval.combine).

With K = 1 the run directory is an ordinary run (trainer.py). With K > 1 it is a group
(run_group.py): config.json (the ensemble's config and scaling, what predicting needs),
and member-1/ … member-K/, each an ordinary run of ``replace(config, ensemble=1,
seed=seed+k−1)`` with its own checkpoint, metrics and summary. Resuming an ensemble keeps
every finished member as it is, resumes the interrupted one from its checkpoint and
starts those not yet begun; --epochs may grow (every member is extended).

Letters: K members.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._extras import require
from ..data.series import Series
from ..models.forecaster import Forecaster
from .forecast_config import ForecastConfig
from .forecast_job import ForecastJob, Prepared
from .run_dir import RunDir
from .run_group import open_group, part_mode
from .trainer import Fit, train

__all__ = ["Trained", "member_config", "member_dirs", "train_models"]

GROUP = "forecast-ensemble"


@dataclass
class Trained:
    """What ``train_models`` leaves: the run, its K models (each holding its kept weights),
    the prepared data (the same for every member) and each member's training record."""

    run: RunDir
    models: list[Forecaster]
    prepared: Prepared
    fits: list[Fit]
    members: list[RunDir]  # [run] itself when K = 1
    run_config: dict[str, Any]


def member_config(config: ForecastConfig, k: int) -> ForecastConfig:
    """Member k's (0-based) config: one model, seed + k."""
    return dataclasses.replace(config, ensemble=1, seed=config.seed + k)


def member_dirs(out: str | os.PathLike[str], k: int) -> list[Path]:
    return [Path(out) / f"member-{i + 1}" for i in range(k)]


def train_models(
    config: ForecastConfig,
    out: str | os.PathLike[str],
    series: Series,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
    label: str = "",
) -> Trained:
    """Train ``config.ensemble`` models on ``series`` into ``out`` (module docstring;
    trainer.train's options, applied to every member)."""
    k = config.ensemble
    if k == 1:
        job, run, fit = train(lambda: ForecastJob(config, series, label), out, resume=resume,
                              overwrite=overwrite, show_progress=show_progress,
                              until_epoch=until_epoch)  # fmt: skip
        return Trained(run, [job.model], job.prepared, [fit], [run], job.run_config())
    require("matplotlib", "cli", "train_forecast (its plots)")  # before a file is written
    probe = ForecastJob(member_config(config, 0), series)  # checks data and settings first
    dirs = member_dirs(out, k)
    group = {**probe.run_config(), "config": config.to_dict(),
             "group": {"kind": GROUP, "parts": [d.name for d in dirs],
                       "seeds": [config.seed + i for i in range(k)]}}  # fmt: skip
    run = open_group("train_forecast", GROUP, out, group, resume=resume, overwrite=overwrite)
    models, fits, members = [], [], []
    for i, d in enumerate(dirs):
        again = part_mode(RunDir(d), resume)
        tag = f"member {i + 1}/{k}" + (f" {label}" if label else "")
        job, member, fit = train(
            lambda i=i, tag=tag: ForecastJob(member_config(config, i), series, tag),  # type: ignore[misc]
            d,
            resume=again,
            show_progress=show_progress,
            until_epoch=until_epoch,
        )
        models.append(job.model)
        fits.append(fit)
        members.append(member)
    return Trained(run, models, probe.prepared, fits, members, group)
