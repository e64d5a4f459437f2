"""Character-level language-model data: The Time Machine (bundled), a vocabulary, batches.

This follows Dive into Deep Learning (d2l 0.17, ``load_corpus_time_machine``) exactly:

- preprocessing (``letters_only``): each line ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()``;
  the lines' characters are then joined with no separator (so a line break adds nothing).
  The Time Machine gives 170,580 tokens and a vocabulary of 28 ('<unk>', space, 26 letters).
- ``Vocab``: '<unk>' at index 0, then tokens by descending frequency (ties in order of first
  appearance), as d2l's ``Vocab``.
- ``seq_data_iter_sequential``: a random offset in [0, num_steps], the corpus cut into N
  contiguous streams, batches of num_steps consecutive tokens of every stream, so batch
  k+1 continues batch k (the hidden state is carried across batches, detached).
- ``seq_data_iter_random``: a random offset in [0, num_steps − 1], the corpus cut into
  subsequences of num_steps, shuffled; batches are unrelated (the state is re-initialised).

Randomness comes from a ``torch.Generator`` the caller passes (seed it per epoch and no
iterator state needs saving). Shapes: N batch, T num_steps; X and Y are (N, T) int64 with
Y[b, t] the token after X[b, t].

Any UTF-8 text can be the corpus (``load_corpus(path)``), letters-only as d2l or raw
characters (every character a token, line breaks included).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

__all__ = [
    "TIME_MACHINE_SHA256",
    "UNK",
    "Corpus",
    "RandomBatches",
    "SequentialBatches",
    "Vocab",
    "as_batch",
    "load_corpus",
    "num_batches",
    "preprocess",
    "read_text",
    "read_time_machine",
    "seq_data_iter_random",
    "seq_data_iter_sequential",
    "split_corpus",
]

#: sha256 of d2l's timemachine.txt (sha1 090b5e7e…, the hash in d2l's DATA_HUB).
TIME_MACHINE_SHA256 = "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"
UNK = "<unk>"
#: A corpus of token ids (S,): a tensor, or a NumPy array such as a memory-mapped token store.
Corpus = Tensor | npt.NDArray[np.integer[Any]]
CorpusT = TypeVar("CorpusT", Tensor, npt.NDArray[np.integer[Any]])
_NON_LETTERS = re.compile("[^A-Za-z]+")


def read_time_machine() -> str:
    """The bundled text of H. G. Wells' *The Time Machine*, checked against its sha256."""
    data = resources.files("grukit.data").joinpath("files/timemachine.txt").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != TIME_MACHINE_SHA256:
        raise ValueError(
            f"timemachine.txt: expected sha256 {TIME_MACHINE_SHA256}, got {digest} "
            "(the bundled file is damaged; reinstall grukit)"
        )
    return data.decode("ascii")


def read_text(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file's contents; missing, empty, binary (a NUL byte) or non-UTF-8 files
    raise naming the path."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"expected a text file at {p}, found none")
    data = p.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"expected text in {p}, got binary data (a NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"expected UTF-8 text in {p}, got undecodable bytes at offset {err.start}"
        ) from None
    if not text.strip():
        raise ValueError(f"expected text in {p}, got an empty file")
    return text


def preprocess(text: str, *, letters_only: bool = True) -> list[str]:
    """Character tokens of ``text``.

    letters_only=True (d2l): every line mapped to lower-case letters and single spaces,
    stripped, and the lines joined with no separator. False: every character as is.
    """
    if not letters_only:
        return list(text)
    lines = text.splitlines()
    return [ch for line in lines for ch in _NON_LETTERS.sub(" ", line).strip().lower()]


class Vocab:
    """Token ↔ index. Index 0 is '<unk>' (unknown tokens map there); then the tokens by
    descending frequency, ties in order of first appearance (d2l's ``Vocab``)."""

    def __init__(self, tokens: Sequence[str] = (), *, idx_to_token: Sequence[str] | None = None):
        if idx_to_token is None:
            freqs = sorted(Counter(tokens).items(), key=lambda kv: kv[1], reverse=True)
            idx_to_token = [UNK] + [tok for tok, _ in freqs if tok != UNK]
        if not idx_to_token or idx_to_token[0] != UNK:
            raise ValueError(f"Vocab: expected '{UNK}' as token 0, got {list(idx_to_token)[:1]}")
        if len(set(idx_to_token)) != len(idx_to_token):
            raise ValueError("Vocab: expected distinct tokens, got duplicates")
        self.idx_to_token: list[str] = list(idx_to_token)
        self.token_to_idx: dict[str, int] = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, token: str) -> int:
        return self.token_to_idx.get(token, 0)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.token_to_idx.get(t, 0) for t in tokens]

    def decode(self, indices: Sequence[int]) -> str:
        return "".join(self.idx_to_token[int(i)] for i in indices)

    def to_list(self) -> list[str]:
        """The tokens in index order (what config.json stores)."""
        return list(self.idx_to_token)

    @classmethod
    def from_list(cls, idx_to_token: Sequence[str]) -> Vocab:
        return cls(idx_to_token=idx_to_token)


def load_corpus(
    path: str | os.PathLike[str] | None = None,
    *,
    letters_only: bool = True,
    max_tokens: int | None = None,
) -> tuple[Tensor, Vocab]:
    """(corpus (S,) int64, vocab) of ``path`` (None: the bundled Time Machine).

    The vocabulary is built from the whole text; ``max_tokens`` then keeps the first
    max_tokens tokens (d2l's ``load_corpus_time_machine(max_tokens)``).
    """
    if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens <= 0):
        raise ValueError(f"load_corpus: expected max_tokens > 0 or None, got {max_tokens}")
    text = read_time_machine() if path is None else read_text(path)
    tokens = preprocess(text, letters_only=letters_only)
    if not tokens:
        raise ValueError(
            f"load_corpus: expected some tokens in {path}, got none after preprocessing"
        )
    vocab = Vocab(tokens)
    corpus = torch.tensor(vocab.encode(tokens), dtype=torch.int64)  # (S,)
    if max_tokens is not None:
        corpus = corpus[:max_tokens]
    return corpus, vocab


def split_corpus(corpus: CorpusT, val_fraction: float) -> tuple[CorpusT, CorpusT]:
    """(train, validation): the first 1 − val_fraction of the tokens and the rest, by position.

    ``corpus`` (S,) is a tensor or a NumPy array (a memory map stays a map: both parts are
    views of it)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split_corpus: expected val_fraction in [0, 1), got {val_fraction}")
    n_val = int(round(len(corpus) * val_fraction))
    n_train = len(corpus) - n_val
    return corpus[:n_train], corpus[n_train:]


def _check_batching(owner: str, corpus: Corpus, batch_size: int, num_steps: int) -> None:
    if batch_size <= 0 or num_steps <= 0:
        raise ValueError(
            f"{owner}: expected batch_size and num_steps > 0, got {batch_size} and {num_steps}"
        )
    if num_batches(len(corpus), batch_size, num_steps, worst_case=True) < 1:
        need = batch_size * num_steps + num_steps + 1
        raise ValueError(
            f"{owner}: expected a corpus of at least {need} tokens for one batch of "
            f"{batch_size} × {num_steps}, got {len(corpus)}"
        )


def num_batches(num_tokens: int, batch_size: int, num_steps: int, *, worst_case: bool) -> int:
    """Batches per epoch of the sequential iterator; worst_case: for the largest offset."""
    offset = num_steps if worst_case else 0
    per_stream = (num_tokens - offset - 1) // batch_size
    return max(per_stream // num_steps, 0)


def as_batch(rows: Corpus) -> Tensor:
    """``rows`` as an int64 tensor: a tensor as it is (a view stays a view), a NumPy array
    (a slice of a memory map) copied, so that only these rows are read into memory."""
    if isinstance(rows, Tensor):
        return rows
    return torch.from_numpy(np.array(rows, dtype=np.int64))  # a copy: the map is read-only


class _Batches(Sequence[tuple[Tensor, Tensor]]):
    """An epoch's batches X, Y (N, T) as a sequence: ``len`` and indexing (``_batch(k)``
    for k in [0, len)), each batch read when it is taken."""

    _len: int

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, k: int) -> tuple[Tensor, Tensor]: ...
    @overload
    def __getitem__(self, k: slice) -> list[tuple[Tensor, Tensor]]: ...
    def __getitem__(self, k: int | slice) -> tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._len))]
        return self._batch(_index(type(self).__name__, k, self._len))

    def _batch(self, k: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class SequentialBatches(_Batches):
    """The batches of ``seq_data_iter_sequential`` as a sequence: X, Y (N, T) int64, batch
    k+1 continuing batch k row by row; the offset is drawn (or checked) on construction.

    ``corpus`` (S,) is a tensor (batches are views of it) or a NumPy array such as a memory
    map (each batch is read from it when indexed)."""

    def __init__(
        self,
        corpus: Corpus,
        batch_size: int,
        num_steps: int,
        *,
        generator: torch.Generator | None = None,
        offset: int | None = None,
    ) -> None:
        _check_batching("seq_data_iter_sequential", corpus, batch_size, num_steps)
        if offset is None:
            offset = int(torch.randint(0, num_steps + 1, (1,), generator=generator))
        num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
        self.offset, self.num_steps = offset, num_steps
        self.xs = corpus[offset : offset + num_tokens].reshape(batch_size, -1)  # (N, S/N)
        self.ys = corpus[offset + 1 : offset + 1 + num_tokens].reshape(batch_size, -1)  # (N, S/N)
        self._len = self.xs.shape[1] // num_steps

    def _batch(self, k: int) -> tuple[Tensor, Tensor]:
        i = k * self.num_steps
        return as_batch(self.xs[:, i : i + self.num_steps]), as_batch(
            self.ys[:, i : i + self.num_steps]
        )


class RandomBatches(_Batches):
    """The batches of ``seq_data_iter_random`` as a sequence: X, Y (N, T) int64 of shuffled,
    non-overlapping subsequences; the offset and the order are drawn on construction.

    ``corpus`` (S,) is a tensor or a NumPy array such as a memory map (only the batch's
    rows are read from it)."""

    def __init__(
        self,
        corpus: Corpus,
        batch_size: int,
        num_steps: int,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_batching("seq_data_iter_random", corpus, batch_size, num_steps)
        start = int(torch.randint(0, num_steps, (1,), generator=generator))
        self.corpus = corpus[start:]
        num_subseqs = (len(self.corpus) - 1) // num_steps
        self.starts = torch.randperm(num_subseqs, generator=generator) * num_steps  # (num_subseqs,)
        self.steps = torch.arange(num_steps)  # (T,)
        self.batch_size = batch_size
        self._len = num_subseqs // batch_size

    def _batch(self, k: int) -> tuple[Tensor, Tensor]:
        i = k * self.batch_size
        idx = self.starts[i : i + self.batch_size, None] + self.steps  # (N, T)
        return _gather(self.corpus, idx), _gather(self.corpus, idx + 1)


def _index(owner: str, k: int, length: int) -> int:
    if not -length <= k < length:
        raise IndexError(f"{owner}: expected a batch index in [{-length}, {length}), got {k}")
    return k % length


def _gather(corpus: Corpus, idx: Tensor) -> Tensor:
    """corpus[idx] as int64 (N, T) for idx (N, T)."""
    if isinstance(corpus, Tensor):
        return corpus[idx]
    return torch.from_numpy(corpus[idx.numpy()].astype(np.int64))  # (N, T)


def seq_data_iter_sequential(
    corpus: Corpus,
    batch_size: int,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    offset: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """d2l's sequential partitioning: X, Y (N, T); batch k+1 continues batch k row by row.

    The offset is drawn uniformly from [0, num_steps] with ``generator`` unless given.
    ``corpus`` (S,): a tensor or a NumPy array (a memory map); see ``SequentialBatches``.
    """
    yield from SequentialBatches(corpus, batch_size, num_steps, generator=generator, offset=offset)


def seq_data_iter_random(
    corpus: Corpus, batch_size: int, num_steps: int, *, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """d2l's random partitioning: X, Y (N, T) of shuffled, non-overlapping subsequences.

    ``corpus`` (S,): a tensor or a NumPy array (a memory map); see ``RandomBatches``."""
    yield from RandomBatches(corpus, batch_size, num_steps, generator=generator)
