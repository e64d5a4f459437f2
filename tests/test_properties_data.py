"""Property-based tests (hypothesis) of the data loaders on hostile input: random bytes,
CSV garbage, encodings, dates, gaps, NaN/Inf text, huge fields. Every input gives a
clean result or a ValueError/TypeError, never another exception; clean results agree
bitwise with the rules written out cell by cell (Python's float(), the one-at-a-time
timestamp parser, a hand-computed gap fill)."""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grukit.data import csvio
from grukit.data import text as text_data
from grukit.data._timestamps import parse_many, parse_one
from grukit.data.csvio import read_table
from grukit.data.series import MAX_INSERTED, fill_gaps, load_csv

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_DIR = Path(tempfile.mkdtemp(prefix="grukit-props-"))
_MISSING = {"", "na", "nan", "null", "none", "n/a", "?"}


def _file(data: bytes, name: str = "x.csv") -> Path:
    path = _DIR / name
    path.write_bytes(data)
    return path


# --- strategies ------------------------------------------------------------------------
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "NA",
            "NaN",
            "-nan",
            "inf",
            "-Infinity",
            "1e999",
            "1_000",
            " 2.5 ",
            "null",
            "?",
            "N/A",
            "0x10",
            "1,5",
            "--1",
            "１２",
        ]
    ),  # fmt: skip
    st.text(max_size=6),
)
moments = st.datetimes(
    min_value=__import__("datetime").datetime(1, 1, 1),
    max_value=__import__("datetime").datetime(9999, 12, 31),
)
stamps = st.one_of(
    moments.map(lambda t: t.strftime("%Y-%m-%d")),
    moments.map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),
    moments.map(lambda t: t.strftime("%Y-%m-%dT%H:%M")),
    moments.map(lambda t: t.strftime("%Y-%m")),
    moments.map(lambda t: t.strftime("%Y%m%d")),
    moments.map(lambda t: t.strftime("%Y/%m")),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}(-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?)?\Z"),
    st.sampled_from(
        [
            "0000-01-01",
            "2020-02-30",
            "2020-13",
            "NaT",
            "today",
            "2020-01-01Z",
            "2020-01-01T24:00:00",
            "0001-01-01T00:00+01:00",
            "9999-12-31T23:59-01:00",
        ]
    ),  # fmt: skip
    st.text(max_size=12),
)


def _expected_numbers(rows: list[list[str]], idx: int) -> list[float] | None:
    """The loader's rules for one column, cell by cell: None where it must raise."""
    out = []
    for row in rows:
        cell = row[idx].strip()
        if cell.lower() in _MISSING:
            out.append(math.nan)
            continue
        try:
            v = float(cell)
        except ValueError:
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


# --- properties ------------------------------------------------------------------------
@SETTINGS
@given(data=st.binary(max_size=3000))
def test_random_bytes(data: bytes) -> None:
    path = _file(data)
    try:
        s = load_csv(path, ["v"], date_column="d")
    except (ValueError, TypeError):
        return
    assert np.isfinite(s.values).all() and s.values.shape[1] == 1


@SETTINGS
@given(
    cells=st.lists(st.tuples(stamps, numbers, st.text(max_size=4)), min_size=1, max_size=40),
    dates=st.booleans(),
    crlf=st.booleans(),
    chunk=st.sampled_from([1, 3, 8192]),
)
def test_random_csv_agrees_with_the_rules(cells, dates: bool, crlf: bool, chunk: int) -> None:
    rows = [list(r) for r in cells]
    buf = __import__("io").StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows([["d", "v", "x"], *rows])
    path = _file(buf.getvalue().encode("utf-8", "surrogatepass"))
    try:
        with mock.patch.object(csvio, "_CHUNK", chunk):  # chunk boundaries anywhere
            table = read_table(path, ["v"], date_column="d" if dates else None)
    except (ValueError, TypeError):
        return
    # the reader keeps the rows that are not blank, in order, with their values bitwise
    # and the line each ends on (as csv.reader's line_num counts, row by row)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)
        want_lines = [reader.line_num for r in reader if "".join(r).strip()]
    assert table.lines.tolist() == want_lines
    kept = [r for r in rows if "".join(r).strip()]
    want = _expected_numbers(kept, 1)
    assert want is not None
    np.testing.assert_array_equal(table.values[:, 0], np.asarray(want))
    if dates:
        got = [(int(u), int(s)) for u, s in zip(table.units, table.stamps, strict=True)]
        assert got == [parse_one(r[0].strip()) for r in kept]


@SETTINGS
@given(texts=st.lists(stamps, min_size=1, max_size=30), same=st.booleans())
def test_fast_timestamps_equal_one_at_a_time(texts: list[str], same: bool) -> None:
    if same:  # one format throughout, so the NumPy path is taken
        texts = [texts[0]] * len(texts)
    units, values, bad = parse_many(texts)
    singles = [parse_one(t) for t in texts]
    first_bad = next((k for k, p in enumerate(singles) if p is None), None)
    assert bad == first_bad
    n = len(texts) if bad is None else bad
    assert [(int(u), int(v)) for u, v in zip(units[:n], values[:n], strict=True)] == singles[:n]


@SETTINGS
@given(
    gaps=st.lists(st.integers(1, 5), min_size=1, max_size=30),
    values=st.lists(st.floats(-1e6, 1e6) | st.just(math.nan), min_size=2, max_size=31),
    step=st.integers(1, 86_400),
    far=st.sampled_from([0, 0, 10, MAX_INSERTED + 1, 10**15]),
)
def test_gap_filling_is_exact_or_refused(gaps, values, step: int, far: int) -> None:
    n = min(len(gaps) + 1, len(values))
    pos = np.concatenate([[0], np.cumsum(gaps[: n - 1])]).astype(np.int64)  # (n,)
    pos[-1] += far
    y = np.asarray(values[:n], dtype=np.float64)[:, None]  # (n, 1)
    try:
        filled, ords, missing, inserted = fill_gaps(y, 7 + step * pos, step)
    except ValueError as err:
        assert np.isnan(y).all() or int(pos[-1]) + 1 - n > max(n, MAX_INSERTED), err
        return
    assert inserted == int(pos[-1]) + 1 - n and missing == int(np.isnan(y).sum())
    assert ords.tolist() == (7 + step * np.arange(pos[-1] + 1)).tolist()
    ok = ~np.isnan(y[:, 0])
    np.testing.assert_array_equal(filled[pos[ok], 0], y[ok, 0])  # observed values kept
    # hand oracle: every point on the line between its observed neighbours (flat at ends)
    known = pos[ok]
    for p in range(0, int(pos[-1]) + 1, max(1, int(pos[-1]) // 50)):
        a, b = known[known <= p], known[known >= p]
        if not a.size or not b.size:
            want = y[ok, 0][0] if not a.size else y[ok, 0][-1]
        elif a[-1] == b[0]:
            want = filled[p, 0]
        else:
            va, vb = filled[a[-1], 0], filled[b[0], 0]
            want = va + (vb - va) * (p - a[-1]) / (b[0] - a[-1])
        assert abs(filled[p, 0] - want) <= 1e-9 * max(1.0, abs(want))


@SETTINGS
@given(
    size=st.sampled_from([10, 131_071, 131_072, 131_073, 400_000]),
    where=st.sampled_from(["v", "d", "x"]),
)
def test_huge_fields(size: int, where: str) -> None:
    cell = "1" * size
    row = {"d": "2020-01-02", "v": "3", "x": "y"} | {where: cell}
    data = f"d,v,x\n2020-01-01,1,a\n{row['d']},{row['v']},{row['x']}\n"
    path = _file(data.encode())
    # refused: a field over the csv module's limit, a number beyond float (inf), a non-date
    refused = size > csv.field_size_limit() or where == "d" or (where == "v" and size > 308)
    if refused:
        with pytest.raises(ValueError, match=r"line 3"):
            load_csv(path, ["v"], date_column="d")
    else:
        s = load_csv(path, ["v"], date_column="d")
        assert s.values[:, 0].tolist() == [1.0, float(row["v"])]


@SETTINGS
@given(
    body=st.text(max_size=400),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252", "utf-8-sig"]),
    raw=st.booleans(),
)
def test_text_in_any_encoding(body: str, encoding: str, raw: bool) -> None:
    try:
        data = body.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    path = _file(data, "t.txt")
    try:
        corpus, vocab = text_data.load_corpus(path, letters_only=not raw)
    except (ValueError, TypeError):
        return
    decoded = data.decode("utf-8")  # it loaded, so it was UTF-8 without a NUL
    tokens = text_data.preprocess(decoded, letters_only=not raw)
    assert vocab.decode(corpus.tolist()) == "".join(tokens)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_text_from_random_bytes(data: bytes) -> None:
    try:
        corpus, vocab = text_data.load_corpus(_file(data, "b.txt"), letters_only=False)
    except (ValueError, TypeError):
        return
    assert vocab.decode(corpus.tolist()) == data.decode("utf-8")


@SETTINGS
@given(
    xs=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=3000),
    fmt=st.sampled_from([repr, str, "{:.17g}".format, "{:e}".format, lambda v: f" {v!r} "]),
    chunk=st.sampled_from([2, 100, 8192]),
)
def test_plain_numbers_take_numpy_and_keep_their_bits(xs: list[float], fmt, chunk: int) -> None:
    """Columns NumPy converts whole, in chunks, equal float() bitwise."""
    texts = [fmt(x) for x in xs]
    path = _file(("v\n" + "\n".join(texts) + "\n").encode())
    with mock.patch.object(csvio, "_CHUNK", chunk):
        table = read_table(path, ["v"])
    want = np.asarray([float(t) for t in texts])  # (n,)
    assert table.values[:, 0].tobytes() == want.tobytes()
    assert table.lines.tolist() == list(range(2, len(xs) + 2))


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False).map(repr) | st.just(""),
            st.text(alphabet=st.sampled_from('ab \r\n,"'), max_size=6),
        ),
        min_size=1,
        max_size=30,
    ),
    chunk=st.sampled_from([1, 3, 8192]),
)
def test_line_numbers_across_quoted_line_breaks(rows, chunk: int) -> None:
    """Quoted fields holding line breaks: each row's line is the one csv.reader reports."""
    buf = __import__("io").StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["v", "x"], *rows])
    path = _file(buf.getvalue().encode())
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        ref = [(reader.line_num, r) for r in reader if "".join(r).strip()]
    ragged = [line for line, r in ref if len(r) != 2]  # an unquoted "\r" splits a row
    want = [(line, r[0]) for line, r in ref]
    try:
        with mock.patch.object(csvio, "_CHUNK", chunk):
            table = read_table(path, ["v"])
    except ValueError as err:
        if ragged:
            assert f"line {ragged[0]}: expected 2 fields" in str(err)
        else:
            assert all(not v.strip() for _, v in want), err  # a column of no value
        return
    assert not ragged
    assert table.lines.tolist() == [line for line, _ in want]
    np.testing.assert_array_equal(
        table.values[:, 0], [float(v) if v.strip() else math.nan for _, v in want]
    )
