"""Streaming the text pipeline's preprocessing: a UTF-8 file read in chunks (cut at character
boundaries) and checked as ``text.read_text`` checks it, turned into token code points chunk
by chunk, exactly as ``text.preprocess`` turns the whole text (used by ``token_store``).

d2l's letters-only rule, streamed: a line is what ``str.splitlines`` splits on (\\n, \\r,
\\v, \\f, \\x1c–\\x1e, U+0085, U+2028, U+2029); within a line the letter runs are joined by
single spaces, lower-cased; lines are joined with no separator. A chunk edge inside a run of
spaces, a line break or a multi-byte character changes nothing. Shapes: B bytes of a chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Codes", "hash_source", "token_codes"]

_U8 = npt.NDArray[np.uint8]
#: Token code points of one chunk: uint8 where the chunk is ASCII, else uint32.
Codes = npt.NDArray[np.uint8] | npt.NDArray[np.uint32]


def hash_source(src: Path, chunk_bytes: int) -> str:
    """sha256 of the file; a NUL byte anywhere refuses it first, as ``read_text`` does."""
    h, pos = hashlib.sha256(), 0
    with open(src, "rb") as f:
        while data := f.read(chunk_bytes):
            nul = data.find(b"\x00")
            if nul >= 0:
                raise ValueError(
                    f"expected text in {src}, got binary data (a NUL byte at offset {pos + nul})"
                )
            h.update(data)
            pos += len(data)
    return h.hexdigest()


def _utf8_cut(data: bytes) -> int:
    """Length of the longest prefix of ``data`` not ending inside a UTF-8 character."""
    for i in range(len(data) - 1, max(len(data) - 4, -1), -1):
        b = data[i]
        if b & 0xC0 != 0x80:  # a character starts here
            need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 1
            return i if i + need > len(data) else len(data)
    return len(data)  # no start in the last 4 bytes: invalid, decoding will say where


def _chunks(src: Path, chunk_bytes: int, h: Any) -> Iterator[tuple[bytes, bool]]:
    """(bytes, is_ascii) of whole UTF-8 characters, checked as ``read_text`` checks; ``h``
    (a hashlib object) is fed every byte."""
    carry, pos, some_text = b"", 0, False
    with open(src, "rb") as f:
        while True:
            data = f.read(chunk_bytes)
            h.update(data)
            buf = carry + data
            cut = _utf8_cut(buf) if data else len(buf)
            piece, carry = buf[:cut], buf[cut:]
            ascii_ = piece.isascii()
            text = None
            if not ascii_ or not some_text:
                try:
                    text = piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"expected UTF-8 text in {src}, got undecodable bytes at offset "
                        f"{pos + err.start}"
                    ) from None
            some_text = some_text or bool(text and text.strip())
            pos += len(piece)
            if piece:
                yield piece, ascii_
            if not data:
                break
    if not some_text:
        raise ValueError(f"expected text in {src}, got an empty file")


class _LettersOnly:
    """d2l's letters-only preprocessing over consecutive chunks of UTF-8 bytes: letter runs of
    a line joined by single spaces, lower case; lines joined with no separator. State across
    chunks: whether the line so far has a letter (in_line), and whether a non-letter followed
    it (gap; in_line and not gap: the last byte was a letter, a word may continue)."""

    def __init__(self) -> None:
        self.in_line = False
        self.gap = False

    def __call__(self, b: _U8, is_ascii: bool) -> _U8:
        low = b | np.uint8(0x20)  # (B,) 'A'..'Z' → 'a'..'z'
        letter = (low - np.uint8(97)) < 26  # (B,) only ASCII letters land in 'a'..'z'
        brk = ((b - np.uint8(0x0A)) < 4) | ((b - np.uint8(0x1C)) < 3)  # \n \v \f \r \x1c-\x1e
        if not is_ascii:  # U+0085 (C2 85), U+2028 / U+2029 (E2 80 A8 / A9): mark the first byte
            brk[:-1] |= (b[:-1] == 0xC2) & (b[1:] == 0x85)
            brk[:-2] |= (b[:-2] == 0xE2) & (b[1:-1] == 0x80) & ((b[2:] | 1) == 0xA9)
        breaks = np.flatnonzero(brk)  # (m,) few: one per line
        starts = letter.copy()  # (B,) a word starts here
        starts[1:] &= ~letter[:-1]
        starts[0] &= not (self.in_line and not self.gap)  # else it continues the last word
        ws = np.flatnonzero(starts)  # (W,)
        if ws.size == 0 and not letter[0]:  # no letter at all
            self.in_line = self.in_line and breaks.size == 0
            self.gap = self.in_line and (self.gap or b.size > 0)
            return np.empty(0, np.uint8)
        # break_before[k]: a line break between word k - 1 (or the chunk's start) and word k
        break_before = np.zeros(ws.size + 1, bool)  # (W + 1,)
        break_before[np.searchsorted(ws, breaks)] = True
        space = ~break_before[:-1]  # (W,) a word after a letter of its line: a space first
        if space.size:
            space[0] &= self.in_line
        last = b.size - 1 - int(np.argmax(letter[::-1]))  # the chunk's last letter
        self.in_line = not (breaks.size and int(breaks[-1]) > last)
        self.gap = self.in_line and last < b.size - 1
        at = ws[space] - 1  # (spaces,) the byte before such a word: a non-letter, now ' '
        lead = at.size > 0 and int(at[0]) < 0  # the chunk starts with such a word
        at = at[1:] if lead else at
        low[at] = 32
        letter[at] = True
        out = low[letter]  # (n + spaces,)
        return np.concatenate([np.array([32], np.uint8), out]) if lead else out


def token_codes(src: Path, letters_only: bool, chunk_bytes: int, h: Any) -> Iterator[Codes]:
    """The tokens of the text as code points, chunk by chunk (uint8 where ASCII)."""
    letters = _LettersOnly()
    for piece, is_ascii in _chunks(src, chunk_bytes, h):
        b = np.frombuffer(piece, np.uint8)
        if letters_only:
            yield letters(b, is_ascii)
        elif is_ascii:
            yield b
        else:
            yield np.frombuffer(piece.decode("utf-8").encode("utf-32-le"), "<u4")
