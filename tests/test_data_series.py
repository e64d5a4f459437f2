"""grukit.data.series / csvio: bundled files, CSV errors, gap filling, splits without
leakage, exact inverse transforms (float64, 1e-9)."""

from __future__ import annotations

import csv
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from grukit.data.csvio import parse_timeline, read_table
from grukit.data.series import (
    Scaler,
    Transform,
    chronological_split,
    fill_gaps,
    load_bundled,
    load_csv,
    window_indices,
)

TOL = 1e-9


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_bundled_files_are_byte_copies() -> None:
    files = resources.files("grukit.data") / "files"
    sha = {
        "airline-passengers.csv": "8cb51be753a718d9be5d76d7e238cc22"
        "4792754676adc21faa59e954b0201621",
        "co2-mauna-loa-weekly.csv": "16695fa2786e53414e5a6b54767a3fdf"
        "5de99cfbc68617f69d1362d92776a92f",
    }
    for name, digest in sha.items():
        assert hashlib.sha256((files / name).read_bytes()).hexdigest() == digest


def test_airline_loads_monthly_without_gaps() -> None:
    s = load_bundled("airline")
    assert s.values.shape == (144, 1)
    assert s.values[:3, 0].tolist() == [112, 118, 132] and s.values[-1, 0] == 432
    assert s.timeline.label() == "monthly" and s.default_season() == 12
    assert s.fill_report() == {"missing_values": 0, "inserted_timestamps": 0, "filled_values": 0}
    assert s.future(2)[1] == ["1961-01", "1961-02"]


def test_co2_missing_weeks_are_interpolated() -> None:
    s = load_bundled("co2")
    assert s.values.shape == (2284, 1) and s.timeline.label() == "7D"
    assert s.default_season() == 52
    assert s.fill_report() == {"missing_values": 59, "inserted_timestamps": 0, "filled_values": 59}
    raw = (resources.files("grukit.data") / "files" / "co2-mauna-loa-weekly.csv").read_text()
    rows = list(csv.reader(raw.splitlines()))[1:]
    # hand oracle: each missing week lies on the line between its observed neighbours
    vals = [float(r[1]) if r[1] else None for r in rows]
    for i, v in enumerate(vals):
        if v is None:
            a = max(j for j in range(i) if vals[j] is not None)
            b = min(j for j in range(i + 1, len(vals)) if vals[j] is not None)
            want = vals[a] + (vals[b] - vals[a]) * (i - a) / (b - a)
            assert abs(s.values[i, 0] - want) < TOL
        else:
            assert s.values[i, 0] == v


def test_missing_timestamps_are_inserted_and_filled(tmp_path: Path) -> None:
    # monthly with 1950-03 and 1950-04 absent, one empty value, CRLF and no final newline
    text = '"m","a","b"\r\n"1950-01",1,10\r\n"1950-02",2,\r\n"1950-05",5,50\r\n"1950-06",6,60'
    s = load_csv(_write(tmp_path, text), ["a", "b"], date_column="m")
    assert s.values.shape == (6, 2)
    assert s.inserted_timestamps == 2 and s.missing_values == 1 and s.filled_values == 5
    np.testing.assert_allclose(s.values[:, 0], [1, 2, 3, 4, 5, 6], atol=TOL)
    np.testing.assert_allclose(s.values[:, 1], [10, 20, 30, 40, 50, 60], atol=TOL)
    assert s.future(1)[1] == ["1950-07"]


def test_weekly_gap_and_edges(tmp_path: Path) -> None:
    text = "d,v\n20200104,\n20200111,2\n20200125,4\n20200201,\n"
    s = load_csv(_write(tmp_path, text), ["v"], date_column="d")
    assert s.timeline.label() == "7D" and s.inserted_timestamps == 1 and s.missing_values == 2
    np.testing.assert_allclose(s.values[:, 0], [2, 2, 3, 4, 4], atol=TOL)  # ends: nearest


def test_fill_gaps_rejects_an_empty_column() -> None:
    with pytest.raises(ValueError, match="column 1"):
        fill_gaps(np.array([[1.0, np.nan], [2.0, np.nan]]))


@pytest.mark.parametrize(
    ("text", "columns", "pattern"),
    [
        ("d,v\n2020-01-01,1\n2020-01-02,1,7\n", ["v"], r"line 3: expected 2 fields.*got 3"),
        ("d,v\n2020-01-01,1\n2020-01-02,abc\n", ["v"], r"line 3, column 'v': expected a number"),
        ("d,v\n2020-01-01,1\n", ["w"], r"column 'w': expected a column named 'w'.*\['d', 'v'\]"),
        ("d,v\n", ["v"], r"expected at least one data row, got only the header"),
        ("", ["v"], r"expected a header row, got an empty file"),
        ("d,v\n2020-01-01,1\n2020-01-02,inf\n", ["v"], r"line 3, column 'v': expected a finite"),
    ],
)
def test_bad_csv_names_line_and_column(
    tmp_path: Path, text: str, columns: list[str], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_csv(_write(tmp_path, text), columns, date_column="d")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("d,v\n2020-01-01,1\n2020-13-45,2\n", r"line 3, column 'd': expected a date"),
        ("d,v\n2020-01-02,1\n2020-01-01,2\n", r"line 3.*increasing order"),
        ("d,v\n2020-01-01,1\n2020-01-03,2\n2020-01-06,3\n", r"line 4.*regular grid of step"),
    ],
)
def test_bad_timestamps_name_the_line(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_csv(_write(tmp_path, text), ["v"], date_column="d")


def test_missing_file_and_first_of_month_dates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.csv", ["v"])
    text = "d,v\n2020-01-01,1\n2020-02-01,2\n2020-04-01,4\n"
    table = read_table(_write(tmp_path, text), ["v"], date_column="d")
    tl = parse_timeline(table)
    assert tl.unit == "month" and tl.step == 1  # 31/29/60-day gaps are months


def test_split_and_windows_leak_nothing_from_test() -> None:
    n, h, v, lookback, lag = 144, 24, 24, 24, 12
    split = chronological_split(n, h, v, min_train=lag + lookback + h + 1)
    assert (split.train_end, split.test_start) == (96, 120)
    tr_in, tr_out = window_indices(lookback, h, lag, 0, split.train_end)
    va_in, va_out = window_indices(lookback, h, lag, split.train_end, split.test_start)
    assert tr_in.shape == (96 - lag - lookback - h + 1, lookback) and tr_out.shape[1] == h
    assert tr_in.min() == lag and tr_out.max() == split.train_end - 1  # uses all, no more
    assert va_out.min() >= split.train_end and va_out.max() < split.test_start
    assert va_in.max() < split.train_end  # validation inputs are training history
    np.testing.assert_array_equal(tr_out[:, 0], tr_in[:, -1] + 1)  # targets follow inputs
    with pytest.raises(ValueError, match="training points"):
        chronological_split(60, 24, 24, min_train=30)


def test_prepare_fits_scaling_on_training_rows_only() -> None:
    from grukit.training.forecast import forecast_config, prepare

    s = load_bundled("airline")
    c = forecast_config(dataset="airline")
    p1 = prepare(c, s)
    s.values[p1.split.train_end :] *= 10.0  # change validation and test
    p2 = prepare(c, s)
    np.testing.assert_array_equal(p1.scaler.mean, p2.scaler.mean)
    np.testing.assert_array_equal(p1.scaler.std, p2.scaler.std)
    for idx in (p1.train, p1.val):
        assert idx[0].max() < p1.split.test_start and idx[1].max() < p1.split.test_start
    assert p1.train[1].max() < p1.split.train_end


@pytest.mark.parametrize(("log", "lag"), [(False, 0), (True, 0), (False, 1), (True, 12)])
def test_transform_and_scaler_invert_exactly(log: bool, lag: int) -> None:
    y = load_bundled("airline").values  # (144, 1)
    tf = Transform(log=log, diff=lag)
    d = tf.forward(y)
    scaler = Scaler.fit(d[:96])
    z = scaler.transform(d)
    back = scaler.inverse(z[100:], column=0)  # the "forecast" of rows 100..143
    levels = tf.invert(np.repeat(back, 3, axis=1), y[:100, 0])  # (44, 3) paths
    np.testing.assert_allclose(levels, np.repeat(y[100:], 3, axis=1), rtol=TOL)


def test_log_rejects_non_positive_values() -> None:
    with pytest.raises(ValueError, match="positive values"):
        Transform(log=True).forward(np.array([[1.0], [0.0]]))


def test_gap_to_year_9000_is_refused_before_allocating(tmp_path: Path) -> None:
    # daily, then one stray date: 2.5 million missing days (old code asked for 1.6 TiB
    # with a seconds step; here a day step)
    text = "d,v\n2020-01-01,1\n2020-01-02,2\n9000-01-01,3\n"
    with pytest.raises(ValueError, match=r"line 4, column 'd'.*at most 1,000,000.*'9000-01-01'"):
        load_csv(_write(tmp_path, text), ["v"], date_column="d")
    text = "d,v\n2020-01-01 00:00:00,1\n2020-01-01 00:00:01,2\n9000-01-01 00:00:00,3\n"
    with pytest.raises(ValueError, match=r"line 4.*at most"):
        load_csv(_write(tmp_path, text), ["v"], date_column="d")
    with pytest.raises(ValueError, match=r"fill_gaps: expected at most 5 grid points.*got 9"):
        fill_gaps(np.ones((2, 1)), np.array([0, 10]), 1, max_inserted=5)
    # within the cap: the hand oracle, a straight line over the inserted points
    values, ordinals, _, inserted = fill_gaps(np.array([[0.0], [10.0]]), np.array([0, 10]), 1)
    assert inserted == 9 and ordinals.tolist() == list(range(11))
    np.testing.assert_allclose(values[:, 0], np.arange(11.0), atol=TOL)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"d,v\n2020-01-01,1\n2020-01-02,\xff\xfe\n", r"expected UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", r"expected UTF-8 text"),
        (b"d,v\n2020-01-01,1\n2020-01-02,\x00\x01\n", r"line 3, column 'v': expected a number"),
        (b"", r"expected a header row, got an empty file"),
        (b"\n  \n\n", r"expected a header row, got an empty file"),
        (b"d,v\n2020-01-01,NaN\n2020-01-02,nan\n", r"column 'v': expected at least one value"),
        (b"d,v\n2020-01-01,1\n0001-01-01T00:00+01:00,2\n", r"line 3, column 'd': expected a date"),
    ],
)
def test_garbage_files_raise_value_error(tmp_path: Path, data: bytes, pattern: str) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=pattern):
        load_csv(path, ["v"], date_column="d")


def test_field_over_the_csv_limit(tmp_path: Path) -> None:
    text = "d,v\n2020-01-01,1\n2020-01-02," + "1" * (csv.field_size_limit() + 1) + "\n"
    with pytest.raises(ValueError, match=r"line 3: expected fields of at most 131,072 char"):
        load_csv(_write(tmp_path, text), ["v"], date_column="d")


def test_library_messages_name_no_flags() -> None:
    with pytest.raises(ValueError, match="training points") as info:
        chronological_split(60, 24, 24, min_train=30)
    assert "--" not in str(info.value)


def test_loading_keeps_a_few_bytes_per_row(tmp_path: Path) -> None:
    """Scaling: the rows are never all Python objects at once. 200,000 hourly rows; the
    result holds 25 bytes a row (value, line, stamp: 8 each; unit: 1). The old loader
    held ~250 (a list, a float, an int and the date text per row)."""
    import tracemalloc

    n = 200_000
    stamps = np.datetime64("2000-01-01T00:00:00") + np.arange(n).astype("timedelta64[h]")
    rows = [f"{str(s).replace('T', ' ')},{k % 97}.5" for k, s in enumerate(stamps)]
    path = _write(tmp_path, "t,v\n" + "\n".join(rows) + "\n")
    tracemalloc.start()
    try:
        table = read_table(path, ["v"], date_column="t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table.values.shape == (n, 1) and table.values[-1, 0] == (n - 1) % 97 + 0.5
    assert int(table.stamps[-1] - table.stamps[0]) == (n - 1) * 3600
    assert peak < 60 * n, f"peak {peak / n:.0f} bytes a row"
