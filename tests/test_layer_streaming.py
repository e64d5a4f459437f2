"""The layer's one-step inference call (``GRU(x_t, h)``, what generation loops do) runs
as native cell calls: it must equal the full path exactly as the full path equals
torch.nn.GRU, and leave every other call (autograd, bad input) to the full path."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import grukit
from grukit import layers

pytestmark = pytest.mark.usefixtures("native_kernel")


def _pair(**kw: object) -> tuple[grukit.GRU, torch.nn.GRU]:
    torch.manual_seed(0)
    dtype = kw.pop("dtype", torch.float64)
    ours = grukit.GRU(5, 7, dtype=dtype, **kw)  # type: ignore[arg-type]
    kw.pop("reset_after", None)
    theirs = torch.nn.GRU(5, 7, dtype=dtype, **kw)  # type: ignore[arg-type]
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


CASES = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 3, "bidirectional": True, "batch_first": True},
    {"bias": False},
    {"num_layers": 2, "dropout": 0.5},  # eval mode: no dropout, so still the fast step
]


@pytest.mark.parametrize("kw", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("given_h", [True, False])
def test_one_step_equals_torch(kw: dict[str, object], given_h: bool) -> None:
    ours, theirs = _pair(**kw)
    ours.eval(), theirs.eval()
    rows = ours.num_layers * ours.num_directions
    x = (
        torch.randn(3, 1, 5, dtype=torch.float64)
        if ours.batch_first
        else torch.randn(1, 3, 5, dtype=torch.float64)
    )
    h = torch.randn(rows, 3, 7, dtype=torch.float64) if given_h else None
    with torch.no_grad():
        assert ours._streaming_step(x, h) is not None  # the fast step ran
        out, h_n = ours(x, h)
        want_out, want_h = theirs(x, h)
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n, want_h, rtol=0, atol=1e-12)


def test_reset_after_false_one_step_equals_full_path() -> None:
    torch.manual_seed(0)
    gru = grukit.GRU(5, 7, 2, reset_after=False, dtype=torch.float64)
    x, h = torch.randn(1, 4, 5, dtype=torch.float64), torch.randn(2, 4, 7, dtype=torch.float64)
    with torch.no_grad():
        fast = gru(x, h)
        full = gru._forward(x, h)  # the path every other call takes
    torch.testing.assert_close(fast[0], full[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(fast[1], full[1][0], rtol=0, atol=1e-12)


def test_float32_step_equals_torch() -> None:
    ours, theirs = _pair(dtype=torch.float32)
    x, h = torch.randn(1, 2, 5), torch.randn(1, 2, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, h)[0], theirs(x, h)[0], rtol=1e-5, atol=1e-6)


def test_autograd_and_other_calls_take_the_full_path() -> None:
    gru = grukit.GRU(5, 7)
    x = torch.randn(1, 2, 5)
    assert gru._streaming_step(x, None) is None  # grad enabled, parameters require grad
    out, _ = gru(x)
    assert out.grad_fn is not None
    with torch.no_grad():
        assert gru._streaming_step(torch.randn(2, 2, 5), None) is None  # T = 2
        assert gru._streaming_step(torch.randn(5), None) is None  # not (1, N, I)
        noisy = grukit.GRU(5, 7, zoneout=0.2)
        assert noisy._streaming_step(x, None) is None


@pytest.mark.parametrize(
    ("x", "h", "match"),
    [
        (torch.randn(1, 2, 4), None, "expected input with 5 features"),
        (torch.randn(1, 2, 5), torch.randn(1, 3, 7), "h_0"),
        (torch.randn(1, 2, 5, dtype=torch.float64), None, "dtype"),
    ],
)
def test_bad_one_step_input_gets_the_full_path_error(
    x: torch.Tensor, h: torch.Tensor | None, match: str
) -> None:
    gru = grukit.GRU(5, 7)
    with torch.no_grad(), pytest.raises((ValueError, TypeError), match=match):
        gru(x, h)


def test_kernel_refusal_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RuntimeError of the kernel's own checks hands the call to the full path."""

    def refuse(*args: object, **kw: object) -> torch.Tensor:
        raise RuntimeError("grukit native gru_step: expected ...")

    monkeypatch.setattr(layers.native, "gru_step", refuse)
    gru = grukit.GRU(5, 7)
    x = torch.randn(1, 2, 5)
    with torch.no_grad():
        assert gru._streaming_step(x, None) is None
        out, _ = gru(x)
    assert out.shape == (1, 2, 7)


def test_step_returns_new_tensors_and_leaves_hx_alone() -> None:
    """Output and h_n are tensors of their own (as torch.nn.GRU's: writing one leaves the
    other), and the caller's state is read, not updated in place."""
    ours, _ = _pair(num_layers=2)
    x, h = torch.randn(1, 3, 5, dtype=torch.float64), torch.randn(2, 3, 7, dtype=torch.float64)
    kept = h.clone()
    with torch.inference_mode():  # what generation loops often run under
        out, h_n = ours(x, h)
    assert torch.equal(h, kept)
    assert out.untyped_storage().data_ptr() != h_n.untyped_storage().data_ptr()
    assert out.is_contiguous() and h_n.is_contiguous()
    torch.testing.assert_close(out[0], h_n[1], rtol=0, atol=0)  # the last layer's state


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_step_takes_the_blas_branch_and_equals_the_full_path(
    reset_after: bool, dtype: torch.dtype
) -> None:
    """N·3H(I + H) > 2^20: each layer's products go through at::mm (in rows lda apart for
    the bidirectional layer's input); same numbers as the full path."""
    torch.manual_seed(3)
    gru = grukit.GRU(40, 96, 2, bidirectional=True, reset_after=reset_after, dtype=dtype)
    x, h = torch.randn(1, 33, 40, dtype=dtype), torch.randn(4, 33, 96, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    with torch.no_grad():
        assert gru._streaming_step(x, h) is not None
        fast, full = gru(x, h), gru._forward(x, h)
    torch.testing.assert_close(fast[0], full[0], rtol=tol, atol=tol)
    torch.testing.assert_close(fast[1], full[1][0], rtol=tol, atol=tol)


@pytest.mark.parametrize("case", ["x_nan", "x_inf", "h_nan", "w_hh_nan", "b_ih_inf"])
def test_step_nonfinite_like_torch(case: str) -> None:
    """NaN and ±Inf reach the same outputs, in the same places, as torch.nn.GRU's."""
    ours, theirs = _pair(num_layers=2, bidirectional=True)
    x, h = torch.randn(1, 3, 5, dtype=torch.float64), torch.randn(4, 3, 7, dtype=torch.float64)
    sd = {k: v.clone() for k, v in theirs.state_dict().items()}
    {
        "x_nan": lambda: x[0, 1].__setitem__(2, float("nan")),
        "x_inf": lambda: x[0, 2].__setitem__(0, float("inf")),
        "h_nan": lambda: h[3, 0].__setitem__(4, float("nan")),
        "w_hh_nan": lambda: sd["weight_hh_l1_reverse"][15].__setitem__(2, float("nan")),
        "b_ih_inf": lambda: sd["bias_ih_l0"].__setitem__(8, -float("inf")),
    }[case]()
    ours.load_state_dict(sd), theirs.load_state_dict(sd)
    with torch.no_grad():
        assert ours._streaming_step(x, h) is not None
        got, want = ours(x, h), theirs(x, h)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(torch.isnan(g), torch.isnan(w)), case
        assert torch.equal(torch.isinf(g), torch.isinf(w)), case
        finite = torch.isfinite(w)
        torch.testing.assert_close(g[finite], w[finite], rtol=0, atol=1e-12)


def test_replaced_weights_of_another_size_get_the_full_path_error() -> None:
    """Weights replaced with a consistent set for another hidden size: the kernel is asked
    for the layer's own hidden_size and refuses, so the layer's check names the parameter."""
    gru = grukit.GRU(5, 7)
    for name, p in list(gru.named_parameters()):
        rows = p.shape[0] // 7 * 4
        shape = (rows, 4) if name.startswith("weight_hh") else (rows, *p.shape[1:])
        setattr(gru, name, torch.nn.Parameter(torch.randn(*shape)))
    with torch.no_grad(), pytest.raises(ValueError, match="weight_ih_l0|weight_hh_l0|bias"):
        gru(torch.randn(1, 2, 5), torch.randn(1, 2, 4))


def test_cell_kernel_refusal_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRUCell's one-call step: the kernel's RuntimeError hands the call to the full path,
    and a state of another size gets the cell's own error."""

    real, calls = layers.native.gru_cell, []

    def refuse_first(*args: Any, **kw: Any) -> torch.Tensor:  # the fast step's call only
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("grukit native gru_cell: expected ...")
        return real(*args, **kw)

    cell = grukit.GRUCell(5, 7)
    x, h = torch.randn(2, 5), torch.randn(2, 7)
    with torch.no_grad():
        assert cell._streaming_step(x, h) is not None
        want = cell(x, h)
        monkeypatch.setattr(layers.native, "gru_cell", refuse_first)
        torch.testing.assert_close(cell(x, h), want, rtol=0, atol=0)
        assert len(calls) == 2  # refused, then the full path's call
        with pytest.raises(ValueError, match="hx"):
            cell(x, torch.randn(2, 6))
        with pytest.raises(ValueError, match="hx"):
            cell(x, torch.tensor(0.5))  # a 0-d state: the cell's error, not an IndexError
