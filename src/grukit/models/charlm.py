"""A character-level language model: tokens → (one-hot or embedding) → recurrent layers → logits.

d2l's ``RNNModel`` made a first-class model. Shapes: N batch, T time, V vocab size,
E embedding size (V for one-hot), H hidden size, L layers.

    x_t   = onehot(token_t) ∈ R^V        (embedding_dim=None, as d2l)
          = E[token_t]      ∈ R^E        (embedding_dim=E)
    h_t   = cell(x_t, h_{t−1})           GRU / RNN (tanh) / LSTM, L layers (grukit.layers)
    logit = W_out h_t + b_out ∈ R^V

Dropout (``dropout`` > 0) is applied to the embedding, between layers and before the head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks as check
from ..layers import GRU, LSTM, RNN, RNNBase
from ..onehot import OneHot

__all__ = ["CELLS", "CharLM"]

CELLS = ("gru", "rnn", "lstm")

#: Hidden state: h (L, N, H) for GRU/RNN, (h, c) for LSTM.
State = Tensor | tuple[Tensor, Tensor]


class CharLM(nn.Module):
    """Character-level language model.

    Args:
        vocab_size: V, the number of tokens.
        hidden_size: H.
        num_layers: L.
        cell: "gru" | "rnn" | "lstm".
        reset_after: GRU variant (True: torch/cuDNN; False: Cho et al. 2014, d2l's scratch GRU).
        embedding_dim: None for one-hot input (d2l), else a learned embedding of this size.
        dropout: probability on the embedding (not one-hot input), between layers and
            before the head.
        backend: the layers' backend ("auto" or a name from ``grukit.available_backends()``).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "gru",
        reset_after: bool = True,
        embedding_dim: int | None = None,
        dropout: float = 0.0,
        backend: str = "auto",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "CharLM"
        check.positive_int(owner, "vocab_size", vocab_size)
        check.positive_int(owner, "hidden_size", hidden_size)
        check.positive_int(owner, "num_layers", num_layers)
        if cell not in CELLS:
            raise ValueError(f"{owner}: expected cell in {list(CELLS)}, got {cell!r}")
        check.flag(owner, "reset_after", reset_after)
        if embedding_dim is not None:
            check.positive_int(owner, "embedding_dim", embedding_dim)
        check.probability(owner, "dropout", dropout)
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.cell, self.reset_after, self.embedding_dim = cell, reset_after, embedding_dim
        self.dropout = float(dropout)
        self.embedding = (
            None if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim, **factory)
        )
        in_size = vocab_size if embedding_dim is None else embedding_dim
        layer_dropout = self.dropout if num_layers > 1 else 0.0
        common: dict[str, Any] = dict(num_layers=num_layers, dropout=layer_dropout, **factory)
        # GRU/RNN (state h) or LSTM (state (h, c)): which, and so the state's type, is ``cell``.
        self.rnn: RNNBase[Any]
        if cell == "gru":
            self.rnn = GRU(in_size, hidden_size, reset_after=reset_after, backend=backend, **common)
        elif cell == "rnn":
            self.rnn = RNN(in_size, hidden_size, backend=backend, **common)
        else:
            self.rnn = LSTM(in_size, hidden_size, backend=backend, **common)
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(hidden_size, vocab_size, **factory)

    def config(self) -> dict[str, Any]:
        """The constructor arguments (stored beside the weights)."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "reset_after": self.reset_after,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
        }

    def begin_state(self, batch_size: int) -> State:
        """Zero state: (L, N, H), or a pair of them for the LSTM."""
        w = self.head.weight
        h = torch.zeros(
            self.num_layers, batch_size, self.hidden_size, device=w.device, dtype=w.dtype
        )
        return (h, h.clone()) if self.cell == "lstm" else h

    @staticmethod
    def detach_state(state: State) -> State:
        """The state cut from the graph (carried across sequential batches)."""
        if isinstance(state, tuple):
            return state[0].detach(), state[1].detach()
        return state.detach()

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """tokens (N, T) int64 → (logits (T·N, V) in time-major order, final state).

        Time-major rows (row t·N + b is step t of sequence b) match d2l's ``RNNModel`` and
        the loss target ``Y.T.reshape(-1)``.
        """
        check.tensor("CharLM", "tokens", tokens)
        if tokens.dim() != 2:
            raise ValueError(f"CharLM: expected tokens of shape (N, T), got {tuple(tokens.shape)}")
        if tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"CharLM: expected integer tokens (int64), got {tokens.dtype}")
        ids = tokens.t()  # (T, N)
        if self.embedding is None:  # one-hot (T, N, V), given as indices: see grukit.onehot
            x: Tensor | OneHot = OneHot(ids.long(), self.vocab_size)
        else:
            x = self.embedding(ids)  # (T, N, E)
            if self.dropout:
                x = self.drop(x)
        y, state = self.rnn(x, state)  # (T, N, H)
        if self.dropout:
            y = self.drop(y)
        logits = self.head(y.reshape(-1, y.shape[-1]))  # (T·N, V)
        return logits, state
