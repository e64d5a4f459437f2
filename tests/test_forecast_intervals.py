"""Interval metrics, split-conformal calibration and Holt-Winters (grukit.training.metrics)
against hand computations (1e-12) and exact series; calibration end to end on a series
where the raw quantile head is too narrow."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from grukit.training.forecast import (
    calibrated_interval,
    forecast_config,
    forecast_levels,
    predict_forecast,
    train_forecast,
)
from grukit.training.metrics import (
    apply_margin,
    conformal_margin,
    holt_winters,
    interval_metrics,
    pinball,
    point_interval_metrics,
)

TOL = 1e-12
LEVELS = np.array([0.1, 0.5, 0.9])


def test_pinball_and_crps_by_hand() -> None:
    y = np.array([1.0, 2.0])
    q = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    # u = y − q: row 1 (1, 0, −2) → 0.1·1, 0, 0.1·2; row 2 all 0
    want = (0.1 + 0.0 + 0.2 + 0.0 + 0.0 + 0.0) / 6
    assert abs(pinball(y, q, LEVELS) - want) < TOL
    m = interval_metrics(y, q, LEVELS)
    assert abs(m["crps"] - 2 * want) < TOL and m["coverage"] == 1.0
    m = interval_metrics(np.array([5.0, 2.0]), q, LEVELS)  # 5 is above [0, 3]
    assert m["coverage"] == 0.5
    # a point forecast: CRPS is its MAE; pinball over levels symmetric about 0.5 is MAE/2
    f = np.array([0.0, 5.0])
    p = point_interval_metrics(y, f, LEVELS)
    assert abs(p["crps"] - 2.0) < TOL
    # u = (1, −3): levels' mean of max(τu, (τ−1)u) = 0.5·1 and 0.5·3
    assert abs(p["pinball"] - (0.5 * 1 + 0.5 * 3) / 2) < TOL
    with pytest.raises(ValueError, match="pinball: expected quantiles of shape"):
        pinball(y, q[:, :2], LEVELS)


def test_conformal_margin_by_hand_on_ten_points() -> None:
    lo = np.zeros(10)
    hi = np.ones(10)
    y = np.array([0.5, 1.3, -0.2, 0.9, 2.0, -1.0, 0.1, 1.05, 0.7, 3.0])
    # scores max(lo − y, y − hi): −0.5, 0.3, 0.2, −0.1, 1.0, 1.0, −0.1, 0.05, −0.3, 2.0
    # sorted: −0.5, −0.3, −0.1, −0.1, 0.05, 0.2, 0.3, 1.0, 1.0, 2.0
    # α = 0.2: k = ⌈11 · 0.8⌉ = ⌈8.8⌉ = 9 → the 9th smallest, 1.0
    assert abs(conformal_margin(lo, hi, y, 0.2) - 1.0) < TOL
    # α = 0.5: k = ⌈5.5⌉ = 6 → 0.2; α = 0.4: k = ⌈6.6⌉ = 7 → 0.3
    assert abs(conformal_margin(lo, hi, y, 0.5) - 0.2) < TOL
    assert abs(conformal_margin(lo, hi, y, 0.4) - 0.3) < TOL
    # n = 24, α = 0.2: (n+1)(1−α) = 20 exactly (not 20.000…04 → 21)
    scores = np.arange(24.0)
    assert conformal_margin(np.zeros(24), np.zeros(24), scores, 0.2) == 19.0
    assert conformal_margin(lo[:3], hi[:3], y[:3], 0.2) == math.inf  # k = 4 > n = 3
    with pytest.raises(ValueError, match="conformal_margin: expected 0 < alpha"):
        conformal_margin(lo, hi, y, 1.0)


def test_apply_margin_widens_narrows_and_never_crosses_the_median() -> None:
    lo, med, hi = np.array([0.0, 0.9]), np.array([1.0, 1.0]), np.array([2.0, 1.1])
    a, b = apply_margin(lo, med, hi, 0.5)
    assert a.tolist() == [-0.5, 0.4] and b.tolist() == [2.5, 1.6]
    a, b = apply_margin(lo, med, hi, -0.5)
    assert a.tolist() == [0.5, 1.0] and b.tolist() == [1.5, 1.0]  # clipped at the median


def test_calibration_covers_at_least_one_minus_alpha_on_exchangeable_data() -> None:
    """A too-narrow interval [−0.5, 0.5] for N(0, 1) points (raw coverage 0.38):
    calibrated on n = 99 points, the coverage of fresh points averaged over 400 draws lies
    in [1 − α, 1 − α + 1/(n+1)] (the split-conformal theorem) within 0.01 (Monte Carlo
    error: sd ≈ 0.04/√400 = 0.002)."""
    rng = np.random.default_rng(0)
    n, alpha, cover, raw = 99, 0.2, [], []
    for _ in range(400):
        cal, test = rng.standard_normal(n), rng.standard_normal(200)
        q = conformal_margin(np.full(n, -0.5), np.full(n, 0.5), cal, alpha)
        cover.append(np.mean(np.abs(test) <= 0.5 + q))
        raw.append(np.mean(np.abs(test) <= 0.5))
    assert np.mean(raw) < 0.4
    assert 1 - alpha - 0.01 <= np.mean(cover) <= 1 - alpha + 1 / (n + 1) + 0.01


def test_holt_winters_is_exact_on_exact_trend_and_season() -> None:
    """y = level + trend·t + season (additive), or (level + trend·t)·season
    (multiplicative): the next 8 points within 1e-4 (the fit is a numerical optimum)."""
    pytest.importorskip("statsmodels")
    t = np.arange(68)
    add = 10 + 0.5 * t + np.tile([3.0, -1.0, 2.0, -4.0], 17)
    f = holt_winters(add[:60], 8, 4, multiplicative=False)
    assert np.abs(f - add[60:]).max() < 1e-4
    mul = (50 + 2 * t) * np.tile([1.1, 0.9, 1.2, 0.8], 17)
    f = holt_winters(mul[:60], 8, 4, multiplicative=True)
    assert np.abs(f - mul[60:]).max() < 1e-3
    with pytest.raises(ValueError, match="positive"):
        holt_winters(add[:60] - 100, 8, 4, multiplicative=True)


def _noise_csv(path: Path, n: int = 400) -> None:
    rng = np.random.default_rng(1)
    y = 100 + 5 * rng.standard_normal(n)
    path.write_text("y\n" + "\n".join(f"{v:.6f}" for v in y) + "\n")


def test_calibration_end_to_end_raises_coverage_and_predict_applies_it(tmp_path: Path) -> None:
    """White noise and an untrained head (lr 1e-9): the raw 10–90% band is too narrow;
    the margin is the conformal one of the validation windows' forecasts (recomputed here
    from the saved model), it raises test coverage, and predict applies the same margin."""
    path = tmp_path / "noise.csv"
    _noise_csv(path)
    cfg = forecast_config(csv=str(path), columns=("y",), horizon=50, validation=100,
                          lookback=10, epochs=1, lr=1e-9, hidden_size=4, seed=0)  # fmt: skip
    s = train_forecast(cfg, tmp_path / "run", show_progress=False)
    cal = s["calibration"]
    assert cal["method"] == "split-conformal" and cal["scale"] == "units"
    assert cal["windows"] == 51 and cal["points"] == 51 * 50
    assert s["test"]["coverage_raw"] < 0.6 and s["test"]["coverage"] >= 0.7
    assert s["test"]["coverage"] > s["test"]["coverage_raw"]
    # the margin by hand: the validation windows' forecasts of the saved model
    from grukit.training.forecast import ForecastJob, load_model
    from grukit.training.run_dir import RunDir

    job = ForecastJob(cfg)
    model = load_model(RunDir(tmp_path / "run"))
    y = job.series.values[:, 0]
    lo, hi, ys = [], [], []
    for t in job.val_starts:
        from grukit.training.forecast import forecast_levels

        q = forecast_levels(model, job.prepared, job.prepared.z[t - 10 : t], y[:t])
        lo.append(q[:, 0]), hi.append(q[:, -1]), ys.append(y[t : t + 50])
    q_hat = conformal_margin(np.array(lo), np.array(hi), np.array(ys), 0.2)
    assert abs(cal["conformal_margin"] - q_hat) < TOL and cal["margin"] == max(q_hat, 0.0)
    f = predict_forecast(tmp_path / "run")
    raw_q = np.stack([f["lower_raw"], f["median"], f["upper_raw"]], axis=1)  # (H, Q)
    a, b = calibrated_interval(raw_q, 1, cal)
    assert np.abs(a - f["lower"]).max() < TOL and np.abs(b - f["upper"]).max() < TOL
    assert abs(f["upper"][0] - f["upper_raw"][0] - cal["margin"]) < 1e-9


def test_no_validation_keeps_the_raw_interval_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "noise.csv"
    _noise_csv(path, 120)
    cfg = forecast_config(csv=str(path), columns=("y",), horizon=10, validation=0,
                          lookback=10, epochs=1, hidden_size=4)  # fmt: skip
    s = train_forecast(cfg, tmp_path / "run", show_progress=False)
    assert s["calibration"]["method"] == "none" and "validation 0" in s["calibration"]["note"]
    assert s["test"]["coverage"] == s["test"]["coverage_raw"]
    assert s["forecast"]["lower"] == s["forecast"]["lower_raw"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["calibration"]["method"] == "none"
    f = predict_forecast(tmp_path / "run")
    assert f["lower"] == f["lower_raw"] and f["calibration"] is None


def test_without_statsmodels_the_run_completes_and_says_hw_was_skipped(tmp_path: Path) -> None:
    """statsmodels hidden (tests/test_extras.py's BLOCK): a run completes, with naive and
    seasonal naive only, and a note naming the extra to install."""
    from test_extras import BLOCK, run_python

    path = tmp_path / "noise.csv"
    _noise_csv(path, 80)
    code = BLOCK.format(blocked=("statsmodels",)) + (
        "import json\n"
        "from grukit.training.forecast import forecast_config, train_forecast\n"
        f"cfg = forecast_config(csv={str(path)!r}, columns=('y',), horizon=8, lookback=8,"
        " epochs=1, hidden_size=4)\n"
        f"s = train_forecast(cfg, {str(tmp_path / 'run')!r}, show_progress=False)\n"
        "print(json.dumps([sorted(s['baselines']), s['notes']]))\n"
    )
    baselines, notes = json.loads(run_python(code).splitlines()[-1])
    assert baselines == ["naive", "seasonal_naive"]
    assert len(notes) == 1 and "Holt-Winters baseline skipped" in notes[0]
    assert "pip install 'grukit[forecast]'" in notes[0]


def test_calibrate_validation_widens_only_rolling_applies_the_margin() -> None:
    """The same scores (every point inside a too-wide band: q̂ < 0): validation, which
    chose the kept epoch, keeps the raw band (margin 0); rolling origins, unseen by their
    models, narrow it by q̂."""
    from grukit.training.calibration import calibrate

    q = np.zeros((2, 3, 3))
    q[..., 0], q[..., 2] = -1.0, 1.0
    y = np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -0.4]])
    want = conformal_margin(q[..., 0], q[..., 2], y, 0.2)  # k = ⌈7·0.8⌉ = 6: −0.5
    assert abs(want + 0.5) < TOL
    v = calibrate(q, y, 0.2, log=False, source="validation")
    r = calibrate(q, y, 0.2, log=False, source="rolling")
    assert v["margin"] == 0.0 and abs(v["conformal_margin"] - want) < TOL
    assert abs(r["margin"] - want) < TOL and r["windows"] == 2 and r["points"] == 6
    with pytest.raises(ValueError, match="calibrate: expected source"):
        calibrate(q, y, 0.2, log=False, source="test")


def test_rolling_calibration_refits_at_earlier_origins(tmp_path: Path) -> None:
    """A multiplicative series (trend × season × noise, logged): the rolling margin is the
    conformal one (log scale) of the kept model's validation window pooled with the origin
    runs' raw forecasts, each trained on the points before its window's end (config.json's
    split), recomputed here from the saved models (1e-12), and applied as it is
    (lo·e^{−q̂}, hi·e^{q̂})."""
    from grukit.training.forecast import ForecastJob, load_model
    from grukit.training.forecast_config import load_series
    from grukit.training.forecast_job import truncate
    from grukit.training.rolling import calibration_origins
    from grukit.training.run_dir import RunDir

    rng = np.random.default_rng(2)
    t = np.arange(150)
    level = (10 + 0.2 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    path = tmp_path / "mul.csv"
    noisy = level * np.exp(0.05 * rng.standard_normal(150))
    path.write_text("y\n" + "\n".join(f"{v:.6f}" for v in noisy) + "\n")
    cfg = forecast_config(csv=str(path), columns=("y",), horizon=6, validation=6, lookback=12,
                          season=12, log=True, diff=12, epochs=1, hidden_size=4,
                          calibration="rolling", calibration_folds=3)  # fmt: skip
    origins = calibration_origins(cfg, 150)
    assert origins == [138, 137, 136]  # first = 150 − 2·6, then ⌊H/4⌋ = 1 apart
    wide = dataclasses.replace(cfg, horizon=8, validation=8)  # ⌊8/4⌋ = 2, room allows it
    assert calibration_origins(wide, 150) == [134, 132, 130]
    s = train_forecast(cfg, tmp_path / "run", show_progress=False)
    cal = s["calibration"]
    assert cal["source"] == "rolling" and cal["scale"] == "log"
    assert cal["points"] == 6 + 18 and cal["windows"] == 4  # validation + 3 origins
    series = load_series(cfg)
    y = series.values[:, 0]
    p = ForecastJob(cfg, series).prepared  # the run's own validation window, from 132
    (v,) = p.val_starts
    q = forecast_levels(load_model(RunDir(tmp_path / "run")), p, p.z[v - 12 : v], y[:v])
    lo, hi, act = [np.log(q[:, 0])], [np.log(q[:, -1])], [np.log(y[v : v + 6])]
    for j, o in enumerate(origins):
        d = tmp_path / "run" / "calibration" / f"origin-{j + 1}"
        split = json.loads((d / "config.json").read_text())["split"]
        assert split == {"n": o + 6, "train_end": o - 6, "test_start": o}
        p = ForecastJob(cfg, truncate(series, o + 6)).prepared
        q = forecast_levels(load_model(RunDir(d)), p, p.z[o - 12 : o], y[:o])
        lo.append(np.log(q[:, 0]))
        hi.append(np.log(q[:, -1]))
        act.append(np.log(y[o : o + 6]))
    want = conformal_margin(np.array(lo), np.array(hi), np.array(act), 0.2)
    assert abs(cal["conformal_margin"] - want) < TOL and abs(cal["margin"] - want) < TOL
    f = s["forecast"]
    med, up = np.array(f["median"]), np.array(f["upper_raw"])
    assert np.allclose(f["upper"], np.maximum(np.exp(np.log(up) + want), med), rtol=1e-12)
    with pytest.raises(ValueError, match="train_forecast: expected a series long enough"):
        train_forecast(dataclasses.replace(cfg, calibration_folds=200), tmp_path / "x",
                       show_progress=False)  # fmt: skip
    assert not (tmp_path / "x").exists()
