"""grukit: gated recurrent networks — readable, exact to torch.nn, fast on the CPU.

The public names are loaded on first use, so ``import grukit.scratch`` (NumPy only)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "GRU": "grukit.layers",
    "LSTM": "grukit.layers",
    "RNN": "grukit.layers",
    "RNNBase": "grukit.layers",
    "GRUCell": "grukit.cells",
    "LSTMCell": "grukit.cells",
    "RNNCell": "grukit.cells",
    "LayerNormGRU": "grukit.variants",
    "MinGRU": "grukit.variants",
    "OneHot": "grukit.onehot",
    "available_backends": "grukit.backends",
    "export_onnx": "grukit.interop.onnx",
}

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "RNNBase",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "LayerNormGRU",
    "MinGRU",
    "OneHot",
    "available_backends",
    "export_onnx",
    "__version__",
]

if TYPE_CHECKING:
    from .backends import available_backends
    from .cells import GRUCell, LSTMCell, RNNCell
    from .interop.onnx import export_onnx
    from .layers import GRU, LSTM, RNN, RNNBase
    from .onehot import OneHot
    from .variants import LayerNormGRU, MinGRU


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grukit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
