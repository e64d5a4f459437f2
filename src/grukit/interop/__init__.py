"""Moving grukit's weights to and from other frameworks.

    keras        Keras 3 layouts (``keras.layers.GRU`` / ``LSTM`` / ``SimpleRNN``)
    onnx_layout  the W, R, B inputs of ONNX's ``GRU`` / ``LSTM`` / ``RNN`` operators
    torch_nn     grukit modules <-> ``torch.nn.GRU`` / ``RNN`` / ``LSTM`` and the cells

The layout converters take and give plain arrays (NumPy or torch) and grukit/torch
state_dicts; none of them imports keras or onnx. See docs/interop.md for the layouts.
"""

from __future__ import annotations

from .keras import (
    from_keras_gru,
    from_keras_lstm,
    from_keras_rnn,
    to_keras_gru,
    to_keras_lstm,
    to_keras_rnn,
)
from .onnx_layout import (
    from_onnx_gru,
    from_onnx_lstm,
    from_onnx_rnn,
    to_onnx_gru,
    to_onnx_lstm,
    to_onnx_rnn,
)
from .torch_nn import dynamic_quant_mapping, from_torch, to_torch

__all__ = [
    "from_keras_gru",
    "to_keras_gru",
    "from_keras_lstm",
    "to_keras_lstm",
    "from_keras_rnn",
    "to_keras_rnn",
    "from_onnx_gru",
    "to_onnx_gru",
    "from_onnx_lstm",
    "to_onnx_lstm",
    "from_onnx_rnn",
    "to_onnx_rnn",
    "to_torch",
    "from_torch",
    "dynamic_quant_mapping",
]
