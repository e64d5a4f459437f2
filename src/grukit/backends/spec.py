"""What a layer hands a backend: the cell kind, one direction's weights and state.

A backend runs **one direction of one layer** over time. Its signature is::

    run(spec, x, batch_sizes, state, weights, *, reverse, noise) -> (output, state_n)

Shapes (T time, N batch, I input, H hidden, P LSTM projection (P = H without one),
S = sum(batch_sizes) rows of packed data):
    x            (T, N, I) padded, all sequences of length T (``batch_sizes`` None);
                 or (S, I) packed as ``torch.nn.utils.rnn.PackedSequence.data``
                 (``batch_sizes`` a 1-D int64 CPU tensor, non-increasing).
                 Backends with ``accepts_onehot = True`` also take, as the first
                 layer's input, a ``grukit.OneHot`` of indices (T, N) (padded only).
    state        tuple of the initial state: (h,) with h (N, H) for GRU and RNN;
                 (h, c) with h (N, P), c (N, H) for LSTM. Sorted like the packed data.
    weights      ``Weights``: torch's per-direction parameters, ``None`` where absent.
    reverse      run from the last step back to the first (the reverse direction).
    noise        ``Noise`` (recurrent dropout mask, zoneout keep mask) or None; only given
                 when ``spec.noise`` is True, and only to backends whose ``supports`` says so.
    output       (T, N, H or P) or (S, H or P): the hidden state after every step.
    state_n      the final state, same form as ``state``; for packed input, each
                 sequence's state after its own last step.

``Backend`` is that contract as a Protocol; the backend modules satisfy it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..onehot import OneHot

KINDS = ("gru", "layernorm_gru", "rnn_tanh", "rnn_relu", "lstm")


@dataclass(frozen=True)
class CellSpec:
    """Which cell function a layer computes.

    kind: "gru" | "layernorm_gru" | "rnn_tanh" | "rnn_relu" | "lstm".
    reset_after: GRU variant (see ``grukit.functional.gru_cell``); ignored otherwise.
    noise: whether this call carries a ``Noise`` (recurrent dropout and/or zoneout, GRU and
        LayerNormGRU only); a backend that cannot apply it must not claim ``supports``.
    """

    kind: str
    reset_after: bool = True
    noise: bool = False


class Weights(NamedTuple):
    """One direction of one layer, torch's names: w_ih (G·H, I), w_hh (G·H, P),
    b_ih and b_hh (G·H,) or None, w_hr (P, H) for a projected LSTM or None,
    ln_ih and ln_hh (3H,) the normalisation gains of a LayerNormGRU or None."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None
    w_hr: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_hh: Tensor | None = None


class Noise(NamedTuple):
    """The random masks of one direction of one layer in training (``grukit.functional``):

    h_mask  (N, H) or None: recurrent dropout, one mask per sequence, values 0 or 1/(1 − p);
            every product with W_hh reads h ⊙ h_mask.
    keep    (T, N, H) padded or (S, H) packed, or None: zoneout, 1 where a unit keeps its
            previous value at that step (Bernoulli(p)); in evaluation filled with p.
    """

    h_mask: Tensor | None = None
    keep: Tensor | None = None


State = tuple[Tensor, ...]


@runtime_checkable
class Backend(Protocol):
    """What every backend (a module: ``grukit.backends.reference``, ``torch_builtin``,
    ``fused``, ``native``) provides; shapes in this module's docstring.

    name            the ``backend=`` string that selects it.
    accepts_onehot  whether ``run`` takes a ``OneHot`` as the first layer's input (then it
                    gathers W_ih's columns); when False the layer hands it the dense
                    one-hot tensor, and ``run`` raises TypeError for a ``OneHot``.
    available()     whether it can run on this machine (the native one builds on first call).
    supports(spec, x)  whether it computes ``spec`` exactly on tensors like x (T, N, I).
    run(...)        one direction of one layer over time; ``noise`` only when ``spec.noise``.
    """

    name: str
    accepts_onehot: bool

    def available(self) -> bool: ...

    def supports(self, spec: CellSpec, x: Tensor) -> bool: ...

    def run(
        self,
        spec: CellSpec,
        x: Tensor | OneHot,
        batch_sizes: Tensor | None,
        state: State,
        weights: Weights,
        *,
        reverse: bool = False,
        noise: Noise | None = None,
    ) -> tuple[Tensor, State]: ...


def dense_input(backend: str, x: Tensor | OneHot) -> Tensor:
    """x itself for a backend with ``accepts_onehot = False``; TypeError naming it for a
    ``OneHot``, which the layer densifies before such a backend sees it."""
    if isinstance(x, OneHot):
        raise TypeError(
            f"{backend} backend: expected x as a Tensor (accepts_onehot is False), got OneHot; "
            "pass x.dense(dtype)"
        )
    return x


def reverse_packed_index(batch_sizes: Tensor) -> Tensor:
    """Index that reverses every sequence of packed data in time, lengths kept.

    Row (t, b) of the packed data moves to (len_b − 1 − t, b). The permutation is
    its own inverse. batch_sizes (T,) int64 → index (S,) int64.
    """
    bs = batch_sizes.to(torch.int64)  # (T,)
    T, N = bs.numel(), int(bs[0])
    offsets = torch.cumsum(bs, 0) - bs  # (T,) first row of each step
    lengths = (bs.unsqueeze(0) > torch.arange(N).unsqueeze(1)).sum(1)  # (N,)
    t = torch.arange(T).repeat_interleave(bs)  # (S,)
    b = torch.arange(int(bs.sum())) - offsets.repeat_interleave(bs)  # (S,)
    return offsets[lengths[b] - 1 - t] + b  # (S,)
