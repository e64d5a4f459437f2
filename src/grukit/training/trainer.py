"""The one training loop, used by the language model and the forecaster alike.

A job (``Job``: lm.py's ``LMJob``, forecast.py's ``ForecastJob``) supplies what differs —
its data, model, optimizer, loss, validation and metric names. ``fit`` does the rest,
the same for every job:

    per epoch e (of E): model.train(); the job's batches for e;
        per batch i of B: lr = config.lr_at((e + i/B) / E); the job's loss from the
            state carried from the previous batch; zero the gradients, backward, clip
            their global norm to config.clip, step;
        validation score v (lower is better; None without validation data);
        metrics line: {"epoch", the job's figures, "<unit>s_per_second", "lr", "seconds"};
        the best epoch so far (least v; without validation, the last); with
            config.keep == "best" its weights are kept aside;
        checkpoint: model, optimizer, torch RNG, epoch, totals, best (and the average).
    every max(10, E/10) epochs and at the end: model.safetensors (the kept weights) and
    the job's plots.

The same rules for every job:
- start: a folder holding files is refused unless ``overwrite``; the new run is built
  beside it and swapped in once its config and first checkpoint are written (RunDir).
- resume: refused when there is no run, when it is another kind of run, when its config
  differs in anything but ``epochs`` (which may grow, to extend it), when its data's
  sha256 differs, or when its checkpoint fails its digest or invariants. The resumed
  run ends bitwise equal to an uninterrupted one on the CPU (same thread count).
- divergence: a non-finite loss, figure or weight raises ``TrainingDiverged``, keeping
  the last good checkpoint (the previous epoch's).
- interruption (Ctrl-C, or ``until_epoch``): the last epoch's checkpoint is on disk; the
  progress bar is closed on the way out.
- weight averaging: a config with a field ``ema`` > 0 (LMConfig's) keeps an exponential
  moving average of the weights, updated after every step (averaging.py); validation,
  the best epoch's kept weights and model.safetensors are the average's, training goes on
  from the raw weights, and the checkpoint holds both.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from .._extras import require
from . import distributed
from .averaging import WeightAverage
from .checkpoint import rng_state, save_weights, set_rng_state
from .config import TrainConfig
from .distributed import World
from .integrity import (
    TrainingDiverged,
    check_epoch,
    check_optimizer_state,
    check_rng_state,
    check_state_dict,
    finite_number,
)
from .progress import progress
from .run_dir import RunDir

__all__ = ["Fit", "Job", "describe_run", "fit", "open_run", "optimizer_step", "train"]

J = TypeVar("J", bound="Job")

_TOTALS = ("examples", "train_seconds", "wall_seconds")
_CHECKPOINT = {"model", "optimizer", "rng", "epoch", "totals", "best"}


class Job(Protocol):
    """What a kind of training supplies to ``fit``."""

    #: The public function that trains it, naming its errors ("train_lm").
    name: str
    #: What its runs are called in messages ("language-model").
    kind: str
    #: The key of its config in config.json ("lm", "config").
    config_key: str
    #: What a step's count counts ("token", "window"): "<unit>s_per_second".
    unit: str
    #: The progress bar's label.
    title: str

    @property
    def config(self) -> TrainConfig: ...

    @property
    def model(self) -> nn.Module: ...

    @property
    def optimizer(self) -> torch.optim.Optimizer: ...

    def run_config(self) -> dict[str, Any]:
        """config.json: the config under ``config_key``, "data_sha256", what loading needs."""
        ...

    def batches(self, epoch: int) -> Sequence[Any]:
        """The batches of ``epoch`` (0-based), drawn at its start."""
        ...

    def loss(self, batch: Any, carry: Any) -> tuple[Tensor, Any, int]:
        """(mean loss, state carried to the next batch, examples counted) of one batch;
        ``carry`` is None at an epoch's start."""
        ...

    def validate(self) -> float | None:
        """The validation score (lower is better), or None without validation data."""
        ...

    def figures(self, train_loss: float, score: float | None) -> dict[str, float | None]:
        """The epoch's named figures for metrics.jsonl from its mean training loss and
        validation score."""
        ...

    def weights_metadata(self) -> dict[str, Any]:
        """model.safetensors' header metadata (what rebuilding the model needs)."""
        ...

    def draw(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        """Plot the metrics so far (PNG) into ``run``."""
        ...


@dataclass
class Fit:
    """What ``fit`` leaves: every epoch's metrics, the totals and the epochs chosen."""

    records: list[dict[str, Any]]
    totals: dict[str, float]
    best_epoch: int  # least validation score (the last epoch without validation)
    best_score: float | None
    kept_epoch: int  # whose weights the model now holds
    epochs: int
    world: World  # the training processes; only the main one writes

    def summary(self, unit: str) -> dict[str, Any]:
        """summary.json's figures about the training itself."""
        return {
            "epochs_completed": len(self.records),
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "kept_epoch": self.kept_epoch,
            f"{unit}s_per_second": self.totals["examples"]
            / max(self.totals["train_seconds"], 1e-12),
            "wall_seconds": self.totals["wall_seconds"],
            "threads": torch.get_num_threads(),
            "world_size": self.world.size,
        }


def describe_run(saved: Mapping[str, Any]) -> str:
    """What a config.json belongs to, for messages: "a language-model run", …"""
    if isinstance(saved.get("lm"), dict):
        return "a language-model run"
    if isinstance(saved.get("config"), dict) and "scaler" in saved:
        return "a forecast run"
    return f"another file (keys {sorted(map(str, saved))[:8]})"


def open_run(out: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> RunDir:
    """The run directory ``out``, checked before any work: it must hold a run to resume
    (``resume``), or be new, empty or (``overwrite``) an earlier run to replace. (Under
    several processes the main one checks a new run, the one that will write it.)"""
    run = RunDir(out)
    if resume:
        run.check_resumable()
    elif distributed.world().main:
        run.check_new(overwrite=overwrite)
    return run


def optimizer_step(
    model: nn.Module, opt: torch.optim.Optimizer, loss: Tensor, clip: float
) -> float:
    """Zero the gradients, backpropagate ``loss``, clip the gradients' global norm to
    ``clip``, step; the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
    opt.step()
    return float(loss.detach())


def _checkpoint(
    job: Job,
    epoch: int,
    totals: dict[str, float],
    best: dict[str, Any],
    average: WeightAverage | None,
) -> dict[str, Any]:
    state = {
        "model": job.model.state_dict(),
        "optimizer": job.optimizer.state_dict(),
        "rng": rng_state(),
        "epoch": epoch,
        "totals": dict(totals),
        "best": best,
    }
    if average is not None:
        state["average"] = average.to_checkpoint()
    return state


def _averaging(job: Job) -> WeightAverage | None:
    """The job's weight average: when its config has an ``ema`` decay > 0."""
    decay = float(getattr(job.config, "ema", 0.0))
    return WeightAverage(job.model, decay) if decay > 0 else None


def _kept_weights(job: Job, average: WeightAverage | None) -> dict[str, Tensor]:
    """A copy of the weights that validation saw: the average's, else the model's."""
    if average is not None:
        return average.state_dict()
    return copy.deepcopy(job.model.state_dict())


def _json(d: object) -> Any:
    return json.loads(json.dumps(d))


def _check_resume(job: Job, run: RunDir, run_config: dict[str, Any]) -> bool:
    """Refuse another kind of run, another config (``epochs`` aside) or other data; True
    when ``epochs`` differ (the run is extended)."""
    saved = run.read_config()
    old, new = saved.get(job.config_key), _json(run_config[job.config_key])
    if not isinstance(old, dict) or describe_run(saved) != describe_run(run_config):
        raise ValueError(
            f"{job.name}: expected a {job.kind} run to resume in {run.path}, got "
            f"{describe_run(saved)}"
        )
    diff = sorted(k for k in set(old) | set(new) if k != "epochs" and old.get(k) != new.get(k))
    if diff:
        got = ", ".join(f"{k} {new.get(k)!r} (the run's: {old.get(k)!r})" for k in diff)
        raise ValueError(
            f"{job.name}: expected the config of the run in {run.path} to resume (only epochs "
            f"may change), got {got}"
        )
    if saved.get("data_sha256") != run_config["data_sha256"]:
        raise ValueError(
            f"{job.name}: expected the data the run in {run.path} trained on (sha256 "
            f"{str(saved.get('data_sha256'))[:12]}…) to resume, got different data (sha256 "
            f"{run_config['data_sha256'][:12]}…)"
        )
    return bool(old.get("epochs") != new["epochs"])


def _load_checkpoint(
    job: Job, run: RunDir, average: WeightAverage | None
) -> tuple[int, dict[str, float], dict[str, Any]]:
    """(epoch, totals, best) of the run's checkpoint, loaded into the model, optimizer,
    RNG and ``average`` after every check (digest, keys, dtypes, shapes, finite values,
    epochs)."""
    ckpt, where, owner = run.load_checkpoint(), run.checkpoint, job.name
    keys = _CHECKPOINT | ({"average"} if average is not None else set())
    if set(ckpt) != keys:
        raise ValueError(
            f"{owner}: expected a {job.kind} checkpoint with {sorted(keys)} in {where}, "
            f"got keys {sorted(map(str, ckpt))[:8]}"
        )
    expected = job.model.state_dict()
    epoch = check_epoch(owner, ckpt["epoch"], job.config.epochs, where)
    weights = check_state_dict(owner, ckpt["model"], expected, where)
    opt_state = check_optimizer_state(owner, ckpt["optimizer"], job.optimizer, where)
    rng = check_rng_state(owner, ckpt["rng"], where)
    totals = ckpt["totals"]
    if not isinstance(totals, dict) or set(totals) != set(_TOTALS):
        raise ValueError(f"{owner}: expected the run's totals {list(_TOTALS)} in {where}")
    for k, v in totals.items():
        if finite_number(owner, k, v) < 0:
            raise ValueError(f"{owner}: expected {k} >= 0 in {where}, got {v}")
    best = ckpt["best"]
    if not isinstance(best, dict) or set(best) != {"epoch", "score", "model"}:
        raise ValueError(f"{owner}: expected the best epoch's record in {where}, got another")
    check_epoch(owner, best["epoch"], epoch, where)
    if epoch > 0:
        finite_number(owner, "the best validation score", best["score"])
    if job.config.keep == "best" and epoch > 0:
        check_state_dict(owner, best["model"], expected, where)
    elif best["model"] is not None and job.config.keep == "last":
        raise ValueError(f"{owner}: expected no kept weights (keep 'last') in {where}")
    if average is not None:
        average.load_checkpoint(ckpt["average"], where)
    job.model.load_state_dict(weights)
    job.optimizer.load_state_dict(opt_state)
    set_rng_state(rng)
    return epoch, {k: float(v) for k, v in totals.items()}, best


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _write_outputs(
    job: Job,
    run: RunDir,
    records: list[dict[str, Any]],
    best: dict[str, Any],
    average: WeightAverage | None,
) -> None:
    """model.safetensors (the kept weights) and the job's plots."""
    state = best["model"] if best["model"] is not None else _kept_weights(job, average)
    save_weights(run.model, state, job.weights_metadata())
    job.draw(run, records)


def fit(
    job: Job,
    run: RunDir,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> Fit:
    """Train ``job`` into ``run`` (from ``open_run``) under the rules above; the model ends
    holding the kept weights (``config.keep``). ``until_epoch`` stops after that epoch, as
    an interruption would (the run stays resumable)."""
    cfg, w = job.config, distributed.world()
    require("matplotlib", "cli", f"{job.name} (its plots)")  # before a file is written
    if show_progress:
        require("tqdm", "cli", f"{job.name} (its progress bar)")
    run_config = job.run_config()
    totals = dict.fromkeys(_TOTALS, 0.0)
    best: dict[str, Any] = {"epoch": 0, "score": None, "model": None}
    average = _averaging(job)
    if resume:  # every process reads the run; the main one alone writes it
        extended = _check_resume(job, run, run_config)
        start, totals, best = _load_checkpoint(job, run, average)
        if w.main:
            records = run.keep_metrics_until(start)
            if extended:
                run.write_config(run_config)
        else:
            records = [r for r in run.read_metrics() if r.get("epoch", 0) <= start]
    else:
        if w.main:
            run.begin(run_config, _checkpoint(job, 0, totals, best, average), overwrite=overwrite)
        start, records = 0, []
    distributed.barrier(w)
    net = distributed.wrap(_Step(job), w)
    last = cfg.epochs if until_epoch is None else max(start, min(until_epoch, cfg.epochs))
    every = max(10, cfg.epochs // 10)  # a PNG costs ~0.1-1 s: not every epoch
    bar = progress(
        cfg.epochs,
        job.title,
        unit="epoch",
        disable=not (show_progress and w.main),
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
    try:
        bar.update(start)
        for epoch in range(start, last):
            t0 = time.perf_counter()
            record, count, seconds = _epoch(job, net, w, epoch, run, bar, average)
            score = record.pop("_score")
            if score is None:
                score = -float(epoch + 1)  # no validation: the last epoch is the best
            if best["epoch"] == 0 or score < best["score"]:
                kept = _kept_weights(job, average) if cfg.keep == "best" else None
                best = {"epoch": epoch + 1, "score": score, "model": kept}
            totals["examples"] += count
            totals["train_seconds"] += seconds
            totals["wall_seconds"] += time.perf_counter() - t0
            records.append(record)
            if w.main:
                run.append_metrics(record)
                run.save_checkpoint(_checkpoint(job, epoch + 1, totals, best, average))
                if (epoch + 1) % every == 0 and epoch + 1 < last:
                    _write_outputs(job, run, records, best, average)
    finally:
        bar.close()
    if best["model"] is not None:
        job.model.load_state_dict(best["model"])
    elif average is not None:  # keep "last": the last epoch's average
        job.model.load_state_dict(average.state_dict())
    if w.main:
        _write_outputs(job, run, records, best, average)
    kept_epoch: int = best["epoch"] if cfg.keep == "best" else last
    return Fit(
        records=records,
        totals=totals,
        best_epoch=int(best["epoch"]),
        best_score=best["score"],
        kept_epoch=kept_epoch,
        epochs=cfg.epochs,
        world=w,
    )


class _Step(nn.Module):
    """One batch's loss as a module's forward, so that DistributedDataParallel (which
    averages the gradients of what its forward computed) can wrap it."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.model = job.model  # the parameters DDP synchronises
        self.job = job

    def forward(self, batch: Any, carry: Any) -> tuple[Tensor, Any, int]:
        return self.job.loss(batch, carry)


def _shard(batch: Any, w: World) -> tuple[Any, float]:
    """This process's rows of a global batch (a tensor or a tuple of tensors, rows first)
    and its loss weight k·K/B (distributed.py). A process left without rows computes on
    the first row with weight 0, so that every process runs forward and backward."""
    first = batch[0] if isinstance(batch, tuple) else batch
    n = int(first.shape[0])
    part = distributed.rows(n, w)
    k = part.stop - part.start
    if k == 0:
        part = slice(0, 1)
    local = tuple(t[part] for t in batch) if isinstance(batch, tuple) else batch[part]
    return local, k * w.size / n


def _epoch(
    job: Job,
    net: nn.Module,
    w: World,
    epoch: int,
    run: RunDir,
    bar: Any,
    average: WeightAverage | None,
) -> tuple[dict[str, Any], int, float]:
    """Train one epoch and validate (the average's weights, when averaging): (metrics
    record with "_score", examples of every process, seconds)."""
    cfg, model, opt = job.config, job.model, job.optimizer

    def diverged(what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"{job.name}: expected finite training, got {what} in epoch {epoch + 1}; stopped, "
            f"keeping the last good checkpoint (epoch {epoch}) in {run.path} (a lower "
            f"learning rate or clip may help)"
        )

    t0 = time.perf_counter()
    model.train()
    batches = job.batches(epoch)
    carry: Any = None
    loss_sum, count, postfix = 0.0, 0, {}
    for i, batch in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at((epoch + i / len(batches)) / cfg.epochs)
        if w.size == 1:
            loss_t, carry, n = net(batch, carry)
            loss = optimizer_step(model, opt, loss_t, cfg.clip)
            bad = not math.isfinite(loss)
        else:  # the weighted mean loss: DDP's average is the global batch's gradient
            local, share = _shard(batch, w)
            loss_t, carry, n = net(local, carry)
            optimizer_step(model, opt, loss_t * share, cfg.clip)
            loss, n = (float(loss_t.detach()), n) if share > 0 else (0.0, 0)
            bad = distributed.any_true(not math.isfinite(loss), w)
        if average is not None:
            average.update()
        if bad:
            raise diverged(f"a loss of {loss if w.size == 1 else 'nan or inf'} at batch {i + 1}")
        loss_sum += loss * n
        count += n
        bar.update(1 / len(batches))
        if i % 8 == 0:  # the running figures of this process's rows
            postfix.update(_short(job.figures(loss_sum / max(count, 1), None)))
            bar.set_postfix(postfix)
    loss_sum, total = distributed.all_sum([loss_sum, count], w)
    count = int(total)
    seconds = time.perf_counter() - t0
    with average.applied() if average is not None else contextlib.nullcontext():
        score = job.validate()
    figures = job.figures(loss_sum / count, score)
    for key, value in figures.items():
        if value is not None and not math.isfinite(value):
            raise diverged(f"a {key.replace('_', ' ')} of {value}")
    if not _all_finite(model):
        raise diverged("non-finite weights")
    record = {
        "epoch": epoch + 1,
        **figures,
        f"{job.unit}s_per_second": count / seconds,
        "lr": opt.param_groups[0]["lr"],
        "seconds": seconds,
    }
    postfix.update(_short(figures), **{f"{job.unit}/s": f"{count / seconds:,.0f}"})
    bar.set_postfix(postfix)
    return {**record, "_score": score}, count, seconds


def _short(figures: Mapping[str, float | None]) -> dict[str, str]:
    return {k: f"{v:.4g}" for k, v in figures.items() if v is not None}


def train(
    make_job: Callable[[], J],
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> tuple[J, RunDir, Fit]:
    """A whole training job: check the run directory ``out`` (``open_run``), then build the
    job (its data, model and optimizer: everything is checked before a file is written),
    then ``fit`` it. overwrite: replace a run already in ``out``; resume: continue it
    (its config must be the job's, ``epochs`` aside); until_epoch: stop after that epoch,
    as an interruption would."""
    run = open_run(out, resume=resume, overwrite=overwrite)
    job = make_job()
    result = fit(
        job,
        run,
        resume=resume,
        overwrite=overwrite,
        show_progress=show_progress,
        until_epoch=until_epoch,
    )
    return job, run, result
