"""ONNX export: ``grukit::gru`` as ONNX's own ``GRU`` operator, and ``export_onnx``.

During ONNX export every GRU layer direction (and a traced ``GRUCell`` step, T = 1) is one
call of the operator ``grukit::gru`` (``grukit.backends.ops``); RNN and LSTM layers call
torch's own kernels, which torch's exporters already write as ONNX ``RNN`` / ``LSTM``.
This module translates ``grukit::gru`` for both of torch's exporters:

- TorchScript (``torch.onnx.export(..., dynamo=False)``): a symbolic registered with
  ``torch.onnx.register_custom_op_symbolic`` when this module is imported.
- dynamo (``torch.onnx.export(..., dynamo=True)``): an onnxscript function, passed as
  ``custom_translation_table=translation_table()`` (torch's public way; it has no global
  registry for custom operators). ``export_onnx`` passes it.

One call ``grukit::gru(x, h0, w_ih, w_hh, b_ih?, b_hh?, None, reverse, reset_after, …)``
(T time, N batch, I input, H hidden) becomes::

    x (T, N, I)  ──[Gather(eye(I), x) if x is int64 indices (T, N)]──┐
    W = [W_iz; W_ir; W_in] (1, 3H, I)   R = [W_hz; W_hr; W_hn] (1, 3H, H)
    B = [b_iz, b_ir, b_in, b_hz, b_hr, b_hn] (1, 6H)   initial_h = h0 (1, N, H)
    Y (T, 1, N, H), Y_h (1, N, H) = GRU(x, W, R, B, , initial_h,
        hidden_size=H, linear_before_reset=reset_after, direction="forward" | "reverse")
    out = Y squeezed (T, N, H),  h_n = Y_h squeezed (N, H)

ONNX's ``linear_before_reset=0`` is exactly ``reset_after=False`` (n = tanh(W_in x + b_in +
W_hn (r ⊙ h) + b_hn)), so both variants export. The op's internal outputs (gates, hn) become
empty constants. Packed input (``batch_sizes``) raises: export padded batches.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import backends
from ..backends import torch_builtin
from ._common import GRU_ZRH, reorder

__all__ = ["OPSET", "export_onnx", "reorder_gates", "translation_table"]

#: Default opset: the dynamo exporter's own (its GRU translation uses opset 18 operators);
#: the TorchScript exporter supports 14-20 for ``grukit::gru``.
OPSET = 18
_MIN_OPSET = 14  # Squeeze/Unsqueeze with axes as inputs (13) and GRU-14


def reorder_gates(w: Tensor) -> Tensor:
    """torch gate order [r, z, n] along dim 0 → ONNX's [z, r, h]: (3H, …) → (3H, …)
    (the weight-layout converters' reorder, ``grukit.interop.onnx_layout``)."""
    return reorder(w, GRU_ZRH)


# --- TorchScript exporter ---------------------------------------------------------------


#: TorchScript scalar type names of the weights' dtypes.
_SCALAR_TYPES = {
    "Float": torch.float32,
    "Double": torch.float64,
    "Half": torch.float16,
    "BFloat16": torch.bfloat16,
}


def _ts_reorder(g: Any, w: Any, H: int) -> Any:
    """[r, z, n] rows of a graph value (3H, …) → [z, r, n] (3H, …)."""
    from torch.onnx import symbolic_helper as sh

    r, z, n = (
        sh._slice_helper(g, w, axes=[0], starts=[k * H], ends=[(k + 1) * H]) for k in range(3)
    )
    return g.op("Concat", z, r, n, axis_i=0)


def _gru_symbolic(
    g: Any,
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    batch_sizes: Any,
    reverse: Any,
    reset_after: Any,
    save: Any,
    loops: Any,
    h_mask: Any = None,
    keep: Any = None,
) -> tuple[Any, Any, Any, Any]:
    """TorchScript symbolic of ``grukit::gru``: one ONNX GRU node (module docstring)."""
    from torch.onnx import symbolic_helper as sh

    if not all(m is None or sh._is_none(m) for m in (h_mask, keep)):
        raise ValueError(_NOISE_REFUSED)

    if not sh._is_none(batch_sizes):
        raise ValueError(
            "grukit ONNX export: packed input (PackedSequence) cannot be exported; "
            "export a padded batch (T, N, I) instead"
        )
    rev = bool(sh._parse_arg(reverse, "b"))
    after = bool(sh._parse_arg(reset_after, "b"))
    sizes = sh._get_tensor_sizes(w_hh)
    in_sizes = sh._get_tensor_sizes(w_ih)
    if sizes is None or in_sizes is None or None in (*sizes, *in_sizes):
        raise ValueError("grukit ONNX export: expected GRU weights of static shape, got unknown")
    H, I = sizes[1], in_sizes[1]
    dtype = _SCALAR_TYPES.get(w_ih.type().scalarType(), torch.float32)
    if x.type().scalarType() in ("Long", "Int"):
        eye = g.op("Constant", value_t=torch.eye(I, dtype=dtype))  # (I, I) one-hot rows
        x = g.op("Gather", eye, x, axis_i=0)  # (T, N) indices → (T, N, I)
    W = sh._unsqueeze_helper(g, _ts_reorder(g, w_ih, H), [0])  # (1, 3H, I)
    R = sh._unsqueeze_helper(g, _ts_reorder(g, w_hh, H), [0])  # (1, 3H, H)
    if sh._is_none(b_ih) != sh._is_none(b_hh):
        raise ValueError("grukit ONNX export: expected both GRU biases or neither, got one")
    if sh._is_none(b_ih):
        B = _unused(g)
    else:
        cat = g.op("Concat", _ts_reorder(g, b_ih, H), _ts_reorder(g, b_hh, H), axis_i=0)
        B = sh._unsqueeze_helper(g, cat, [0])  # (1, 6H)
    init_h = sh._unsqueeze_helper(g, h0, [0])  # (1, N, H)
    y, y_h = g.op(
        "GRU",
        x,
        W,
        R,
        B,
        _unused(g),
        init_h,
        hidden_size_i=H,
        linear_before_reset_i=int(after),
        direction_s="reverse" if rev else "forward",
        outputs=2,
    )
    out = sh._squeeze_helper(g, y, [1])  # (T, 1, N, H) → (T, N, H)
    h_n = sh._squeeze_helper(g, y_h, [0])  # (1, N, H) → (N, H)
    gates = g.op("Constant", value_t=torch.zeros(0, 3 * H, dtype=dtype))  # internal: empty
    hn = g.op("Constant", value_t=torch.zeros(0, H, dtype=dtype))
    return out, h_n, gates, hn


#: Recurrent dropout and zoneout have no ONNX GRU attribute (``backends.resolve`` refuses
#: them first; this guards a direct call of the operator with masks).
_NOISE_REFUSED = (
    "grukit ONNX export: zoneout and recurrent dropout cannot be exported "
    "(no ONNX GRU computes them); export the model in eval mode without zoneout"
)


def _unused(g: Any) -> Any:
    """A missing optional ONNX input."""
    n = g.op("prim::Constant")
    n.setType(torch._C.OptionalType.ofTensor())
    return n


# torch.onnx imports register_custom_op_symbolic without listing it in __all__.
torch.onnx.register_custom_op_symbolic(  # type: ignore[attr-defined]
    "grukit::gru", _gru_symbolic, _MIN_OPSET
)


# --- dynamo exporter ----------------------------------------------------------------------


def _gru_onnxscript(
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    batch_sizes: Any = None,
    reverse: bool = False,
    reset_after: bool = True,
    save: bool = False,
    loops: str = "torch",
    h_mask: Any = None,
    keep: Any = None,
) -> tuple[Any, Any, Any, Any]:
    """onnxscript translation of ``grukit::gru`` (trace-only): one ONNX GRU node."""
    if h_mask is not None or keep is not None:
        raise ValueError(_NOISE_REFUSED)
    import numpy as np
    import onnx_ir as ir
    from onnxscript import opset18

    # Traced, not compiled: onnxscript turns the Python ints and lists below into constants,
    # which its opset signatures (typed for its tensor types only) do not model.
    op: Any = opset18

    if batch_sizes is not None:
        raise ValueError(
            "grukit ONNX export: packed input (PackedSequence) cannot be exported; "
            "export a padded batch (T, N, I) instead"
        )
    H, I = int(w_hh.shape[1]), int(w_ih.shape[1])
    np_dtype = w_ih.dtype.numpy()

    def reorder(w: Any) -> Any:  # [r, z, n] → [z, r, n] along axis 0
        r, z, n = (op.Slice(w, [k * H], [(k + 1) * H], [0]) for k in range(3))
        return op.Concat(z, r, n, axis=0)

    if x.dtype in (ir.DataType.INT64, ir.DataType.INT32):
        eye = op.Constant(value=ir.tensor(np.eye(I, dtype=np_dtype)))  # (I, I)
        x = op.Gather(eye, x, axis=0)  # (T, N) indices → (T, N, I)
    W = op.Unsqueeze(reorder(w_ih), [0])  # (1, 3H, I)
    R = op.Unsqueeze(reorder(w_hh), [0])  # (1, 3H, H)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("grukit ONNX export: expected both GRU biases or neither, got one")
    B = None if b_ih is None else op.Unsqueeze(op.Concat(reorder(b_ih), reorder(b_hh), axis=0), [0])
    y, y_h = op.GRU(
        x,
        W,
        R,
        B,
        None,
        op.Unsqueeze(h0, [0]),  # (1, N, H)
        hidden_size=H,
        linear_before_reset=int(reset_after),
        direction="reverse" if reverse else "forward",
    )
    out = op.Squeeze(y, [1])  # (T, 1, N, H) → (T, N, H)
    h_n = op.Squeeze(y_h, [0])  # (1, N, H) → (N, H)
    gates = op.Constant(value=ir.tensor(np.zeros((0, 3 * H), dtype=np_dtype)))  # internal
    hn = op.Constant(value=ir.tensor(np.zeros((0, H), dtype=np_dtype)))
    return out, h_n, gates, hn


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``:
    ``grukit::gru`` → ONNX GRU."""
    import grukit.backends.ops  # noqa: F401  (defines torch.ops.grukit.gru)

    return {torch.ops.grukit.gru.default: _gru_onnxscript}


# --- RNN / LSTM kernels under the dynamo exporter -------------------------------------------

#: ONNX LSTM gate order i, o, f, c from torch's i, f, g, o.
_LSTM_ORDER = (0, 3, 1, 2)


def _onnx_rnn(kind: str) -> Callable[..., Any]:
    """A kernel for ``aten::{rnn_tanh, rnn_relu, lstm}.input`` that emits ONNX's RNN / LSTM
    (``torch.onnx.ops.symbolic_multi_out``) for one forward layer, time-major, as the grukit
    layers call them; anything else goes to torch's own kernel."""
    original = _ATEN_RNN[kind].py_kernels.get(torch._C.DispatchKey.CompositeImplicitAutograd)

    def kernel(
        input: Tensor,  # noqa: A002 (aten's name)
        hx: Any,
        params: list[Tensor],
        has_biases: bool,
        num_layers: int,
        dropout: float,
        train: bool,
        bidirectional: bool,
        batch_first: bool,
    ) -> tuple[Tensor, ...]:
        gates = 4 if kind == "lstm" else 1
        if num_layers != 1 or bidirectional or batch_first or len(params) != 2 + 2 * has_biases:
            if original is None:
                raise ValueError(f"grukit ONNX export: cannot export aten::{kind} of this form")
            result: tuple[Tensor, ...] = original(
                input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                batch_first,
            )  # fmt: skip
            return result
        h0 = hx[0] if kind == "lstm" else hx  # (1, N, H)
        T, N, H = input.shape[0], input.shape[1], h0.shape[-1]

        def order(w: Tensor) -> Tensor:  # (G·H, …) in ONNX's gate order
            return torch.cat([w.chunk(4)[k] for k in _LSTM_ORDER]) if gates == 4 else w

        W, R = order(params[0]).unsqueeze(0), order(params[1]).unsqueeze(0)  # (1, G·H, ·)
        B = torch.cat((order(params[2]), order(params[3]))).unsqueeze(0) if has_biases else None
        attrs: dict[str, Any] = {"hidden_size": int(H)}
        if kind == "lstm":
            inputs = [input, W, R, B, None, h0, hx[1]]
            n_out = 3
        else:
            inputs = [input, W, R, B, None, h0]
            attrs["activations"] = ["Relu" if kind == "rnn_relu" else "Tanh"]
            n_out = 2
        outs = torch.onnx.ops.symbolic_multi_out(
            "LSTM" if kind == "lstm" else "RNN",
            inputs,
            attrs,
            dtypes=[input.dtype] * n_out,
            shapes=[[T, 1, N, H]] + [[1, N, H]] * (n_out - 1),
            version=14,
        )
        return (outs[0].squeeze(1), *outs[1:])  # (T, N, H), (1, N, H)…

    return kernel


_ATEN_RNN = {
    "rnn_tanh": torch.ops.aten.rnn_tanh.input,
    "rnn_relu": torch.ops.aten.rnn_relu.input,
    "lstm": torch.ops.aten.lstm.input,
}


@contextlib.contextmanager
def _rnn_kernels_as_onnx() -> Iterator[dict[Any, Callable[..., Any]]]:
    """While active, torch's RNN / LSTM kernels trace as ONNX RNN / LSTM nodes with dynamic
    length. Without it ``torch.export`` unrolls them over the example's length (aten's
    decomposition), which cannot run at other lengths. Patches the kernels' Python
    override for the composite key, as ``torch.export._patches`` does for its while-loop
    decomposition, and restores them."""
    key = torch._C.DispatchKey.CompositeImplicitAutograd
    saved = {kind: op.py_kernels.get(key) for kind, op in _ATEN_RNN.items()}
    kernels = {kind: _onnx_rnn(kind) for kind in _ATEN_RNN}
    torch_builtin.keep_kernels_when_compiling = True  # not the scan it uses for compile
    try:
        for kind, op in _ATEN_RNN.items():
            op.py_kernels[key] = kernels[kind]
            op._dispatch_cache.clear()
        yield {op: kernels[kind] for kind, op in _ATEN_RNN.items()}
    finally:
        torch_builtin.keep_kernels_when_compiling = False
        for kind, op in _ATEN_RNN.items():
            previous = saved[kind]
            if previous is None:
                op.py_kernels.pop(key, None)
            else:
                op.py_kernels[key] = previous
            op._dispatch_cache.clear()


@contextlib.contextmanager
def _layernorm_gru_as_scan() -> Iterator[None]:
    """While active, a LayerNormGRU runs the reference loop (``backends.scan_for_onnx``),
    which ``torch.export`` traces as torch's ``scan`` of ``functional.layernorm_gru_cell``
    and the dynamo exporter writes as one ONNX ``Scan`` per layer direction (dynamic T and
    N; body Gemm, LayerNormalization, Sigmoid, Tanh). No ONNX operator computes the cell,
    and its fast path, the operator ``grukit::layernorm_gru``, has no translation.
    ``export_onnx`` exports in eval mode, so zoneout is its expectation, a scanned input."""
    backends.scan_for_onnx = True
    try:
        yield
    finally:
        backends.scan_for_onnx = False


# --- export_onnx ------------------------------------------------------------------------------

#: The ONNX operator each kind of recurrent module must export to. MinGRU's time loop is a
#: ``Scan`` of h_t = a_t ⊙ h_{t−1} + b_t (``grukit.variants.mingru``): ONNX has no
#: log-cumulative-sum-exp, and the exp/cumsum forms of one (torch's translation subtracts
#: the global maximum) underflow on long sequences, as tests/test_variants_mingru.py shows.
#: LayerNormGRU's is a ``Scan`` of its cell (``_layernorm_gru_as_scan``).
_OPERATOR = {
    "gru": "GRU",
    "rnn_tanh": "RNN",
    "rnn_relu": "RNN",
    "lstm": "LSTM",
    "mingru": "Scan",
    "layernorm_gru": "Scan",
}
#: Kinds whose time loop is a ``Scan``, which only the dynamo exporter writes (opset >= 18).
_SCANNED = ("mingru", "layernorm_gru")
#: A model's ``cell`` name (``grukit.models.recurrent.CELLS``) → its recurrent kind.
_CELL_KIND = {
    "gru": "gru",
    "layernorm-gru": "layernorm_gru",
    "mingru": "mingru",
    "lstm": "lstm",
    "rnn": "rnn_tanh",
}


class _Exportable(nn.Module):
    """A module seen with plain tensor inputs and outputs (LSTM states split in two)."""

    def __init__(self, module: nn.Module, role: str) -> None:
        super().__init__()
        self.module, self.role = module, role

    def forward(
        self, x: Tensor, h0: Tensor | None = None, c0: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        m = self.module
        state: Any = h0 if c0 is None else (h0, c0)
        if self.role == "forecaster":
            return (m(x),)  # (N, H, Q)
        if self.role == "cell":
            out = m(x, state)  # (N, H) or (h, c)
            return tuple(out) if isinstance(out, tuple) else (out,)
        y, s = m(x, state)  # layer (output, h_n); CharLM (logits (T·N, V), state)
        return (y, *s) if isinstance(s, tuple) else (y, s)


#: (name, {axis: dim name}) of every input or output of the exported graph.
Axes = list[tuple[str, dict[int, str]]]


def _describe(module: nn.Module, initial_state: bool) -> tuple[str, str | None, Axes, Axes]:
    """(role, recurrent kind, [(input name, {axis: dim name})], [(output name, axes)])."""
    from ..cells import GRUCell, LSTMCell, RNNCell
    from ..layers import RNNBase
    from ..models.charlm import CharLM
    from ..models.forecaster import Forecaster
    from ..variants.mingru import MinGRU

    if isinstance(module, MinGRU):
        seq = {0: "N", 1: "T"} if module.batch_first else {0: "T", 1: "N"}
        state = [("h0", {1: "N"})] * initial_state
        return "layer", "mingru", [("input", seq), *state], [("output", seq), ("h_n", {1: "N"})]
    if isinstance(module, Forecaster):
        kind = _CELL_KIND[module.cell]
        return "forecaster", kind, [("x", {0: "N", 1: "L"})], [("quantiles", {0: "N"})]
    if isinstance(module, CharLM):
        kind = _CELL_KIND[module.cell]
        state = [(n, {1: "N"}) for n in ("h0", "c0")[: 2 if kind == "lstm" else 1]]
        outs = [("logits", {0: "TN"})] + [(n, {1: "N"}) for n in ("h_n", "c_n")[: len(state)]]
        return "charlm", kind, [("tokens", {0: "N", 1: "T"}), *state * initial_state], outs
    if isinstance(module, RNNBase):
        if module.proj_size:
            raise ValueError(
                "export_onnx: expected an LSTM without proj_size (ONNX's LSTM has no "
                f"projection), got proj_size={module.proj_size}"
            )
        seq = {0: "N", 1: "T"} if module.batch_first else {0: "T", 1: "N"}
        state = [(n, {1: "N"}) for n in ("h0", "c0")[: 2 if module.kind == "lstm" else 1]]
        outs = [("output", seq)] + [(n, {1: "N"}) for n in ("h_n", "c_n")[: len(state)]]
        return "layer", module.kind, [("input", seq), *state * initial_state], outs
    if isinstance(module, (GRUCell, RNNCell, LSTMCell)):
        lstm = isinstance(module, LSTMCell)
        state = [(n, {0: "N"}) for n in ("hx", "cx")[: 2 if lstm else 1]]
        outs = [(n, {0: "N"}) for n in ("h", "c")[: len(state)]]
        gru = "gru" if isinstance(module, GRUCell) else None  # RNN/LSTM cells: plain ops
        return "cell", gru, [("input", {0: "N"}), *state * initial_state], outs
    raise TypeError(
        "export_onnx: expected a grukit GRU/RNN/LSTM/LayerNormGRU/MinGRU layer, "
        f"GRUCell/RNNCell/LSTMCell, CharLM or Forecaster, got {type(module).__name__}"
    )


def _example_state(module: nn.Module, role: str, x: Tensor, n_state: int) -> list[Tensor]:
    """Random initial states matching ``x`` (a state input's example)."""
    if n_state == 0:
        return []
    from ..cells import RNNCellBase
    from ..layers import RNNBase
    from ..models.charlm import CharLM
    from ..variants.mingru import MinGRU

    w = next(module.parameters())
    if isinstance(module, MinGRU):
        batch = x.shape[0] if module.batch_first else x.shape[1]
        shape: tuple[int, ...] = (module.num_layers, batch, module.hidden_size)
    elif isinstance(module, RNNCellBase):  # role "cell"
        shape = (x.shape[0], module.hidden_size)
    elif isinstance(module, CharLM):
        shape = (module.num_layers, x.shape[0], module.hidden_size)
    elif isinstance(module, RNNBase):
        batch = x.shape[0] if module.batch_first else x.shape[1]
        shape = (module.num_layers * module.num_directions, batch, module.hidden_size)
    else:
        raise TypeError(f"export_onnx: no initial state for a {type(module).__name__} ({role})")
    return [torch.randn(shape, dtype=w.dtype, device=w.device) for _ in range(n_state)]


def _check_graph(path: Path, kind: str | None) -> None:
    """Raise unless the written model holds ``kind``'s ONNX operator and only standard ops."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in nodes if n.domain not in ("", "ai.onnx")})
    local = {f.name for f in model.functions}
    foreign = [f for f in foreign if f.split("::", 1)[1] not in local]
    if foreign:
        raise RuntimeError(
            f"export_onnx: the exported graph holds non-standard operators {foreign}"
        )
    if kind is not None and _OPERATOR[kind] not in {n.op_type for n in nodes}:
        raise RuntimeError(
            f"export_onnx: expected the graph to hold ONNX's {_OPERATOR[kind]} operator, found "
            f"{sorted({n.op_type for n in nodes})}"
        )


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike[str],
    example_input: Tensor,
    *,
    initial_state: bool = True,
    dynamo: bool = False,
    opset: int = OPSET,
) -> Path:
    """Write ``module`` as an ONNX model whose recurrences are ONNX's own GRU / RNN / LSTM
    operators (a MinGRU's and a LayerNormGRU's: a ``Scan``); returns the path.

    module: a grukit ``GRU``/``RNN``/``LSTM``/``LayerNormGRU``/``MinGRU`` layer, a
    ``GRUCell``/``RNNCell``/``LSTMCell``, a ``CharLM`` or a ``Forecaster`` (exported in eval
    mode; its mode is restored).
    example_input: a batched example: layer (T, N, I) or (N, T, I) with batch_first; cell
    (N, I); CharLM tokens (N, T) int64; Forecaster (N, L, I). Batch and length are dynamic
    (size ≥ 2 in the example: torch.export fixes size-1 dimensions).
    initial_state: layers, cells and CharLM take their initial state as inputs after the
    first (``h0`` / ``c0``, ``hx`` / ``cx``); else they start from zeros.
    dynamo: torch's dynamo exporter (``torch.export``) instead of the TorchScript one.
    A MinGRU or LayerNormGRU (also as a CharLM's or Forecaster's cell) always goes through
    the dynamo exporter: its time loop is an ONNX ``Scan``, which only that exporter writes
    (so it needs opset >= 18). A LayerNormGRU's scan body is its cell:
    LayerNormalization, Gemm, Sigmoid, Tanh; zoneout exports as its evaluation-mode
    expectation.

    Inputs and outputs are named: layer ``input, h0[, c0] → output, h_n[, c_n]``; cell
    ``input, hx[, cx] → h[, c]``; CharLM ``tokens, h0[, c0] → logits, h_n[, c_n]``;
    Forecaster ``x → quantiles``. The file is written atomically (temporary file, rename):
    an export that fails leaves no file, and an existing file is replaced only by a
    complete model.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"export_onnx: expected an nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, Tensor):
        raise TypeError(
            "export_onnx: expected example_input a torch.Tensor, got "
            f"{type(example_input).__name__}"
        )
    if isinstance(opset, bool) or not isinstance(opset, int) or not _MIN_OPSET <= opset <= 20:
        raise ValueError(f"export_onnx: expected opset an int in [{_MIN_OPSET}, 20], got {opset!r}")
    if dynamo and opset < 18:
        raise ValueError(f"export_onnx: the dynamo exporter needs opset >= 18, got {opset}")
    role, kind, inputs, outputs = _describe(module, initial_state)
    if kind in _SCANNED:
        if opset < 18:
            what = "MinGRU" if kind == "mingru" else "LayerNormGRU"
            raise ValueError(f"export_onnx: a {what} exports with opset >= 18, got {opset}")
        dynamo = True  # the Scan of its time loop: torch.export's scan, the dynamo exporter
    dims = inputs[0][1]
    if example_input.dim() != len(dims) + (role in ("layer", "cell", "forecaster")):
        raise ValueError(
            f"export_onnx: expected a batched example_input of {len(dims) + (role != 'charlm')} "
            f"dimensions for {type(module).__name__}, got shape {tuple(example_input.shape)}"
        )
    small = [
        f"{name}={example_input.shape[a]}" for a, name in dims.items() if example_input.shape[a] < 2
    ]
    if small:
        raise ValueError(
            "export_onnx: expected example_input sizes >= 2 along the dynamic axes, got "
            + ", ".join(small)
        )
    wrapper = _Exportable(module, role)
    args = (example_input, *_example_state(module, role, example_input, len(inputs) - 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.onnx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            if dynamo:
                _export_dynamo(wrapper, args, tmp, inputs, outputs, opset)
            else:
                torch.onnx.export(
                    wrapper,
                    args,
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=[n for n, _ in inputs],
                    output_names=[n for n, _ in outputs],
                    dynamic_axes={n: a for n, a in (*inputs, *outputs)},
                )
        _check_graph(tmp, kind)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        module.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


def _export_dynamo(
    wrapper: nn.Module, args: tuple[Tensor, ...], tmp: Path, inputs: Axes, outputs: Axes, opset: int
) -> None:
    """torch.export with dynamic batch and length, then torch's ONNX translation."""
    names = ("x", "h0", "c0")
    dim = torch.export.Dim.DYNAMIC
    shapes = {names[i]: {a: dim for a in axes} for i, (_, axes) in enumerate(inputs)}
    with _rnn_kernels_as_onnx() as kernels, _layernorm_gru_as_scan():
        program = torch.export.export(wrapper, args, dynamic_shapes=shapes, strict=False)
        # torch's ONNX registry would translate aten::lstm itself (fixed length): decompose
        # the kernels into ONNX RNN / LSTM nodes first (where there are any: each pass
        # retraces the graph, scans included)
        if any(node.target in kernels for node in program.graph.nodes):
            program = program.run_decompositions(kernels)
        torch.onnx.export(
            program,
            args,
            str(tmp),
            dynamo=True,
            opset_version=opset,
            input_names=[n for n, _ in inputs],
            output_names=[n for n, _ in outputs],
            custom_translation_table=translation_table(),
            external_data=False,
        )
