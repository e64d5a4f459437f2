"""Every bad input at a public entry point raises ValueError/TypeError, before any
computation, naming the module, what was expected and what arrived."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import grukit


@pytest.mark.parametrize(
    ("make", "exc", "message"),
    [
        (lambda: grukit.GRU(0, 4), ValueError, r"GRU: expected input_size > 0, got 0"),
        (lambda: grukit.GRU(3, -1), ValueError, r"GRU: expected hidden_size > 0, got -1"),
        (lambda: grukit.GRU(3, 4, 0), ValueError, r"GRU: expected num_layers > 0, got 0"),
        (
            lambda: grukit.GRU(3.0, 4),
            TypeError,
            r"GRU: expected input_size to be an int, got float",
        ),
        (
            lambda: grukit.GRU(3, 4, dropout=1.5),
            ValueError,
            r"GRU: expected dropout in \[0, 1\], got 1.5",
        ),
        (
            lambda: grukit.GRU(3, 4, dropout=-0.1),
            ValueError,
            r"expected dropout in \[0, 1\], got -0.1",
        ),
        (
            lambda: grukit.GRU(3, 4, backend="cudnn"),
            ValueError,
            r"GRU: expected backend in \['auto'",
        ),
        (
            lambda: grukit.GRU(3, 4, backend=1),
            TypeError,
            r"GRU: expected backend to be a str, got int",
        ),
        (
            lambda: grukit.GRU(3, 4, reset_after="yes"),
            TypeError,
            r"expected reset_after to be a bool",
        ),
        (
            lambda: grukit.RNN(3, 4, nonlinearity="gelu"),
            ValueError,
            r"RNN: expected nonlinearity 'tanh' or 'relu', got 'gelu'",
        ),
        (
            lambda: grukit.RNNCell(3, 4, nonlinearity="sigmoid"),
            ValueError,
            r"RNNCell: expected nonlinearity 'tanh' or 'relu', got 'sigmoid'",
        ),
        (
            lambda: grukit.LSTM(3, 4, proj_size=4),
            ValueError,
            r"LSTM: expected proj_size in \[0, hidden_size=4\), got 4",
        ),
        (lambda: grukit.GRUCell(3, 0), ValueError, r"GRUCell: expected hidden_size > 0, got 0"),
        (
            lambda: grukit.GRU(3, 4, backend="torch", reset_after=False)(torch.zeros(2, 3)),
            ValueError,
            r"GRU: backend 'torch' does not compute gru \(reset_after=False\)",
        ),
    ],
)
def test_constructor_errors(make, exc, message) -> None:
    with pytest.raises(exc, match=message):
        make()


GRU = grukit.GRU(3, 4, 2)
LSTM = grukit.LSTM(3, 4)


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (
            lambda: GRU(torch.zeros(2, 1, 5)),
            ValueError,
            r"GRU: expected input with 3 features \(input_size\), got 5",
        ),
        (
            lambda: GRU(torch.zeros(3)),
            ValueError,
            r"GRU: expected input of 3 dimensions \(T, N, I\) or 2 \(T, I\) unbatched, got 1-D",
        ),
        (lambda: GRU(torch.zeros(1, 2, 3, 3)), ValueError, r"got 4-D of shape \(1, 2, 3, 3\)"),
        (
            lambda: GRU(torch.zeros(0, 2, 3)),
            ValueError,
            r"GRU: expected a non-empty sequence \(T >= 1\), got T = 0",
        ),
        (
            lambda: GRU([[1.0, 2.0, 3.0]]),
            TypeError,
            r"GRU: expected input to be a torch.Tensor, got list",
        ),
        (
            lambda: GRU(torch.zeros(2, 1, 3, dtype=torch.int64)),
            TypeError,
            r"GRU: expected input of a floating dtype, got torch.int64",
        ),
        (
            lambda: GRU(torch.zeros(2, 1, 3, dtype=torch.float64)),
            TypeError,
            r"GRU: expected input of dtype torch.float32 \(the weights'\), got torch.float64",
        ),
        (
            lambda: GRU(torch.zeros(2, 5, 3), torch.zeros(2, 4, 4)),
            ValueError,
            r"GRU: expected h_0 of shape \(2, 5, 4\), got \(2, 4, 4\)",
        ),
        (
            lambda: GRU(torch.zeros(2, 5, 3), torch.zeros(1, 5, 4)),
            ValueError,
            r"GRU: expected h_0 of shape \(2, 5, 4\), got \(1, 5, 4\)",
        ),
        (
            lambda: GRU(torch.zeros(2, 3), torch.zeros(2, 1, 4)),
            ValueError,
            r"GRU: expected 2-D h_0 for unbatched input \(2, 4\), got 3-D",
        ),
        (
            lambda: GRU(torch.zeros(2, 5, 3), torch.zeros(2, 5, 4, dtype=torch.float64)),
            TypeError,
            r"GRU: expected h_0 of dtype torch.float32 \(the weights'\), got torch.float64",
        ),
        (
            lambda: GRU(torch.zeros(2, 1, 3, device="meta")),
            ValueError,
            r"GRU: expected input on device cpu \(the weights'\), got meta",
        ),
        (
            lambda: GRU(torch.zeros(2, 1, 3), torch.zeros(2, 1, 4, device="meta")),
            ValueError,
            r"GRU: expected h_0 on device cpu \(the weights'\), got meta",
        ),
        (
            lambda: LSTM(torch.zeros(2, 1, 3), torch.zeros(1, 1, 4)),
            TypeError,
            r"LSTM: expected hx as a tuple \(h_0, c_0\), got Tensor",
        ),
        (
            lambda: LSTM(torch.zeros(2, 1, 3), (torch.zeros(1, 1, 4), torch.zeros(1, 2, 4))),
            ValueError,
            r"LSTM: expected c_0 of shape \(1, 1, 4\), got \(1, 2, 4\)",
        ),
        (
            lambda: grukit.GRUCell(3, 4)(torch.zeros(2, 5)),
            ValueError,
            r"GRUCell: expected input with 3 features \(input_size\), got 5",
        ),
        (
            lambda: grukit.GRUCell(3, 4)(torch.zeros(2, 3), torch.zeros(3, 4)),
            ValueError,
            r"GRUCell: expected hx of shape \(2, 4\), got \(3, 4\)",
        ),
        (
            lambda: grukit.GRUCell(3, 4)(torch.zeros(2, 2, 3)),
            ValueError,
            r"GRUCell: expected input of 2 dimensions \(N, I\) or 1 \(I,\) unbatched, got 3-D",
        ),
        (
            lambda: grukit.LSTMCell(3, 4)(torch.zeros(2, 3), torch.zeros(2, 4)),
            TypeError,
            r"LSTMCell: expected hx as a tuple \(h_0, c_0\), got Tensor",
        ),
        (
            lambda: grukit.RNNCell(3, 4)(torch.zeros(2, 3, dtype=torch.int32)),
            TypeError,
            r"RNNCell: expected input of a floating dtype, got torch.int32",
        ),
    ],
)
def test_forward_errors(call, exc, message) -> None:
    with pytest.raises(exc, match=message):
        call()


def _packed(batch_sizes: list[int], rows: int | None = None) -> PackedSequence:
    rows = sum(batch_sizes) if rows is None else rows
    return PackedSequence(
        torch.zeros(rows, 3), torch.tensor(batch_sizes, dtype=torch.int64), None, None
    )


@pytest.mark.parametrize(
    ("packed", "message"),
    [
        (_packed([2, 3]), r"GRU: expected PackedSequence batch_sizes positive and non-increasing"),
        (
            _packed([2, 0]),
            r"batch_sizes positive and non-increasing \(lengths in 1..T\), got \[2, 0\]",
        ),
        (_packed([2, 1], rows=4), r"GRU: expected PackedSequence data with 3 rows .* got 4"),
        (_packed([]), r"GRU: expected a non-empty sequence \(T >= 1\), got T = 0"),
    ],
)
def test_packed_sequence_errors(packed: PackedSequence, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GRU(packed)


def test_packed_hx_batch_must_match() -> None:
    x = pack_padded_sequence(torch.zeros(4, 3, 3), [4, 2, 1], enforce_sorted=False)
    with pytest.raises(
        ValueError, match=r"GRU: expected h_0 of shape \(2, 3, 4\), got \(2, 2, 4\)"
    ):
        GRU(x, torch.zeros(2, 2, 4))


def test_nan_propagates_as_in_torch() -> None:
    """NaN is not an error: it flows through exactly where torch's does."""
    mine = grukit.GRU(3, 4, dtype=torch.float64)
    theirs = torch.nn.GRU(3, 4, dtype=torch.float64)
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    x[2, 1, 0] = float("nan")
    out_m, out_t = mine(x)[0], theirs(x)[0]
    assert torch.equal(out_m.isnan(), out_t.isnan())
    assert (
        out_m[:2].isfinite().all() and out_m[2:, 1].isnan().all() and out_m[:, 0].isfinite().all()
    )


def test_available_backends() -> None:
    names = grukit.available_backends()
    assert "reference" in names and "torch" in names
    assert "auto" not in names
