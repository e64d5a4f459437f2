"""The contenders of the speed benchmark, built for one grid point on shared weights.

Shapes: T time, N batch, I input size, H hidden size.

Every contender runs the same one-layer GRU (reset_after=True, torch's weights) on
the same input x (T, N, I) and state h0 (1, N, H):

    torch.nn.GRU          the baseline every speed-up is measured against
    grukit[<backend>]     ``grukit.GRU(..., backend=name)`` for each available backend
                          (a backend that raises ValueError for the point is skipped)
    torch.nn.GRUCell,     the streaming step only (T = 1): one call of the cell
    grukit.GRUCell
    onnxruntime           ONNX Runtime's GRU operator (inference only; needs onnxruntime)
    openvino              OpenVINO's CPU runtime on the same ONNX graph, float32
                          (inference only; needs openvino)
    gemm-bound            the same GEMMs alone (``grukit.benchmark.gemm``)

A training step is forward + backward of the output against a fixed random gradient
g (T, N, H), with gradients for x and every parameter (``torch.autograd.grad``, so
nothing accumulates between calls).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import grukit
from grukit._checks import flag, positive_int

from .gemm import GemmBound
from .memory import saved_bytes
from .onnx_graph import GRUPeer
from .openvino import OpenVINOBF16GRU, OpenVINOGRU, openvino_available
from .ort import ORTGRU, ort_available

__all__ = [
    "BASELINE", "GEMM", "ORT", "OPENVINO", "PRECISIONS", "Contender", "GridPoint",
    "build_contenders",
]  # fmt: skip

BASELINE = "torch.nn.GRU"
ORT = "onnxruntime"
OPENVINO = "openvino"
GEMM = "gemm-bound"
#: The benchmark's precisions: float32, or bf16 — torch.nn.GRU and grukit under
#: torch.autocast("cpu", bfloat16), OpenVINO with its bf16 hint, ONNX Runtime in float32.
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class GridPoint:
    """One benchmark configuration: input size I, hidden size H, batch N, time T, and the
    layer's stacking: ``layers`` and ``bidirectional``."""

    I: int
    H: int
    N: int
    T: int
    layers: int = 1
    bidirectional: bool = False

    def __post_init__(self) -> None:
        for name in ("I", "H", "N", "T", "layers"):
            positive_int("GridPoint", name, getattr(self, name))
        flag("GridPoint", "bidirectional", self.bidirectional)

    @property
    def shape(self) -> str:
        """ "I, H, N, T", then ", L layers" and ", bidirectional" where they apply."""
        extra = (f", {self.layers} layers" if self.layers > 1 else "") + (
            ", bidirectional" if self.bidirectional else ""
        )
        return f"{self.I}, {self.H}, {self.N}, {self.T}{extra}"

    @property
    def label(self) -> str:
        extra = (f" L={self.layers}" if self.layers > 1 else "") + (
            " bidirectional" if self.bidirectional else ""
        )
        return f"I={self.I} H={self.H} N={self.N} T={self.T}{extra}"

    @property
    def one_layer(self) -> bool:
        """One unidirectional layer (where the GEMM bound and the cells apply)."""
        return self.layers == 1 and not self.bidirectional

    @property
    def streaming(self) -> bool:
        """One step of one sequence: the latency case."""
        return self.T == 1 and self.N == 1


@dataclass
class Contender:
    """One peer at one grid point.

    infer: a no-grad forward. train: forward + backward. output: the forward's output
    sequence as a (T, N, H) tensor, for the correctness check (None for the GEMM bound).
    memory: bytes saved for backward by one training forward (None where meaningless).
    """

    name: str
    infer: Callable[[], object] | None
    train: Callable[[], object] | None
    output: Callable[[], Tensor] | None
    memory: Callable[[], int] | None


def _under(bf16: bool, module: nn.Module) -> Callable[..., Any]:
    """``module`` itself in float32; under bfloat16 CPU autocast for the bf16 precision (a
    wrapper only then: even a disabled autocast context costs microseconds a call, which
    the one-step point would count)."""
    if not bf16:
        return module

    def call(*args: Tensor) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return module(*args)

    return call


def _layer_contender(
    name: str, m: nn.Module, x: Tensor, h0: Tensor, g: Tensor, bf16: bool = False
) -> Contender:
    params = list(m.parameters())
    xg = x.detach().clone().requires_grad_(True)  # (T, N, I)
    run = _under(bf16, m)

    @torch.no_grad()
    def infer() -> object:
        return run(x, h0)

    def forward() -> Tensor:
        out: Tensor = run(xg, h0)[0]  # (T, N, H)
        return out

    def train() -> object:
        return torch.autograd.grad(forward(), [xg, *params], g)

    def output() -> Tensor:
        with torch.no_grad():
            out: Tensor = run(x, h0)[0]  # (T, N, H)
        return out

    return Contender(name, infer, train, output, lambda: saved_bytes(forward, [xg, h0, g, *params]))


def _cell_contender(
    name: str, cell: nn.Module, x: Tensor, h0: Tensor, g: Tensor, bf16: bool = False
) -> Contender:
    params = list(cell.parameters())
    x1, h1, g1 = x[0], h0[0], g[0]  # (N, I), (N, H), (N, H)
    xg = x1.detach().clone().requires_grad_(True)
    run = _under(bf16, cell)

    @torch.no_grad()
    def infer() -> object:
        return run(x1, h1)

    def forward() -> Tensor:
        h: Tensor = run(xg, h1)  # (N, H)
        return h

    def train() -> object:
        return torch.autograd.grad(forward(), [xg, *params], g1)

    def output() -> Tensor:
        with torch.no_grad():
            h: Tensor = run(x1, h1)  # (N, H)
        return h.unsqueeze(0)  # (1, N, H)

    return Contender(
        name, infer, train, output, lambda: saved_bytes(forward, [xg, h1, g1, *params])
    )


def _peer_output(peer: GRUPeer, x: np.ndarray, h0: np.ndarray) -> Tensor:
    """A peer's output (T, N, H) as a tensor of its own (runtimes may reuse their buffers)."""
    return torch.from_numpy(peer(x, h0)[0].copy())


def build_contenders(
    point: GridPoint,
    *,
    threads: int,
    backends: list[str] | None = None,
    seed: int = 0,
    precision: str = "float32",
) -> tuple[list[Contender], list[str]]:
    """Every contender for ``point``, on one set of weights drawn with ``seed``.

    backends: grukit backends to include (default: ``grukit.available_backends()``).
    precision: one of ``PRECISIONS`` (bf16: the torch modules under bfloat16 autocast,
    OpenVINO with its bf16 hint, no GEMM bound).
    Returns (contenders, notes), the notes saying what was skipped and why.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"build_contenders: expected precision in {PRECISIONS}, got {precision!r}")
    bf16 = precision == "bf16"
    I, H, N, T = point.I, point.H, point.N, point.T
    L, D = point.layers, 2 if point.bidirectional else 1
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = nn.GRU(I, H, num_layers=L, bidirectional=point.bidirectional)
    x = torch.randn(T, N, I, generator=gen)  # (T, N, I)
    h0 = torch.randn(L * D, N, H, generator=gen)  # (L·D, N, H)
    g = torch.randn(T, N, D * H, generator=gen)  # (T, N, D·H) gradient of the output
    contenders = [_layer_contender(BASELINE, ref, x, h0, g, bf16)]
    notes: list[str] = []

    for name in backends if backends is not None else grukit.available_backends():
        layer = grukit.GRU(I, H, L, backend=name, bidirectional=point.bidirectional)
        layer.load_state_dict(ref.state_dict())
        try:
            with torch.no_grad():
                layer(x, h0)
        except ValueError as err:
            notes.append(f"{point.label}: grukit[{name}] skipped: {err}")
            continue
        contenders.append(_layer_contender(f"grukit[{name}]", layer, x, h0, g, bf16))

    if point.T == 1 and point.one_layer:
        cells = {"torch.nn.GRUCell": nn.GRUCell(I, H), "grukit.GRUCell": grukit.GRUCell(I, H)}
        for name, cell in cells.items():
            cell.load_state_dict({k[:-3]: v for k, v in ref.state_dict().items()})
            contenders.append(_cell_contender(name, cell, x, h0, g, bf16))

    runtimes = (
        (ORT, ort_available, ORTGRU, "onnxruntime not installed: ORT column n/a"),
        (
            OPENVINO,
            openvino_available,
            OpenVINOBF16GRU if bf16 else OpenVINOGRU,
            "openvino not installed: OpenVINO column n/a",
        ),
    )
    xn, hn = x.numpy(), h0.numpy()
    for name, available, peer_class, missing in runtimes:
        if not available():
            notes.append(f"{point.label}: {missing}")
            continue
        peer = peer_class.from_module(ref, seq_len=T, batch=N, threads=threads)
        contenders.append(
            Contender(
                name,
                partial(peer, xn, hn),
                None,
                partial(_peer_output, peer, xn, hn),
                None,
            )
        )

    if not point.one_layer:
        notes.append(f"{point.label}: the GEMM bound is for one unidirectional layer: n/a")
        return contenders, notes
    if bf16:
        notes.append(f"{point.label}: the GEMM bound is float32's: n/a under bf16")
        return contenders, notes
    h_prev = torch.randn(T, N, H, generator=gen)  # (T, N, H)
    dgi = torch.randn(T, N, 3 * H, generator=gen)  # (T, N, 3H)
    dgh = torch.randn(T, N, 3 * H, generator=gen)  # (T, N, 3H)
    w_ih, w_hh = ref.get_parameter("weight_ih_l0"), ref.get_parameter("weight_hh_l0")
    bound = GemmBound(x, h_prev, w_ih, w_hh, dgi, dgh)
    contenders.append(Contender(GEMM, bound.inference, bound.training, None, None))
    return contenders, notes
