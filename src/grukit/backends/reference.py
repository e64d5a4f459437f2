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
from .spec import CellSpec, Noise, State, Weights, dense_input

name = "reference"

#: Takes no ``OneHot`` input: the layer hands it the dense one-hot tensor.
accepts_onehot = False


def available() -> bool:
    return True


def supports(spec: CellSpec, x: Tensor) -> bool:
    return True


#: (x_t (N, I), state, weights, h_mask (N, H) or None) → state'
Step = Callable[[Tensor, State, Weights, Tensor | None], State]


def step_function(spec: CellSpec) -> Step:
    """The one-step function of ``spec`` on a state tuple: (x_t, state, w, h_mask) → state'.
    h_mask is the recurrent dropout mask (GRU and LayerNormGRU), else None."""
    if spec.kind == "gru":
        return lambda x, s, w, m: (
            F.gru_cell(
                x, s[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh,
                reset_after=spec.reset_after, recurrent_mask=m,
            ),
        )  # fmt: skip
    if spec.kind == "layernorm_gru":

        def ln_step(x: Tensor, s: State, w: Weights, m: Tensor | None) -> State:
            assert w.ln_ih is not None and w.ln_hh is not None, "LayerNormGRU without gains"
            return (
                F.layernorm_gru_cell(
                    x, s[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.ln_ih, w.ln_hh,
                    reset_after=spec.reset_after, recurrent_mask=m,
                ),
            )  # fmt: skip

        return ln_step
    if spec.kind in ("rnn_tanh", "rnn_relu"):
        nonlin = spec.kind[4:]
        return lambda x, s, w, m: (
            F.rnn_cell(x, s[0], w.w_ih, w.w_hh, w.b_ih, w.b_hh, nonlinearity=nonlin),
        )
    if spec.kind == "lstm":
        return lambda x, s, w, m: F.lstm_cell(
            x, (s[0], s[1]), w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr
        )
    raise ValueError(f"reference backend: unknown cell kind {spec.kind!r}")


def run(
    spec: CellSpec,
    x: Tensor | OneHot,
    batch_sizes: Tensor | None,
    state: State,
    weights: Weights,
    *,
    reverse: bool = False,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """Run one direction of one layer, one ``functional`` step at a time.

    ``noise`` (GRU, LayerNormGRU): the recurrent dropout mask h_mask (N, H) goes to every
    step's cell; zoneout's keep mask, (T, N, H) or (S, H) like the output, blends each
    step's new state with the previous one (``functional.zoneout``).

    Under ``torch.compile`` padded input runs the same steps through ``scan`` (torch's
    higher-order op), so the graph holds one loop of symbolic length instead of T unrolled
    steps: no recompilation per sequence length."""
    x = dense_input(name, x)
    step = step_function(spec)
    h_mask = keep = None
    if noise is not None:
        if spec.kind not in ("gru", "layernorm_gru"):
            raise ValueError(f"reference backend: recurrent noise is for GRUs, got {spec.kind!r}")
        h_mask, keep = noise
    if batch_sizes is None and torch.compiler.is_compiling():
        return _scan(step, x, state, weights, reverse, h_mask, keep)
    if batch_sizes is None:
        inputs = list(x.unbind(0))  # T × (N, I)
        sizes = [x.shape[1]] * len(inputs)
        keeps = None if keep is None else list(keep.unbind(0))  # T × (N, H)
    else:
        sizes = batch_sizes.tolist()
        inputs = list(torch.split(x, sizes))  # T × (N_t, I)
        keeps = None if keep is None else list(torch.split(keep, sizes))  # T × (N_t, H)
    outputs: list[Tensor] = [x] * len(inputs)  # placeholders, all overwritten
    order = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    for t in order:
        n_t = sizes[t]  # sequences still running at step t (packed data is sorted)
        prev = tuple(s[:n_t] for s in state)
        new = step(inputs[t], prev, weights, None if h_mask is None else h_mask[:n_t])
        if keeps is not None:
            new = (F.zoneout(prev[0], new[0], keeps[t]),)  # (N_t, H)
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
    step: Step,
    x: Tensor,
    state: State,
    weights: Weights,
    reverse: bool,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, State]:
    """``run`` for padded x (T, N, I) as a ``scan`` over time: → (T, N, H), final state."""
    from torch._higher_order_ops.scan import scan

    def body(carry: State, xs: tuple[Tensor, ...]) -> tuple[State, State]:
        new = step(xs[0], carry, weights, h_mask)  # (N, H)…
        if len(xs) > 1:  # zoneout's keep mask of this step (N, H)
            new = (F.zoneout(carry[0], new[0], xs[1]),)
        return new, tuple(s.clone() for s in new)  # a scan output must not alias the carry

    # The final state is read from the per-step outputs, not scan's carry: the carry's
    # shapes come back as fresh symbols, which torch.export then pins to the example's N.
    # The initial state goes in as tensors of its own: a view of the layer's (D·L, N, H)
    # state makes the traced scan guard on its base's strides, pinning N.
    init = tuple(s.clone() for s in state)
    xs = (x,) if keep is None else (x, keep)  # each (T, N, ·)
    _, steps = scan(body, init, tuple(t.flip(0) if reverse else t for t in xs))
    out = steps[0].flip(0) if reverse else steps[0]  # (T, N, H)
    return out, tuple(s[-1] for s in steps)
