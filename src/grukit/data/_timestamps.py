"""Timestamp text → (unit, ordinal), one at a time (the rules) or many at once (NumPy).

Units: ``MONTH`` (ordinal 12·year + month − 1) for ``YYYY-MM`` / ``YYYY/MM``; ``SECOND``
(seconds since 1970-01-01 of a naive date-time) for ``YYYYMMDD`` and ISO dates or
date-times; an offset (``+02:00``) is converted to UTC and dropped.

``parse_many`` takes the common fixed-width shapes (``YYYY-MM``, ``YYYY-MM-DD``,
``YYYY-MM-DD HH:MM[:SS]``) through NumPy's datetime parser and keeps a value only if
printing it back gives the text again, so it accepts exactly what ``parse_one``
accepts; any other shape goes through ``parse_one``.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

__all__ = ["MONTH", "SECOND", "parse_one", "parse_many"]

MONTH, SECOND = 0, 1
_EPOCH = dt.datetime(1970, 1, 1)
_MONTH_RE = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_COMPACT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
#: text length → (NumPy unit to parse at, unit to print back at, ours)
_FAST = {7: ("M", "M", MONTH), 10: ("D", "D", SECOND), 16: ("m", "m", SECOND)}
_FAST[19] = ("s", "s", SECOND)
_YEAR_ONE = np.datetime64("0001-01-01", "s")  # Python's datetime starts here


def parse_one(text: str) -> tuple[int, int] | None:
    """(MONTH, ordinal) or (SECOND, seconds), or None if ``text`` is not a timestamp."""
    m = _MONTH_RE.match(text)
    if m and 1 <= int(m.group(2)) <= 12:
        return MONTH, int(m.group(1)) * 12 + int(m.group(2)) - 1
    m = _COMPACT_RE.match(text)
    try:
        if m:
            t = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        else:
            t = dt.datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        return None
    if t.tzinfo is not None:
        try:
            t = t.replace(tzinfo=None) - (t.utcoffset() or dt.timedelta(0))
        except OverflowError:  # an offset that leaves year 1..9999
            return None
    return SECOND, int((t - _EPOCH).total_seconds())


def _fast(texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(units (n,), stamps (n,)) if every text has one of the fixed-width shapes, else None."""
    width = len(texts[0])
    if width not in _FAST or set(map(len, texts)) != {width}:
        return None
    at, back, unit = _FAST[width]
    arr = np.array(texts, dtype=f"U{width}")  # (n,)
    try:
        parsed = arr.astype(f"datetime64[{at}]")  # (n,)
    except ValueError:
        return None
    n = len(texts)
    chars = arr.view(np.uint32).reshape(n, width)  # (n, width) code points
    printed = np.datetime_as_string(parsed, unit=back)  # (n,) ISO, "T" between date and time
    if not bool((np.char.str_len(printed) == width).all()):
        return None  # e.g. "1000000", read as the year 1000000
    printed = printed.astype(f"U{width}")  # (n,)
    again = printed.view(np.uint32).reshape(n, width)  # (n, width)
    same = chars == again  # (n, width)
    if width >= 16:  # the date/time separator: " " or "T"
        same[:, 10] |= chars[:, 10] == ord(" ")
    if not bool(same.all()):
        return None  # NumPy took something the rules do not (or wrote it differently)
    if unit == MONTH:
        stamps = parsed.astype(np.int64) + 1970 * 12  # (n,) 12·year + month − 1
    else:
        seconds = parsed.astype("datetime64[s]")  # (n,)
        if bool((seconds < _YEAR_ONE).any()):
            return None
        stamps = seconds.astype(np.int64)  # (n,)
    return np.full(len(texts), unit, dtype=np.int8), stamps


def parse_many(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(units (n,) int8, stamps (n,) int64, index of the first text that is not a
    timestamp or None)."""
    if texts:
        fast = _fast(texts)
        if fast is not None:
            return fast[0], fast[1], None
    units = np.empty(len(texts), dtype=np.int8)  # (n,)
    stamps = np.empty(len(texts), dtype=np.int64)  # (n,)
    for k, text in enumerate(texts):
        p = parse_one(text)
        if p is None:
            return units, stamps, k
        units[k], stamps[k] = p
    return units, stamps, None
