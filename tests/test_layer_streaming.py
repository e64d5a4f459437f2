"""The layer's one-step inference call (``GRU(x_t, h)``, what generation loops do) runs
as native cell calls: it must equal the full path exactly as the full path equals
torch.nn.GRU, and leave every other call (autograd, bad input) to the full path."""

from __future__ import annotations

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
        raise RuntimeError("grukit native gru_cell: expected ...")

    monkeypatch.setattr(layers.native, "gru_cell", refuse)
    gru = grukit.GRU(5, 7)
    x = torch.randn(1, 2, 5)
    with torch.no_grad():
        assert gru._streaming_step(x, None) is None
        out, _ = gru(x)
    assert out.shape == (1, 2, 7)
