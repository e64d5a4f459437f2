"""Seed ensembles (training/ensemble.py, forecast.py): the forecast is the median of the
members' quantiles (checked by hand, 1e-12), calibrated on the ensemble's own validation
forecasts; predict uses every member; resume keeps finished members (bitwise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grukit.cli import main
from grukit.training import load_weights
from grukit.training.forecast import (
    forecast_config,
    forecast_levels,
    load_model,
    predict_forecast,
    train_forecast,
)
from grukit.training.forecast_config import load_series
from grukit.training.forecast_job import prepare
from grukit.training.metrics import conformal_margin
from grukit.training.run_dir import RunDir

TOL = 1e-12


def _csv(path: Path, n: int = 160) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    y = 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.standard_normal(n)
    path.write_text("y\n" + "\n".join(f"{v:.6f}" for v in y) + "\n")
    return path


def _cfg(path: Path, **kw: object):  # type: ignore[no-untyped-def]
    base = {"csv": str(path), "columns": ("y",), "horizon": 8, "validation": 16,
            "lookback": 8, "season": 12, "epochs": 2, "hidden_size": 4, "seed": 5}  # fmt: skip
    return forecast_config(**{**base, **kw})


def _middle(a: float, b: float, c: float) -> float:
    return sorted((a, b, c))[1]


def test_ensemble_is_the_median_of_members_quantiles(tmp_path: Path) -> None:
    cfg = _cfg(_csv(tmp_path / "s.csv"), ensemble=3)
    s = train_forecast(cfg, tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    assert s["ensemble"] == {"size": 3, "seeds": [5, 6, 7]}
    assert [m["seed"] for m in s["members"]] == [5, 6, 7]
    series = load_series(cfg)
    p = prepare(cfg, series)
    y, t0 = series.values[:, 0], p.split.test_start
    models = [load_model(RunDir(run / f"member-{k}")) for k in (1, 2, 3)]
    q = [forecast_levels(m, p, p.z[t0 - 8 : t0], y[:t0]) for m in models]  # 3 × (H, Q)
    hand = np.array([[_middle(q[0][h, j], q[1][h, j], q[2][h, j]) for j in range(3)]
                     for h in range(8)])  # fmt: skip
    f = s["forecast"]
    assert np.abs(np.array(f["median"]) - hand[:, 1]).max() < TOL
    assert np.abs(np.array(f["lower_raw"]) - hand[:, 0]).max() < TOL
    assert np.abs(np.array(f["upper_raw"]) - hand[:, 2]).max() < TOL
    assert abs(s["test"]["mae"] - np.abs(hand[:, 1] - y[t0:]).mean()) < TOL
    for k in range(3):  # each member's own figures beside the ensemble's
        mae = np.abs(q[k][:, 1] - y[t0:]).mean()
        assert abs(s["members"][k]["test"]["mae"] - mae) < TOL
        member = json.loads((run / f"member-{k + 1}" / "summary.json").read_text())
        assert abs(member["test"]["mae"] - mae) < TOL
    # calibrated on the ensemble's validation forecasts: its margin by hand
    lo, hi, act = [], [], []
    for t in p.val_starts:
        qq = [forecast_levels(m, p, p.z[t - 8 : t], y[:t]) for m in models]
        lo.append([_middle(*(x[h, 0] for x in qq)) for h in range(8)])
        hi.append([_middle(*(x[h, 2] for x in qq)) for h in range(8)])
        act.append(y[t : t + 8])
    margin = conformal_margin(np.array(lo), np.array(hi), np.array(act), 0.2)
    assert s["calibration"]["source"] == "validation"
    assert abs(s["calibration"]["conformal_margin"] - margin) < TOL
    assert abs(s["calibration"]["margin"] - max(margin, 0.0)) < TOL
    # predict: the median over every member's forecast of the series' next 8 points
    e = predict_forecast(run)
    parts = [predict_forecast(run / f"member-{k}") for k in (1, 2, 3)]
    want = [_middle(*(x["median"][h] for x in parts)) for h in range(8)]
    assert e["members"] == 3 and np.abs(np.array(e["median"]) - want).max() < TOL
    want_lo = [_middle(*(x["lower_raw"][h] for x in parts)) for h in range(8)]
    assert np.abs(np.array(e["lower_raw"]) - want_lo).max() < TOL


def test_resume_keeps_finished_members_and_finishes_the_rest(tmp_path: Path) -> None:
    path = _csv(tmp_path / "s.csv")
    cfg = _cfg(path, ensemble=2, epochs=3)
    ref = train_forecast(cfg, tmp_path / "ref", show_progress=False)
    # interrupted: every member stopped after epoch 1; resumed, it equals the reference
    train_forecast(cfg, tmp_path / "cut", show_progress=False, until_epoch=1)
    got = train_forecast(cfg, tmp_path / "cut", resume=True, show_progress=False)
    assert got["test"] == ref["test"] and got["members"] == ref["members"]
    # member 2 lost (killed before it began): member 1 is kept as it is, member 2 retrained
    import shutil

    m1 = tmp_path / "ref" / "member-1"
    metrics = (m1 / "metrics.jsonl").read_bytes()
    weights, meta = load_weights(m1 / "model.safetensors")
    shutil.rmtree(tmp_path / "ref" / "member-2")
    again = train_forecast(cfg, tmp_path / "ref", resume=True, show_progress=False)
    assert (m1 / "metrics.jsonl").read_bytes() == metrics  # no epoch ran again
    weights_after, meta_after = load_weights(m1 / "model.safetensors")
    assert meta_after == meta and all(torch.equal(weights[k], weights_after[k]) for k in weights)
    assert again["test"] == ref["test"]
    lines = (tmp_path / "ref" / "member-2" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # the run rules: refused without overwrite, a changed setting refused on resume
    with pytest.raises(ValueError, match="RunDir: expected a new or empty folder"):
        train_forecast(cfg, tmp_path / "ref", show_progress=False)
    with pytest.raises(ValueError, match="hidden_size"):
        train_forecast(_cfg(path, ensemble=2, epochs=3, hidden_size=5), tmp_path / "ref",
                       resume=True, show_progress=False)  # fmt: skip


def test_cli_ensemble_reports_members_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path / "s.csv")
    args = ["forecast", "train", "--csv", str(path), "--column", "y", "--horizon", "8",
            "--lookback", "8", "--epochs", "1", "--hidden-size", "4", "--ensemble", "2",
            "--no-progress", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "GRU ×2 median" in out and "member 1 (seed 0)" in out and "member 2 (seed 1)" in out
    assert main(["forecast", "predict", "--run", str(tmp_path / "r")]) == 0
    assert "median of the 2 members" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "r")]) == 2  # an existing run: refused
    err = capsys.readouterr().err
    assert err.startswith("grukit forecast: error: ") and len(err.strip().splitlines()) == 1
