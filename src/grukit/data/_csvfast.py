"""A fast reader for plain CSV files: byte blocks scanned with NumPy, no ``csv`` module.

It takes only files it can read exactly as ``csvio``'s exact path does: ASCII text
(after an optional UTF-8 byte-order mark), no quote character, no NUL, line ends
``\\n`` or ``\\r\\n`` throughout, the header on the first line, every other line either
empty or holding as many fields as the header, every number cell plain decimal text
(digits, ``.``, ``e``/``E``, ``+``/``-``, no spaces) of a finite value, every date cell
one fixed-width ISO shape (``_timestamps.parse_bytes``). On anything else it returns
None and the caller reads the file the exact way (same results, same errors).

Numbers are converted by NumPy's bytes → float64 cast, which for this character set
gives ``float()``'s result bit for bit (the tests check it against ``float``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ._timestamps import parse_bytes

__all__ = ["read_plain"]

_BLOCK = 1 << 18  # bytes scanned at once (≈ 9 000 lines of a two-column file: small transients)
_LONGEST = 64  # longest number cell taken (longer ones go the exact way)
_NUMBER_CHARS = np.zeros(256, dtype=bool)
_NUMBER_CHARS[np.frombuffer(b"0123456789.eE+-", dtype=np.uint8)] = True
_BOM = b"\xef\xbb\xbf"


class _Columns:
    """Per-block arrays collected for the Table: values, lines, units, stamps."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []  # chunks (n, C) float64
        self.lines: list[np.ndarray] = []  # chunks (n,) int64
        self.units: list[np.ndarray] = []  # chunks (n,) int8
        self.stamps: list[np.ndarray] = []  # chunks (n,) int64


def _cells(buf: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """(width, n) uint8: column k holds the bytes buf[start[k]:end[k]], zero-padded."""
    out = np.empty((width, len(start)), dtype=np.uint8)
    last = len(buf) - 1
    ragged = bool((end - start != width).any())
    for j in range(width):
        at = start + j  # (n,)
        if ragged:
            out[j] = buf[np.minimum(at, last)]
            out[j][at >= end] = 0
        else:
            out[j] = buf[at]
    return out


def _decimals(chars: np.ndarray) -> np.ndarray | None:
    """chars (w, n) of the form [+-]digits[.digits] (zero-padded, at most 15 digits in
    all) → (n,) float64 as mantissa / 10**fraction digits, or None for any other form.
    Both are exact doubles and IEEE division rounds correctly, so this is float()'s result."""
    width, n = chars.shape
    sign = (chars[0] == ord("-")) | (chars[0] == ord("+"))  # (n,)
    mantissa = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)  # digits seen
    after = np.zeros(n, dtype=np.int64)  # digits seen after the dot
    dots = np.zeros(n, dtype=np.int64)
    for j in range(width):
        c = chars[j]
        d = c - np.uint8(ord("0"))  # (n,)
        is_digit = d <= 9
        mantissa = np.where(is_digit, mantissa * 10 + d, mantissa)
        digits += is_digit
        after += is_digit & (dots > 0)
        dots += c == ord(".")
        known = is_digit | (c == ord(".")) | (c == 0) | (sign if j == 0 else False)
        if not bool(known.all()):
            return None
    if bool((dots > 1).any()) or bool((digits < 1).any()) or bool((digits > 15).any()):
        return None
    out = mantissa.astype(np.float64) / (10.0 ** np.arange(16))[after]  # (n,)
    return np.where(chars[0] == ord("-"), -out, out)


def _numbers(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """(n,) float64 of the number cells buf[start:end], or None if one is empty, longer
    than _LONGEST, holds a character outside digits . e E + -, or is not a finite number."""
    length = end - start  # (n,)
    if len(length) == 0:
        return np.empty(0, dtype=np.float64)
    longest = int(length.max())
    if int(length.min()) < 1 or longest > _LONGEST:
        return None
    chars = _cells(buf, start, end, longest)  # (longest, n)
    if not bool((_NUMBER_CHARS[chars] | (chars == 0)).all()):
        return None
    out = _decimals(chars)
    if out is not None:
        return out
    try:
        with np.errstate(all="ignore"):  # "1e999" → inf, refused below
            out = np.ascontiguousarray(chars.T).view(f"S{longest}").ravel().astype(np.float64)
    except ValueError:
        return None
    return out if bool(np.isfinite(out).all()) else None


def _header(first: bytes) -> list[str] | None:
    """The header cells of the first line, stripped, or None if it is blank."""
    header = [cell.strip() for cell in first.decode("ascii").split(",")]
    return header if any(header) else None


def read_plain(
    path: Path, columns: list[str], date_column: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    """(values (T, C) float64, lines (T,) int64, units (T,) int8, stamps (T,) int64) of
    the CSV at ``path`` (units and stamps None without ``date_column``), or None if the
    file is not plain enough for this reader (see the module docstring)."""
    with open(path, "rb") as f:
        data = f.read(_BLOCK)
        while b"\n" not in data and (more := f.read(_BLOCK)):  # the header's whole line
            data += more
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        head_end = data.find(b"\n")
        if head_end < 0:
            return None
        first = data[:head_end]
        if first.endswith(b"\r"):
            first = first[:-1]
        if not first.isascii() or b'"' in first or b"\r" in first or b"\0" in first:
            return None
        header = _header(first)
        wanted = columns + ([date_column] if date_column is not None else [])
        if header is None or any(name not in header for name in wanted):
            return None
        col_idx = [header.index(name) for name in columns]
        date_idx = header.index(date_column) if date_column is not None else None
        out = _Columns()
        line = 1  # lines read so far
        date_width: list[int] = []
        rest = data[head_end + 1 :]
        while True:
            more = f.read(_BLOCK)
            block = rest + more
            if more:
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # no line ends in it yet: read on
                    rest = block
                    continue
                block, rest = block[:cut], block[cut:]
            elif not block:
                break
            elif not block.endswith(b"\n"):
                block += b"\n"
            lines = _block(block, line, len(header), col_idx, date_idx, date_width, out)
            if lines is None:
                return None
            line += lines
            if not more:
                break
    if not out.values:
        return None
    return (
        join_chunks(out.values),
        join_chunks(out.lines),
        join_chunks(out.units) if date_idx is not None else None,
        join_chunks(out.stamps) if date_idx is not None else None,
    )


def _block(
    block: bytes,
    line: int,
    width: int,
    col_idx: list[int],
    date_idx: int | None,
    date_width: list[int],
    out: _Columns,
) -> int | None:
    """Scan one block of whole lines (the first being line ``line`` + 1) into ``out``;
    the number of lines it held, or None if it is not plain."""
    if not block.isascii() or b'"' in block or b"\0" in block:
        return None
    if b"\r" in block:
        if block.count(b"\r") != block.count(b"\r\n"):
            return None
        block = block.replace(b"\r\n", b"\n")
    buf = np.frombuffer(block, dtype=np.uint8)  # (B,)
    ends = np.flatnonzero(buf == ord("\n"))  # (L,) one per line
    total = len(ends)
    starts = np.empty_like(ends)  # (L,)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    if int((ends - starts).max()) > csv.field_size_limit():
        return None
    commas = np.flatnonzero(buf == ord(","))  # (K,)
    count = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)  # (L,)
    full = ends > starts  # (L,) empty lines are dropped, as csv reads them as []
    if bool((count[full] != width - 1).any()):
        return None
    number = np.flatnonzero(full) + line + 1  # (n,) each row's line
    if len(number) == 0:
        return total
    starts, ends = starts[full], ends[full]  # (n,)
    comma = commas.reshape(len(number), width - 1)  # (n, width-1)

    def field(k: int) -> tuple[np.ndarray, np.ndarray]:
        lo = starts if k == 0 else comma[:, k - 1] + 1
        hi = ends if k == width - 1 else comma[:, k]
        return lo, hi

    cols = []
    for k in col_idx:
        col = _numbers(buf, *field(k))
        if col is None:
            return None
        cols.append(col)
    if date_idx is not None:
        lo, hi = field(date_idx)
        size = int((hi - lo).max())
        if int((hi - lo).min()) != size or date_width[:1] not in ([], [size]):
            return None
        date_width[:] = [size]
        parsed = parse_bytes(_cells(buf, lo, hi, size))
        if parsed is None:
            return None
        out.units.append(parsed[0])
        out.stamps.append(parsed[1])
    out.values.append(np.stack(cols, axis=1))  # (n, C)
    out.lines.append(number)
    return total


def join_chunks(chunks: list[np.ndarray]) -> np.ndarray:
    """np.concatenate(chunks), emptying ``chunks`` as it goes (peak: the result + one chunk)."""
    out = np.empty((sum(len(c) for c in chunks), *chunks[0].shape[1:]), dtype=chunks[0].dtype)
    at = 0
    chunks.reverse()
    while chunks:
        c = chunks.pop()
        out[at : at + len(c)] = c
        at += len(c)
    return out
