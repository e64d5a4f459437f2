"""``grukit forecast train|predict`` end to end, and its error messages (exit code 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from grukit.cli import main

FAST = ["--epochs", "2", "--hidden-size", "8", "--lookback", "12", "--no-progress"]


def test_train_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "air"
    assert main(["forecast", "train", "--dataset", "airline", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "0 values filled" in text and "seasonal naive" in text and "MASE" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["horizon"] == 24 and summary["test_points"] == 24
    assert {"naive", "seasonal_naive"} == set(summary["baselines"])
    assert main(["forecast", "predict", "--run", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1961-01" in text and "1962-12" in text
    rows = list(csv.reader((out / "forecast.csv").read_text().splitlines()))
    assert rows[0] == ["time", "q10", "median", "q90"] and len(rows) == 25
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
