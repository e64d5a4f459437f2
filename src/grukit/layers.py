"""Recurrent layers: GRU, RNN, LSTM — drop-in replacements for ``torch.nn``.

A layer owns its parameters (torch's names, shapes, gate order and init) and the
loop over layers and directions; a backend (``grukit.backends``) runs one
direction of one layer over time; the cell math is in ``grukit.functional``.

Shapes: T time, N batch, I input size, H hidden size, P LSTM projection size
(P = H without one), L layers, D directions (2 if bidirectional else 1).
    input   (T, N, I), or (N, T, I) with batch_first, or unbatched (T, I),
            or a PackedSequence (sorted or not), or a ``grukit.OneHot`` of token indices
            (T, N) / (N, T) / (T,) standing for one-hot input of I = num_classes
    h_0     (D·L, N, P), unbatched (D·L, P); LSTM also c_0 (D·L, N, H)
    output  (T, N, D·P) (batch_first: (N, T, D·P)), or a PackedSequence
    h_n     (D·L, N, P); LSTM also c_n (D·L, N, H)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from . import _autocast as autocast
from . import _checks as check
from ._torch_twin import TorchTwin
from .backends import (
    Backend,
    CellSpec,
    Noise,
    Weights,
    check_backend_name,
    native,
    resolve,
)
from .backends.native import both
from .onehot import OneHot

__all__ = ["RNNBase", "GRU", "RNN", "LSTM"]

_GATES = {"gru": 3, "layernorm_gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "lstm": 4}
_TORCH_MODE = {
    "gru": "GRU",
    "layernorm_gru": "LayerNormGRU",
    "rnn_tanh": "RNN_TANH",
    "rnn_relu": "RNN_RELU",
    "lstm": "LSTM",
}
#: Cells whose recurrence takes recurrent dropout and zoneout (``Noise``).
_NOISY = ("gru", "layernorm_gru")

State = tuple[Tensor, ...]

#: What ``hx`` and the returned state are: h (Tensor) for GRU and RNN, (h, c) for LSTM.
Hidden = TypeVar("Hidden", Tensor, tuple[Tensor, Tensor])


class RNNBase(TorchTwin, nn.Module, Generic[Hidden]):
    """Shared machinery of GRU, RNN and LSTM: parameters, checks, layers × directions.

    Args (as ``torch.nn.RNNBase``): kind ("gru" | "rnn_tanh" | "rnn_relu" | "lstm"),
    input_size, hidden_size, num_layers, bias, batch_first, dropout (between layers,
    training mode only), bidirectional, proj_size (LSTM only), device, dtype.
    Keyword-only: reset_after (GRU variant), backend ("auto" or a name from
    ``grukit.available_backends()``), and for the GRUs recurrent_dropout (one mask per
    sequence on the state W_hh multiplies; Gal & Ghahramani 2016) and zoneout (each unit
    keeps its previous value with this probability per step; Krueger et al. 2016), both
    random in training mode only (``grukit.functional.gru_cell``, ``zoneout``).

    Generic in ``Hidden``, the state's type: ``Tensor`` (GRU, RNN) or ``(h, c)`` (LSTM).
    """

    weight_ih_l0: Tensor  # every layer has it (registered in __init__ with the others)

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.kind = kind
        self.mode = _TORCH_MODE[kind]
        self.input_size = check.positive_int(owner, "input_size", input_size)
        self.hidden_size = check.positive_int(owner, "hidden_size", hidden_size)
        self.num_layers = check.positive_int(owner, "num_layers", num_layers)
        self.bias = check.flag(owner, "bias", bias)
        self.batch_first = check.flag(owner, "batch_first", batch_first)
        self.dropout = check.probability(owner, "dropout", dropout)
        self.bidirectional = check.flag(owner, "bidirectional", bidirectional)
        self.reset_after = check.flag(owner, "reset_after", reset_after)
        self.backend = check_backend_name(owner, backend)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise TypeError(f"{owner}: expected proj_size to be an int, got {type(proj_size)}")
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(
                f"{owner}: expected proj_size in [0, hidden_size={hidden_size}), got {proj_size}"
            )
        if proj_size and kind != "lstm":
            raise ValueError(f"{owner}: proj_size is only supported for LSTM, got {proj_size}")
        self.proj_size = proj_size
        self.recurrent_dropout = check.probability(owner, "recurrent_dropout", recurrent_dropout)
        self.zoneout = check.probability(owner, "zoneout", zoneout)
        if self.recurrent_dropout == 1.0:
            raise ValueError(f"{owner}: expected recurrent_dropout in [0, 1), got 1.0")
        if (self.recurrent_dropout or self.zoneout) and kind not in _NOISY:
            raise ValueError(
                f"{owner}: recurrent_dropout and zoneout are for GRU and LayerNormGRU, "
                f"got them for {self.mode}"
            )
        self.spec = CellSpec(kind, reset_after)

        gate_size = _GATES[kind] * hidden_size
        real_hidden = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        self._param_shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(num_layers):
            for direction in range(directions):
                layer_in = input_size if layer == 0 else real_hidden * directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes: list[tuple[str, tuple[int, ...]]] = [
                    ("weight_ih", (gate_size, layer_in)),
                    ("weight_hh", (gate_size, real_hidden)),
                ]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                if kind == "layernorm_gru":  # normalisation gains of gi and gh
                    shapes += [("ln_weight_ih", (gate_size,)), ("ln_weight_hh", (gate_size,))]
                names = []
                for stem, shape in shapes:
                    name = stem + suffix
                    weight = torch.empty(shape, device=device, dtype=dtype)
                    self.register_parameter(name, nn.Parameter(weight))
                    self._param_shapes[name] = shape
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    # --- parameters -----------------------------------------------------------------

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, drawn in torch's order (so a seeded
        grukit layer starts from the same weights as the seeded torch.nn layer);
        LayerNormGRU's normalisation gains start at 1."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, weight in self.named_parameters():
            if name.startswith("ln_weight"):
                nn.init.ones_(weight)
            else:
                nn.init.uniform_(weight, -stdv, stdv)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list[nn.Parameter]:
        """The parameters in ``_flat_weights_names`` order, as ``torch.nn.RNNBase`` has them."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """No-op, for code written against torch.nn (grukit keeps no flat buffer)."""

    def _check_parameters(self, owner: str) -> None:
        """Every parameter still a tensor of the shape, dtype and device the layer was built
        with (a user may have replaced one): checked before any kernel reads memory."""
        check.parameters(owner, self._parameters, self._param_shapes)

    def _weights(self, layer: int, direction: int) -> Weights:
        names = self._all_weights[layer * self.num_directions + direction]
        p = {n.rsplit("_l", 1)[0]: getattr(self, n) for n in names}  # stem → parameter
        return Weights(
            p["weight_ih"],
            p["weight_hh"],
            p.get("bias_ih"),
            p.get("bias_hh"),
            p.get("weight_hr"),
            p.get("ln_weight_ih"),
            p.get("ln_weight_hh"),
        )

    def _noise(self, rows: tuple[int, ...], batch: int, like: Tensor) -> Noise | None:
        """One direction's recurrent dropout and zoneout masks (``Noise``), or None when
        neither applies. rows: the output's leading shape, (T, N) padded or (S,) packed.
        Training: h_mask (N, H) Bernoulli(1 − p) / (1 − p), keep (*rows, H) Bernoulli(p)
        from torch's generator (seeded by ``torch.manual_seed``); keep is drawn as
        [u < p] with float32 u ~ U[0, 1) whatever the dtype (``torch.rand``: half the time
        of ``bernoulli_`` on the CPU, where it was a quarter of a small training step).
        Evaluation: no dropout, and zoneout's keep is p everywhere (the expectation)."""
        H = self.hidden_size
        h_mask = keep = None
        if self.recurrent_dropout and self.training:
            p = self.recurrent_dropout
            h_mask = like.new_empty(batch, H).bernoulli_(1 - p).div_(1 - p)  # (N, H)
        if self.zoneout:
            if self.training:  # (T, N, H) or (S, H)
                u = torch.rand(*rows, H, dtype=torch.float32, device=like.device)
                keep = u.lt_(self.zoneout).to(like.dtype)  # the same mask in every dtype
            else:
                keep = like.new_full((*rows, H), self.zoneout)
        return None if h_mask is None and keep is None else Noise(h_mask, keep)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _state_sizes(self) -> tuple[int, ...]:
        """Per-state feature sizes: (P,) for GRU/RNN h; (P, H) for LSTM (h, c)."""
        h = self.proj_size or self.hidden_size
        return (h, self.hidden_size) if self.kind == "lstm" else (h,)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("backend", "auto"),
        ):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        if self.kind in _NOISY and not self.reset_after:
            s += ", reset_after=False"
        for name in ("recurrent_dropout", "zoneout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)!r}"
        return s

    # --- forward ---------------------------------------------------------------------

    @overload
    def forward(
        self,
        input: Tensor | OneHot,  # noqa: A002 (torch's name)
        hx: Hidden | None = None,
    ) -> tuple[Tensor, Hidden]: ...

    @overload
    def forward(
        self,
        input: PackedSequence,  # noqa: A002
        hx: Hidden | None = None,
    ) -> tuple[PackedSequence, Hidden]: ...

    def forward(
        self,
        input: Tensor | PackedSequence | OneHot,  # noqa: A002
        hx: Hidden | None = None,
    ) -> tuple[Tensor | PackedSequence, Hidden]:
        """Run every layer and direction.

        Returns ``(output, h_n)``; LSTM ``(output, (h_n, c_n))``; output is a
        PackedSequence for packed input.

        Under ``torch.autocast`` the recurrence runs in the weights' dtype (float32), with
        autocast off inside, and the results come back in the input's dtype, as
        ``torch.nn.GRU``'s do: bfloat16 input gives bfloat16 output, float32 gives float32.
        """
        step = self._streaming_step(input, hx)  # generation's one-step call, cheaply
        if step is not None:  # a GRU: Hidden is Tensor
            state: Tensor | tuple[Tensor, Tensor] = step[1]
            return step[0], cast(Hidden, state)
        if autocast.enabled(self.weight_ih_l0):
            output, h_n = autocast.run(self._forward, self.weight_ih_l0, input, hx)
        else:
            output, h_n = self._forward(input, hx)
        # Hidden is (h, c) exactly when kind is "lstm" (class LSTM), else h: _forward's result.
        return output, cast(Hidden, h_n[0] if self.kind != "lstm" else (h_n[0], h_n[1]))

    if TYPE_CHECKING:  # torch types Module.__call__ as (...) -> Any; calls return forward's

        @overload
        def __call__(
            self,
            input: Tensor | OneHot,  # noqa: A002
            hx: Hidden | None = None,
        ) -> tuple[Tensor, Hidden]: ...

        @overload
        def __call__(
            self,
            input: PackedSequence,  # noqa: A002
            hx: Hidden | None = None,
        ) -> tuple[PackedSequence, Hidden]: ...

        def __call__(
            self,
            input: Tensor | PackedSequence | OneHot,  # noqa: A002
            hx: Hidden | None = None,
        ) -> tuple[Tensor | PackedSequence, Hidden]: ...

    def _streaming_step(self, x: object, hx: object) -> tuple[Tensor, Tensor] | None:
        """``forward`` of a one-step batched GRU call in CPU inference — what a generation
        loop does, ``GRU(x_t, h)`` with x_t (1, N, I) or (N, 1, I) batch_first — as one
        native call for every layer and direction (``native.gru_step``), so the layer
        costs about what ``GRUCell`` costs. None (``forward`` runs in full) for anything
        else: autograd, autocast, tracing, noise, dropout between layers, or any input the
        kernel refuses (its own shape, dtype and device checks raise; ``forward`` then
        gives the proper error)."""
        if self.kind != "gru" or type(x) is not Tensor or x.dim() != 3 or not x.is_cpu:
            return None
        if (x.shape[1] if self.batch_first else x.shape[0]) != 1 or self.zoneout:
            return None
        if self.backend not in ("auto", "native") or x.shape[2] != self.input_size:
            return None
        if self.training and self.dropout and self.num_layers > 1:
            return None
        if hx is not None and type(hx) is not Tensor:
            return None
        params: dict[str, nn.Parameter | None] = self._parameters
        if not native.streams((x, hx, *params.values())):
            return None
        weights = [params[n] for names in self._all_weights for n in names]
        try:
            return native.gru_step(
                x, hx, weights,  # type: ignore[arg-type]  # Parameters, checked by the kernel
                hidden_size=self.hidden_size, num_layers=self.num_layers,
                bidirectional=self.bidirectional, bias=self.bias,
                reset_after=self.reset_after, batch_first=self.batch_first,
            )  # (1, N, D·H) or (N, 1, D·H), (L·D, N, H)  # fmt: skip
        except (RuntimeError, TypeError):  # the kernel's checks, or a parameter set to None
            return None

    def _forward(
        self,
        input: Tensor | PackedSequence | OneHot,  # noqa: A002
        hx: object,
    ) -> tuple[Tensor | PackedSequence, State]:
        """``forward`` without autocast; the final state as a tuple (h_n,) or (h_n, c_n)."""
        owner = type(self).__name__
        self._check_parameters(owner)
        w0 = self.weight_ih_l0
        packed = input if isinstance(input, PackedSequence) else None
        batch_sizes: Tensor | None = None
        first: Tensor | OneHot  # the first layer's input, time-major
        if isinstance(input, OneHot):
            onehot, unbatched = self._onehot_input(owner, input)  # indices (T, N)
            batch = onehot.indices.shape[1]
            like = w0.new_empty(0, batch, self.input_size)  # dtype and device of the dense input
            first = onehot
        else:
            if packed is not None:
                x, batch_sizes = packed.data, packed.batch_sizes
                check.tensor(owner, "PackedSequence data", x)
                if x.dim() != 2:
                    raise ValueError(f"{owner}: expected 2-D PackedSequence data, got {x.dim()}-D")
                check.batch_sizes(owner, batch_sizes, x.shape[0])
                batch, unbatched = int(batch_sizes[0]), False
            else:
                x = check.tensor(owner, "input", input)
                if x.dim() not in (2, 3):
                    raise ValueError(
                        f"{owner}: expected input of 3 dimensions (T, N, I) or 2 (T, I) "
                        f"unbatched, got {x.dim()}-D of shape {tuple(x.shape)}"
                    )
                unbatched = x.dim() == 2
                if unbatched:
                    x = x.unsqueeze(1)  # (T, 1, I)
                elif self.batch_first:
                    x = x.transpose(0, 1)  # (T, N, I)
                if x.shape[0] == 0:
                    raise ValueError(f"{owner}: expected a non-empty sequence (T >= 1), got T = 0")
                batch = x.shape[1]
            check.like_weights(owner, "input", x, w0)
            if x.shape[-1] != self.input_size:
                raise ValueError(
                    f"{owner}: expected input with {self.input_size} features (input_size), "
                    f"got {x.shape[-1]}"
                )
            like = first = x
        states = self._initial_state(owner, hx, batch, unbatched, like)
        if packed is not None and packed.sorted_indices is not None:
            states = tuple(s.index_select(1, packed.sorted_indices) for s in states)

        noisy = bool((self.recurrent_dropout and self.training) or self.zoneout)
        spec = CellSpec(self.kind, self.reset_after, noisy)
        mod = resolve(owner, self.backend, spec, like)
        if isinstance(first, OneHot) and not mod.accepts_onehot:
            first = first.dense(w0.dtype)  # (T, N, I): this backend multiplies the one-hot rows
        rows = tuple(first.indices.shape if isinstance(first, OneHot) else first.shape[:-1])
        layer_in, finals = first, []
        D = self.num_directions
        for layer in range(self.num_layers):
            noises = [self._noise(rows, batch, w0) if noisy else None for _ in range(D)]
            results = self._directions(mod, spec, layer, layer_in, batch_sizes, states, noises)
            outs = [out for out, _ in results]
            finals += [fin for _, fin in results]
            output = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (…, D·P)
            if self.dropout and self.training and layer < self.num_layers - 1:
                output = nn.functional.dropout(output, self.dropout, training=True)
            layer_in = output
        h_n = tuple(torch.stack([f[k] for f in finals]) for k in range(len(states)))  # (D·L, N, ·)

        if packed is not None:
            if packed.unsorted_indices is not None:
                h_n = tuple(s.index_select(1, packed.unsorted_indices) for s in h_n)
            return (
                PackedSequence(output, batch_sizes, packed.sorted_indices, packed.unsorted_indices),
                h_n,
            )
        if unbatched:
            return output.squeeze(1), tuple(s.squeeze(1) for s in h_n)  # (T, D·P), (D·L, ·)
        return (output.transpose(0, 1) if self.batch_first else output), h_n  # (N, T, D·P)

    def _directions(
        self,
        mod: Backend,
        spec: CellSpec,
        layer: int,
        x: Tensor | OneHot,
        batch_sizes: Tensor | None,
        states: State,
        noises: list[Noise | None],
    ) -> Sequence[tuple[Tensor, State]]:
        """Every direction of ``layer`` on its input x: (output, final state) per direction,
        in direction order. A bidirectional GRU layer on the native backend runs its two
        directions at once, a thread each (``native/both.py`` says when)."""
        D = self.num_directions
        index = [layer * D + d for d in range(D)]  # of each direction's states and weights
        args = [(tuple(s[i] for s in states), self._weights(layer, d)) for d, i in enumerate(index)]
        if D == 2 and mod is native:
            n = states[0].shape[1]
            if both.applies(spec, x, batch_sizes, n, args[0][1].w_hh):
                return both.run_both(
                    spec, x, batch_sizes, (args[0][0], args[1][0]), (args[0][1], args[1][1]),
                    (noises[0], noises[1]),
                )  # fmt: skip
        return [
            mod.run(spec, x, batch_sizes, state, w, reverse=d == 1, noise=nz)
            for d, ((state, w), nz) in enumerate(zip(args, noises, strict=True))
        ]

    def _onehot_input(self, owner: str, input: OneHot) -> tuple[OneHot, bool]:  # noqa: A002
        """One-hot input as indices checked and put time-major: (OneHot (T, N), unbatched).
        Backends that accept ``OneHot`` (``accepts_onehot``) gather W_ih's columns; the
        others get the dense one-hot tensor. Same result as ``forward(input.dense(dtype))``."""
        input.validate(owner)
        if input.num_classes != self.input_size:
            raise ValueError(
                f"{owner}: expected input with {self.input_size} features (input_size), "
                f"got OneHot of {input.num_classes} classes"
            )
        idx, w0 = input.indices, self.weight_ih_l0
        if idx.dim() not in (1, 2):
            raise ValueError(
                f"{owner}: expected OneHot indices of 2 dimensions (T, N) or 1 (T,) unbatched, "
                f"got {idx.dim()}-D of shape {tuple(idx.shape)}"
            )
        if idx.device != w0.device:
            raise ValueError(
                f"{owner}: expected OneHot indices on device {w0.device} (the weights'), "
                f"got {idx.device}"
            )
        unbatched = idx.dim() == 1
        x = input.unsqueeze() if unbatched else input.transpose() if self.batch_first else input
        if x.indices.shape[0] == 0:
            raise ValueError(f"{owner}: expected a non-empty sequence (T >= 1), got T = 0")
        return x, unbatched

    def _initial_state(
        self, owner: str, hx: object, batch: int, unbatched: bool, x: Tensor
    ) -> State:
        """Zeros when hx is None, else hx checked and given a batch axis: (D·L, N, ·)…"""
        rows = self.num_layers * self.num_directions
        sizes = self._state_sizes
        if hx is None:
            return tuple(x.new_zeros(rows, batch, size) for size in sizes)
        names = ("h_0", "c_0")
        if self.kind == "lstm":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(
                    f"{owner}: expected hx as a tuple (h_0, c_0), got {type(hx).__name__}"
                )
            parts = tuple(hx)
        else:
            parts = (hx,)
        out = []
        for name, value, size in zip(names, parts, sizes, strict=False):
            part = check.tensor(owner, name, value)
            expected = (rows, size) if unbatched else (rows, batch, size)
            if part.dim() != len(expected):
                kind = "unbatched" if unbatched else "batched"
                raise ValueError(
                    f"{owner}: expected {len(expected)}-D {name} for {kind} input "
                    f"{expected}, got {part.dim()}-D of shape {tuple(part.shape)}"
                )
            check.shape(owner, name, part, expected)
            check.like_weights(owner, name, part, self.weight_ih_l0)
            out.append(part.unsqueeze(1) if unbatched else part)
        return tuple(out)


class GRU(RNNBase[Tensor]):
    r"""Multi-layer gated recurrent unit (Cho et al. 2014, arXiv:1406.1078).

    For each element of the input sequence, each layer computes
    (``grukit.functional.gru_cell``; gate order r, z, n as torch):

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
              \quad (\text{reset\_after=True, torch}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
              \quad (\text{reset\_after=False, Cho et al., d2l}) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Arguments and shapes are ``torch.nn.GRU``'s (see the module docstring), plus
    keyword-only ``reset_after``, ``backend``, ``recurrent_dropout`` and ``zoneout``
    (training-mode regularisers of the recurrence, see ``RNNBase``; with zoneout the
    evaluation-mode state is :math:`h_t = p\,h_{t-1} + (1-p)\,h'_t`, its expectation).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__(
            "gru",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            reset_after=reset_after,
            backend=backend,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )


class RNN(RNNBase[Tensor]):
    r"""Multi-layer Elman RNN: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`,
    :math:`\phi` = tanh or relu (``grukit.functional.rnn_cell``).

    Arguments (``torch.nn.RNN``'s order, nonlinearity fourth) and shapes as torch.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str = "auto",
    ) -> None:
        self.nonlinearity = check.nonlinearity(type(self).__name__, nonlinearity)
        super().__init__(
            f"rnn_{nonlinearity}",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            backend=backend,
        )


class LSTM(RNNBase[tuple[Tensor, Tensor]]):
    r"""Multi-layer long short-term memory (``grukit.functional.lstm_cell``; gates i, f, g, o).

    .. math::
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)

    with :math:`h_t \leftarrow W_{hr} h_t` when ``proj_size > 0``. Arguments and shapes
    as ``torch.nn.LSTM``; ``hx`` and the returned state are ``(h, c)`` tuples.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            "lstm",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            backend=backend,
        )
