"""The reference backend: a readable Python loop over ``grukit.functional`` cells.

It is the oracle every other backend is tested against; autograd differentiates it.
Contract and shapes: ``grukit.backends.spec``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import functional as F
from ..onehot import OneHot
from .spec import CellSpec, State, Weights, dense_input

name = "reference"

#: Takes no ``OneHot`` input: the layer hands it the dense one-hot tensor.
accepts_onehot = False


def available() -> bool:
    return True


def supports(spec: CellSpec, x: Tensor) -> bool:
    return True


def step_function(spec: CellSpec) -> Callable[[Tensor, State, Weights], State]:
    """The one-step function of ``spec`` on a state tuple: (x_t, state, w) → state'."""
    if spec.kind == "gru":
        return lambda x, s, w: (
            F.gru_cell(x, s[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh, reset_after=spec.reset_after),
        )
    if spec.kind in ("rnn_tanh", "rnn_relu"):
        nonlin = spec.kind[4:]
        return lambda x, s, w: (
            F.rnn_cell(x, s[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh, nonlinearity=nonlin),
        )
    if spec.kind == "lstm":
        return lambda x, s, w: F.lstm_cell(x, (s[0], s[1]), w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr)
    raise ValueError(f"reference backend: unknown cell kind {spec.kind!r}")


def run(
    spec: CellSpec,
    x: Tensor | OneHot,
    batch_sizes: Tensor | None,
    state: State,
    weights: Weights,
    *,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run one direction of one layer, one ``functional`` step at a time.

    Under ``torch.compile`` padded input runs the same steps through ``scan`` (torch's
    higher-order op), so the graph holds one loop of symbolic length instead of T unrolled
    steps: no recompilation per sequence length."""
    x = dense_input(name, x)
    step = step_function(spec)
    if batch_sizes is None and torch.compiler.is_compiling():
        return _scan(step, x, state, weights, reverse)
    if batch_sizes is None:
        inputs = list(x.unbind(0))  # T × (N, I)
        sizes = [x.shape[1]] * len(inputs)
    else:
        sizes = batch_sizes.tolist()
        inputs = list(torch.split(x, sizes))  # T × (N_t, I)
    outputs: list[Tensor] = [x] * len(inputs)  # placeholders, all overwritten
    order = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    for t in order:
        n_t = sizes[t]  # sequences still running at step t (packed data is sorted)
        new = step(inputs[t], tuple(s[:n_t] for s in state), weights)  # (N_t, H)…
        # Rows past n_t keep their state: finished sequences (forward) or not yet
        # started ones (reverse), whose state is still the initial one.
        state = tuple(
            torch.cat((ns, s[n_t:])) if n_t < s.shape[0] else ns
            for ns, s in zip(new, state, strict=True)
        )
        outputs[t] = new[0]
    out = torch.stack(outputs) if batch_sizes is None else torch.cat(outputs)  # (T, N, H) | (S, H)
    return out, state


def _scan(
    step: Callable[[Tensor, State, Weights], State],
    x: Tensor,
    state: State,
    weights: Weights,
    reverse: bool,
) -> tuple[Tensor, State]:
    """``run`` for padded x (T, N, I) as a ``scan`` over time: → (T, N, H), final state."""
    from torch._higher_order_ops.scan import scan

    def body(carry: State, x_t: Tensor) -> tuple[State, State]:
        new = step(x_t, carry, weights)  # (N, H)…
        return new, tuple(s.clone() for s in new)  # a scan output must not alias the carry

    # The final state is read from the per-step outputs, not scan's carry: the carry's
    # shapes come back as fresh symbols, which torch.export then pins to the example's N.
    # The initial state goes in as tensors of its own: a view of the layer's (D·L, N, H)
    # state makes the traced scan guard on its base's strides, pinning N.
    init = tuple(s.clone() for s in state)
    _, steps = scan(body, init, x.flip(0) if reverse else x)  # each (T, N, ·)
    out = steps[0].flip(0) if reverse else steps[0]  # (T, N, H)
    return out, tuple(s[-1] for s in steps)
