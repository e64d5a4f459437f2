"""grukit.interop.keras against real Keras 3 layers (torch backend) as the oracle.

A grukit layer's weights go through ``to_keras_*`` into a Keras layer (``set_weights``);
both run the same float32 input; outputs and final states agree within 1e-5. And the
reverse: a Keras layer's own (randomly initialised) weights through ``from_keras_*``
into grukit.
"""

import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported anywhere in the process
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend", allow_module_level=True)

import grukit  # noqa: E402
from grukit.interop import (  # noqa: E402
    from_keras_gru,
    from_keras_lstm,
    from_keras_rnn,
    to_keras_gru,
    to_keras_lstm,
    to_keras_rnn,
)

# Keras' own NumPy conversions warn under NumPy 2 (keras/src/backend/torch/core.py).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

N, T, I, H = 3, 6, 4, 5
TOL = 1e-5  # float32


def _keras_run(layer, x: np.ndarray) -> list[np.ndarray]:
    """Run a Keras layer on x (N, T, I); its outputs as NumPy arrays."""
    out = layer(x)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o) for o in out]


def _input() -> tuple[np.ndarray, torch.Tensor]:
    x = torch.randn(N, T, I)  # (N, T, I): Keras is batch-first
    return x.numpy(), x


def _assert_close(got: np.ndarray, want: torch.Tensor) -> None:
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_to_keras_matches_keras_layer(reset_after: bool, bias: bool) -> None:
    ours = grukit.GRU(
        I, H, bias=bias, batch_first=True, reset_after=reset_after, backend="reference"
    )
    if bias:  # b_hh non-zero everywhere, so the one-bias fold (reset_after=False) is exercised
        torch.nn.init.uniform_(ours.bias_hh_l0, 0.5, 1.0)
    layer = keras.layers.GRU(
        H, reset_after=reset_after, use_bias=bias, return_sequences=True, return_state=True
    )
    layer.build((N, T, I))
    kernel, recurrent, b = to_keras_gru(ours.state_dict(), reset_after=reset_after)
    layer.set_weights([kernel, recurrent] + ([b] if bias else []))
    x_np, x = _input()
    y_k, h_k = _keras_run(layer, x_np)
    y, h = ours(x)
    _assert_close(y_k, y)
    _assert_close(h_k, h[0])


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_weights_from_keras_match(reset_after: bool) -> None:
    """Keras' own initialised weights (bias made non-zero) through from_keras_gru."""
    layer = keras.layers.GRU(H, reset_after=reset_after, return_sequences=True, return_state=True)
    layer.build((N, T, I))
    kernel, recurrent, b = layer.get_weights()
    b = np.random.default_rng(0).uniform(-1, 1, b.shape).astype(np.float32)
    layer.set_weights([kernel, recurrent, b])
    ours = grukit.GRU(I, H, batch_first=True, reset_after=reset_after, backend="reference")
    ours.load_state_dict(from_keras_gru(kernel, recurrent, b, reset_after=reset_after))
    x_np, x = _input()
    y_k, h_k = _keras_run(layer, x_np)
    y, h = ours(x)
    _assert_close(y_k, y)
    _assert_close(h_k, h[0])


def test_bidirectional_gru_matches_keras_bidirectional() -> None:
    """reverse=True picks the ``_reverse`` weights for Keras' backward layer."""
    ours = grukit.GRU(I, H, batch_first=True, bidirectional=True, backend="reference")
    layer = keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True))
    layer.build((N, T, I))
    sd = ours.state_dict()
    fwd = to_keras_gru(sd, reset_after=True)
    bwd = to_keras_gru(sd, reset_after=True, reverse=True)
    layer.set_weights([*fwd, *bwd])
    x_np, x = _input()
    (y_k,) = _keras_run(layer, x_np)  # (N, T, 2H), forward then backward features
    _assert_close(y_k, ours(x)[0])


def test_lstm_matches_keras_both_ways() -> None:
    ours = grukit.LSTM(I, H, batch_first=True, backend="reference")
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    layer.build((N, T, I))
    layer.set_weights(list(to_keras_lstm(ours.state_dict())))
    x_np, x = _input()
    y_k, h_k, c_k = _keras_run(layer, x_np)
    y, (h, c) = ours(x)
    _assert_close(y_k, y)
    _assert_close(h_k, h[0])
    _assert_close(c_k, c[0])

    back = grukit.LSTM(I, H, batch_first=True, backend="reference")
    back.load_state_dict(from_keras_lstm(*layer.get_weights()))
    _assert_close(y_k, back(x)[0])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_simple_rnn_matches_keras_both_ways(nonlinearity: str) -> None:
    ours = grukit.RNN(I, H, nonlinearity=nonlinearity, batch_first=True, backend="reference")
    layer = keras.layers.SimpleRNN(
        H, activation=nonlinearity, return_sequences=True, return_state=True
    )
    layer.build((N, T, I))
    layer.set_weights(list(to_keras_rnn(ours.state_dict())))
    x_np, x = _input()
    y_k, h_k = _keras_run(layer, x_np)
    y, h = ours(x)
    _assert_close(y_k, y)
    _assert_close(h_k, h[0])

    back = grukit.RNN(I, H, nonlinearity=nonlinearity, batch_first=True, backend="reference")
    back.load_state_dict(from_keras_rnn(*layer.get_weights()))
    _assert_close(y_k, back(x)[0])
