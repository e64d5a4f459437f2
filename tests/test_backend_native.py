"""The "native" C++ backend equals the reference backend (float64, 1e-10); its streaming
GRUCell step equals ``grukit.functional.gru_cell``; without a compiler "auto" falls back.

tests/conftest.py builds the kernel once per run, at session start (about a minute, cached
afterwards); these tests skip where it is unavailable, and fail the run with
GRUKIT_REQUIRE_NATIVE=1.
"""

from __future__ import annotations

import pytest
import torch

import grukit
from grukit import functional as F
from grukit.backends import CellSpec, fused, native, resolve
from grukit.backends.native import build
from test_backend_fused import CONFIGS, TOL, assert_layer_matches_reference

pytestmark = pytest.mark.usefixtures("native_kernel")  # skips where it is unavailable


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_native_layer_matches_reference(config: tuple) -> None:
    assert_layer_matches_reference("native", config)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_native_loops(reset_after: bool, reverse: bool) -> None:
    torch.manual_seed(1)
    I, H = 2, 5  # H not a multiple of the vector width: exercises the partial tail
    batch_sizes = torch.tensor([3, 2, 2, 1])
    S, N = int(batch_sizes.sum()), int(batch_sizes[0])
    args = [
        torch.randn(*s, dtype=torch.float64, requires_grad=True)
        for s in ((S, I), (N, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))
    ]

    def f(*a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fused.GRUFunction.apply(*a, batch_sizes, reverse, reset_after, native.NATIVE_LOOPS)

    assert torch.autograd.gradcheck(f, args)


def test_native_matches_torch_gru_float32() -> None:
    torch.manual_seed(3)
    ref = torch.nn.GRU(7, 33, batch_first=True)
    fast = grukit.GRU(7, 33, batch_first=True, backend="native")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 9, 7)
    for got, want in zip(fast(x), ref(x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_packed_step_products_float32_match_float64_reference(reset_after: bool) -> None:
    """float32 over enough steps and width runs the per-step products on the packed kernel
    (gemm.h, where the build has AVX-512 or AVX2): H = 130 leaves a partial panel of
    columns (3H = 390 and H = 130 are multiples of none of the panel widths 48, 32, 24, 16),
    N = 11 a partial block of rows (AVX-512 8 + 3; AVX2 4 + 4 + 3, 6 + 5), and packed
    lengths change the rows from step to step. Outputs and every gradient equal the
    float64 reference within float32 rounding (1e-4 relative, 1e-5 absolute)."""
    torch.manual_seed(5)
    I, H, N, T = 6, 130, 11, 9
    kw = dict(bidirectional=True, reset_after=reset_after)
    fast = grukit.GRU(I, H, backend="native", **kw)
    ref = grukit.GRU(I, H, backend="reference", dtype=torch.float64, **kw)
    ref.load_state_dict({k: v.double() for k, v in fast.state_dict().items()})
    x, h0 = torch.randn(T, N, I), torch.randn(2, N, H)
    lengths = torch.tensor([9, 4, 9, 7, 5, 9, 1, 8, 9, 6, 3])  # unsorted
    results = []
    for layer, dtype in ((fast, torch.float32), (ref, torch.float64)):
        xs = x.to(dtype).detach().requires_grad_()
        hs = h0.to(dtype).detach().requires_grad_()
        packed = torch.nn.utils.rnn.pack_padded_sequence(xs, lengths, enforce_sorted=False)
        out, h_n = layer(packed, hs)
        w = torch.linspace(-1, 1, out.data.numel(), dtype=dtype).view_as(out.data)
        ((out.data * w).sum() + h_n.sum()).backward()
        grads = [xs.grad, hs.grad] + [p.grad for p in layer.parameters()]
        results.append([out.data, h_n, *grads])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)
    kernel = build.load()
    assert kernel.packed_gemm() == (kernel.cpu_capability() in ("AVX512", "AVX2"))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [None, 1, 3])
def test_streaming_cell_equals_functional(reset_after: bool, bias: bool, batch: int | None) -> None:
    torch.manual_seed(4)
    cell = grukit.GRUCell(6, 10, bias=bias, reset_after=reset_after, dtype=torch.float64)
    shape = () if batch is None else (batch,)
    x, h = torch.randn(*shape, 6, dtype=torch.float64), torch.randn(*shape, 10, dtype=torch.float64)
    want = F.gru_cell(
        x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, reset_after=reset_after
    )
    with torch.no_grad():
        assert cell._kernel(x) is native.NATIVE_LOOPS
        got = cell(x, h)
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=TOL)


def test_streaming_cell_float32_equals_torch_and_trains() -> None:
    torch.manual_seed(5)
    ref = torch.nn.GRUCell(64, 128)
    cell = grukit.GRUCell(64, 128, backend="native")
    cell.load_state_dict(ref.state_dict())
    x, h = torch.randn(1, 64), torch.randn(1, 128)
    with torch.no_grad():
        torch.testing.assert_close(cell(x, h), ref(x, h), rtol=1e-5, atol=1e-6)
    cell(x, h).sum().backward()  # with grad: one step of the fused Function
    ref(x, h).sum().backward()
    torch.testing.assert_close(cell.weight_hh.grad, ref.weight_hh.grad, rtol=1e-4, atol=1e-5)


def test_streaming_cell_gradients_float64() -> None:
    torch.manual_seed(6)
    cell = grukit.GRUCell(3, 4, reset_after=False, dtype=torch.float64, backend="native")
    ref = grukit.GRUCell(3, 4, reset_after=False, dtype=torch.float64, backend="reference")
    ref.load_state_dict(cell.state_dict())
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    for m in (cell, ref):
        (m(x, h) ** 2).sum().backward()
    for a, b in zip(cell.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=TOL)


def test_native_cell_refuses_unsupported_dtype() -> None:
    cell = grukit.GRUCell(2, 3, backend="native", dtype=torch.float16)
    with pytest.raises(ValueError, match="GRUCell: backend 'native'"):
        cell(torch.zeros(1, 2, dtype=torch.float16))


def test_auto_prefers_native_for_cpu_gru() -> None:
    x = torch.zeros(2, 1, 3)
    assert resolve("GRU", "auto", CellSpec("gru"), x) is native
    assert resolve("GRU", "auto", CellSpec("gru", reset_after=False), x) is native
    assert resolve("LSTM", "auto", CellSpec("lstm"), x).name == "torch"


def test_no_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setattr(build, "compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert not native.available()
    assert "no C++ compiler" in (build.failure() or "")
    x = torch.zeros(2, 1, 3)
    assert resolve("GRU", "auto", CellSpec("gru", reset_after=False), x) is fused
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert not native.available()
