"""The fast CSV reader (grukit.data._csvfast) against the exact csv-module path: on any
file, read_table gives bitwise the same arrays (or the same error message) with the fast
reader on and off; its number and date converters agree with float() and parse_one."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grukit.data import _csvfast, csvio
from grukit.data._timestamps import parse_bytes, parse_one
from grukit.data.csvio import read_table

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_DIR = Path(tempfile.mkdtemp(prefix="grukit-csvfast-"))
_FILES = Path(csvio.__file__).parent / "files"


def _outcome(path: Path, columns: list[str], date_column: str | None, fast: bool) -> object:
    """read_table's arrays as bytes (with dtypes and shapes), or its error message."""
    try:
        with mock.patch.object(csvio, "FAST", fast):
            t = read_table(path, columns, date_column=date_column)
    except (ValueError, TypeError) as err:
        return type(err).__name__, str(err)
    arrays = [t.values, t.lines, t.stamps, t.units]
    return [None if a is None else (a.dtype.str, a.shape, a.tobytes()) for a in arrays]


def _agree(path: Path, columns: list[str], date_column: str | None) -> object:
    exact = _outcome(path, columns, date_column, fast=False)
    assert _outcome(path, columns, date_column, fast=True) == exact
    return exact


# --- cells: plain ones (the fast reader takes them) and odd ones (it must refuse) ---
_plain_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.from_regex(r"[+-]?[0-9]{1,9}(\.[0-9]{0,9})?([eE][+-]?[0-9]{1,2})?", fullmatch=True),
)
_odd_numbers = st.sampled_from(
    ["", " 1.5", "1.5 ", "1_000", "nan", "NaN", "NA", "inf", "-Infinity", "1e999", "?",
     "null", "0x10", "١٢", "1,5", '"2.5"', '"1\n2"', "--1", ".", "e5", "1e", "+-1"]
)  # fmt: skip
_day = st.tuples(st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28))
_time = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
_plain_dates = st.one_of(
    _day.map(lambda d: f"{d[0]:04d}-{d[1]:02d}-{d[2]:02d}"),
    st.tuples(_day, _time, st.sampled_from(" T")).map(
        lambda x: (
            f"{x[0][0]:04d}-{x[0][1]:02d}-{x[0][2]:02d}{x[2]}"
            f"{x[1][0]:02d}:{x[1][1]:02d}:{x[1][2]:02d}"
        )
    ),
)
_odd_dates = st.sampled_from(
    ["2020-02-30", "2020-02-29", "2021-02-29", "1900-02-29", "2000-02-29", "0000-01-01",
     "2020-01-01 24:00:00", "2020-01-01 10:60:00", "2020-01-01 10:00:60", "2020/01/01",
     "20200101", "2020-01", "2020-13", "2020-01-01 10:00", "2020-01-01x10:00:00",
     "2020-01-01T10:00:00+02:00", "2020-01-01 10:00:00Z", " 2020-01-01", "2020-1-1", ""]
)  # fmt: skip


@st.composite
def _csv_files(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(a CSV file of columns d (dates), v (numbers), x (anything), whether it is plain)."""
    odd = draw(st.integers(0, 3)) >= 2  # about half the files hold some odd cells
    n = draw(st.integers(1, 30))
    width = draw(st.sampled_from([7, 10, 16, 19]))
    lines = ["d,v,x"]
    for _ in range(n):
        if odd and draw(st.integers(0, 9)) == 7:
            d = draw(_odd_dates)
        else:
            d = draw(_plain_dates)
            d = (d if len(d) == 19 else d + " 12:00:00")[:width]
        v = draw(_odd_numbers) if odd and draw(st.integers(0, 5)) == 3 else draw(_plain_numbers)
        x = draw(st.sampled_from(["", "a", "b c", "é"]) if odd else st.sampled_from(["", "z"]))
        lines.append(f"{d},{v},{x}")
        if odd and draw(st.integers(0, 9)) == 7:
            lines.append(draw(st.sampled_from(["", " ", ",,", "1,2", ",,,"])))
    end = "\r\n" if draw(st.booleans()) else "\n"
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    if draw(st.integers(0, 9)) == 7:
        text = "\ufeff" + text
    return text.encode("utf-8"), not odd


@SETTINGS
@given(data=_csv_files(), block=st.sampled_from([3, 16, 64, 1 << 23]), dates=st.booleans())
def test_fast_reader_agrees_with_the_exact_path(
    data: tuple[bytes, bool], block: int, dates: bool
) -> None:
    path = _DIR / "random.csv"
    path.write_bytes(data[0])
    with mock.patch.object(_csvfast, "_BLOCK", block):  # block boundaries anywhere
        _agree(path, ["v"], "d" if dates else None)
        if data[1]:  # a plain file is read the fast way
            assert _csvfast.read_plain(path, ["v"], "d" if dates else None) is not None


def test_fast_reader_takes_plain_files_and_refuses_odd_ones(tmp_path: Path) -> None:
    # the fast reader is really used on a plain file (else the agreement above is vacuous)
    # and gives the exact path's arrays, including blank lines, CRLF and a BOM
    rows = [f"2000-01-{d:02d} 0{d % 10}:00:00,{d * 0.1!r},x" for d in range(1, 29)]
    text = "\ufeffd,v,x\r\n" + "\r\n".join(rows[:5]) + "\r\n\r\n" + "\r\n".join(rows[5:])
    path = tmp_path / "plain.csv"
    path.write_bytes(text.encode("utf-8"))
    assert _csvfast.read_plain(path, ["v"], "d") is not None
    exact = _agree(path, ["v"], "d")
    assert isinstance(exact, list) and exact[1][2] == np.r_[2:7, 8:31].astype(np.int64).tobytes()
    for odd in ['"2000-01-03 02:00:00",0.3,x', "2000-01-03 02:00:00, 0.3,x", "2000-01-03,1,x"]:
        path.write_text(text.replace(rows[2], odd), encoding="utf-8")
        assert _csvfast.read_plain(path, ["v"], "d") is None
        _agree(path, ["v"], "d")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(text=st.one_of(_plain_numbers, st.from_regex(r"[0-9.eE+-]{1,12}", fullmatch=True)))
def test_numbers_agree_with_float_bitwise(text: str) -> None:
    buf = np.frombuffer(text.encode("ascii") + b"\n", dtype=np.uint8)
    got = _csvfast._numbers(buf, np.array([0]), np.array([len(text)]))
    try:
        want = float(text)
    except ValueError:
        assert got is None
        return
    if not np.isfinite(want):
        assert got is None
    else:
        assert got is not None and struct.pack("d", got[0]) == struct.pack("d", want)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    text=st.one_of(
        st.tuples(_plain_dates, st.sampled_from([7, 10, 16, 19])).map(lambda x: x[0][: x[1]]),
        _odd_dates,
        st.from_regex(r"[0-9: T-]{7,19}", fullmatch=True),
    )
)
def test_dates_agree_with_parse_one(text: str) -> None:
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, 1)  # (w, 1)
    got = parse_bytes(chars) if text else None
    if got is not None:  # what it takes, parse_one takes the same way
        assert (int(got[0][0]), int(got[1][0])) == parse_one(text)


@pytest.mark.parametrize(
    ("name", "column", "date"),
    [
        ("airline-passengers.csv", "Passengers", "Month"),
        ("co2-mauna-loa-weekly.csv", "co2", "date"),
    ],
)
def test_bundled_files_read_the_same(name: str, column: str, date: str) -> None:
    assert isinstance(_agree(_FILES / name, [column], date), list)
