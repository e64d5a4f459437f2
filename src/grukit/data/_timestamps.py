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
from typing import Literal

import numpy as np

__all__ = ["MONTH", "SECOND", "parse_one", "parse_many"]

MONTH, SECOND = 0, 1
_EPOCH = dt.datetime(1970, 1, 1)
_MONTH_RE = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_COMPACT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
#: text length → (NumPy unit to parse at, unit to print back at, ours)
_FAST: dict[int, tuple[str, Literal["M", "D", "m", "s"], int]] = {
    7: ("M", "M", MONTH),
    10: ("D", "D", SECOND),
    16: ("m", "m", SECOND),
    19: ("s", "s", SECOND),
}
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


#: width → positions of the digits, for the ASCII shapes parse_bytes takes
_DIGITS = {7: [0, 1, 2, 3, 5, 6], 10: [0, 1, 2, 3, 5, 6, 8, 9]}
_DIGITS[16] = _DIGITS[10] + [11, 12, 14, 15]
_DIGITS[19] = _DIGITS[16] + [17, 18]
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _number(d: np.ndarray, at: int, width: int) -> np.ndarray:
    """(n,) int64 of the decimal digits d[at : at + width] (d: (w, n) digit values)."""
    out: np.ndarray = d[at].astype(np.int64)
    for k in range(at + 1, at + width):
        out = out * 10 + d[k]
    return out


def parse_bytes(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """chars (w, n) uint8: n ASCII texts of width w, one per column → (units (n,) int8,
    stamps (n,) int64) if every text is ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM``
    or ``YYYY-MM-DD HH:MM:SS`` (" " or "T" between date and time) naming a real month or
    date-time, else None. What it accepts, ``parse_one`` accepts with the same result
    (the calendar is checked digit by digit: year ≥ 1 for dates, day within its month,
    hours < 24, minutes and seconds < 60)."""
    width, n = chars.shape
    if width not in _DIGITS or n == 0:
        return None
    d = chars - np.uint8(ord("0"))  # (w, n) digit values; other bytes wrap to > 9
    if bool((d[_DIGITS[width]] > 9).any()) or bool((chars[4] != ord("-")).any()):
        return None
    year, month = _number(d, 0, 4), _number(d, 5, 2)  # (n,), (n,)
    if bool(((month < 1) | (month > 12)).any()):
        return None
    if width == 7:
        return np.full(n, MONTH, dtype=np.int8), year * 12 + month - 1
    if bool((chars[7] != ord("-")).any()) or bool((year < 1).any()):
        return None
    day = _number(d, 8, 2)  # (n,)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))  # (n,)
    last = _DAYS[month - 1] + ((month == 2) & leap)  # (n,)
    if bool(((day < 1) | (day > last)).any()):
        return None
    # days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    seconds = (era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468) * 86400
    if width >= 16:
        sep = chars[10]
        if bool(((sep != ord(" ")) & (sep != ord("T"))).any()):
            return None
        if bool((chars[13] != ord(":")).any()):
            return None
        hour, minute = _number(d, 11, 2), _number(d, 14, 2)  # (n,), (n,)
        if bool(((hour > 23) | (minute > 59)).any()):
            return None
        seconds += hour * 3600 + minute * 60
    if width == 19:
        if bool((chars[16] != ord(":")).any()):
            return None
        second = _number(d, 17, 2)  # (n,)
        if bool((second > 59).any()):
            return None
        seconds += second
    return np.full(n, SECOND, dtype=np.int8), seconds
