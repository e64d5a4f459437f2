"""grukit.scratch: recurrent layers in NumPy alone, with backpropagation through time by hand.

The teaching core of grukit and an oracle independent of torch: every line of the
math is visible, and every gradient is checked against torch autograd and against
central finite differences. No module here imports torch or the rest of grukit, and
``import grukit.scratch`` does not import torch: ``grukit/__init__.py``, which it runs
first, loads its public names on first use (tests/test_package.py checks this).

Shapes: T time, N batch, I input size, H hidden size. Each layer is one function pair:

    ys, cache = gru_forward(x, h0, params, reset_after=True)   # x (T, N, I), h0 (N, H)
    grads = gru_backward(dys, cache)                           # dys = ∂L/∂ys, (T, N, H)

``params`` holds one layer's arrays with torch.nn's names, shapes and gate order
("weight_ih", "weight_hh", "bias_ih", "bias_hh"); ``grads`` has those keys plus
"x" and "h0" (and "c0" for the LSTM). The derivations are in ``docs/bptt.md``;
``python -m grukit.scratch.demo`` trains a small GRU with plain SGD.
"""

from .gradcheck import gradcheck, numerical_gradients, relative_errors
from .gru import GRUCache, gru_backward, gru_forward
from .lstm import LSTMCache, lstm_backward, lstm_forward
from .rnn import RNNCache, rnn_backward, rnn_forward

__all__ = [
    "GRUCache",
    "LSTMCache",
    "RNNCache",
    "gradcheck",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "numerical_gradients",
    "relative_errors",
    "rnn_backward",
    "rnn_forward",
]
