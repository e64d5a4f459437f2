"""CSV tables of numbers and timestamps, read with the standard ``csv`` module.

Every error names the file and, where it has one, the line (as an editor counts
them, the header being line 1) and the column, e.g.
``CSV data.csv, line 7, column 'co2': expected a number, got 'abc'``.

Empty fields and ``NA``/``NaN``/``null`` are missing values (NaN); they are filled
later (``grukit.data.series``), not here.

Timestamps: ``YYYY-MM`` / ``YYYY/MM`` (months), ``YYYYMMDD``, and ISO dates or
date-times (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]``). A series whose timestamps
are all months (or all first-of-month midnights) has a monthly step; any other has
a fixed step in seconds, the smallest gap between neighbours, which every gap must
be a whole multiple of.

Scaling: rows are read in chunks of ``_CHUNK`` and converted column by column with
NumPy (a chunk whose cells NumPy cannot take whole — missing values, odd dates —
is converted cell by cell with the same rules), so memory stays a few bytes per cell
beyond the result: a 10-million-row file loads in seconds, in well under 1 GB.
A plain file (ASCII, no quotes, decimal numbers, fixed-width ISO dates) is first tried
by ``_csvfast.read_plain``, which scans byte blocks with NumPy and gives the same arrays
bit for bit; it refuses anything else, which is then read as above (``FAST = False``
skips it).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._csvfast import join_chunks, read_plain
from ._timestamps import MONTH, SECOND, parse_many

__all__ = ["Table", "Timeline", "read_table", "parse_timeline"]

_MISSING = {"", "na", "nan", "null", "none", "n/a", "?"}
_CHUNK = 8192  # rows converted at once: big enough for NumPy, small enough to bound memory
FAST = True  # try _csvfast.read_plain first (False: always the exact, csv-module path)


@dataclass
class Table:
    """Columns read from a CSV: ``values`` (T, C) float64, NaN where missing.

    With a date column, ``stamps`` (T,) int64 and ``units`` (T,) int8 hold each row's
    timestamp (``units`` 0: a month ordinal 12·year + month − 1; 1: seconds since
    1970-01-01 of a naive date-time).
    """

    source: str  # the file name used in messages
    columns: list[str]
    values: np.ndarray  # (T, C)
    lines: np.ndarray  # (T,) int64, the line of each row, for messages
    date_column: str | None
    stamps: np.ndarray | None = None  # (T,) int64
    units: np.ndarray | None = None  # (T,) int8
    path: Path | None = None  # where to re-read a row's raw date text for a message

    def date_text(self, row: int) -> str:
        """The raw text of row ``row``'s timestamp (re-read from the file: only errors need it)."""
        assert self.date_column is not None and self.stamps is not None
        want = int(self.lines[row])
        try:
            with open(self.path or "", newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                idx = None
                for cells in reader:
                    if idx is None:
                        if any(c.strip() for c in cells):
                            idx = [c.strip() for c in cells].index(self.date_column)
                    elif reader.line_num == want:
                        return cells[idx].strip()
        except (OSError, ValueError, csv.Error, IndexError):
            pass
        return str(int(self.stamps[row]))  # the file changed under us: the ordinal


def _where(source: str, line: int | None = None, column: str | None = None) -> str:
    out = f"CSV {source}"
    if line is not None:
        out += f", line {line}"
    if column is not None:
        out += f", column {column!r}"
    return out


def _short(obj: object, limit: int = 80) -> str:
    """repr(obj), cut to ``limit`` characters (messages stay one readable line)."""
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def _numbers_slowly(cells: list[str], lines: np.ndarray, source: str, name: str) -> np.ndarray:
    """cells (n,) → (n,) float64, NaN for a missing value; the exact rules, cell by cell."""
    out = np.empty(len(cells), dtype=np.float64)
    for k, cell in enumerate(cells):
        text = cell.strip()
        if text.lower() in _MISSING:
            out[k] = math.nan
            continue
        try:
            value = float(text)
        except ValueError:
            where = _where(source, int(lines[k]), name)
            raise ValueError(f"{where}: expected a number, got {_short(text)}") from None
        if not math.isfinite(value):
            where = _where(source, int(lines[k]), name)
            raise ValueError(f"{where}: expected a finite number, got {_short(text)}")
        out[k] = value
    return out


def _numbers_fast(cells: list[str]) -> np.ndarray | None:
    """cells (n,) → (n,) float64 by float() on every cell, or None if a cell is missing,
    not a number or not finite (those go cell by cell, for the exact rules and messages)."""
    try:
        out = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))  # (n,)
    except ValueError:
        return None
    return out if bool(np.isfinite(out).all()) else None  # "nan" is missing, "inf" an error


class _Builder:
    """Collects rows chunk by chunk into NumPy arrays."""

    def __init__(
        self,
        source: str,
        columns: list[str],
        col_idx: list[int],
        date_column: str | None,
        date_idx: int | None,
    ) -> None:
        self.source, self.columns, self.col_idx = source, columns, col_idx
        self.date_column, self.date_idx = date_column, date_idx
        self.values: list[np.ndarray] = []  # chunks (n, C)
        self.line_chunks: list[np.ndarray] = []  # chunks (n,)
        self.stamps: list[np.ndarray] = []  # chunks (n,)
        self.units: list[np.ndarray] = []  # chunks (n,)

    def flush(self, rows: list[list[str]], lines: np.ndarray) -> None:
        """Convert ``rows`` (full width; their lines ``lines`` (n,)) into one chunk of each
        array; rows with no text at all are blank lines and dropped."""
        fast = [_numbers_fast([r[i] for r in rows]) for i in self.col_idx]
        cols = [c for c in fast if c is not None]
        if len(cols) < len(fast):  # missing or bad cells: the exact rules, cell by cell
            keep = [bool("".join(r).strip()) for r in rows]
            if not all(keep):
                rows = [r for r, k in zip(rows, keep, strict=True) if k]
                lines = lines[np.asarray(keep, dtype=bool)]  # (n',)
            cols = []
            for i, name in zip(self.col_idx, self.columns, strict=True):
                cells = [r[i] for r in rows]
                col = _numbers_fast(cells)
                cols.append(
                    col if col is not None else _numbers_slowly(cells, lines, self.source, name)
                )
        if not rows:
            return
        self.values.append(np.stack(cols, axis=1))  # (n, C)
        self.line_chunks.append(lines)
        if self.date_idx is not None:
            texts = [r[self.date_idx].strip() for r in rows]
            units, stamps, bad = parse_many(texts)
            if bad is not None:
                raise ValueError(
                    f"{_where(self.source, int(lines[bad]), self.date_column)}: expected a date "
                    f"(YYYY-MM, YYYYMMDD, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS), got "
                    f"{_short(texts[bad])}"
                )
            self.units.append(units)
            self.stamps.append(stamps)


def read_table(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    *,
    date_column: str | None = None,
    source: str | None = None,
) -> Table:
    """Read ``columns`` (numbers) and ``date_column`` (timestamps) from the CSV at ``path``.

    Raises FileNotFoundError for a missing file and ValueError naming the line and
    column for: no header, a missing column, a row with the wrong number of fields,
    a value that is not a finite number, a timestamp that is not one, no data rows,
    bytes that are not UTF-8 text, or malformed CSV (a field over
    ``csv.field_size_limit()`` characters, an unclosed quote).
    """
    path = Path(path)
    source = source or str(path)
    if isinstance(columns, str) or not columns or not all(isinstance(c, str) for c in columns):
        raise ValueError(
            f"{_where(source)}: expected a non-empty list of column names, got {_short(columns)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"expected a CSV file at {path}, found none")
    plain = read_plain(path, list(columns), date_column) if FAST else None
    if plain is not None:  # a plain file: the same arrays the exact path gives, faster
        values, lines, units, stamps = plain
        return Table(source, list(columns), values, lines, date_column, stamps, units, path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            builder = _read_rows(reader, source, list(columns), date_column)
        except csv.Error as err:
            line = reader.line_num
            if "field larger than field limit" in str(err):
                raise ValueError(
                    f"{_where(source, line)}: expected fields of at most "
                    f"{csv.field_size_limit():,} characters, got a longer one"
                ) from None
            raise ValueError(
                f"{_where(source, line)}: expected well-formed CSV, got {err}"
            ) from None
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{_where(source, reader.line_num + 1)}: expected UTF-8 text, got undecodable "
                f"bytes ({err.reason}); is this a CSV file?"
            ) from None
    if not builder.values:
        raise ValueError(f"{_where(source)}: expected at least one data row, got only the header")
    return Table(
        source=source,
        columns=list(columns),
        values=join_chunks(builder.values),  # (T, C)
        lines=join_chunks(builder.line_chunks),  # (T,)
        date_column=date_column,
        stamps=join_chunks(builder.stamps) if date_column is not None else None,
        units=join_chunks(builder.units) if date_column is not None else None,
        path=path,
    )


def _row_lines(rows: list[list[str]], before: int, after: int) -> np.ndarray:
    """(n,) the line each row ends on, given the lines read before and after the rows (a
    quoted field may hold line breaks: "\\n", "\\r" or "\\r\\n", as ``csv`` counts them)."""
    if after - before == len(rows):  # one line a row
        return np.arange(before + 1, after + 1, dtype=np.int64)
    spans = [1 + sum(c.count("\n") + c.count("\r") - c.count("\r\n") for c in row) for row in rows]
    return before + np.cumsum(np.asarray(spans, dtype=np.int64))  # (n,)


def _full_rows(
    rows: list[list[str]], lines: np.ndarray, width: int, source: str
) -> tuple[list[list[str]], np.ndarray]:
    """The rows of ``width`` fields and their lines; empty rows dropped; another width raises."""
    keep = []
    for k, row in enumerate(rows):
        if len(row) == width:
            keep.append(k)
        elif "".join(row).strip():
            raise ValueError(
                f"{_where(source, int(lines[k]))}: expected {width} fields (as in the "
                f"header), got {len(row)}: {_short(row)}"
            )
    return [rows[k] for k in keep], lines[np.asarray(keep, dtype=np.int64)]


def _read_rows(reader: Any, source: str, columns: list[str], date_column: str | None) -> _Builder:
    """Header, then data rows of ``reader`` (a ``csv.reader``) into a flushed _Builder."""
    header = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if header is None:
        raise ValueError(f"{_where(source)}: expected a header row, got an empty file")
    for name in columns + ([date_column] if date_column is not None else []):
        if name not in header:
            shown = ", ".join(_short(h, 30) for h in header[:12]) + (
                ", …" if len(header) > 12 else ""
            )
            raise ValueError(
                f"{_where(source, column=name)}: expected a column named {name!r} "
                f"in the header, got columns [{shown}]"
            )
    width = len(header)
    builder = _Builder(
        source,
        columns,
        [header.index(name) for name in columns],
        date_column,
        header.index(date_column) if date_column is not None else None,
    )
    before = reader.line_num  # the header's last line
    while rows := list(itertools.islice(reader, _CHUNK)):  # csv parses the chunk in C
        lines = _row_lines(rows, before, reader.line_num)  # (n,)
        before = reader.line_num
        if set(map(len, rows)) != {width}:
            rows, lines = _full_rows(rows, lines, width, source)
        if rows:
            builder.flush(rows, lines)
    return builder


@dataclass
class Timeline:
    """Timestamps as integers on a regular grid.

    ``unit`` is "month" (ordinal = 12·year + month − 1) or "second" (POSIX-like
    seconds of a naive date-time); ``step`` is the grid's spacing in that unit.
    """

    unit: str
    step: int
    ordinals: np.ndarray  # (T,) int64, increasing, on the grid

    def label(self) -> str:
        """ "monthly", "7D", "1D", "3600s" …"""
        if self.unit == "month":
            return "monthly" if self.step == 1 else f"{self.step}M"
        if self.step % 86400 == 0:
            return f"{self.step // 86400}D"
        return f"{self.step}s"

    def to_datetime(self, ordinal: int) -> dt.datetime:
        if self.unit == "month":
            return dt.datetime(int(ordinal) // 12, int(ordinal) % 12 + 1, 1)
        return _EPOCH + dt.timedelta(seconds=int(ordinal))

    def to_text(self, ordinal: int) -> str:
        t = self.to_datetime(ordinal)
        if self.unit == "month":
            return f"{t.year:04d}-{t.month:02d}"
        return t.date().isoformat() if self.step % 86400 == 0 else t.isoformat(sep=" ")

    def default_season(self) -> int:
        """Steps per natural cycle: 12 monthly, 4 quarterly, 52 weekly, 7 daily, 24 hourly."""
        table = {("month", 1): 12, ("month", 3): 4, ("second", 7 * 86400): 52}
        table |= {("second", 86400): 7, ("second", 3600): 24}
        return table.get((self.unit, self.step), 1)


_EPOCH = dt.datetime(1970, 1, 1)


def _first_of_month(seconds: np.ndarray) -> bool:
    """Whether every stamp (seconds since 1970) is a first-of-month midnight."""
    secs = seconds.astype("datetime64[s]")  # (T,)
    return bool((secs.astype("datetime64[M]").astype("datetime64[s]") == secs).all())


def parse_timeline(table: Table) -> Timeline:
    """The table's timestamps on their grid; raises ValueError naming the line for an
    out-of-order timestamp or a gap that is not a whole number of steps."""
    if table.date_column is None or table.stamps is None or table.units is None:
        raise ValueError("parse_timeline: expected a table read with a date column, got none")
    col = table.date_column
    ordinals, units = table.stamps, table.units  # (T,), (T,)
    kinds = {int(units.min()), int(units.max())}
    if kinds == {SECOND} and len(ordinals) > 1 and _first_of_month(ordinals[:1]):
        if _first_of_month(ordinals):  # all first-of-month midnights …
            gaps = np.diff(ordinals)  # (T-1,)
            if bool((gaps != gaps[0]).any()):  # … not a fixed step apart: months
                ordinals = ordinals.astype("datetime64[s]").astype("datetime64[M]")  # (T,)
                ordinals = ordinals.astype(np.int64) + 1970 * 12  # (T,) 12·year + month − 1
                kinds = {MONTH}
    if len(kinds) > 1:
        raise ValueError(
            f"{_where(table.source, column=col)}: expected all timestamps in one format, "
            f"got months (YYYY-MM) mixed with dates"
        )
    unit = "month" if kinds == {MONTH} else "second"
    gaps = np.diff(ordinals)  # (T-1,)
    bad = np.nonzero(gaps <= 0)[0]
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{_where(table.source, int(table.lines[i]), col)}: expected timestamps in "
            f"increasing order, got {_short(table.date_text(i))} after "
            f"{_short(table.date_text(i - 1))}"
        )
    step = int(gaps.min()) if gaps.size else 1
    off = np.nonzero(gaps % step)[0]
    if off.size:
        i = int(off[0]) + 1
        raise ValueError(
            f"{_where(table.source, int(table.lines[i]), col)}: expected timestamps on a regular "
            f"grid of step {step} {unit}s, got {_short(table.date_text(i))} after "
            f"{_short(table.date_text(i - 1))}"
        )
    return Timeline(unit=unit, step=step, ordinals=np.ascontiguousarray(ordinals, np.int64))
