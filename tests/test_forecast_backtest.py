"""Rolling-origin backtests (training/backtest.py): the folds' windows are the right
slices (hand check on a toy series), refit vs rolled forward, the averages, the errors
(ValueError naming the function; exit 2 with one line in the CLI)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from grukit.cli import main
from grukit.training.backtest import backtest_forecast, fold_origins
from grukit.training.forecast import forecast_config, forecast_levels, load_model
from grukit.training.forecast_config import load_series
from grukit.training.forecast_job import prepare, truncate
from grukit.training.run_dir import RunDir

TOL = 1e-12


def _csv(path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(7)
    t = np.arange(n)
    y = 20 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + 0.5 * rng.standard_normal(n)
    path.write_text("y\n" + "\n".join(f"{v:.6f}" for v in y) + "\n")
    return path


def _cfg(path: Path):  # type: ignore[no-untyped-def]
    return forecast_config(csv=str(path), columns=("y",), horizon=6, validation=6,
                           lookback=6, season=12, epochs=1, hidden_size=4)  # fmt: skip


def test_fold_origins_by_hand() -> None:
    c = forecast_config(dataset="co2", horizon=10, validation=10, lookback=5, diff=0,
                        calibration="validation")  # fmt: skip
    assert fold_origins(c, 100, 3) == [70, 80, 90]  # the last 3·10 points, in order
    assert fold_origins(c, 100, 1) == [90]
    # fold 1 needs 5 + 10 + 1 + 10 = 26 points before it: at most (100 − 26) // 10 = 7
    assert len(fold_origins(c, 100, 7)) == 7
    with pytest.raises(ValueError, match=r"backtest_forecast: expected at most 7 folds"):
        fold_origins(c, 100, 8)
    with pytest.raises(ValueError, match="backtest_forecast: expected folds a positive int"):
        fold_origins(c, 100, 0)


def test_refit_folds_are_the_right_slices(tmp_path: Path) -> None:
    cfg = _cfg(_csv(tmp_path / "s.csv"))
    b = backtest_forecast(cfg, tmp_path / "bt", folds=3, show_progress=False)
    y = load_series(cfg).values[:, 0]
    assert b["origins"] == [102, 108, 114] and b["refit"]
    for k, (r, o) in enumerate(zip(b["fold_results"], b["origins"], strict=True)):
        assert r["forecast"]["actual"] == y[o : o + 6].tolist()
        assert abs(r["naive"]["mae"] - np.abs(y[o : o + 6] - y[o - 1]).mean()) < TOL
        snaive = [y[o - 12 + h] for h in range(6)]
        assert abs(r["seasonal_naive"]["mae"] - np.abs(y[o : o + 6] - snaive).mean()) < TOL
        # the fold's run trained on the first o + 6 points only; its test part is the window
        split = json.loads((tmp_path / "bt" / f"fold-{k + 1}" / "config.json").read_text())
        assert split["split"] == {"n": o + 6, "train_end": o - 6, "test_start": o}
    maes = [r["gru"]["mae"] for r in b["fold_results"]]
    assert abs(b["mean"]["gru"]["mae"] - statistics.fmean(maes)) < TOL
    assert abs(b["std"]["gru"]["mae"] - statistics.stdev(maes)) < TOL
    assert (tmp_path / "bt" / "backtest.png").stat().st_size > 1000


def test_no_refit_rolls_fold_one_forward(tmp_path: Path) -> None:
    path = _csv(tmp_path / "s.csv")
    cfg = _cfg(path)
    a = backtest_forecast(cfg, tmp_path / "refit", folds=2, show_progress=False)
    b = backtest_forecast(cfg, tmp_path / "roll", folds=2, refit=False, show_progress=False)
    assert not (tmp_path / "roll" / "fold-2").exists() and (tmp_path / "roll" / "model").is_dir()
    # fold 1 is the same training either way; fold 2 is fold 1's model, rolled forward
    assert a["fold_results"][0]["gru"] == b["fold_results"][0]["gru"]
    series = load_series(cfg)
    p1 = prepare(cfg, truncate(series, 114 + 6 - 6))  # fold 1: origin 108, 114 points
    model = load_model(RunDir(tmp_path / "roll" / "model"))
    z = p1.scaler.transform(p1.transform.forward(series.values))
    y = series.values[:, 0]
    q = forecast_levels(model, None, z[114 - 6 : 114], y[:114], scaler=p1.scaler, tf=p1.transform)
    assert np.abs(np.array(b["fold_results"][1]["forecast"]["median"]) - q[:, 1]).max() < TOL
    assert a["fold_results"][1]["gru"]["mae"] != b["fold_results"][1]["gru"]["mae"]


def test_cli_backtest_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "s.csv")
    args = ["forecast", "backtest", "--csv", str(path), "--column", "y", "--horizon", "6",
            "--lookback", "6", "--epochs", "1", "--hidden-size", "4", "--no-progress"]  # fmt: skip
    assert main([*args, "--folds", "2", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "2-fold rolling-origin backtest" in out and "seasonal naive" in out
    assert "mean  GRU" in out
    for bad, message in (("50", "backtest_forecast: expected at most"),
                         ("0", "expected folds a positive int")):  # fmt: skip
        assert main([*args, "--folds", bad, "--out", str(tmp_path / f"x{bad}")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("grukit forecast: error: ") and message in err
        assert len(err.strip().splitlines()) == 1
    assert main([*args, "--folds", "2", "--out", str(tmp_path / "b")]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
