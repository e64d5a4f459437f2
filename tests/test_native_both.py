"""A bidirectional native GRU layer runs its two directions at once (``native/both.py``) and
computes what the reference loop computes: float64 outputs and every gradient within 1e-10
(padded, packed, unbatched, batch_first, both variants, noise, one-hot input, double
backward), float32 within 1e-5 of ``torch.nn.GRU``. The pair path is checked to have run."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit.backends.native import both

pytestmark = pytest.mark.usefixtures("native_kernel")  # skips where it is unavailable

D64 = torch.float64


@pytest.fixture
def pair_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times ``run_both`` ran (a spy on the function the layers call)."""
    calls: list[int] = []
    real = both.run_both

    def spy(*args: object, **kw: object) -> object:
        calls.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(both, "run_both", spy)
    return calls


def _grads(m: grukit.GRU, form: str, x: torch.Tensor, h0: torch.Tensor) -> list[torch.Tensor]:
    """Output, h_n and the gradients of a non-linear loss for x, h0 and every parameter,
    with the noise masks seeded alike for every backend."""
    x, h0 = x.detach().requires_grad_(), h0.detach().requires_grad_()
    torch.manual_seed(5)
    if form == "packed":
        lengths = [5, 2, 7, 1]  # unsorted, one of length 1
        packed = pack_padded_sequence(x, lengths, batch_first=m.batch_first, enforce_sorted=False)
        out, h_n = m(packed, h0)
        out = pad_packed_sequence(out, batch_first=m.batch_first)[0]
    else:
        out, h_n = m(x, h0)
    loss = (out * torch.sin(out)).sum() + (h_n**3).sum()
    return [out, h_n, *torch.autograd.grad(loss, [x, h0, *m.parameters()])]


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("form", ["padded", "packed", "unbatched", "batch_first"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("noise", [{}, {"zoneout": 0.3, "recurrent_dropout": 0.25}], ids=str)
def test_both_directions_at_once_match_reference(
    pair_calls: list[int], form: str, reset_after: bool, noise: dict[str, float]
) -> None:
    torch.manual_seed(0)
    I, H, N, T, L = 3, 19, 4, 7, 2  # H = 19: a partial vector tail
    kw = dict(num_layers=L, bidirectional=True, reset_after=reset_after, dtype=D64, **noise)
    kw["batch_first"] = form == "batch_first"
    fast = grukit.GRU(I, H, backend="native", **kw)  # type: ignore[arg-type]
    ref = grukit.GRU(I, H, backend="reference", **kw)  # type: ignore[arg-type]
    ref.load_state_dict(fast.state_dict())
    shape = {"unbatched": (T, I), "batch_first": (N, T, I)}.get(form, (T, N, I))
    x = torch.randn(shape, dtype=D64)
    h0 = torch.randn((2 * L, H) if form == "unbatched" else (2 * L, N, H), dtype=D64)
    got, want = _grads(fast, form, x, h0), _grads(ref, form, x, h0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0)
    assert len(pair_calls) == L  # every layer ran its directions as a pair
    with torch.no_grad():  # inference: the loops without saving
        torch.manual_seed(5)
        out = fast(x, h0)[0] if form != "packed" else None
    if out is not None:
        torch.testing.assert_close(out, want[0], atol=1e-10, rtol=0)
        assert len(pair_calls) == 2 * L


@pytest.mark.usefixtures("two_threads")
def test_one_hot_input_runs_as_a_pair_and_equals_dense(pair_calls: list[int]) -> None:
    torch.manual_seed(1)
    V, H, T, N = 11, 8, 6, 3
    m = grukit.GRU(V, H, bidirectional=True, backend="native", dtype=D64)
    idx = torch.randint(0, V, (T, N))
    dense = torch.nn.functional.one_hot(idx, V).to(D64)
    out, h_n = m(grukit.OneHot(idx, V))
    want_out, want_h = m(dense)
    torch.testing.assert_close(out, want_out, atol=1e-12, rtol=0)
    g = torch.autograd.grad((out**2).sum() + h_n.sum(), list(m.parameters()))
    w = torch.autograd.grad((want_out**2).sum() + want_h.sum(), list(m.parameters()))
    for a, b in zip(g, w, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert len(pair_calls) == 2


@pytest.mark.usefixtures("two_threads")
def test_double_backward_through_the_pair(pair_calls: list[int]) -> None:
    torch.manual_seed(2)
    m = grukit.GRU(2, 3, bidirectional=True, backend="native", dtype=D64)
    x = torch.randn(4, 2, 2, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=D64, requires_grad=True)

    def f(x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        out, h_n = m(x, h0)
        return (out**2).sum() + (h_n**3).sum()

    assert torch.autograd.gradgradcheck(f, (x, h0))
    assert pair_calls


@pytest.mark.parametrize("threads", [1, 4])
def test_other_thread_counts_run_the_directions_one_after_the_other(
    pair_calls: list[int], threads: int
) -> None:
    """One thread has no second one; with four, one direction at a time splits its rows
    over all of them, where the pair would leave two idle."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        m = grukit.GRU(3, 5, bidirectional=True, backend="native", dtype=D64)
        x = torch.randn(4, 2, 3, dtype=D64)
        got = m(x)[0]
    finally:
        torch.set_num_threads(before)
    assert not pair_calls
    ref = grukit.GRU(3, 5, bidirectional=True, backend="reference", dtype=D64)
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(got, ref(x)[0], atol=1e-10, rtol=0)


@pytest.mark.usefixtures("two_threads")
def test_float32_pair_matches_torch_gru(pair_calls: list[int]) -> None:
    torch.manual_seed(3)
    ref = torch.nn.GRU(7, 40, num_layers=2, bidirectional=True)
    fast = grukit.GRU(7, 40, num_layers=2, bidirectional=True, backend="native")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(30, 5, 7, requires_grad=True)
    got, want = fast(x), ref(x)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(got[0].sum(), [x, *fast.parameters()])
    gb = torch.autograd.grad(want[0].sum(), [x, *ref.parameters()])
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert len(pair_calls) == 2


@pytest.mark.usefixtures("two_threads")
def test_pair_under_python_saved_tensor_hooks(pair_calls: list[int]) -> None:
    """Python-side autograd state (saved-tensor hooks, as memory profilers and the speed
    benchmark set) does not reach the pair's worker thread: it once waited there for the
    GIL that the calling thread held (a hang)."""
    m = grukit.GRU(3, 5, bidirectional=True, backend="native", dtype=D64)
    x = torch.randn(4, 2, 3, dtype=D64, requires_grad=True)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, _ = m(x)
    out.sum().backward()
    assert saved and pair_calls and x.grad is not None
