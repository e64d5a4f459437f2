"""A token store: a text encoded once into token ids on disk, memory-mapped, reused.

``load_corpus_mapped(path)`` gives what ``text.load_corpus(path)`` gives — the same token ids
(S,) and the same ``Vocab`` — without ever holding the text as a Python string or list:

- the source is read in chunks of ``chunk_bytes`` (cut at UTF-8 character boundaries) and
  checked as ``text.read_text`` checks it (a NUL byte, undecodable bytes, no text);
- a first pass counts the tokens (the vocabulary: '<unk>', then by descending count, ties
  in order of first appearance, as ``Vocab``); a second pass writes the ids into
  ``tokens.npy`` (uint8 for ≤ 256 tokens, uint16 for ≤ 65,536, else uint32), which is then
  memory-mapped read-only: batches read only their rows (``text.SequentialBatches``,
  ``text.RandomBatches``);
- the preprocessing is ``text.preprocess``'s, streamed (``_streaming``: d2l's letters-only
  rule across chunk edges, or raw characters).

The store lives in ``<cache>/<sha256 of the source>-<letters|raw>-v<FORMAT>/`` beside a
``meta.json`` (format, source sha256 and size, options, token count, dtype, vocabulary,
sha256 of the ids, the int64 digest the LM run records). ``<cache>`` is ``cache_dir``, else
``$GRUKIT_CACHE/tokens``, else ``$XDG_CACHE_HOME/grukit/tokens`` (``~/.cache/grukit/tokens``).
A store is built in a temporary folder and renamed into place, under a file lock, so two
processes never see half a store and only one builds it. On every load the source is
hashed (a changed file gets its own store) and the store is checked — meta, file size
against the token count, the ids' sha256 — and rebuilt when damaged, never used.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._streaming import hash_source, token_codes
from .text import TIME_MACHINE_SHA256, UNK, Vocab

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "MappedCorpus",
    "drop_resident",
    "load_corpus_mapped",
    "token_cache_dir",
]

#: The store's layout version: part of the folder name, so a new layout never reads an old one.
FORMAT = 1
#: Bytes of source text per chunk: bounds the memory of encoding (~30× this at peak).
CHUNK_BYTES = 1 << 20
_HASH_BLOCK = 1 << 22  # bytes per read when checking a stored map
_CAPACITY = {"uint8": 1 << 8, "uint16": 1 << 16, "uint32": 1 << 32}  # distinct ids per dtype

TokenArray = npt.NDArray[np.unsignedinteger[Any]]


@dataclass(frozen=True)
class MappedCorpus:
    """A memory-mapped corpus. tokens (S,) uint8/uint16/uint32, read-only (cut to
    max_tokens); vocab; source_sha256: of the source file's bytes; tokens_sha256: of the
    stored ids (all S_total of them); data_sha256: sha256 of json(vocab) and the ids as int64,
    what a language-model run records in config.json; path: the store's folder;
    built: whether this call encoded the text (False: reused)."""

    tokens: TokenArray
    vocab: Vocab
    source_sha256: str
    tokens_sha256: str
    data_sha256: str
    path: Path
    built: bool


def token_cache_dir() -> Path:
    """Where token stores live: $GRUKIT_CACHE/tokens, else $XDG_CACHE_HOME/grukit/tokens,
    else ~/.cache/grukit/tokens."""
    if os.environ.get("GRUKIT_CACHE"):
        return Path(os.environ["GRUKIT_CACHE"]) / "tokens"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "grukit" / "tokens"


def load_corpus_mapped(
    path: str | os.PathLike[str] | None = None,
    *,
    letters_only: bool = True,
    max_tokens: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> MappedCorpus:
    """``text.load_corpus(path, letters_only=, max_tokens=)`` from a token store: the same
    ids (S,) as a read-only memory map, the same vocabulary; built on first use, reused after.

    path None: the bundled Time Machine. Raises as ``load_corpus`` does (FileNotFoundError;
    ValueError for binary, non-UTF-8, empty or token-less text) and ValueError when the
    source changes while it is being encoded.
    """
    owner = "load_corpus_mapped"
    if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens <= 0):
        raise ValueError(f"{owner}: expected max_tokens > 0 or None, got {max_tokens}")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"{owner}: expected chunk_bytes an int ≥ 1, got {chunk_bytes!r}")
    with _source(path) as src:
        sha = hash_source(src, chunk_bytes)
        if path is None and sha != TIME_MACHINE_SHA256:
            raise ValueError(
                f"timemachine.txt: expected sha256 {TIME_MACHINE_SHA256}, got {sha} "
                "(the bundled file is damaged; reinstall grukit)"
            )
        root = token_cache_dir() if cache_dir is None else Path(cache_dir)
        key = f"{sha}-{'letters' if letters_only else 'raw'}-v{FORMAT}"
        entry, options = root / key, {"letters_only": letters_only}
        store, built = _try_open(entry, sha, options), False
        if store is None:
            root.mkdir(parents=True, exist_ok=True)
            with _exclusive(root / f".{key}.lock"):
                store = _try_open(entry, sha, options)  # another process may have built it
                if store is None:
                    _discard(entry)
                    _build(src, entry, sha, options, letters_only, chunk_bytes)
                    store, built = _open(entry, sha, options), True
    tokens, vocab, meta = store
    if max_tokens is not None:
        tokens = tokens[:max_tokens]
    return MappedCorpus(
        tokens, vocab, sha, meta["tokens_sha256"], meta["data_sha256"], entry, built
    )


def drop_resident(tokens: object) -> bool:
    """Take the pages of a memory map that have been read out of this process's resident set
    (madvise MADV_DONTNEED on the whole map); they stay in the kernel's page cache, so a later
    read is a cheap fault. Reading a whole map otherwise leaves it all resident (clean file
    pages the kernel may reclaim, but counted in RSS). True if done; False for an array that
    is not a map or where madvise is unavailable."""
    mapping = getattr(tokens, "_mmap", None)
    if not isinstance(mapping, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    mapping.madvise(mmap.MADV_DONTNEED)
    return True


# --- reading the source --------------------------------------------------------------------


@contextmanager
def _source(path: str | os.PathLike[str] | None) -> Iterator[Path]:
    if path is None:
        with resources.as_file(resources.files("grukit.data") / "files/timemachine.txt") as p:
            yield p
        return
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"expected a text file at {p}, found none")
    yield p


# --- building and opening a store ----------------------------------------------------------


def _build(
    src: Path,
    entry: Path,
    sha: str,
    options: dict[str, Any],
    letters_only: bool,
    chunk_bytes: int,
) -> None:
    """Two passes over the source (counts → vocabulary; ids → tokens.npy) into a temporary
    folder beside ``entry``, renamed into place."""
    counts = np.zeros(0, np.int64)  # (largest code point seen + 1,)
    first = np.zeros(0, np.int64)  # token index of each code point's first appearance, or -1
    total = 0
    for codes in token_codes(src, letters_only, chunk_bytes, hashlib.sha256()):
        if codes.size == 0:
            continue
        bc = np.bincount(codes)
        if bc.size > counts.size:
            counts = np.concatenate([counts, np.zeros(bc.size - counts.size, np.int64)])
            first = np.concatenate([first, np.full(bc.size - first.size, -1, np.int64)])
        counts[: bc.size] += bc
        new = np.flatnonzero((bc > 0) & (first[: bc.size] < 0))  # tokens first seen here
        if 0 < new.size <= 16:
            for cp in new:
                first[cp] = total + int(np.argmax(codes == cp))
        elif new.size:  # many (a new script): one pass over the chunk
            is_new = np.zeros(bc.size, bool)
            is_new[new] = True
            where = np.flatnonzero(is_new[codes])
            values, at_first = np.unique(codes[where], return_index=True)
            first[values] = total + where[at_first]
        total += codes.size
    if total == 0:
        raise ValueError(
            f"load_corpus_mapped: expected some tokens in {src}, got none after preprocessing"
        )
    present = np.flatnonzero(counts)
    ordered = present[np.lexsort((first[present], -counts[present]))]  # count ↓, then first ↑
    idx_to_token = [UNK] + [chr(int(cp)) for cp in ordered]
    dtype = np.dtype(next(k for k, cap in _CAPACITY.items() if len(idx_to_token) <= cap))
    table = np.zeros(counts.size, dtype)  # code point → id
    table[ordered] = np.arange(1, len(idx_to_token))

    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        source_h, ids_h = hashlib.sha256(), hashlib.sha256()
        data_h = hashlib.sha256(json.dumps(idx_to_token).encode())  # a run's data digest
        at = 0
        with open(tmp / "tokens.npy", "wb") as f:  # written, not mapped: no pages resident
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
            np.lib.format.write_array_header_1_0(f, {**header, "shape": (total,)})
            for codes in token_codes(src, letters_only, chunk_bytes, source_h):
                try:
                    ids = table[codes]  # (chunk,)
                except IndexError:  # a character the first pass never saw: it changed
                    break
                if at + ids.size > total:
                    break
                f.write(ids.data)
                ids_h.update(ids.data)
                data_h.update(ids.astype(np.int64).data)
                at += ids.size
        if at != total or source_h.hexdigest() != sha:
            raise ValueError(
                f"load_corpus_mapped: expected {src} to stay unchanged while it was encoded, "
                "but it changed; try again"
            )
        meta = {
            "format": FORMAT,
            "source_sha256": sha,
            "source_bytes": src.stat().st_size,
            "options": options,
            "num_tokens": total,
            "dtype": dtype.name,
            "vocab": idx_to_token,
            "tokens_sha256": ids_h.hexdigest(),
            "data_sha256": data_h.hexdigest(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for name in ("tokens.npy", "meta.json", "."):
            _fsync(tmp / name)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.is_dir():  # not "someone else put a store there first"
                raise
        _fsync(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Damaged(Exception):
    """A store that is there but must not be used."""


_Store = tuple[TokenArray, Vocab, dict[str, Any]]


def _try_open(entry: Path, sha: str, options: dict[str, Any]) -> _Store | None:
    """The store at ``entry``; None when absent or damaged (with a warning: it is rebuilt)."""
    if not entry.exists():
        return None
    try:
        return _check(entry, sha, options)
    except _Damaged as why:
        warnings.warn(f"token store {entry} is damaged ({why}); rebuilding it", stacklevel=3)
        return None


def _open(entry: Path, sha: str, options: dict[str, Any]) -> _Store:
    try:
        return _check(entry, sha, options)
    except _Damaged as why:
        raise OSError(f"load_corpus_mapped: the token store just built at {entry} is "
                      f"unreadable ({why})") from None  # fmt: skip


def _check(entry: Path, sha: str, options: dict[str, Any]) -> _Store:
    """Meta as expected, tokens.npy of the right dtype and size, the ids' sha256 matching."""
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        expected = {"format": FORMAT, "source_sha256": sha, "options": options}
        if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
            raise _Damaged("meta.json does not describe this source and these options")
        n, dtype, tokens = meta.get("num_tokens"), meta.get("dtype"), meta.get("vocab")
        if not isinstance(n, int) or n < 1 or dtype not in ("uint8", "uint16", "uint32"):
            raise _Damaged(f"meta.json has num_tokens {n!r} and dtype {dtype!r}")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise _Damaged("meta.json's vocab is not a list of strings")
        if not all(isinstance(meta.get(k), str) for k in ("tokens_sha256", "data_sha256")):
            raise _Damaged("meta.json lacks its digests")
        if len(tokens) > _CAPACITY[dtype]:
            raise _Damaged(f"a vocabulary of {len(tokens)} does not fit {dtype}")
        vocab = Vocab.from_list(tokens)
        path = entry / "tokens.npy"
        itemsize = np.dtype(dtype).itemsize
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, stored = read_header(f)
            header, size = f.tell(), os.fstat(f.fileno()).st_size
        if shape != (n,) or fortran or stored != np.dtype(dtype):
            raise _Damaged(f"tokens.npy holds {stored} {shape}, expected {dtype} ({n},)")
        if size != header + n * itemsize:
            raise _Damaged(f"tokens.npy has {size} bytes, expected {header + n * itemsize}")
        h = hashlib.sha256()
        with open(path, "rb") as f:  # read, not mapped: checking leaves no pages resident
            f.seek(header)
            while block := f.read(_HASH_BLOCK):
                h.update(block)
        if h.hexdigest() != meta["tokens_sha256"]:
            raise _Damaged("the ids' sha256 differs from meta.json's")
        mm = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:  # unreadable, truncated header, bad JSON, bad vocab
        raise _Damaged(str(err)) from None
    return mm, vocab, meta


def _discard(entry: Path) -> None:
    """Move a damaged store out of the way (a reader holding its map keeps its file)."""
    if entry.exists():
        trash = entry.parent / f".{entry.name}.damaged-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _fsync(path: Path) -> None:
    if path.is_dir() and sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (POSIX flock; elsewhere the atomic rename alone
    keeps stores whole, and two processes may both build)."""
    with open(lock, "a+b") as f:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield
