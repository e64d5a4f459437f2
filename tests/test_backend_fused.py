"""The "fused" backend equals the reference backend (float64, 1e-10), forward and gradients.

``assert_layer_matches_reference`` is shared with ``test_backend_native.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit.backends import CellSpec, Weights, fused, reference

TOL = 1e-10  # float64: the same function up to rounding order

#: (layers, bidirectional, batch_first, bias, input form, reset_after)
CONFIGS = [
    (1, False, False, True, "padded", True),
    (1, False, False, True, "padded", False),
    (2, True, False, True, "padded", True),
    (3, True, True, False, "padded", False),
    (2, False, True, True, "unbatched", True),
    (1, True, False, False, "unbatched", False),
    (2, True, False, True, "packed", True),
    (3, True, False, True, "packed", False),
    (1, False, True, False, "packed", True),
]


def _outputs(model: grukit.GRU, form: str, x: torch.Tensor, lengths: list[int], h0: torch.Tensor):
    """Forward, then gradients of a non-trivial loss w.r.t. input, h0 and every parameter."""
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    if form == "packed":
        packed = pack_padded_sequence(
            x, lengths, batch_first=model.batch_first, enforce_sorted=False
        )
        out, h_n = model(packed, h0)
        out, _ = pad_packed_sequence(out, batch_first=model.batch_first)
    else:
        out, h_n = model(x, h0)
    loss = (out * torch.sin(out)).sum() + (h_n**3).sum()
    grads = torch.autograd.grad(loss, [x, h0, *model.parameters()])
    return [out, h_n, *grads]


def assert_layer_matches_reference(backend: str, config: tuple, *, seed: int = 0) -> None:
    layers, bidir, batch_first, bias, form, reset_after = config
    torch.manual_seed(seed)
    I, H, N, T = 3, 5, 4, 6
    kwargs = dict(
        num_layers=layers,
        bidirectional=bidir,
        batch_first=batch_first,
        bias=bias,
        dtype=torch.float64,
        reset_after=reset_after,
    )
    fast = grukit.GRU(I, H, backend=backend, **kwargs)
    ref = grukit.GRU(I, H, backend="reference", **kwargs)
    ref.load_state_dict(fast.state_dict())
    D = 2 if bidir else 1
    if form == "unbatched":
        x, h0 = (
            torch.randn(T, I, dtype=torch.float64),
            torch.randn(D * layers, H, dtype=torch.float64),
        )
    else:
        shape = (N, T, I) if batch_first else (T, N, I)
        x, h0 = (
            torch.randn(shape, dtype=torch.float64),
            torch.randn(D * layers, N, H, dtype=torch.float64),
        )
    lengths = [4, 6, 1, 3]  # unsorted, one of length 1
    got = _outputs(fast, form, x, lengths, h0)
    want = _outputs(ref, form, x, lengths, h0)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=0, atol=TOL)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_fused_layer_matches_reference(config: tuple) -> None:
    assert_layer_matches_reference("fused", config)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_fused_function(reset_after: bool, reverse: bool, bias: bool) -> None:
    torch.manual_seed(1)
    I, H = 2, 3
    batch_sizes = torch.tensor([3, 3, 2, 1])  # packed, sequences of lengths 4, 3, 2
    S, N = int(batch_sizes.sum()), int(batch_sizes[0])

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    args = (
        leaf(S, I),
        leaf(N, H),
        leaf(3 * H, I),
        leaf(3 * H, H),
        leaf(3 * H) if bias else None,
        leaf(3 * H) if bias else None,
    )

    def f(*a: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return fused.GRUFunction.apply(*a, batch_sizes, reverse, reset_after, fused.TORCH_LOOPS)

    assert torch.autograd.gradcheck(f, args)


def test_fused_inference_equals_reference_without_grad() -> None:
    torch.manual_seed(2)
    spec, H = CellSpec("gru", reset_after=False), 4
    w = Weights(
        torch.randn(3 * H, 3, dtype=torch.float64),
        torch.randn(3 * H, H, dtype=torch.float64),
        torch.randn(3 * H, dtype=torch.float64),
        torch.randn(3 * H, dtype=torch.float64),
    )
    x, h0 = torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    with torch.no_grad():
        got = fused.run(spec, x, None, (h0,), w, reverse=True)
        want = reference.run(spec, x, None, (h0,), w, reverse=True)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=TOL)
    torch.testing.assert_close(got[1][0], want[1][0], rtol=0, atol=TOL)


def test_fused_matches_torch_gru_float32() -> None:
    torch.manual_seed(3)
    ref = torch.nn.GRU(4, 8, num_layers=2, bidirectional=True)
    fast = grukit.GRU(4, 8, num_layers=2, bidirectional=True, backend="fused")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(7, 3, 4)
    for got, want in zip(fast(x), ref(x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fused_refuses_other_cells() -> None:
    assert not fused.supports(CellSpec("lstm"), torch.zeros(1))
    with pytest.raises(ValueError, match="fused"):
        grukit.LSTM(2, 3, backend="fused")(torch.zeros(4, 1, 2))


@pytest.mark.parametrize(
    "backend", [b for b in ("fused", "native") if b in grukit.available_backends()]
)
@pytest.mark.parametrize("reset_after", [True, False])
def test_copied_recurrent_operand_is_exact(backend: str, reset_after: bool) -> None:
    """Enough rows (T·N ≥ COPY_MIN_ROWS) take the contiguous W_hhᵀ copy; short streams the
    view (the grid above): both equal the reference within 1e-10 in float64."""
    from grukit.backends.fused import COPY_MIN_ROWS

    T, N = 20, 16
    assert T * N >= COPY_MIN_ROWS
    ref = grukit.GRU(3, 8, dtype=torch.float64, reset_after=reset_after, backend="reference")
    fast = grukit.GRU(3, 8, dtype=torch.float64, reset_after=reset_after, backend=backend)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(T, N, 3, dtype=torch.float64, requires_grad=True)
    outs = [m(x) for m in (ref, fast)]
    for a, b in zip(outs[0], outs[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    grads = [
        torch.autograd.grad(o.sum() + h.sum(), [x, *m.parameters()])
        for (o, h), m in zip(outs, (ref, fast), strict=True)
    ]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
