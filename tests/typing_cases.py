"""What a type checker infers for grukit's public calls; checked by mypy in test_typing.py.

Never run (not collected: no ``test_`` prefix). Each ``assert_type`` is an error unless mypy
infers exactly that type, so the overloads of ``forward`` (as ``torch.nn.GRU``'s: a Tensor in
gives a Tensor out, a PackedSequence in gives one out) and the ``Backend`` Protocol are
checked here. A ``# type: ignore[code]`` marks a call that must be rejected: with
``warn_unused_ignores`` (strict) it is an error if mypy accepts the call.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn.utils.rnn import PackedSequence
from typing_extensions import assert_type

import grukit
from grukit.backends import BACKENDS, Backend, fused, native, reference, torch_builtin


def layers(x: Tensor, packed: PackedSequence, h: Tensor, hc: tuple[Tensor, Tensor]) -> None:
    gru = grukit.GRU(4, 8)
    out, h_n = gru(x)
    assert_type(out, Tensor)
    assert_type(h_n, Tensor)
    assert_type(gru(x, h), tuple[Tensor, Tensor])
    assert_type(gru(packed), tuple[PackedSequence, Tensor])
    assert_type(gru(packed, h), tuple[PackedSequence, Tensor])
    assert_type(gru(grukit.OneHot(x.long(), 4)), tuple[Tensor, Tensor])
    assert_type(gru.forward(x, h), tuple[Tensor, Tensor])
    assert_type(gru.forward(packed), tuple[PackedSequence, Tensor])

    rnn = grukit.RNN(4, 8, nonlinearity="relu")
    assert_type(rnn(x, h), tuple[Tensor, Tensor])
    assert_type(rnn(packed), tuple[PackedSequence, Tensor])

    lstm = grukit.LSTM(4, 8)
    y, (h_n, c_n) = lstm(x, hc)
    assert_type(y, Tensor)
    assert_type(c_n, Tensor)
    assert_type(lstm(x), tuple[Tensor, tuple[Tensor, Tensor]])
    assert_type(lstm(packed, hc), tuple[PackedSequence, tuple[Tensor, Tensor]])
    assert_type(lstm.forward(packed), tuple[PackedSequence, tuple[Tensor, Tensor]])

    lstm(x, h)  # type: ignore[call-overload]  # an LSTM's state is (h, c)
    gru(x, hc)  # type: ignore[call-overload]  # a GRU's state is one tensor


def cells(x: Tensor, h: Tensor, hc: tuple[Tensor, Tensor]) -> None:
    assert_type(grukit.GRUCell(4, 8)(x), Tensor)
    assert_type(grukit.GRUCell(4, 8)(x, h), Tensor)
    assert_type(grukit.GRUCell(4, 8).forward(x, h), Tensor)
    assert_type(grukit.RNNCell(4, 8)(x, h), Tensor)
    assert_type(grukit.LSTMCell(4, 8)(x), tuple[Tensor, Tensor])
    assert_type(grukit.LSTMCell(4, 8)(x, hc), tuple[Tensor, Tensor])
    assert_type(grukit.LSTMCell(4, 8).forward(x, hc), tuple[Tensor, Tensor])

    grukit.LSTMCell(4, 8)(x, h)  # type: ignore[arg-type]  # an LSTMCell's state is (h, c)


def backends() -> None:
    each: list[Backend] = [reference, torch_builtin, fused, native]  # modules as the Protocol
    assert_type(BACKENDS["native"], Backend)
    assert_type(each[0].accepts_onehot, bool)
