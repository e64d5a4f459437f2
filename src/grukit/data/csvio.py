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
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Table", "Timeline", "read_table", "parse_timeline"]

_MISSING = {"", "na", "nan", "null", "none", "n/a", "?"}
_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


@dataclass
class Table:
    """Columns read from a CSV: ``values`` (T, C) float64, NaN where missing."""

    source: str  # the file name used in messages
    columns: list[str]
    values: np.ndarray  # (T, C)
    lines: list[int]  # the line of each row, for messages
    date_column: str | None
    dates: list[str] | None  # raw timestamp text, one per row


def _where(source: str, line: int | None = None, column: str | None = None) -> str:
    out = f"CSV {source}"
    if line is not None:
        out += f", line {line}"
    if column is not None:
        out += f", column {column!r}"
    return out


def read_table(
    path: str | os.PathLike,
    columns: Sequence[str],
    *,
    date_column: str | None = None,
    source: str | None = None,
) -> Table:
    """Read ``columns`` (numbers) and ``date_column`` (text) from the CSV at ``path``.

    Raises FileNotFoundError for a missing file and ValueError naming the line and
    column for: no header, a missing column, a row with the wrong number of fields,
    a value that is not a number, or no data rows.
    """
    path = Path(path)
    source = source or str(path)
    if isinstance(columns, str) or not columns:
        raise ValueError(f"{_where(source)}: expected a non-empty list of columns, got {columns!r}")
    if not path.is_file():
        raise FileNotFoundError(f"expected a CSV file at {path}, found none")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = None
        for row in reader:
            if any(cell.strip() for cell in row):
                header = [cell.strip() for cell in row]
                break
        if header is None:
            raise ValueError(f"{_where(source)}: expected a header row, got an empty file")
        wanted = list(columns) + ([date_column] if date_column is not None else [])
        for name in wanted:
            if name not in header:
                raise ValueError(
                    f"{_where(source, column=name)}: expected a column named {name!r} "
                    f"in the header, got columns {header}"
                )
        col_idx = [header.index(name) for name in columns]
        date_idx = header.index(date_column) if date_column is not None else None
        values: list[list[float]] = []
        lines: list[int] = []
        dates: list[str] = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(header):
                raise ValueError(
                    f"{_where(source, line)}: expected {len(header)} fields (as in the "
                    f"header), got {len(row)}: {row}"
                )
            record = []
            for name, i in zip(columns, col_idx, strict=True):
                text = row[i].strip()
                if text.lower() in _MISSING:
                    record.append(math.nan)
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(
                        f"{_where(source, line, name)}: expected a number, got {text!r}"
                    ) from None
                if not math.isfinite(value):
                    raise ValueError(
                        f"{_where(source, line, name)}: expected a finite number, got {text!r}"
                    )
                record.append(value)
            values.append(record)
            lines.append(line)
            if date_idx is not None:
                dates.append(row[date_idx].strip())
    if not values:
        raise ValueError(f"{_where(source)}: expected at least one data row, got only the header")
    return Table(
        source=source,
        columns=list(columns),
        values=np.asarray(values, dtype=np.float64).reshape(len(values), len(columns)),  # (T, C)
        lines=lines,
        date_column=date_column,
        dates=dates if date_column is not None else None,
    )


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


def _parse_one(text: str) -> tuple[str, int] | None:
    """("month", ordinal) or ("second", seconds), or None if not a timestamp."""
    m = _MONTH.match(text)
    if m and 1 <= int(m.group(2)) <= 12:
        return "month", int(m.group(1)) * 12 + int(m.group(2)) - 1
    m = _COMPACT.match(text)
    try:
        if m:
            t = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        else:
            t = dt.datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None) - (t.utcoffset() or dt.timedelta(0))
    return "second", int((t - _EPOCH).total_seconds())


def parse_timeline(table: Table) -> Timeline:
    """The table's timestamps on their grid; raises ValueError naming the line for a
    bad or out-of-order timestamp, or a gap that is not a whole number of steps."""
    assert table.dates is not None and table.date_column is not None
    col = table.date_column
    parsed = []
    for text, line in zip(table.dates, table.lines, strict=True):
        p = _parse_one(text)
        if p is None:
            raise ValueError(
                f"{_where(table.source, line, col)}: expected a date (YYYY-MM, YYYYMMDD, "
                f"YYYY-MM-DD or YYYY-MM-DD HH:MM:SS), got {text!r}"
            )
        parsed.append(p)
    units = {u for u, _ in parsed}
    if units == {"second"} and len(parsed) > 1:
        stamps = [_EPOCH + dt.timedelta(seconds=s) for _, s in parsed]
        if all(t.day == 1 and t.time() == dt.time() for t in stamps):
            gaps = {int((b - a).total_seconds()) for a, b in zip(stamps, stamps[1:], strict=False)}
            if len(gaps) > 1:  # first-of-month dates that are not a fixed step apart
                parsed = [("month", t.year * 12 + t.month - 1) for t in stamps]
                units = {"month"}
    if len(units) > 1:
        raise ValueError(
            f"{_where(table.source, column=col)}: expected all timestamps in one format, "
            f"got months (YYYY-MM) mixed with dates"
        )
    unit = units.pop()
    ordinals = np.asarray([o for _, o in parsed], dtype=np.int64)  # (T,)
    gaps = np.diff(ordinals)  # (T-1,)
    bad = np.nonzero(gaps <= 0)[0]
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{_where(table.source, table.lines[i], col)}: expected timestamps in "
            f"increasing order, got {table.dates[i]!r} after {table.dates[i - 1]!r}"
        )
    step = int(gaps.min()) if gaps.size else 1
    off = np.nonzero(gaps % step)[0]
    if off.size:
        i = int(off[0]) + 1
        raise ValueError(
            f"{_where(table.source, table.lines[i], col)}: expected timestamps on a regular "
            f"grid of step {step} {unit}s, got {table.dates[i]!r} after {table.dates[i - 1]!r}"
        )
    return Timeline(unit=unit, step=step, ordinals=ordinals)
