"""MinGRU's two fast recurrences against the step loop, outputs and gradients: the C++
operator ``grukit::mingru_scan`` (hand-written backward, its double backward, vmap, errors)
and the chunked log-space scan ``grukit.functional.mingru_scan`` (every chunk size,
T = 4096), 1e-10 in float64 (issue 18)."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from torch import Tensor

from grukit import functional as F
from grukit.backends import mingru_ops
from grukit.variants.mingru import MinGRU

pytestmark = pytest.mark.usefixtures("one_thread")


def loop(gi: Tensor, h0: Tensor) -> Tensor:
    """The oracle: h_t = a_t ⊙ h_{t−1} + b_t step by step. gi (T, N, 2H), h0 (N, H)."""
    a, b = F.mingru_coefficients(gi)  # 2 × (T, N, H)
    h, outs = h0, []
    for t in range(gi.shape[0]):
        h = a[t] * h + b[t]
        outs.append(h)
    return torch.stack(outs)  # (T, N, H)


def grads(scan: object, gi: Tensor, h0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """out and d/dgi, d/dh0 of a loss that weights every output differently."""
    gi, h0 = (t.detach().requires_grad_(True) for t in (gi, h0))
    out = scan(gi, h0)  # type: ignore[operator]
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    dgi, dh0 = torch.autograd.grad((out * w).sum() + out[-1].square().sum(), (gi, h0))
    return out.detach(), dgi, dh0


def inputs(
    T: int, N: int = 2, H: int = 5, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(T)
    gi = torch.randn(T, N, 2 * H, generator=g, dtype=dtype) * 2
    return gi, torch.randn(N, H, generator=g, dtype=dtype) * 3


@pytest.mark.parametrize("T,chunk", [(1, 32), (7, 3), (64, 1), (100, 32), (4096, 32)])
def test_chunked_log_space_scan_equals_the_loop(T: int, chunk: int) -> None:
    gi, h0 = inputs(T)
    got = grads(lambda g, h: F.mingru_scan(g, h, chunk), gi, h0)
    want = grads(loop, gi, h0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="mingru_scan: expected chunk >= 1, got 0"):
        F.mingru_scan(*inputs(3), chunk=0)


@pytest.mark.usefixtures("native_kernel")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T,N,H", [(1, 1, 3), (9, 3, 17), (4096, 2, 8)])
def test_operator_equals_the_loop(dtype: torch.dtype, T: int, N: int, H: int) -> None:
    gi, h0 = inputs(T, N, H, dtype)
    assert mingru_ops.runs(gi, h0)
    tol = {torch.float32: 1e-5, torch.float64: 1e-10}[dtype]
    got = grads(torch.ops.grukit.mingru_scan, gi, h0)
    want = grads(loop, gi, h0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol)


@pytest.mark.usefixtures("native_kernel")
def test_operator_double_backward_is_exact() -> None:
    gi, h0 = (t.requires_grad_(True) for t in inputs(6, 2, 3))
    assert torch.autograd.gradgradcheck(torch.ops.grukit.mingru_scan, (gi, h0))
    m = MinGRU(3, 4, num_layers=2, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: m(x)[0], (x,))


def test_module_under_vmap_of_grad_uses_the_chunked_scan() -> None:
    """torch.func transforms run the torch-operation scan (the operator has no batching
    rule): per-sequence gradients equal those of the sequential mode."""
    m = MinGRU(3, 4, dtype=torch.float64)
    params = {n: p.detach() for n, p in m.named_parameters()}
    xs = torch.randn(3, 6, 3, dtype=torch.float64)  # 3 unbatched sequences (T, I)

    def loss(p: dict[str, Tensor], x: Tensor) -> Tensor:
        out: Tensor = torch.func.functional_call(m, p, (x,))[0]
        return out.square().sum()

    got = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, xs)
    m.mode = "sequential"
    for i, x in enumerate(xs):
        want = torch.func.grad(loss)(params, x)
        for name in params:
            torch.testing.assert_close(got[name][i], want[name], rtol=1e-10, atol=1e-10)


def test_module_without_the_operator_equals_sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the operator cannot run (other devices, no compiler), the parallel mode is the
    chunked scan: the same numbers, outputs and every gradient, to 1e-10 at T = 4096."""
    monkeypatch.setattr(mingru_ops, "runs", lambda gi, h0: False)
    m = MinGRU(3, 4, dtype=torch.float64)
    x = torch.randn(4096, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    results = []
    for mode in ("parallel", "sequential"):
        m.mode = mode
        out, h_n = m(x, h0)
        loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
        results.append((out, *torch.autograd.grad(loss + h_n.sum(), (x, h0, *m.parameters()))))
    for p, s in zip(*results, strict=True):
        torch.testing.assert_close(p, s, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.zeros(2, 1, 3), torch.zeros(1, 1)), "gi of shape \\(T, N, 2H\\)"),
        ((torch.zeros(2, 1, 4), torch.zeros(1, 3)), "h0 of shape \\[1, 2\\]"),
        ((torch.zeros(2, 1, 4), torch.zeros(1, 2).double()), "h0 of dtype Float"),
        ((torch.zeros(2, 1, 4).half(), torch.zeros(1, 2).half()), "gi of dtype float32 or float64"),
    ],
)
def test_kernel_checks_its_arguments(
    native_kernel: ModuleType, args: tuple[Tensor, ...], match: str
) -> None:
    with pytest.raises(RuntimeError, match=f"mingru_forward: expected {match}"):
        native_kernel.mingru_forward(*args)
