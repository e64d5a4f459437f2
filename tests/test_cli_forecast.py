"""``grukit forecast train|predict`` end to end, and its error messages (exit code 2)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from grukit.cli import main
from grukit.training.forecast_config import forecast_config

FAST = ["--epochs", "2", "--hidden-size", "8", "--lookback", "12", "--no-progress"]


def test_train_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "air"
    assert main(["forecast", "train", "--dataset", "airline", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "0 values filled" in text and "seasonal naive" in text and "MASE" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["horizon"] == 24 and summary["test_points"] == 24
    assert {"naive", "seasonal_naive", "holt_winters"} == set(summary["baselines"])
    assert main(["forecast", "predict", "--run", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1961-01" in text and "1962-12" in text
    rows = list(csv.reader((out / "forecast.csv").read_text().splitlines()))
    assert rows[0] == ["time", "lower80", "median", "upper80"] and len(rows) == 25
    assert all(float(r[1]) <= float(r[2]) <= float(r[3]) for r in rows[1:])


def test_csv_with_gaps_reports_the_fill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["day,v"] + [f"2021-01-{d:02d},{d % 7 + d / 10:g}" for d in range(1, 32)]
    lines[5] = "2021-01-05,"  # a missing value
    del lines[10]  # a missing day
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines))
    args = ["forecast", "train", "--csv", str(path), "--column", "v", "--date-column", "day"]
    args += ["--horizon", "3", "--lookback", "7", "--epochs", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "1 missing values, 1 missing timestamps inserted; 2 values filled" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["season"] == 7 and summary["frequency"] == "1D"


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("t,v\n1,2\n3,4,5\n", ["v"], "line 3: expected 2 fields"),
        ("t,v\n1,2\n3,x\n", ["v"], "line 3, column 'v': expected a number, got 'x'"),
        ("t,v\n1,2\n", ["w"], "expected a column named 'w'"),
        ("t,v\n", ["v"], "expected at least one data row"),
    ],
)
def test_bad_csv_exits_2_naming_line_or_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, columns: list, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    args = ["forecast", "train", "--csv", str(path), "--out", str(tmp_path / "r")]
    for c in columns:
        args += ["--column", c]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("grukit forecast: error: ") and message in err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "train", "--column", "v", "--out", str(tmp_path / "r")]) == 2
    assert "only with --csv" in capsys.readouterr().err
    args = ["forecast", "train", "--dataset", "airline", "--lookback", "200"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert "training points" in capsys.readouterr().err
    assert main([*args[:4], "--validation", "5", "--out", str(tmp_path / "r")]) == 2
    assert "expected validation 0" in capsys.readouterr().err
    assert main(["forecast", "predict", "--run", str(tmp_path / "none")]) == 2
    assert "expected a run directory" in capsys.readouterr().err


def _monthly_csv(path: Path, n: int, trend: float) -> None:
    """n monthly points of 10 + trend·i + 3·sin(2πi/12), dated YYYY-MM-01."""
    rows = ["date,y"] + [
        f"{2015 + i // 12}-{i % 12 + 1:02d}-01,{10 + trend * i + 3 * math.sin(math.pi * i / 6):.6f}"
        for i in range(n)
    ]
    path.write_text("\n".join(rows) + "\n")


def test_readme_csv_command_on_a_60_point_monthly_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's command (fewer epochs, to stay fast) on 60 months of sine + trend: the
    lookback defaults to 12 (two seasons, 24, would leave 1 training window of 36 points:
    (36 − 12 + 1) // 2 = 12), it trains and reports; a 144-point series keeps 24."""
    path = tmp_path / "my.csv"
    _monthly_csv(path, 60, 0.1)
    args = ["forecast", "train", "--csv", str(path), "--column", "y", "--date-column", "date"]
    args += ["--horizon", "12", "--out", str(tmp_path / "mine"), "--epochs", "3", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train 36, validation 12, test 12 points" in out and "Holt-Winters" in out
    cfg = json.loads((tmp_path / "mine" / "config.json").read_text())["config"]
    assert cfg["lookback"] == 12 and cfg["season"] == 12
    _monthly_csv(path, 144, 0.1)
    assert forecast_config(csv=str(path), columns=("y",), date_column="date").lookback == 24
    c = forecast_config(csv=str(path), columns=("y",), date_column="date", lookback=30)
    assert c.lookback == 30  # given: kept


def test_warning_when_seasonal_naive_wins_on_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pure season (no trend): seasonal naive is exact on validation (MAE 0 < the GRU's),
    so summary.json's warnings and stdout say so; the validation MAEs are the hand ones."""
    path = tmp_path / "s.csv"
    _monthly_csv(path, 72, 0.0)
    args = ["forecast", "train", "--csv", str(path), "--column", "y", "--date-column", "date"]
    assert main([*args, "--out", str(tmp_path / "r"), "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["validation_baselines"]["seasonal_naive"] < 1e-5  # the CSV's 6 decimals
    y = [float(r.split(",")[1]) for r in path.read_text().split()[1:]]
    naive_val = sum(abs(y[48 + k] - y[47]) for k in range(12)) / 12  # one window at 48
    assert abs(s["validation_baselines"]["naive"] - naive_val) < 1e-12
    assert any("worse than seasonal naive's" in w for w in s["warnings"])
    assert "WARNING: the GRU's validation MAE" in out and "seasonal naive" in out
