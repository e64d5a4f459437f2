"""The recurrent layer a model is built on, by name: one place for every cell the
models (``CharLM``, ``Forecaster``) accept, so a new variant is one entry here.

    gru             grukit.GRU            (reset_after, recurrent_dropout, zoneout, backend)
    layernorm-gru   grukit.LayerNormGRU   (the same options)
    mingru          grukit.MinGRU         (parallel scan; no reset_after / noise / backend)
    lstm            grukit.LSTM           (backend)
    rnn             grukit.RNN (tanh)     (backend)

Every layer takes x (T, N, I) or (N, T, I) with batch_first and returns
``(output, state)``; the state is h (L, N, H), or (h, c) for the LSTM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backends import resolve
from ..layers import GRU, LSTM, RNN, RNNBase
from ..variants import LayerNormGRU, MinGRU

__all__ = ["CELLS", "NOISY", "RecurrentOptions", "backend_name", "recurrent_layer"]

CELLS = ("gru", "layernorm-gru", "mingru", "lstm", "rnn")
#: Cells whose recurrence takes recurrent dropout and zoneout.
NOISY = ("gru", "layernorm-gru")


@dataclass(frozen=True)
class RecurrentOptions:
    """The cell-specific options: reset_after (the GRUs' variant), recurrent_dropout and
    zoneout (GRU and LayerNormGRU), backend (all but MinGRU)."""

    reset_after: bool = True
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    backend: str = "auto"


def recurrent_layer(
    owner: str,
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    batch_first: bool = False,
    dropout: float = 0.0,
    options: RecurrentOptions | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """The layer named ``cell`` (see ``CELLS``); ValueError naming ``owner`` for an unknown
    cell or an option the cell does not have (recurrent dropout or zoneout on a cell
    other than the GRUs, reset_after=False on one without that variant)."""
    o = options or RecurrentOptions()
    if cell not in CELLS:
        raise ValueError(f"{owner}: expected cell in {list(CELLS)}, got {cell!r}")
    if (o.recurrent_dropout or o.zoneout) and cell not in NOISY:
        raise ValueError(
            f"{owner}: recurrent_dropout and zoneout are for cells {list(NOISY)}, got cell {cell!r}"
        )
    if not o.reset_after and cell not in NOISY:
        raise ValueError(f"{owner}: reset_after=False is for cells {list(NOISY)}, got {cell!r}")
    size = (input_size, hidden_size, num_layers)
    if cell in NOISY:
        kind = GRU if cell == "gru" else LayerNormGRU
        return kind(
            *size, batch_first=batch_first, dropout=dropout, device=device, dtype=dtype,
            reset_after=o.reset_after, backend=o.backend,
            recurrent_dropout=o.recurrent_dropout, zoneout=o.zoneout,
        )  # fmt: skip
    if cell == "mingru":
        return MinGRU(*size, batch_first=batch_first, dropout=dropout, device=device, dtype=dtype)
    kind2 = LSTM if cell == "lstm" else RNN
    return kind2(
        *size, batch_first=batch_first, dropout=dropout, device=device, dtype=dtype,
        backend=o.backend,
    )  # fmt: skip


def backend_name(owner: str, layer: nn.Module) -> str:
    """What runs ``layer``'s time loop: the backend "auto" (or its configured name) resolves
    to on CPU float32 — a ValueError naming ``owner`` if that backend cannot run the layer —
    or, for MinGRU, which has no backends, "mingru-" and its mode."""
    if not isinstance(layer, RNNBase):
        return f"mingru-{getattr(layer, 'mode', 'parallel')}"
    w = layer.weight_ih_l0
    x = torch.zeros(1, 1, w.shape[1], dtype=torch.float32)  # (T, N, I)
    return resolve(owner, layer.backend, layer.spec, x).name
