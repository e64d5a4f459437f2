"""Backend plumbing: packed reversal, selection, and the contract every backend keeps."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit.backends import BACKENDS, CellSpec, resolve, reverse_packed_index


def test_reverse_packed_index_reverses_each_sequence_within_its_length() -> None:
    lengths = torch.tensor([5, 3, 3, 1])
    x = torch.arange(5 * 4, dtype=torch.float64).reshape(5, 4, 1)  # (T, N, 1)
    packed = pack_padded_sequence(x, lengths)
    index = reverse_packed_index(packed.batch_sizes)
    assert torch.equal(index[index], torch.arange(index.numel()))  # an involution
    rev = packed._replace(data=packed.data[index])
    padded, _ = pad_packed_sequence(rev)
    for b, L in enumerate(lengths.tolist()):
        assert torch.equal(padded[:L, b], x[:L, b].flip(0))


def test_auto_prefers_an_exact_backend_and_falls_back_to_reference() -> None:
    x = torch.zeros(1)
    assert resolve("GRU", "auto", CellSpec("gru", reset_after=False), x).name != "torch"
    for kind in ("gru", "rnn_tanh", "rnn_relu", "lstm"):
        mod = resolve("X", "auto", CellSpec(kind), x)
        assert mod.available() and mod.supports(CellSpec(kind), x)


@pytest.mark.parametrize("name", grukit.available_backends())
def test_backend_modules_keep_the_contract(name: str) -> None:
    mod = BACKENDS[name]
    assert mod.name == name
    assert callable(mod.run) and callable(mod.supports) and mod.available()


def test_unavailable_backend_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setattr(BACKENDS["torch"], "available", lambda: False)
    with pytest.raises(ValueError, match=r"GRU: backend 'torch' is not available on this machine"):
        grukit.GRU(3, 4, backend="torch")
