"""grukit.training.trainer: the one loop, on a least-squares job small enough to check by
hand. Oracles: a plain loop written here (SGD, the cosine schedule and global-norm
clipping from their formulas) to 1e-12 in float64; an uninterrupted run (bitwise) for
resume and interruption; the metrics' own minimum for the kept epoch."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import grukit.training.trainer as trainer
from grukit.training import RunDir, TrainConfig, TrainingDiverged, load_state, load_weights
from grukit.training.trainer import fit, open_run


@dataclass(frozen=True)
class ToyConfig(TrainConfig):
    rows: int = 40
    batch_size: int = 8


class ToyJob:
    """y = X w + noise, fitted by a linear layer with SGD; batches in a random order drawn
    from torch's RNG (so resuming must restore it); validation MSE on held-out rows."""

    name, kind, config_key, unit, title = "train_toy", "toy", "toy", "row", "toy"

    def __init__(self, config: ToyConfig, data_seed: int = 0) -> None:
        self.config = config
        g = torch.Generator().manual_seed(data_seed)
        x = torch.randn(config.rows + 16, 3, generator=g, dtype=torch.float64)
        y = x @ torch.tensor([[1.5], [-2.0], [0.5]], dtype=torch.float64) + 0.1 * torch.randn(
            config.rows + 16, 1, generator=g, dtype=torch.float64
        )
        self.x, self.y = x[: config.rows], y[: config.rows]  # (R, 3), (R, 1)
        self.xv, self.yv = x[config.rows :], y[config.rows :]
        self.digest = f"toy-{data_seed}"
        torch.manual_seed(config.seed)
        self.model = nn.Linear(3, 1).double()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr)
        self.drawn: list[int] = []
        self.fail_at: int | None = None  # raise from this loss call (1-based)
        self.calls = 0

    def run_config(self) -> dict[str, Any]:
        return {"toy": self.config.to_dict(), "data_sha256": self.digest}

    def batches(self, epoch: int) -> Sequence[Tensor]:
        perm, b = torch.randperm(self.config.rows), self.config.batch_size
        return [perm[i : i + b] for i in range(0, len(perm), b)]

    def loss(self, batch: Tensor, carry: None) -> tuple[Tensor, None, int]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        pred = self.model(self.x[batch])
        return ((pred - self.y[batch]) ** 2).mean(), None, len(batch)

    def validate(self) -> float | None:
        with torch.no_grad():
            return float(((self.model(self.xv) - self.yv) ** 2).mean())

    def figures(self, train_loss: float, score: float | None) -> dict[str, float | None]:
        return {"train_mse": train_loss, "val_mse": score}

    def weights_metadata(self) -> dict[str, Any]:
        return {"kind": "toy"}

    def draw(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        self.drawn.append(len(records))


def _train(cfg: ToyConfig, out: Path, *, resume: bool = False, **kw: Any) -> tuple[ToyJob, Any]:
    job = ToyJob(cfg, kw.pop("data_seed", 0))
    job.fail_at = kw.pop("fail_at", None)
    run = open_run(out, resume=resume, overwrite=False)
    return job, fit(job, run, resume=resume, show_progress=False, **kw)


def _weights(out: Path) -> dict[str, Tensor]:
    return load_weights(out / "model.safetensors")[0]


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "rows_per_second")}
            for x in lines]  # fmt: skip


def test_loop_equals_sgd_with_cosine_schedule_and_clipping_by_hand(tmp_path: Path) -> None:
    cfg = ToyConfig(epochs=3, lr=0.3, lr_schedule="cosine", lr_min=0.01, clip=0.5, seed=4)
    job, result = _train(cfg, tmp_path / "run")
    # the oracle: the same data, order and initial weights, updated by the formulas
    torch.manual_seed(cfg.seed)
    w = nn.Linear(3, 1).double()
    p = [w.weight.detach().clone(), w.bias.detach().clone()]
    ref = ToyJob(cfg)
    losses = []
    for epoch in range(cfg.epochs):
        batches = ref.batches(epoch)
        total = 0.0
        for i, b in enumerate(batches):
            frac = (epoch + i / len(batches)) / cfg.epochs
            lr = cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * frac))
            q = [t.clone().requires_grad_() for t in p]
            loss = ((ref.x[b] @ q[0].t() + q[1] - ref.y[b]) ** 2).mean()
            grads = torch.autograd.grad(loss, q)
            norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
            scale = min(1.0, cfg.clip / (norm + 1e-6))  # torch's clip_grad_norm_
            p = [t - lr * scale * g for t, g in zip(p, grads, strict=True)]
            total += float(loss.detach()) * len(b)
        losses.append(total / cfg.rows)
        assert result.records[epoch]["lr"] == pytest.approx(lr, abs=1e-15)
    assert torch.allclose(job.model.weight, p[0], atol=1e-12, rtol=0)
    assert torch.allclose(job.model.bias, p[1], atol=1e-12, rtol=0)
    got = [r["train_mse"] for r in result.records]
    assert got == pytest.approx(losses, abs=1e-12)
    assert result.kept_epoch == 3 and job.drawn == [3]  # keep "last"; drawn at the end


def test_keep_best_holds_the_least_validation_epoch(tmp_path: Path) -> None:
    cfg = ToyConfig(epochs=12, lr=0.9, keep="best", seed=1)  # lr high: validation wobbles
    _, result = _train(cfg, tmp_path / "best")
    vals = [r["val_mse"] for r in result.records]
    k = vals.index(min(vals)) + 1
    assert result.best_epoch == result.kept_epoch == k
    # the oracle: the same run stopped after epoch k holds that epoch's weights
    last = ToyConfig(epochs=12, lr=0.9, keep="last", seed=1)
    _train(last, tmp_path / "cut", until_epoch=k)
    for name, t in _weights(tmp_path / "cut").items():
        assert torch.equal(_weights(tmp_path / "best")[name], t), name
    assert k not in (1, 12) or vals != sorted(vals)  # the case exercised: not trivially last


@pytest.mark.parametrize("keep", ["last", "best"])
def test_interrupted_and_resumed_equals_uninterrupted_bitwise(tmp_path: Path, keep: str) -> None:
    cfg = ToyConfig(epochs=4, lr=0.2, lr_schedule="cosine", keep=keep, seed=3)
    _train(cfg, tmp_path / "whole")
    # Ctrl-C in the third epoch (5 batches an epoch): epoch 2's checkpoint is on disk
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, tmp_path / "cut", fail_at=13)
    assert load_state(tmp_path / "cut" / "checkpoint.safetensors")["epoch"] == 2
    assert len(_records(tmp_path / "cut")) == 2
    _train(cfg, tmp_path / "cut", resume=True)
    assert _records(tmp_path / "cut") == _records(tmp_path / "whole")
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca = load_state(tmp_path / "whole" / "checkpoint.safetensors")
    cb = load_state(tmp_path / "cut" / "checkpoint.safetensors")
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])


def test_interruption_closes_the_progress_bar(tmp_path: Path, monkeypatch) -> None:
    closed: list[bool] = []

    class Bar:
        def update(self, n: float) -> None: ...
        def set_postfix(self, d: dict[str, str]) -> None: ...
        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(trainer, "progress", lambda *a, **k: Bar())
    with pytest.raises(KeyboardInterrupt):
        _train(ToyConfig(epochs=2), tmp_path / "run", fail_at=2)
    assert closed == [True]


def test_extending_epochs_equals_the_longer_run(tmp_path: Path) -> None:
    _train(ToyConfig(epochs=5, lr=0.1), tmp_path / "long")
    _train(ToyConfig(epochs=2, lr=0.1), tmp_path / "ext")
    _train(ToyConfig(epochs=5, lr=0.1), tmp_path / "ext", resume=True)
    assert _records(tmp_path / "ext") == _records(tmp_path / "long")


def test_resume_refusals(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="expected a run to resume"):
        _train(ToyConfig(epochs=2), out, resume=True)
    _train(ToyConfig(epochs=2, lr=0.1), out)
    with pytest.raises(
        ValueError, match=r"train_toy: .*only epochs may change.*lr 0.2 \(the run's: 0.1\)"
    ):
        _train(ToyConfig(epochs=3, lr=0.2), out, resume=True)
    with pytest.raises(ValueError, match="train_toy: expected the data the run .* different data"):
        _train(ToyConfig(epochs=3, lr=0.1), out, resume=True, data_seed=1)
    with pytest.raises(ValueError, match=r"checkpoint's epoch in \[0, 1\]"):
        _train(ToyConfig(epochs=1, lr=0.1), out, resume=True)  # fewer epochs than done
    with pytest.raises(ValueError, match="new or empty folder"):
        _train(ToyConfig(epochs=2, lr=0.1), out)  # an existing run, no overwrite
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({"lm": config["toy"], "data_sha256": "x"}))
    with pytest.raises(ValueError, match="expected a toy run to resume .* got a language-model"):
        _train(ToyConfig(epochs=3, lr=0.1), out, resume=True)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real = trainer.optimizer_step
    calls: list[int] = []

    def nan_in_epoch_two(*args: Any) -> float:
        calls.append(1)
        loss = real(*args)
        return math.nan if len(calls) == 7 else loss

    monkeypatch.setattr(trainer, "optimizer_step", nan_in_epoch_two)
    with pytest.raises(TrainingDiverged, match=r"train_toy: .*a loss of nan at batch 2 in epoch 2; "
                       r"stopped, keeping the last good checkpoint \(epoch 1\)"):  # fmt: skip
        _train(ToyConfig(epochs=3), tmp_path / "run")
    assert load_state(tmp_path / "run" / "checkpoint.safetensors")["epoch"] == 1
    assert [r["epoch"] for r in _records(tmp_path / "run")] == [1]


def test_non_finite_validation_is_divergence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ToyJob, "validate", lambda self: math.inf)
    with pytest.raises(TrainingDiverged, match="a val mse of inf in epoch 1"):
        _train(ToyConfig(epochs=2), tmp_path / "run")
