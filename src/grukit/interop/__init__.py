"""Moving grukit's weights to and from other frameworks.

    keras        Keras 3 layouts (``keras.layers.GRU`` / ``LSTM`` / ``SimpleRNN``)
    onnx_layout  the W, R, B inputs of ONNX's ``GRU`` / ``LSTM`` / ``RNN`` operators
    torch_nn     grukit modules <-> ``torch.nn.GRU`` / ``RNN`` / ``LSTM`` and the cells

The layout converters take and give plain arrays (NumPy or torch) and grukit/torch
state_dicts; none of them imports keras or onnx. See docs/interop.md for the layouts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name → module. Loaded on first use: ``grukit.backends.ops`` imports
#: ``grukit.interop.onnx`` (its ONNX symbolic) while the layers are still being defined,
#: so this package must not import them (``torch_nn`` does) when it is imported.
_EXPORTS = {
    **{n: "grukit.interop.keras" for n in (
        "from_keras_gru", "to_keras_gru", "from_keras_lstm", "to_keras_lstm",
        "from_keras_rnn", "to_keras_rnn")},
    **{n: "grukit.interop.onnx_layout" for n in (
        "from_onnx_gru", "to_onnx_gru", "from_onnx_lstm", "to_onnx_lstm",
        "from_onnx_rnn", "to_onnx_rnn")},
    **{n: "grukit.interop.torch_nn" for n in ("to_torch", "from_torch", "dynamic_quant_mapping")},
    "export_onnx": "grukit.interop.onnx",
}  # fmt: skip

if TYPE_CHECKING:
    from .keras import (
        from_keras_gru,
        from_keras_lstm,
        from_keras_rnn,
        to_keras_gru,
        to_keras_lstm,
        to_keras_rnn,
    )
    from .onnx import export_onnx
    from .onnx_layout import (
        from_onnx_gru,
        from_onnx_lstm,
        from_onnx_rnn,
        to_onnx_gru,
        to_onnx_lstm,
        to_onnx_rnn,
    )
    from .torch_nn import dynamic_quant_mapping, from_torch, to_torch


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grukit.interop' has no attribute {name!r}")


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
    "export_onnx",
]


def __dir__() -> list[str]:
    return sorted(__all__)
