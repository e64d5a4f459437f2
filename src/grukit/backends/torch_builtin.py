"""The "torch" backend: torch's own fused kernels (ATen on the CPU, cuDNN on CUDA).

Used only where they compute the same function as ``grukit.functional``: every
cell except the GRU with ``reset_after=False``, which torch does not implement.
Contract and shapes: ``grukit.backends.spec``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _typed_torch
from ..onehot import OneHot
from . import reference
from .spec import CellSpec, Noise, State, Weights, dense_input, reverse_packed_index

name = "torch"

#: Takes no ``OneHot`` input: the layer hands it the dense one-hot tensor.
accepts_onehot = False

#: Set by ``grukit.interop.onnx`` while the dynamo exporter traces: the kernels then map to
#: ONNX RNN / LSTM nodes, so they must not be replaced by a scan of the cell.
keep_kernels_when_compiling = False

#: Each takes (x, [batch_sizes,] hx, params, has_biases, num_layers, dropout, train,
#: bidirectional[, batch_first]) and returns (output, h_n) or, for LSTM, (output, h_n, c_n).
_VF_FUNCTIONS: dict[str, Callable[..., tuple[Tensor, ...]]] = {
    "gru": torch._VF.gru,
    "rnn_tanh": torch._VF.rnn_tanh,
    "rnn_relu": torch._VF.rnn_relu,
    "lstm": torch._VF.lstm,
}


def available() -> bool:
    return True


def supports(spec: CellSpec, x: Tensor) -> bool:
    """torch's kernels: every cell but the reset_after=False GRU; no LayerNormGRU, no noise."""
    if spec.noise or spec.kind not in _VF_FUNCTIONS:
        return False
    return not (spec.kind == "gru" and not spec.reset_after)


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
    """One direction of one layer through torch's single-layer kernel.

    The reverse direction runs the forward kernel on time-reversed sequences
    (each packed sequence reversed within its own length) and reverses back.
    """
    x = dense_input(name, x)
    if not supports(spec, x) or noise is not None:
        raise ValueError(
            f"torch backend: {spec} is not a torch kernel (GRU reset_after=False, "
            "LayerNormGRU, recurrent dropout and zoneout are not)"
        )
    compiling = torch.compiler.is_compiling() and not (
        torch.onnx.is_in_onnx_export() or keep_kernels_when_compiling
    )
    if batch_sizes is None and compiling:
        # torch.compile unrolls these kernels' time loop (a graph per length; LSTM's
        # backward fails in mkldnn_rnn_layer): the reference steps run as one scan instead,
        # the same function. ONNX export keeps the kernels: they map to ONNX RNN / LSTM.
        return reference.run(spec, x, batch_sizes, state, weights, reverse=reverse)
    flat = [w for w in weights if w is not None]
    has_bias = weights.b_ih is not None
    index = None
    if reverse:
        if batch_sizes is None:
            x = x.flip(0)  # (T, N, I)
        else:
            index = reverse_packed_index(batch_sizes).to(x.device)  # (S,)
            x = x.index_select(0, index)  # (S, I)
    hx = tuple(s.unsqueeze(0) for s in state)  # each (1, N, ·)
    hx_arg = hx if spec.kind == "lstm" else hx[0]
    fn = _VF_FUNCTIONS[spec.kind]
    # torch's train flag only keeps the backward's workspace (no dropout here: one layer);
    # under jit.trace it must not follow grad mode, which the trace check flips to no_grad.
    train = torch.is_grad_enabled() or _typed_torch.is_tracing()
    if batch_sizes is None:
        res = fn(x, hx_arg, flat, has_bias, 1, 0.0, train, False, False)
    else:
        res = fn(x, batch_sizes, hx_arg, flat, has_bias, 1, 0.0, train, False)
    out, state_n = res[0], tuple(s.squeeze(0) for s in res[1:])
    if reverse:
        out = out.flip(0) if index is None else out.index_select(0, index)
    return out, state_n
