"""A character-level language model: tokens → (one-hot or embedding) → recurrent layers → logits.

d2l's ``RNNModel`` made a first-class model. Shapes: N batch, T time, V vocab size,
E embedding size (V for one-hot), H hidden size, L layers.

    x_t   = onehot(token_t) ∈ R^V        (embedding_dim=None, as d2l)
          = E[token_t]      ∈ R^E        (embedding_dim=E)
    h_t   = cell(x_t, h_{t−1})           GRU / LayerNormGRU / MinGRU / RNN (tanh) / LSTM,
                                         L layers (``grukit.models.recurrent``)
    logit = W_out h_t + b_out ∈ R^V
          = E (P h_t) + b_out            (tie_weights: the embedding is the head's weight;
                                          P (E, H) a projection when E ≠ H, else none)

Regularisers (all off by default; active in training mode only):
- ``dropout`` between layers, and on the embedding and before the head unless
  ``embedding_dropout`` / ``output_dropout`` say otherwise;
- ``variational``: the embedding's and the head's dropout draw one mask per sequence,
  the same at every step (Gal & Ghahramani 2016; AWD-LSTM's "locked" dropout), instead
  of one per element;
- ``recurrent_dropout`` and ``zoneout`` on the recurrence (GRU and LayerNormGRU: see
  ``grukit.layers.RNNBase``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks as check
from ..onehot import OneHot
from .recurrent import CELLS, NOISY, RecurrentOptions, recurrent_layer

__all__ = ["CELLS", "CharLM", "locked_dropout"]

#: Hidden state: h (L, N, H) for GRU/RNN, (h, c) for LSTM.
State = Tensor | tuple[Tensor, Tensor]


def locked_dropout(x: Tensor, p: float, *, training: bool) -> Tensor:
    """Variational dropout of x (T, N, F): one Bernoulli(1 − p) mask (1, N, F), scaled by
    1/(1 − p), shared by every step t; the identity when not ``training`` or p = 0."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.shape[1], x.shape[2]).bernoulli_(1.0 - p).div_(1.0 - p)  # (1, N, F)
    return x * mask  # (T, N, F)


class CharLM(nn.Module):
    """Character-level language model.

    Args:
        vocab_size: V, the number of tokens.
        hidden_size: H.
        num_layers: L.
        cell: a name from ``grukit.models.recurrent.CELLS``: "gru" | "layernorm-gru" |
            "mingru" | "rnn" | "lstm".
        reset_after: GRU variant (True: torch/cuDNN; False: Cho et al. 2014, d2l's scratch GRU).
        embedding_dim: None for one-hot input (d2l), else a learned embedding of this size.
        dropout: probability between layers, and the default of the next two.
        backend: the layers' backend ("auto" or a name from ``grukit.available_backends()``).
        embedding_dropout: on the embedding (None: ``dropout``; no effect on one-hot input).
        output_dropout: on the last layer's output, before the head (None: ``dropout``).
        variational: the embedding's and output's dropout masks are one per sequence,
            shared across time, instead of one per element.
        tie_weights: the head's weight is the embedding's (V, E) (Press & Wolf 2017, Inan
            et al. 2017); needs ``embedding_dim``; when E ≠ H a projection (E, H) without
            bias maps the output to E first.
        recurrent_dropout, zoneout: the recurrence's regularisers (gru, layernorm-gru).
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
        embedding_dropout: float | None = None,
        output_dropout: float | None = None,
        variational: bool = False,
        tie_weights: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
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
        for name, p in (
            ("embedding_dropout", embedding_dropout),
            ("output_dropout", output_dropout),
        ):
            if p is not None:
                check.probability(owner, name, p)
        check.flag(owner, "variational", variational)
        check.flag(owner, "tie_weights", tie_weights)
        if tie_weights and embedding_dim is None:
            raise ValueError(
                f"{owner}: expected an embedding_dim with tie_weights (one-hot input has no "
                f"embedding to tie), got embedding_dim None"
            )
        noise = {"recurrent_dropout": recurrent_dropout, "zoneout": zoneout}
        for name, value in noise.items():
            check.probability(owner, name, value)
            if value and cell not in NOISY:
                raise ValueError(
                    f"{owner}: expected {name} 0 for cell {cell!r} (it is for "
                    f"{list(NOISY)}), got {value}"
                )
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.cell, self.reset_after, self.embedding_dim = cell, reset_after, embedding_dim
        self.dropout = float(dropout)
        self.embedding_dropout = self.dropout if embedding_dropout is None else embedding_dropout
        self.output_dropout = self.dropout if output_dropout is None else output_dropout
        self.variational, self.tie_weights = variational, tie_weights
        self.recurrent_dropout, self.zoneout = float(recurrent_dropout), float(zoneout)
        self.embedding = (
            None if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim, **factory)
        )
        in_size = vocab_size if embedding_dim is None else embedding_dim
        layer_dropout = self.dropout if num_layers > 1 else 0.0
        # state h (GRUs, MinGRU, RNN) or (h, c) (LSTM): which, and so its type, is ``cell``.
        self.rnn: nn.Module = recurrent_layer(
            owner,
            cell,
            in_size,
            hidden_size,
            num_layers,
            dropout=layer_dropout,
            options=RecurrentOptions(
                reset_after=reset_after if cell in NOISY else True,
                recurrent_dropout=recurrent_dropout,
                zoneout=zoneout,
                backend=backend,
            ),
            **factory,
        )
        head_in = hidden_size
        self.proj: nn.Linear | None = None
        if tie_weights and embedding_dim != hidden_size:
            assert embedding_dim is not None  # checked above
            self.proj = nn.Linear(hidden_size, embedding_dim, bias=False, **factory)
            head_in = embedding_dim
        self.head = nn.Linear(head_in, vocab_size, **factory)
        if tie_weights:
            assert self.embedding is not None
            self.head.weight = self.embedding.weight  # one tensor (V, E)

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
            "embedding_dropout": self.embedding_dropout,
            "output_dropout": self.output_dropout,
            "variational": self.variational,
            "tie_weights": self.tie_weights,
            "recurrent_dropout": self.recurrent_dropout,
            "zoneout": self.zoneout,
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

    def _drop(self, x: Tensor, p: float) -> Tensor:
        """Dropout of x (T, N, F) with probability p: one mask per sequence when
        ``variational``, else per element; the identity in eval mode."""
        if self.variational:
            return locked_dropout(x, p, training=self.training)
        return nn.functional.dropout(x, p, training=self.training) if p else x

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
            x = self._drop(self.embedding(ids), self.embedding_dropout)  # (T, N, E)
        y, state = self.rnn(x, state)  # (T, N, H)
        y = self._drop(y, self.output_dropout)  # (T, N, H)
        if self.proj is not None:
            y = self.proj(y)  # (T, N, E)
        logits = self.head(y.reshape(-1, y.shape[-1]))  # (T·N, V)
        return logits, state
