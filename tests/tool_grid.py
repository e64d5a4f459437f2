"""The modules the PyTorch-tool tests (test_tools_*.py) run: every kind on every backend
that computes it, each beside its ``torch.nn`` twin on the same weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import grukit


@dataclass(frozen=True)
class Case:
    """A grukit module, the torch.nn module computing the same function (None for the GRU
    with reset_after=False: the reference backend is then the oracle), and inputs."""

    name: str
    make: Callable[[], tuple[nn.Module, nn.Module]]
    cell: bool = False  # input (N, I) and state (N, H) instead of (T, N, I)

    def __str__(self) -> str:
        return self.name


I, H = 3, 5


def _pair(grukit_cls: type, torch_cls: type | None, backend: str, **kw: object) -> Callable:
    def make() -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(0)
        mod = grukit_cls(I, H, backend=backend, **kw)
        if torch_cls is None:  # reset_after=False: the reference backend is the oracle
            twin = grukit_cls(I, H, backend="reference", **kw)
        else:
            plain = {k: v for k, v in kw.items() if k != "reset_after"}
            twin = torch_cls(I, H, **plain)
        twin.load_state_dict(mod.state_dict())
        return mod, twin

    return make


def _cell(grukit_cls: type, torch_cls: type, **kw: object) -> Callable:
    def make() -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(0)
        mod = grukit_cls(I, H, **kw)
        twin = torch_cls(I, H)
        twin.load_state_dict(mod.state_dict())
        return mod, twin

    return make


# Two layers and both directions where the layer loop is cheap to trace (the fast path is
# one operator per direction); one layer elsewhere (torch.compile traces each scan body).
LAYERS = [
    Case("GRU-native", _pair(grukit.GRU, nn.GRU, "native", num_layers=2, bidirectional=True)),
    Case("GRU-fused", _pair(grukit.GRU, nn.GRU, "fused", bidirectional=True)),
    Case("GRU-torch", _pair(grukit.GRU, nn.GRU, "torch", bidirectional=True)),
    Case("GRU-reference", _pair(grukit.GRU, nn.GRU, "reference")),
]
LAYERS += [
    Case(f"GRU-cho-{b}", _pair(grukit.GRU, None, b, reset_after=False, batch_first=True))
    for b in ("native", "fused")
]
LAYERS += [
    Case(f"{cls.__name__}-{b}", _pair(cls, tcls, b, bidirectional=b == "torch"))
    for cls, tcls in ((grukit.RNN, nn.RNN), (grukit.LSTM, nn.LSTM))
    for b in ("torch", "reference")
]
CELLS = [
    Case(f"GRUCell-{b}", _cell(grukit.GRUCell, nn.GRUCell, backend=b), cell=True)
    for b in ("native", "fused", "reference")
]
CELLS += [
    Case("RNNCell", _cell(grukit.RNNCell, nn.RNNCell), cell=True),
    Case("LSTMCell", _cell(grukit.LSTMCell, nn.LSTMCell), cell=True),
]
ALL = LAYERS + CELLS
#: One case per code path, for the slow tools (aot_eager training, torch.export).
SOME = [
    c
    for c in ALL
    if c.name
    in {
        "GRU-native",
        "GRU-cho-fused",
        "GRU-reference",
        "LSTM-torch",
        "RNN-torch",
        "GRUCell-native",
        "LSTMCell",
    }
]


def inputs(case: Case, T: int, N: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(T, N, I) for layers, (N, I) for cells."""
    g = torch.Generator().manual_seed(T * 100 + N)
    shape = (N, I) if case.cell else (T, N, I)
    return torch.randn(*shape, generator=g, dtype=dtype)


def first(out: object) -> torch.Tensor:
    """The output tensor of a layer (output, state) or a cell (h, or (h, c))."""
    return out[0] if isinstance(out, tuple) else out  # type: ignore[return-value]


def flat(out: object) -> list[torch.Tensor]:
    """Every tensor a module returned, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in flat(item)]  # type: ignore[union-attr]


def assert_same(got: object, want: object, tol: float = 1e-5) -> None:
    for a, b in zip(flat(got), flat(want), strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
