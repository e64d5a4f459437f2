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
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._timestamps import MONTH, SECOND, parse_many

__all__ = ["Table", "Timeline", "read_table", "parse_timeline"]

_MISSING = {"", "na", "nan", "null", "none", "n/a", "?"}
_CHUNK = 8192  # rows converted at once: big enough for NumPy, small enough to bound memory


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


def _numbers(cells: list[str], lines: np.ndarray, source: str, name: str) -> np.ndarray:
    """cells (n,) → (n,) float64. NumPy parses str cells with Python's own float(), so the
    fast path gives the same bits; anything it cannot take goes cell by cell."""
    try:
        out = np.array(cells, dtype=np.float64)  # (n,)
    except (ValueError, OverflowError):
        return _numbers_slowly(cells, lines, source, name)
    if not np.isfinite(out).all():  # "nan" is a missing value, "inf" an error
        return _numbers_slowly(cells, lines, source, name)
    return out


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

    def flush(self, rows: list[list[str]], line_list: list[int]) -> None:
        """Convert ``rows`` (their lines ``line_list``) into one chunk of each array."""
        if not rows:
            return
        lines = np.asarray(line_list, dtype=np.int64)  # (n,)
        block = np.empty((len(rows), len(self.columns)), dtype=np.float64)  # (n, C)
        for j, (name, i) in enumerate(zip(self.columns, self.col_idx, strict=True)):
            block[:, j] = _numbers([r[i] for r in rows], lines, self.source, name)
        self.values.append(block)
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
    path: str | os.PathLike,
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
        values=_join(builder.values),  # (T, C)
        lines=_join(builder.line_chunks),  # (T,)
        date_column=date_column,
        stamps=_join(builder.stamps) if date_column is not None else None,
        units=_join(builder.units) if date_column is not None else None,
        path=path,
    )


def _join(chunks: list[np.ndarray]) -> np.ndarray:
    """np.concatenate(chunks), emptying ``chunks`` as it goes (peak: the result + one chunk)."""
    out = np.empty((sum(len(c) for c in chunks), *chunks[0].shape[1:]), dtype=chunks[0].dtype)
    at = 0
    chunks.reverse()
    while chunks:
        c = chunks.pop()
        out[at : at + len(c)] = c
        at += len(c)
    return out


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
    rows: list[list[str]] = []
    lines: list[int] = []
    add_row, add_line = rows.append, lines.append
    for row in reader:
        # the cheap test first: a full row whose first cell has text is a data row
        if len(row) != width or width == 1 or not row[0] or row[0].isspace():
            if not "".join(row).strip():
                continue  # blank line
            if len(row) != width:
                raise ValueError(
                    f"{_where(source, reader.line_num)}: expected {width} fields (as in the "
                    f"header), got {len(row)}: {_short(row)}"
                )
        add_row(row)
        add_line(reader.line_num)
        if len(rows) >= _CHUNK:
            builder.flush(rows, lines)
            rows.clear()
            lines.clear()
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
