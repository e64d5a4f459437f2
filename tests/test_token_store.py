"""grukit.data.token_store against the in-memory pipeline (``text.load_corpus`` and d2l's
iterators as they were before they took memory maps): the same ids, vocabulary and batches,
exactly; chunk edges anywhere; reuse, re-encoding and repair of the cache; bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from grukit.data import text
from grukit.data import token_store as ts

SRC = str(Path(ts.__file__).resolve().parents[2])


def data_sha256(corpus: torch.Tensor, vocab: text.Vocab) -> str:
    """The digest a language-model run records, computed the direct way: sha256 of the
    vocabulary's JSON and the token ids as int64 (the store computes it while encoding)."""
    h = hashlib.sha256(json.dumps(vocab.to_list()).encode())
    h.update(corpus.to(torch.int64).numpy().tobytes())
    return h.hexdigest()


# --- today's iterators, verbatim (the oracle: text.py's before they took memory maps) -------


def _d2l_sequential(
    corpus: Tensor, batch_size: int, num_steps: int, *, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    offset = int(torch.randint(0, num_steps + 1, (1,), generator=generator))
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset : offset + num_tokens].reshape(batch_size, -1)  # (N, S/N)
    ys = corpus[offset + 1 : offset + 1 + num_tokens].reshape(batch_size, -1)  # (N, S/N)
    for i in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def _d2l_random(
    corpus: Tensor, batch_size: int, num_steps: int, *, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    start = int(torch.randint(0, num_steps, (1,), generator=generator))
    corpus = corpus[start:]
    num_subseqs = (len(corpus) - 1) // num_steps
    starts = torch.randperm(num_subseqs, generator=generator) * num_steps  # (num_subseqs,)
    steps = torch.arange(num_steps)  # (T,)
    for i in range(0, (num_subseqs // batch_size) * batch_size, batch_size):
        idx = starts[i : i + batch_size, None] + steps  # (N, T)
        yield corpus[idx], corpus[idx + 1]


def _same(m: ts.MappedCorpus, corpus: Tensor, vocab: text.Vocab) -> bool:
    return bool(
        np.array_equal(np.asarray(m.tokens, dtype=np.int64), corpus.numpy())
        and m.vocab.idx_to_token == vocab.idx_to_token
    )


# --- the bundled book ----------------------------------------------------------------------


@pytest.mark.parametrize("letters_only", [True, False])
def test_book_equals_load_corpus(tmp_path: Path, letters_only: bool) -> None:
    m = ts.load_corpus_mapped(letters_only=letters_only, cache_dir=tmp_path)
    corpus, vocab = text.load_corpus(letters_only=letters_only)
    assert isinstance(m.tokens, np.memmap) and m.tokens.dtype == np.uint8
    assert len(m.tokens) == (170_580 if letters_only else len(text.read_time_machine()))
    assert _same(m, corpus, vocab)  # exact, both modes
    assert m.source_sha256 == text.TIME_MACHINE_SHA256 and m.built
    assert m.data_sha256 == data_sha256(corpus, vocab)  # what an LM run records, unchanged
    cut = ts.load_corpus_mapped(letters_only=letters_only, max_tokens=10_000, cache_dir=tmp_path)
    assert not cut.built
    assert _same(cut, *text.load_corpus(letters_only=letters_only, max_tokens=10_000))
    np.load(m.path / "tokens.npy")  # a plain .npy, readable by anyone


@pytest.mark.parametrize("letters_only", [True, False])
@pytest.mark.parametrize(("n", "t"), [(32, 35), (4, 50)])
def test_every_batch_equals_todays(tmp_path: Path, letters_only: bool, n: int, t: int) -> None:
    m = ts.load_corpus_mapped(letters_only=letters_only, cache_dir=tmp_path)
    corpus, _ = text.load_corpus(letters_only=letters_only)
    train_map, _ = text.split_corpus(m.tokens, 0.1)  # as training.lm cuts it
    train, _ = text.split_corpus(corpus, 0.1)
    assert isinstance(train_map, np.memmap)
    for seed in (0, 1):
        for new, old in (
            (text.seq_data_iter_sequential, _d2l_sequential),
            (text.seq_data_iter_random, _d2l_random),
        ):
            got = list(new(train_map, n, t, generator=torch.Generator().manual_seed(seed)))
            want = list(old(train, n, t, generator=torch.Generator().manual_seed(seed)))
            assert len(got) == len(want) > 0
            for (x, y), (x0, y0) in zip(got, want, strict=True):
                assert x.dtype == y.dtype == torch.int64 and x.shape == (n, t)
                assert torch.equal(x, x0) and torch.equal(y, y0)
            # the tensor path is today's too
            tensor_path = list(new(train, n, t, generator=torch.Generator().manual_seed(seed)))
            assert all(torch.equal(a[0], b[0]) for a, b in zip(tensor_path, want, strict=True))


def test_batches_as_a_lazy_sequence(tmp_path: Path) -> None:
    m = ts.load_corpus_mapped(cache_dir=tmp_path)
    corpus, _ = text.load_corpus()
    for cls, old in ((text.SequentialBatches, _d2l_sequential), (text.RandomBatches, _d2l_random)):
        lazy = cls(m.tokens, 8, 10, generator=torch.Generator().manual_seed(3))
        want = list(old(corpus, 8, 10, generator=torch.Generator().manual_seed(3)))
        assert len(lazy) == len(want)
        for k in (0, 5, len(want) - 1, -1):
            assert torch.equal(lazy[k][0], want[k][0]) and torch.equal(lazy[k][1], want[k][1])
        assert [torch.equal(a[0], b[0]) for a, b in zip(lazy[2:4], want[2:4], strict=True)] == [
            True
        ] * 2
        with pytest.raises(IndexError, match="batch index"):
            lazy[len(want)]


# --- chunk edges ---------------------------------------------------------------------------

_TRICKY = "aZq Xy,.!'\t  \n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\xa0é—😀ß"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.text(alphabet=st.sampled_from(_TRICKY), min_size=1, max_size=80),
    chunk=st.integers(1, 9),
    letters_only=st.booleans(),
)
def test_any_chunk_size_gives_the_in_memory_result(
    body: str, chunk: int, letters_only: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.txt"
        path.write_bytes(body.encode("utf-8"))
        try:
            corpus, vocab = text.load_corpus(path, letters_only=letters_only)
        except ValueError as err:  # empty or token-less: the same refusal
            with pytest.raises(ValueError) as got:
                ts.load_corpus_mapped(
                    path, letters_only=letters_only, cache_dir=tmp, chunk_bytes=chunk
                )
            assert str(got.value).split(": ", 1)[-1] == str(err).split(": ", 1)[-1]
            return
        m = ts.load_corpus_mapped(path, letters_only=letters_only, cache_dir=tmp, chunk_bytes=chunk)
        assert _same(m, corpus, vocab)


def test_seven_byte_chunks_on_a_written_text(tmp_path: Path) -> None:
    # spaces, line breaks (\r\n split 6|7), punctuation runs and 2-, 3-, 4-byte characters
    # straddling the 7-byte chunk edges; one line whose words are cut by a U+2028
    body = "Ab cd \r\nEf,,  gh—ij é😀kl\u2028mn   \n\n  op!q\x85rs tu" * 5
    path = tmp_path / "t.txt"
    path.write_text(body, encoding="utf-8")
    for letters_only in (True, False):
        m = ts.load_corpus_mapped(
            path, letters_only=letters_only, cache_dir=tmp_path / "c", chunk_bytes=7
        )
        assert _same(m, *text.load_corpus(path, letters_only=letters_only))
    m = ts.load_corpus_mapped(path, cache_dir=tmp_path / "c", chunk_bytes=7)
    assert m.vocab.decode(m.tokens[:26]) == "ab cdef gh ij klmnop qrs t"  # by hand


def test_raw_vocabulary_past_256_is_uint16(tmp_path: Path) -> None:
    body = "".join(chr(0x400 + i) * (1 + i % 3) for i in range(300)) + "\n😀 end"
    path = tmp_path / "cyr.txt"
    path.write_text(body, encoding="utf-8")
    m = ts.load_corpus_mapped(path, letters_only=False, cache_dir=tmp_path / "c", chunk_bytes=5)
    assert m.tokens.dtype == np.uint16 and len(m.vocab) == len(set(body)) + 1 == 307
    assert _same(m, *text.load_corpus(path, letters_only=False))


# --- refusals, the same as load_corpus's ---------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"ok \xff\xfe", b"ab" * 10 + b"\xe2\x28\xa1 x", b"abc\xe2\x82", b"PK\x03\x04\x00 t", b" \n\t"],
)
def test_bad_files_refused_as_load_corpus_does(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError) as want:
        text.load_corpus(path, letters_only=False)
    with pytest.raises(ValueError) as got:
        ts.load_corpus_mapped(path, letters_only=False, cache_dir=tmp_path / "c", chunk_bytes=3)
    assert str(got.value) == str(want.value)  # the same offset, found across chunk edges
    with pytest.raises(FileNotFoundError):
        ts.load_corpus_mapped(tmp_path / "missing.txt", cache_dir=tmp_path / "c")
    (tmp_path / "digits.txt").write_text("123 456\n")
    with pytest.raises(ValueError, match="load_corpus_mapped: expected some tokens"):
        ts.load_corpus_mapped(tmp_path / "digits.txt", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="max_tokens"):
        ts.load_corpus_mapped(max_tokens=0, cache_dir=tmp_path / "c")


# --- the cache -----------------------------------------------------------------------------


def _stamp(m: ts.MappedCorpus) -> tuple[int, int]:
    st_ = (m.path / "tokens.npy").stat()
    return st_.st_ino, st_.st_mtime_ns


def test_reused_then_reencoded_when_the_source_changes(tmp_path: Path) -> None:
    path, cache = tmp_path / "t.txt", tmp_path / "c"
    path.write_text("The Time Traveller (for so it will be convenient to speak of him)\n" * 50)
    first = ts.load_corpus_mapped(path, cache_dir=cache)
    again = ts.load_corpus_mapped(path, cache_dir=cache)
    assert first.built and not again.built and _stamp(again) == _stamp(first)
    assert again.path == first.path and first.path.name.startswith(first.source_sha256)
    path.write_text("Another text entirely, of other words\n" * 50)
    changed = ts.load_corpus_mapped(path, cache_dir=cache)
    assert changed.built and changed.path != first.path
    assert _same(changed, *text.load_corpus(path))
    raw = ts.load_corpus_mapped(path, letters_only=False, cache_dir=cache)
    assert raw.built and raw.path != changed.path  # the options are part of the key
    meta = json.loads((raw.path / "meta.json").read_text())
    assert meta["options"] == {"letters_only": False} and meta["source_sha256"] == raw.source_sha256


def _truncate(p: Path) -> None:
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size - 3)


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-5] ^= 1
    p.write_bytes(bytes(data))


def _bad_meta_count(p: Path) -> None:
    meta = json.loads(p.read_text())
    meta["num_tokens"] -= 1
    p.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("tokens.npy", _truncate),
        ("tokens.npy", _flip),  # same size, other ids: only the digest sees it
        ("meta.json", _bad_meta_count),
        ("meta.json", lambda p: p.write_text("{not json")),
        ("tokens.npy", lambda p: p.unlink()),
    ],
)
def test_damaged_store_is_rebuilt_not_used(tmp_path: Path, name: str, damage: object) -> None:
    path, cache = tmp_path / "t.txt", tmp_path / "c"
    path.write_text("Hello there, time machine!\nAgain and again.\n" * 40)
    entry = ts.load_corpus_mapped(path, cache_dir=cache).path
    assert callable(damage)
    damage(entry / name)
    with pytest.warns(UserWarning, match="damaged"):
        fixed = ts.load_corpus_mapped(path, cache_dir=cache)
    assert fixed.built and _same(fixed, *text.load_corpus(path))
    assert not ts.load_corpus_mapped(path, cache_dir=cache).built


def test_source_changing_while_encoded_is_refused(tmp_path: Path, monkeypatch) -> None:
    path, cache = tmp_path / "t.txt", tmp_path / "c"
    path.write_text("some words here\n" * 20)
    monkeypatch.setattr(ts, "hash_source", lambda src, chunk: "0" * 64)  # hashed "before"
    with pytest.raises(ValueError, match="unchanged while it was encoded"):
        ts.load_corpus_mapped(path, cache_dir=cache)
    assert [p.name for p in cache.iterdir()] == [f".{'0' * 64}-letters-v{ts.FORMAT}.lock"]


def test_cache_folder_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRUKIT_CACHE", str(tmp_path / "gk"))
    assert ts.token_cache_dir() == tmp_path / "gk" / "tokens"
    m = ts.load_corpus_mapped()
    assert m.path.parent == tmp_path / "gk" / "tokens"
    monkeypatch.delenv("GRUKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ts.token_cache_dir() == tmp_path / "xdg" / "grukit" / "tokens"


_CHILD = """
import json, sys
from grukit.data.token_store import load_corpus_mapped

def status(key):  # kB; VmHWM: this process's peak RSS (ru_maxrss would carry the parent's)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

base = status("VmRSS")
m = load_corpus_mapped(sys.argv[1], cache_dir=sys.argv[2], chunk_bytes=int(sys.argv[3]))
grew = (status("VmHWM") - base) / 1024  # MiB
print(json.dumps({"built": m.built, "n": len(m.tokens), "digest": m.tokens_sha256,
                  "grew_mib": grew}))
"""


def _child(src: Path, cache: Path, chunk: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-c", _CHILD, str(src), str(cache), str(chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _book_repeated(path: Path, megabytes: int) -> None:
    book = text.read_time_machine().encode()
    with open(path, "wb") as f:
        for i in range(megabytes * 1_000_000 // len(book) + 1):
            f.write(book.replace(b"Time", f"T{i % 97}me".encode()))  # varied copies


def test_two_builders_at_once(tmp_path: Path) -> None:
    """Two threads (each its own lock file description, as two processes have) ask for the
    same store at the same moment: one builds, the other waits for it and reuses it."""
    src, cache = tmp_path / "big.txt", tmp_path / "c"
    _book_repeated(src, 2)
    start = threading.Barrier(2)
    results: list[ts.MappedCorpus] = []

    def build() -> None:
        start.wait()
        results.append(ts.load_corpus_mapped(src, cache_dir=cache, chunk_bytes=1 << 16))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    a, b = results
    assert sorted([a.built, b.built]) == [False, True]
    assert a.tokens_sha256 == b.tokens_sha256 and _same(a, *text.load_corpus(src))
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [a.path.name]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status (Linux)")
def test_encoding_64_mb_in_bounded_memory(tmp_path: Path) -> None:
    """Peak RSS growth (VmHWM, in a fresh process, over its RSS after the imports)
    while encoding a 64 MB text with 256 KiB chunks stays below 32 MiB: half the text, so
    holding it whole, even as bytes, fails; the in-memory path holds a list of 64M str
    (512 MB of pointers alone). Measured: 11-12 MiB or 16.5-17 MiB, one or the other from
    run to run (the C library's heap keeps a few chunk-sized blocks or not, as the process's
    layout falls: the environment's size alone moves it), the same at 32 and 64 MB — it
    does not grow with the text. (At 32 MB with a 16 MiB bound the second mode failed.)"""
    src = tmp_path / "big.txt"
    _book_repeated(src, 64)
    r = _child(src, tmp_path / "c", 1 << 18)
    assert r["built"] is True and r["n"] == len(
        ts.load_corpus_mapped(src, cache_dir=tmp_path / "c").tokens
    )
    assert isinstance(r["grew_mib"], float) and r["grew_mib"] < 32, r


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status (Linux)")
def test_drop_resident_releases_read_pages(tmp_path: Path) -> None:
    """Reading all 8 MB of a map makes it resident (RssFile grows by ≥ 6 MiB); after
    drop_resident it falls back by ≥ 6 MiB, and the map still reads the same ids."""
    src = tmp_path / "big.txt"
    _book_repeated(src, 8)
    m = ts.load_corpus_mapped(src, cache_dir=tmp_path / "c")
    before = _rss_file_kib()
    total = int(np.asarray(m.tokens, dtype=np.int64).sum())  # touches every page
    read = _rss_file_kib()
    assert read - before > 6 * 1024
    assert ts.drop_resident(m.tokens) and ts.drop_resident(m.tokens[10:]) is True
    assert read - _rss_file_kib() > 6 * 1024
    assert int(np.asarray(m.tokens, dtype=np.int64).sum()) == total
    assert not ts.drop_resident(np.zeros(3, np.uint8))
