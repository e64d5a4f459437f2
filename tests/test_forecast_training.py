"""grukit.training.metrics and grukit.training.forecast: metrics and baselines against
hand computations (1e-12), the run directory, seeds, resume (bit-exact)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from grukit.data.series import load_bundled
from grukit.training import load_weights
from grukit.training.forecast import (
    ForecastConfig,
    forecast_config,
    predict_forecast,
    train_forecast,
)
from grukit.training.metrics import (
    forecast_metrics,
    holt_winters,
    mase_scale,
    naive,
    seasonal_naive,
)

TOL = 1e-12


def test_baselines_by_hand() -> None:
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert naive(history, 3).tolist() == [7.0, 7.0, 7.0]
    # season 3: the last season (5, 6, 7) repeated over a longer horizon
    assert seasonal_naive(history, 7, 3).tolist() == [5, 6, 7, 5, 6, 7, 5]
    with pytest.raises(ValueError, match="season"):
        seasonal_naive(history, 2, 8)


def test_metrics_by_hand() -> None:
    y = np.array([10.0, 20.0, 40.0])
    f = np.array([12.0, 15.0, 40.0])
    scale = mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), 2)  # |2−1|, |6−3| → 2
    assert scale == 2.0
    m = forecast_metrics(y, f, scale)
    assert abs(m["mae"] - 7 / 3) < TOL
    assert abs(m["rmse"] - math.sqrt(29 / 3)) < TOL
    assert abs(m["mape"] - 100 * (0.2 + 0.25 + 0) / 3) < TOL
    assert abs(m["smape"] - 100 * (4 / 22 + 10 / 35 + 0) / 3) < TOL
    assert abs(m["mase"] - 7 / 6) < TOL
    with pytest.raises(ValueError, match="equal shapes"):
        forecast_metrics(y, f[:2], 1.0)


def _small(**kw) -> ForecastConfig:
    base = {"dataset": "airline", "epochs": 3, "hidden_size": 8, "lookback": 12, "seed": 0}
    return forecast_config(**{**base, **kw})


def test_airline_run_directory_and_baselines(tmp_path: Path) -> None:
    s = train_forecast(_small(), tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl"):
        assert (run / name).is_file()
    assert (run / "forecast.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"test", "baselines", "horizon", "test_points"}
    assert summary["horizon"] == 24 and summary["test_points"] == 24
    assert set(summary["baselines"]) == {"naive", "seasonal_naive", "holt_winters"}
    assert set(summary["test"]) >= {"mae", "rmse", "mape", "smape", "mase"}
    # hand oracle from the raw values: test = the last 24 months, season 12
    y = load_bundled("airline").values[:, 0].tolist()
    snaive = sum(abs(y[120 + k] - y[108 + k % 12]) for k in range(24)) / 24
    nve = sum(abs(y[120 + k] - y[119]) for k in range(24)) / 24
    scale = sum(abs(y[t] - y[t - 12]) for t in range(12, 96)) / 84  # training part only
    assert abs(s["baselines"]["seasonal_naive"]["mae"] - snaive) < TOL
    assert abs(s["baselines"]["naive"]["mae"] - nve) < TOL
    assert abs(s["mase_scale"] - scale) < TOL
    assert abs(s["baselines"]["seasonal_naive"]["mase"] - snaive / scale) < TOL
    med = np.array(s["forecast"]["median"])
    assert abs(s["test"]["mae"] - np.abs(med - np.array(y[120:])).mean()) < TOL
    assert (np.array(s["forecast"]["lower"]) <= med).all()
    assert (med <= np.array(s["forecast"]["upper"])).all()
    assert len(s["forecast"]["time"]) == 24 and s["forecast"]["time"][0] == "1959-01"
    # Holt-Winters fitted on everything before test (as the naive ones), multiplicative
    # season (the preset logs); its CRPS is its MAE
    hw = holt_winters(np.array(y[:120]), 24, 12, multiplicative=True)
    hw_mae = np.abs(hw - np.array(y[120:])).mean()
    assert abs(s["baselines"]["holt_winters"]["mae"] - hw_mae) < TOL
    assert abs(s["baselines"]["holt_winters"]["crps"] - hw_mae) < TOL
    # the GRU's pinball over (lower, median, upper) at 0.1, 0.5, 0.9, calibrated and raw
    f, act = s["forecast"], np.array(y[120:])
    for suffix, lo, hi in (("", f["lower"], f["upper"]), ("_raw", f["lower_raw"], f["upper_raw"])):
        want = 0.0
        for k in range(24):
            for tau, q in ((0.1, lo[k]), (0.5, f["median"][k]), (0.9, hi[k])):
                u = act[k] - q
                want += max(tau * u, (tau - 1) * u) / 72
        assert abs(s["test"]["pinball" + suffix] - want) < TOL
        assert abs(s["test"]["crps" + suffix] - 2 * want) < TOL
        inside = np.mean((act >= np.array(lo)) & (act <= np.array(hi)))
        assert s["test"]["coverage" + suffix] == inside
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_seed_determinism_and_resume_are_exact(tmp_path: Path) -> None:
    a = train_forecast(_small(epochs=4), tmp_path / "a", show_progress=False)
    train_forecast(_small(epochs=2), tmp_path / "b", show_progress=False)
    b = train_forecast(_small(epochs=4), tmp_path / "b", resume=True, show_progress=False)
    assert a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    wa, _ = load_weights(tmp_path / "a" / "model.safetensors")
    wb, _ = load_weights(tmp_path / "b" / "model.safetensors")
    for k in wa:
        assert np.array_equal(wa[k].numpy(), wb[k].numpy()), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="lookback"):
        train_forecast(
            _small(epochs=5, lookback=6), tmp_path / "b", resume=True, show_progress=False
        )


def test_multivariate_csv_recursive_and_predict(tmp_path: Path) -> None:
    y = load_bundled("airline").values[:, 0]
    rows = ["month,pax,lagged"] + [
        f"{1949 + i // 12}-{i % 12 + 1:02d},{v:g},{y[max(i - 1, 0)]:g}" for i, v in enumerate(y)
    ]
    rows[30] = rows[30].split(",")[0] + ",,1"  # one missing target value
    del rows[50]  # one missing month
    path = tmp_path / "pax.csv"
    path.write_text("\n".join(rows) + "\n")
    cfg = _small(
        dataset=None, csv=str(path), columns=["pax", "lagged"], date_column="month",
        strategy="recursive", log=True, diff=12, epochs=2,
    )  # fmt: skip
    s = train_forecast(cfg, tmp_path / "run", show_progress=False)
    assert s["data"] == {"missing_values": 1, "inserted_timestamps": 1, "filled_values": 3}
    assert s["horizon"] == 12 and s["season"] == 12  # CSV default: one season
    _, mcfg = load_weights(tmp_path / "run" / "model.safetensors")
    assert mcfg["input_size"] == 2 and mcfg["strategy"] == "recursive"
    f = predict_forecast(tmp_path / "run")
    assert f["time"][0] == "1961-01" and len(f["median"]) == 12
    assert all(lo <= m <= hi for lo, m, hi in zip(f["lower"], f["median"], f["upper"], strict=True))
    bad = tmp_path / "bad.csv"
    bad.write_text("month,pax\n1949-01,1\n")
    with pytest.raises(ValueError, match="'lagged'"):
        predict_forecast(tmp_path / "run", csv=str(bad))
