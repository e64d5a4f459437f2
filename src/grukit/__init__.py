"""grukit: gated recurrent networks — readable, exact to torch.nn, fast on the CPU."""

from .backends import available_backends
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "RNNCell",
    "available_backends",
    "__version__",
]
