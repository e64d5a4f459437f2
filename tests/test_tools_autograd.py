"""Autograd tools on grukit's fast path, against ``torch.nn`` on the same weights.

Double backward (``gradgradcheck``, as PyTorch's own module tests hold nn.GRU and
nn.GRUCell to; a gradient penalty equal to nn.GRU's, 1e-10 in float64), ``torch.func``
(grad, jvp, vmap, functional_call; 1e-10), autocast (nn's output dtype; values of the
float32 computation), and the ``torch.nn`` conveniences (``_flat_weights``,
``from_torch``/``to_torch``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import grukit
from tool_grid import ALL, Case, assert_same, first, flat, inputs

FAST = ["native", "fused"]
F64 = torch.float64


def _double(case: Case) -> tuple[nn.Module, nn.Module]:
    mod, twin = case.make()
    return mod.double(), twin.double()


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("backend", FAST)
def test_gradgradcheck_gru_layer(backend: str, reset_after: bool) -> None:
    torch.manual_seed(0)
    gru = grukit.GRU(2, 3, bidirectional=True, backend=backend, reset_after=reset_after).double()
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=F64, requires_grad=True)
    params = tuple(gru.parameters())

    def f(x: torch.Tensor, h0: torch.Tensor, *p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        names = [n for n, _ in gru.named_parameters()]
        out, h = torch.func.functional_call(gru, dict(zip(names, p, strict=True)), (x, h0))
        return out, h

    # functional_call keeps the fast path (no torch.func transform is active)
    assert torch.autograd.gradgradcheck(f, (x, h0, *params))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("backend", FAST)
def test_gradgradcheck_gru_cell(backend: str, reset_after: bool) -> None:
    torch.manual_seed(0)
    cell = grukit.GRUCell(2, 3, backend=backend, reset_after=reset_after).double()
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    h = torch.randn(2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, h: cell(x, h), (x, h))


def test_gradgradcheck_packed_input() -> None:
    torch.manual_seed(0)
    gru = grukit.GRU(2, 3, backend="native").double()
    x = torch.randn(4, 3, 2, dtype=F64, requires_grad=True)

    def f(x: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, [4, 2, 3], enforce_sorted=False)
        return gru(packed)[0].data

    assert torch.autograd.gradgradcheck(f, (x,))


def _penalised_grads(mod: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of loss + ‖∂loss/∂x‖² (a gradient penalty, as WGAN-GP) by parameter."""
    x = x.detach().clone().requires_grad_()
    loss = first(mod(x)).tanh().sum()
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    (loss + gx.pow(2).sum()).backward()
    grads = [p.grad.clone() for p in mod.parameters()]
    mod.zero_grad()
    return grads


@pytest.mark.parametrize("case", [c for c in ALL if "reference" not in c.name], ids=str)
def test_gradient_penalty_equals_torch_nn(case: Case) -> None:
    """The GRU's term is in the penalty (once_differentiable silently dropped it)."""
    mod, twin = _double(case)
    x = inputs(case, 4, 3, F64)
    for got, want in zip(_penalised_grads(mod, x), _penalised_grads(twin, x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_torch_func_grad_and_jvp_equal_torch_nn(case: Case) -> None:
    mod, twin = _double(case)
    x, t = inputs(case, 4, 3, F64), inputs(case, 4, 3, F64).flip(0)

    def loss(m: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
        return first(torch.func.functional_call(m, params, (x,))).pow(2).sum()

    got = torch.func.grad(lambda p: loss(mod, p, x))(dict(mod.named_parameters()))
    want = torch.func.grad(lambda p: loss(twin, p, x))(dict(twin.named_parameters()))
    for name in got:
        torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-10, msg=name)
    _, jvp_got = torch.func.jvp(lambda x: first(mod(x)), (x,), (t,))
    _, jvp_want = torch.func.jvp(lambda x: first(twin(x)), (x,), (t,))
    torch.testing.assert_close(jvp_got, jvp_want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_vmap_over_a_batch_of_sequences(case: Case) -> None:
    """vmap over unbatched sequences equals the batched call of the torch.nn twin
    (``vmap`` of ``nn.GRU`` itself raises: no batching rule for aten::gru)."""
    mod, twin = _double(case)
    xs = inputs(case, 4, 3, F64)
    dim = 0 if case.cell or getattr(mod, "batch_first", False) else 1  # the batch axis
    got = torch.func.vmap(lambda x: first(mod(x)), in_dims=dim, out_dims=dim)(xs)
    torch.testing.assert_close(got, first(twin(xs)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", ALL, ids=str)
def test_autocast_returns_the_input_dtype_and_the_float32_values(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CPU bf16 autocast grukit computes in float32 and returns the input's dtype, as
    nn.GRU, nn.GRUCell and nn.LSTMCell do (nn.RNN / RNNCell return bfloat16 for float32
    input, nn.LSTM fails in oneDNN): values within bf16 rounding of nn's where nn runs.
    With bfloat16 GEMMs off, as on CPUs without bfloat16 units (on: test_autocast_bf16)."""
    monkeypatch.setenv("GRUKIT_BF16_GEMMS", "0")
    mod, twin = case.make()
    x = inputs(case, 4, 3)
    exact = mod(x)
    for dtype in (torch.float32, torch.bfloat16):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = mod(x.to(dtype))
            try:
                want = twin(x.to(dtype))
            except RuntimeError:  # nn.LSTM: "could not create a primitive descriptor"
                assert case.name.startswith("LSTM-")
                want = None
        assert all(t.dtype == dtype for t in flat(got))
        if dtype == torch.float32:  # computed in float32: the exact values
            assert_same(got, exact, tol=1e-6)
        if want is not None:
            if case.name.startswith(("GRU", "LSTMCell")):
                assert [t.dtype for t in flat(got)] == [t.dtype for t in flat(want)]
            for a, b in zip(flat(got), flat(want), strict=True):
                torch.testing.assert_close(a.float(), b.float(), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("backend", ["native", "fused", "torch", "reference"])
def test_empty_batch_returns_empty_outputs_like_torch(backend: str) -> None:
    torch.manual_seed(0)
    mod, twin = grukit.GRU(3, 4, num_layers=2, backend=backend), nn.GRU(3, 4, num_layers=2)
    twin.load_state_dict(mod.state_dict())
    x = torch.randn(5, 0, 3, requires_grad=True)
    got, want = mod(x), twin(x)
    assert [t.shape for t in got] == [t.shape for t in want]
    (got[0].sum() + got[1].sum()).backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize(
    ("make", "name", "shape"),
    [
        (lambda: grukit.GRUCell(4, 256), "weight_hh", (768, 1)),  # a Bus error in C++ before
        (lambda: grukit.GRUCell(4, 8), "bias_hh", (3,)),  # silently returned numbers before
        (lambda: grukit.GRU(4, 8, num_layers=2), "weight_hh_l1", (24, 7)),
        (lambda: grukit.LSTM(4, 8), "weight_ih_l0", (32, 5)),
    ],
)
def test_replaced_parameter_of_wrong_shape_raises(make, name: str, shape: tuple) -> None:
    mod = make()
    setattr(mod, name, nn.Parameter(torch.randn(*shape)))
    x = torch.randn(2, 4) if "Cell" in type(mod).__name__ else torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match=f"expected parameter {name} of shape"):
        mod(x)
    with torch.no_grad(), pytest.raises(ValueError, match=name):
        mod(x)


def test_flat_weights_and_torch_conversion() -> None:
    torch.manual_seed(0)
    mod = grukit.GRU(3, 4, num_layers=2, bidirectional=True)
    twin = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    assert mod._flat_weights_names == twin._flat_weights_names
    pairs = zip(mod._flat_weights, mod._flat_weights_names, strict=True)
    assert all(p is getattr(mod, n) for p, n in pairs)
    converted = mod.to_torch()
    assert type(converted) is nn.GRU
    back = grukit.GRU.from_torch(converted, backend="fused")
    x = torch.randn(5, 2, 3)
    assert_same(converted(x), mod(x), tol=1e-6)
    assert_same(back(x), mod(x), tol=1e-6)
    cell = grukit.GRUCell.from_torch(nn.GRUCell(3, 4))
    assert isinstance(cell, grukit.GRUCell)
    with pytest.raises(TypeError, match="GRU.from_torch: expected a torch.nn.GRU"):
        grukit.GRU.from_torch(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="reset_after"):
        grukit.GRU(3, 4, reset_after=False).to_torch()
