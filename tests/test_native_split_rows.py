"""The native loops split a step's rows between two threads (``loops.h split_rows``: at least
16 rows, W_hh within 4 MiB): GRU and LayerNormGRU, both variants, with and without noise,
padded and packed (steps whose row count crosses the threshold), float64 outputs and every
gradient within 1e-10 of the reference loop; float32 at the packed kernel's sizes within
1e-5 of the same layer run on one thread (where nothing splits)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit

pytestmark = pytest.mark.usefixtures("native_kernel")  # skips where it is unavailable

D64 = torch.float64
LAYERS = {"gru": grukit.GRU, "layernorm-gru": grukit.LayerNormGRU}


def _run(m: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor, lengths: list[int] | None):
    """Output, h_n and the gradients of a non-linear loss for x, h0 and every parameter."""
    x, h0 = x.detach().requires_grad_(), h0.detach().requires_grad_()
    torch.manual_seed(7)  # the noise masks, alike for every run
    if lengths is None:
        out, h_n = m(x, h0)
    else:
        out, h_n = m(pack_padded_sequence(x, lengths, enforce_sorted=False), h0)
        out = pad_packed_sequence(out)[0]
    loss = (out * torch.cos(out)).sum() + (h_n**3).sum()
    return [out, h_n, *torch.autograd.grad(loss, [x, h0, *m.parameters()])]


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("noise", [{}, {"zoneout": 0.2, "recurrent_dropout": 0.3}], ids=str)
def test_split_steps_match_reference(
    layer: str, reset_after: bool, packed: bool, noise: dict[str, float]
) -> None:
    torch.manual_seed(0)
    I, H, N, T = 5, 21, 37, 6  # 37 rows: pieces of 19 and 18; H = 21: a partial vector tail
    kw = dict(reset_after=reset_after, dtype=D64, **noise)
    fast = LAYERS[layer](I, H, backend="native", **kw)  # type: ignore[arg-type]
    ref = LAYERS[layer](I, H, backend="reference", **kw)  # type: ignore[arg-type]
    ref.load_state_dict(fast.state_dict())
    x, h0 = torch.randn(T, N, I, dtype=D64), torch.randn(1, N, H, dtype=D64)
    lengths = [T - (b % T) for b in range(N)] if packed else None  # 37 … 6 rows per step
    for g, w in zip(_run(fast, x, h0, lengths), _run(ref, x, h0, lengths), strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0)
    with torch.no_grad():  # inference: the loops without saving
        torch.manual_seed(7)
        got = fast(x, h0)[0] if lengths is None else None
    if got is not None:
        want = _run(ref, x, h0, None)[0]
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("hidden", [128, 512])
def test_float32_split_equals_one_thread(layer: str, hidden: int) -> None:
    """float32 at H = 128 and 512 (W_hh 3 MiB, near the split's limit; the packed per-step
    kernel): two threads splitting the rows give the one-thread results (outputs bitwise:
    each row's arithmetic is the same)."""
    torch.manual_seed(1)
    m = LAYERS[layer](16, hidden, backend="native")
    x, h0 = torch.randn(12, 32, 16), torch.randn(1, 32, hidden)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_run(m, x, h0, None))
    finally:
        torch.set_num_threads(before)
    one, two = results
    torch.testing.assert_close(two[0], one[0], atol=0, rtol=0)
    for a, b in zip(two, one, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_split_steps_under_inference_mode(
    layer: str, reset_after: bool, bidirectional: bool, dtype: torch.dtype
) -> None:
    """Under ``torch.inference_mode`` the worker threads write into the caller's
    inference-mode buffers (they take the caller's inference mode: without it, at::mm's
    out= form refused to, float64 and reset_after=False), with the results of one thread."""
    torch.manual_seed(2)
    kw = dict(reset_after=reset_after, bidirectional=bidirectional, dtype=dtype)
    m = LAYERS[layer](4, 24, backend="native", **kw)  # type: ignore[arg-type]
    x = torch.randn(5, 32, 4, dtype=dtype)
    with torch.inference_mode():
        out, h_n = m(x)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            want_out, want_h = m(x)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, want_out, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h_n, want_h, atol=1e-6, rtol=1e-6)
