"""Single-step cells: GRUCell, RNNCell, LSTMCell — drop-ins for ``torch.nn``'s.

A cell is one step of ``grukit.functional`` with its parameters; it holds no
state and owns no time loop (layers do).

Shapes: N batch, I input size, H hidden size.
    input (N, I) or unbatched (I,);  hx (N, H) or (H,), zeros when None;
    LSTMCell's hx and result are (h, c) tuples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Generic, TypeVar

import torch
from torch import Tensor, nn

from . import _autocast as autocast
from . import _checks as check
from . import functional as F
from ._torch_twin import TorchTwin
from .backends import CellSpec, Weights, check_backend_name, fused, native, under_torch_func

_GRU_SPEC = CellSpec("gru")  # native and fused compute both variants

__all__ = ["RNNCellBase", "GRUCell", "RNNCell", "LSTMCell"]

#: What ``hx`` and the result are: h (Tensor) for GRUCell and RNNCell, (h, c) for LSTMCell.
Hidden = TypeVar("Hidden", Tensor, tuple[Tensor, Tensor])

#: (weight_ih, weight_hh, bias_ih, bias_hh); the biases None without bias.
CellWeights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]


class RNNCellBase(TorchTwin, nn.Module, Generic[Hidden]):
    """Parameters weight_ih (G·H, I), weight_hh (G·H, H), bias_ih, bias_hh (G·H,),
    initialised U(−1/√H, 1/√H) in torch's order. Generic in ``Hidden``, the state's type."""

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.input_size = check.positive_int(owner, "input_size", input_size)
        self.hidden_size = check.positive_int(owner, "hidden_size", hidden_size)
        self.bias = check.flag(owner, "bias", bias)
        rows = num_chunks * hidden_size
        self._param_shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (rows, input_size),
            "weight_hh": (rows, hidden_size),
        }
        if bias:
            self._param_shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, device=device, dtype=dtype))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, device=device, dtype=dtype))
            self.bias_hh = nn.Parameter(torch.empty(rows, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    if TYPE_CHECKING:  # torch types Module.__call__ as (...) -> Any; calls return forward's

        def __call__(self, input: Tensor, hx: Hidden | None = None) -> Hidden: ...  # noqa: A002

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"

    def _check_parameters(self, owner: str) -> None:
        """Every parameter still a tensor of the shape, dtype and device the cell was built
        with (a user may have replaced one): checked before any kernel reads memory."""
        check.parameters(owner, self._parameters, self._param_shapes)

    def _checked_weights(self) -> CellWeights:
        """The parameters after ``_check_parameters``, in one dict read instead of four
        ``Module.__getattr__`` calls."""
        p = self._parameters
        w_ih, w_hh = p["weight_ih"], p["weight_hh"]
        if w_ih is None or w_hh is None:  # _check_parameters has raised for these already
            raise TypeError(f"{type(self).__name__}: expected weight_ih and weight_hh tensors")
        return w_ih, w_hh, p["bias_ih"], p["bias_hh"]

    def _check_input(self, input: Tensor) -> tuple[Tensor, bool]:  # noqa: A002
        """Checked input with a batch axis, and whether it came without one (parameters
        checked too)."""
        owner = type(self).__name__
        self._check_parameters(owner)
        check.tensor(owner, "input", input)
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{owner}: expected input of 2 dimensions (N, I) or 1 (I,) unbatched, "
                f"got {input.dim()}-D of shape {tuple(input.shape)}"
            )
        check.like_weights(owner, "input", input, self.weight_ih)
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{owner}: expected input with {self.input_size} features (input_size), "
                f"got {input.shape[-1]}"
            )
        unbatched = input.dim() == 1
        return (input.unsqueeze(0) if unbatched else input), unbatched  # (N, I)

    def _check_state(self, name: str, h: Tensor | None, x: Tensor, unbatched: bool) -> Tensor:
        """hx checked against input x (N, I); zeros when None. Returns (N, H)."""
        owner = type(self).__name__
        if h is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        check.tensor(owner, name, h)
        expected = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        check.shape(owner, name, h, expected)
        check.like_weights(owner, name, h, self.weight_ih)
        return h.unsqueeze(0) if unbatched else h


class GRUCell(RNNCellBase[Tensor]):
    r"""One GRU step, ``grukit.functional.gru_cell`` (Cho et al. 2014, arXiv:1406.1078):

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \ \text{(reset\_after)}
        \ \text{or}\ \tanh(W_{in} x + b_{in} + W_{hn}(r \odot h) + b_{hn}), \\
        h' = (1 - z) \odot n + z \odot h

    input (N, I) or (I,); hx (N, H) or (H,) → h' of hx's shape.
    Keyword-only backend: "auto" (the native C++ step on the CPU when built: one call for
    the matvecs and gates), "native", "fused", or "reference"/"torch" (``functional``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)
        self.reset_after = check.flag(type(self).__name__, "reset_after", reset_after)
        self.backend = check_backend_name(type(self).__name__, backend)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        out = self._streaming_step(input, hx)  # the common inference call, cheaply
        if out is not None:
            return out  # (N, H)
        if autocast.enabled(self.weight_ih):
            return autocast.run(self._forward, self.weight_ih, input, hx)
        return self._forward(input, hx)

    def _forward(self, input: Tensor, hx: Tensor | None) -> Tensor:  # noqa: A002
        """``forward`` past the streaming fast path, without autocast."""
        x, unbatched = self._check_input(input)  # (N, I)
        h = self._check_state("hx", hx, x, unbatched)  # (N, H)
        w = self._checked_weights()
        kernel = self._kernel(x)
        if kernel is None:
            out = F.gru_cell(x, h, *w, reset_after=self.reset_after)  # (N, H)
        elif (
            kernel is native.NATIVE_LOOPS
            and not fused.traced()
            and not (
                torch.is_grad_enabled()
                and any(t is not None and t.requires_grad for t in (x, h, *w))
            )
        ):
            out = native.gru_cell(x, h, *w, reset_after=self.reset_after)  # (N, H), one C++ call
        else:  # one step of the fused loops: hand-written backward; the operator when traced
            name = "native" if kernel is native.NATIVE_LOOPS else "torch"
            seq = x.unsqueeze(0)  # (1, N, I)
            out = fused.gru_direction(
                name, seq, h, Weights(*w), None, reverse=False, reset_after=self.reset_after
            )[1]  # h_n (N, H): the one step's output
        return out.squeeze(0) if unbatched else out

    def _streaming_step(self, x: object, h: object) -> Tensor | None:
        """``forward`` of a batched CPU inference step, x (N, I) and h (N, H), as one native
        call (``native.gru_cell``). None (``forward`` runs in full) for anything else:
        autograd, autocast, tracing, or any input the kernel refuses (its own shape, dtype
        and device checks raise; ``forward`` then gives the proper error)."""
        if type(x) is not Tensor or type(h) is not Tensor or x.dim() != 2 or h.dim() != 2:
            return None
        if not x.is_cpu or self.backend not in ("auto", "native") or x.shape[1] != self.input_size:
            return None
        p = self._parameters  # one dict read instead of four Module.__getattr__ calls
        w_ih, w_hh, b_ih, b_hh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
        if w_ih is None or w_hh is None or (self.bias and (b_ih is None or b_hh is None)):
            return None
        if w_ih.shape != self._param_shapes["weight_ih"] or h.shape[-1] != self.hidden_size:
            return None  # a replaced weight, or a state of another size: the full checks
        if not native.streams((x, h, w_ih, w_hh, b_ih, b_hh)):
            return None
        try:  # the kernel checks every shape, dtype and device against x and h
            return native.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after=self.reset_after)
        except RuntimeError:
            return None

    def _kernel(self, x: Tensor) -> fused.Loops | None:
        """The fused loops this step runs through, or None for ``functional.gru_cell``
        (also under ``torch.func`` transforms: ``grukit.backends.under_torch_func``)."""
        if under_torch_func():
            return None
        if self.backend == "fused":
            return fused.TORCH_LOOPS
        if self.backend == "native":
            if not native.supports(_GRU_SPEC, x):
                raise ValueError(
                    f"GRUCell: backend 'native' expects CPU float32/float64 input, "
                    f"got {x.device.type}/{x.dtype}"
                )
            return native.NATIVE_LOOPS
        if self.backend == "auto" and native.supports(_GRU_SPEC, x) and native.available():
            return native.NATIVE_LOOPS
        return None  # "torch", "reference", or auto without the native kernel


class RNNCell(RNNCellBase[Tensor]):
    r"""One Elman step, :math:`h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`,
    ``grukit.functional.rnn_cell``. input (N, I) or (I,); hx (N, H) or (H,)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.nonlinearity = check.nonlinearity(type(self).__name__, nonlinearity)
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        if autocast.enabled(self.weight_ih):
            return autocast.run(self.forward, self.weight_ih, input, hx)
        x, unbatched = self._check_input(input)  # (N, I)
        h = self._check_state("hx", hx, x, unbatched)  # (N, H)
        out = F.rnn_cell(
            x,
            h,
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            nonlinearity=self.nonlinearity,
        )  # (N, H)
        return out.squeeze(0) if unbatched else out


class LSTMCell(RNNCellBase[tuple[Tensor, Tensor]]):
    r"""One LSTM step, ``grukit.functional.lstm_cell`` (gates i, f, g, o):
    :math:`c' = f \odot c + i \odot g,\ h' = o \odot \tanh(c')`.
    input (N, I) or (I,); hx = (h, c), each (N, H) or (H,) → (h', c')."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(
        self,
        input: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,  # noqa: A002
    ) -> tuple[Tensor, Tensor]:
        if autocast.enabled(self.weight_ih):
            return autocast.run(self.forward, self.weight_ih, input, hx)
        x, unbatched = self._check_input(input)  # (N, I)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(
                f"{type(self).__name__}: expected hx as a tuple (h_0, c_0), got {type(hx).__name__}"
            )
        h0, c0 = (None, None) if hx is None else hx
        h = self._check_state("h_0", h0, x, unbatched)  # (N, H)
        c = self._check_state("c_0", c0, x, unbatched)  # (N, H)
        h1, c1 = F.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h1.squeeze(0), c1.squeeze(0)) if unbatched else (h1, c1)
