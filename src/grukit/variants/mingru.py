"""MinGRU: the minimal GRU of Feng et al. 2024 ("Were RNNs All We Needed?",
arXiv:2410.01201), with its time loop run sequentially or as one parallel scan.

The cell is ``grukit.functional.mingru_cell``. Neither gate reads the state, so the
recurrence is linear in h, h_t = a_t ⊙ h_{t−1} + b_t: one GEMM makes every step's gates,
and what remains is element-wise — on the CPU one C++ pass over time
(``grukit.backends.mingru_ops``), elsewhere the chunked log-space parallel scan
``grukit.functional.mingru_scan`` (Heinsen 2023, arXiv:2311.06281).

Shapes: T time, N batch, I input size, H hidden size, L layers.
    input   (T, N, I), or (N, T, I) with batch_first, or unbatched (T, I), or a
            PackedSequence, or a ``grukit.OneHot`` of token indices
    h_0     (L, N, H), unbatched (L, H); zeros when omitted
    output  (T, N, H) (batch_first: (N, T, H)), unbatched (T, H), or a PackedSequence
    h_n     (L, N, H), unbatched (L, H)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, overload

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .. import _checks as check
from .. import functional as F
from ..backends import mingru_ops
from ..onehot import OneHot

__all__ = ["MinGRU", "MODES"]

#: The time loop's two implementations: the step loop (the oracle) and the scan (fast path).
MODES = ("parallel", "sequential")

_OWNER = "MinGRU"


class MinGRU(nn.Module):
    r"""Multi-layer minimal GRU (Feng et al. 2024, arXiv:2410.01201).

    Each layer computes, per step (``grukit.functional.mingru_cell``):

    .. math::
        z_t &= \sigma(W_{iz} x_t + b_{iz}) \\
        \tilde h_t &= g(W_{ih} x_t + b_{ih}), \quad
            g(a) = a + 0.5 \ (a \ge 0), \ \sigma(a) \ (a < 0) \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    Parameters per layer k: ``weight_ih_lk`` (2H, I) for k = 0, (2H, H) above, rows
    [z; h̃]; ``bias_ih_lk`` (2H,) when ``bias``; no recurrent weight. Initialised from
    U(−1/√H, 1/√H) as ``torch.nn.GRU``. Dropout (training mode only) applies to the outputs
    of every layer but the last, as ``torch.nn.GRU``.

    ``mode`` (keyword-only): ``"parallel"`` (default, the fast path) computes every step's
    projections with one GEMM, then the linear recurrence h_t = a_t ⊙ h_{t−1} + b_t without
    a per-step GEMM: on the CPU (float32/float64, native kernel built) as the operator
    ``grukit::mingru_scan``, one vectorised C++ loop over time, parallel over the batch,
    with a hand-written backward (the reverse recurrence, ``grukit.backends.mingru_ops``);
    elsewhere as ``grukit.functional.mingru_scan``, a log-space scan parallel in time
    within chunks (float64 inside; see its docstring). ``"sequential"`` runs
    ``mingru_cell`` step by step, a GEMM per step: the readable oracle. Both compute the
    same function. Under ``torch.export`` (and so ONNX export) the parallel mode runs the
    recurrence as a ``scan`` over time, which ONNX writes as its ``Scan`` operator: ONNX
    has no log-cumulative-sum-exp, and its exp/cumsum decompositions under- or overflow on
    long sequences.

    ``step(x_t, h)`` advances one step, for generation. Returns ``(output, h_n)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        mode: str = "parallel",
    ) -> None:
        super().__init__()
        self.input_size = check.positive_int(_OWNER, "input_size", input_size)
        self.hidden_size = check.positive_int(_OWNER, "hidden_size", hidden_size)
        self.num_layers = check.positive_int(_OWNER, "num_layers", num_layers)
        self.bias = check.flag(_OWNER, "bias", bias)
        self.batch_first = check.flag(_OWNER, "batch_first", batch_first)
        self.dropout = check.probability(_OWNER, "dropout", dropout)
        if mode not in MODES:
            raise ValueError(f"{_OWNER}: expected mode 'parallel' or 'sequential', got {mode!r}")
        self.mode = mode
        self._param_shapes: dict[str, tuple[int, ...]] = {}
        H = hidden_size
        for layer in range(num_layers):
            shapes: list[tuple[str, tuple[int, ...]]] = [
                ("weight_ih", (2 * H, input_size if layer == 0 else H))
            ]
            if bias:
                shapes.append(("bias_ih", (2 * H,)))
            for stem, shape in shapes:
                name = f"{stem}_l{layer}"
                p = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                self.register_parameter(name, p)
                self._param_shapes[name] = shape
        self.reset_parameters()

    weight_ih_l0: Tensor

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, as ``torch.nn.GRU``."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s + ("" if self.mode == "parallel" else f", mode={self.mode!r}")

    def _weights(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """Layer ``layer``'s (w_ih (2H, ·), b_ih (2H,) or None)."""
        b = getattr(self, f"bias_ih_l{layer}") if self.bias else None
        return getattr(self, f"weight_ih_l{layer}"), b

    # --- forward ---------------------------------------------------------------------

    @overload
    def forward(
        self,
        input: Tensor | OneHot,  # noqa: A002 (torch's name)
        hx: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def forward(
        self,
        input: PackedSequence,  # noqa: A002
        hx: Tensor | None = None,
    ) -> tuple[PackedSequence, Tensor]: ...

    def forward(
        self,
        input: Tensor | PackedSequence | OneHot,  # noqa: A002
        hx: Tensor | None = None,
    ) -> tuple[Tensor | PackedSequence, Tensor]:
        """Run every layer over the sequence: ``(output, h_n)`` (shapes: module docstring).

        A PackedSequence runs padded (sequences sorted by length); the recurrence is causal,
        so the padding never reaches a real step, and each sequence's h_n is its state at
        its own last step."""
        check.parameters(_OWNER, self._parameters, self._param_shapes)
        w0 = self.weight_ih_l0
        packed = input if isinstance(input, PackedSequence) else None
        mask: Tensor | None = None  # (T, N) True at real steps of a packed batch
        if packed is not None:
            x, mask = _padded(packed)  # (T, N, I) in sorted order
        elif isinstance(input, OneHot):
            input.validate(_OWNER)
            if input.indices.dim() not in (1, 2):
                raise ValueError(
                    f"{_OWNER}: expected OneHot indices of 2 dimensions (T, N) or 1 (T,) "
                    f"unbatched, got {input.indices.dim()}-D"
                )
            x = input.dense(w0.dtype)  # (T, N, I) / (N, T, I) / (T, I)
        elif isinstance(input, Tensor):
            x = input
        else:
            raise TypeError(
                f"{_OWNER}: expected input a torch.Tensor, PackedSequence or OneHot, "
                f"got {type(input).__name__}"
            )
        if x.dim() not in (2, 3):
            raise ValueError(
                f"{_OWNER}: expected input of 3 dimensions (T, N, I) or 2 (T, I) unbatched, "
                f"got {x.dim()}-D of shape {tuple(x.shape)}"
            )
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)  # (T, 1, I)
        elif self.batch_first and packed is None:
            x = x.transpose(0, 1)  # (N, T, I) → (T, N, I)
        if x.shape[0] == 0:
            raise ValueError(f"{_OWNER}: expected a non-empty sequence (T >= 1), got T = 0")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{_OWNER}: expected input with {self.input_size} features (input_size), "
                f"got {x.shape[-1]}"
            )
        check.like_weights(_OWNER, "input", x, w0)
        h0 = self._initial_state(hx, x.shape[1], unbatched, x)  # (L, N, H)
        if packed is not None and packed.sorted_indices is not None:
            h0 = h0.index_select(1, packed.sorted_indices)

        out, finals = x, []
        for layer in range(self.num_layers):
            w, b = self._weights(layer)
            out = self._run_layer(out, h0[layer], w, b)  # (T, N, H)
            finals.append(out[-1] if mask is None else _last_steps(out, mask))  # (N, H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                out = nn.functional.dropout(out, self.dropout, training=True)
        h_n = torch.stack(finals)  # (L, N, H)

        if packed is not None:
            assert mask is not None
            if packed.unsorted_indices is not None:
                h_n = h_n.index_select(1, packed.unsorted_indices)
            data = out[mask]  # (S, H): rows in the packed (time-major, sorted) order
            return (
                PackedSequence(
                    data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
                ),
                h_n,
            )
        if unbatched:
            return out.squeeze(1), h_n.squeeze(1)  # (T, H), (L, H)
        return (out.transpose(0, 1) if self.batch_first else out), h_n  # (N, T, H) | (T, N, H)

    if TYPE_CHECKING:  # torch types Module.__call__ as (...) -> Any; calls return forward's

        @overload
        def __call__(
            self,
            input: Tensor | OneHot,  # noqa: A002
            hx: Tensor | None = None,
        ) -> tuple[Tensor, Tensor]: ...

        @overload
        def __call__(
            self,
            input: PackedSequence,  # noqa: A002
            hx: Tensor | None = None,
        ) -> tuple[PackedSequence, Tensor]: ...

        def __call__(
            self,
            input: Tensor | PackedSequence | OneHot,  # noqa: A002
            hx: Tensor | None = None,
        ) -> tuple[Tensor | PackedSequence, Tensor]: ...

    def _run_layer(self, x: Tensor, h0: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        """One layer over time: x (T, N, I'), h0 (N, H) → h_1 … h_T (T, N, H)."""
        if self.mode == "sequential":
            h, outs = h0, []
            for x_t in x.unbind(0):  # T × (N, I')
                h = F.mingru_cell(x_t, h, w, b)  # (N, H)
                outs.append(h)
            return torch.stack(outs)  # (T, N, H)
        gi = nn.functional.linear(x, w, b)  # (T, N, 2H): every step's projections, one GEMM
        if torch.compiler.is_exporting():
            return _linear_scan(*F.mingru_coefficients(gi), h0)
        if torch.onnx.is_in_onnx_export():
            raise RuntimeError(
                f"{_OWNER}: the TorchScript ONNX exporter cannot write the parallel scan; "
                "use grukit.export_onnx or torch.onnx.export(..., dynamo=True)"
            )
        if mingru_ops.runs(gi, h0):
            return torch.ops.grukit.mingru_scan(gi, h0)  # type: ignore[no-any-return]
        return F.mingru_scan(gi, h0)

    def _initial_state(self, hx: object, batch: int, unbatched: bool, x: Tensor) -> Tensor:
        """Zeros when hx is None, else hx checked and given a batch axis: (L, N, H)."""
        L, H = self.num_layers, self.hidden_size
        if hx is None:
            return x.new_zeros(L, batch, H)
        h = check.tensor(_OWNER, "h_0", hx)
        expected = (L, H) if unbatched else (L, batch, H)
        if h.dim() != len(expected):
            kind = "unbatched" if unbatched else "batched"
            raise ValueError(
                f"{_OWNER}: expected {len(expected)}-D h_0 for {kind} input {expected}, "
                f"got {h.dim()}-D of shape {tuple(h.shape)}"
            )
        check.shape(_OWNER, "h_0", h, expected)
        check.like_weights(_OWNER, "h_0", h, self.weight_ih_l0)
        return h.unsqueeze(1) if unbatched else h

    # --- streaming -------------------------------------------------------------------

    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One more step of every layer, for generation: the same as running the layer on
        the sequence extended by x_t.

        Args:
            x_t: (N, I), or (I,) unbatched.
            h: (L, N, H), or (L, H) unbatched: the state after the previous step (the
                previous call's, or the layer's h_n); None for zeros.

        Returns:
            (out_t, h'): the last layer's new state (N, H) or (H,), and every layer's
            (L, N, H) or (L, H). No dropout: generation runs in evaluation mode.
        """
        check.parameters(_OWNER, self._parameters, self._param_shapes)
        x = check.tensor(_OWNER, "x_t", x_t)
        if x.dim() not in (1, 2):
            raise ValueError(
                f"{_OWNER}.step: expected x_t of 2 dimensions (N, I) or 1 (I,) unbatched, "
                f"got {x.dim()}-D of shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{_OWNER}.step: expected x_t with {self.input_size} features (input_size), "
                f"got {x.shape[-1]}"
            )
        check.like_weights(_OWNER, "x_t", x, self.weight_ih_l0)
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)  # (1, I)
        state = self._initial_state(h, x.shape[0], unbatched, x)  # (L, N, H)
        new = []
        for layer in range(self.num_layers):
            w, b = self._weights(layer)
            x = F.mingru_cell(x, state[layer], w, b)  # (N, H)
            new.append(x)
        h_new = torch.stack(new)  # (L, N, H)
        if unbatched:
            return x.squeeze(0), h_new.squeeze(1)  # (H,), (L, H)
        return x, h_new


def _padded(packed: PackedSequence) -> tuple[Tensor, Tensor]:
    """A PackedSequence's data as a padded batch in its sorted order, and the mask of real
    steps: (T, N, I) zeros past each sequence's end, (T, N) bool.

    Packed rows are time-major and, at step t, the first batch_sizes[t] sequences of the
    sorted order: exactly the True entries of the mask in row-major order."""
    x = check.tensor(_OWNER, "PackedSequence data", packed.data)
    if x.dim() != 2:
        raise ValueError(f"{_OWNER}: expected 2-D PackedSequence data, got {x.dim()}-D")
    bs = packed.batch_sizes
    check.batch_sizes(_OWNER, bs, x.shape[0])
    T, N = bs.shape[0], int(bs[0])
    mask = torch.arange(N).unsqueeze(0) < bs.unsqueeze(1)  # (T, N)
    mask = mask.to(x.device)
    padded = x.new_zeros(T, N, x.shape[1])  # (T, N, I)
    padded[mask] = x
    return padded, mask


def _last_steps(out: Tensor, mask: Tensor) -> Tensor:
    """Each sequence's state at its own last step: out (T, N, H), mask (T, N) → (N, H)."""
    last = mask.sum(0) - 1  # (N,) length − 1
    return out[last, torch.arange(out.shape[1], device=out.device)]  # (N, H)


def _linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t over t as torch's ``scan`` (one loop of symbolic length,
    which the ONNX exporter writes as ``Scan``): a, b (T, N, H), h0 (N, H) → (T, N, H)."""
    from torch._higher_order_ops.scan import scan

    def body(h: Tensor, ab: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        new = ab[0] * h + ab[1]  # (N, H)
        return new, new.clone()  # a scan output must not alias the carry

    _, out = scan(body, h0.clone(), (a, b))
    out_t: Tensor = out
    return out_t
