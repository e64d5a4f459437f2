"""Mixed precision under CPU bfloat16 autocast (``grukit._autocast``): the GRU's large GEMMs
(input projection; dx, dW_ih, dW_hh) take bfloat16 operands where the CPU has bfloat16
matrix units or ``GRUKIT_BF16_GEMMS=1`` says so, the recurrence stays float32.

Oracle: the same module in float32 without autocast. Tolerance: relative error (Frobenius
norm of the difference over the norm of the float32 value) at most 1e-2 for outputs and
every gradient — measured 0.2–0.4% at these sizes, bfloat16's 8-bit mantissa rounding each
operand by up to 2^-9; a GEMM left in float32 gives 0, a wrong formula O(1). The tests also
require a difference above 1e-5, so they fail if the bfloat16 path silently did not run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

import grukit
from grukit import _autocast
from grukit.onehot import projection

pytestmark = pytest.mark.usefixtures("native_kernel")

TOL = 1e-2  # relative; measured 2e-3 to 4e-3


def rel(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def outputs_and_grads(
    module: torch.nn.Module, call: Callable[[Tensor], tuple[Tensor, ...]], x: Tensor, mode: str
) -> list[Tensor]:
    """Outputs and gradients (input's and every parameter's) of a fixed scalar loss, under
    bfloat16 autocast with GRUKIT_BF16_GEMMS=mode, or in float32 (mode "float32")."""
    module.zero_grad()
    xx = x.clone().requires_grad_()
    mp = pytest.MonkeyPatch()
    mp.setenv(_autocast.ENV, "0" if mode == "float32" else mode)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "float32"):
            outs = call(xx)
    finally:
        mp.undo()
    loss = sum((o.float() * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum() for o in outs)
    loss.backward()  # type: ignore[union-attr]
    grads = [xx.grad] + [p.grad for p in module.parameters()]
    assert all(g is not None for g in grads)
    return [o.detach() for o in outs] + [g for g in grads if g is not None]


LAYERS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"reset_after": False},
    {"zoneout": 0.1},
]


@pytest.mark.parametrize("kw", LAYERS, ids=str)
def test_layer_bf16_gemms_within_tolerance_of_float32(kw: dict[str, object]) -> None:
    torch.manual_seed(0)
    gru = grukit.GRU(24, 40, **kw).eval()  # type: ignore[arg-type]  # eval: zoneout off
    x = torch.randn(9, 6, 24)
    got = outputs_and_grads(gru, lambda x: gru(x), x, "1")
    want = outputs_and_grads(gru, lambda x: gru(x), x, "float32")
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype == torch.float32, i
        assert 1e-5 < rel(g, w) < TOL, (i, rel(g, w))


def test_packed_and_unbatched_bf16_gemms() -> None:
    torch.manual_seed(1)
    gru = grukit.GRU(8, 16)
    x = torch.randn(7, 3, 8)

    def packed(x: Tensor) -> tuple[Tensor, ...]:
        out, h = gru(pack_padded_sequence(x, torch.tensor([7, 5, 2])))
        return out.data, h

    for call in (packed, lambda x: gru(x[:, 0])):
        got = outputs_and_grads(gru, call, x, "1")
        want = outputs_and_grads(gru, call, x, "float32")
        for g, w in zip(got, want, strict=True):
            assert 1e-5 < rel(g, w) < TOL


def test_bf16_gemms_off_is_float32_exactly() -> None:
    """GRUKIT_BF16_GEMMS=0 (and any CPU without bfloat16 units): autocast changes nothing."""
    torch.manual_seed(2)
    gru = grukit.GRU(8, 16, 2, bidirectional=True)
    x = torch.randn(5, 3, 8)
    got = outputs_and_grads(gru, lambda x: gru(x), x, "0")
    want = outputs_and_grads(gru, lambda x: gru(x), x, "float32")
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_projection_is_the_bf16_product() -> None:
    """The input projection's operands are rounded to bfloat16, the bias added in float32."""
    torch.manual_seed(3)
    x, w, b = torch.randn(11, 7), torch.randn(12, 7), torch.randn(12)
    want = (x.bfloat16() @ w.bfloat16().t()).float() + b
    torch.testing.assert_close(projection(x, w, b, torch.bfloat16), want, rtol=0, atol=0)
    torch.testing.assert_close(projection(x, w, b), torch.addmm(b, x, w.t()), rtol=0, atol=0)


def test_layernorm_gru_stays_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(4)
    ln = grukit.LayerNormGRU(8, 16)
    x = torch.randn(5, 3, 8)
    monkeypatch.setenv(_autocast.ENV, "1")
    with torch.no_grad():
        want = ln(x)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = ln(x)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bf16_gemms_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_autocast.ENV, "1")
    assert _autocast.bf16_gemms()
    monkeypatch.setenv(_autocast.ENV, "0")
    assert not _autocast.bf16_gemms()
    monkeypatch.setenv(_autocast.ENV, "yes")
    with pytest.raises(ValueError, match="GRUKIT_BF16_GEMMS of 0 or 1, got 'yes'"):
        _autocast.bf16_gemms()
    monkeypatch.delenv(_autocast.ENV)
    for amx, avx512_bf16 in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda a=amx: a)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda b=avx512_bf16: b)
        assert _autocast.bf16_gemms() == (amx or avx512_bf16)


def test_float16_autocast_and_float64_layers_keep_their_dtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only bfloat16 autocast of float32 weights lowers the GEMMs."""
    monkeypatch.setenv(_autocast.ENV, "1")
    torch.manual_seed(5)
    for dtype, cast in ((torch.float64, torch.bfloat16), (torch.float32, torch.float16)):
        gru = grukit.GRU(8, 16, dtype=dtype)
        x = torch.randn(5, 3, 8, dtype=dtype)
        with torch.no_grad():
            want = gru(x)[0]
            with torch.autocast("cpu", dtype=cast):
                got = gru(x)[0]
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.usefixtures("two_threads")  # two torch threads: a bidirectional layer's pair
def test_inference_bf16_gemms(bidirectional: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The no-grad paths (one direction; both directions at once, native/both.py) take the
    bfloat16 projection too."""
    torch.manual_seed(6)
    gru = grukit.GRU(24, 40, 2, bidirectional=bidirectional)
    x = torch.randn(9, 6, 24)
    with torch.no_grad():
        want = gru(x)
        monkeypatch.setenv(_autocast.ENV, "1")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = gru(x)
    for g, w in zip(got, want, strict=True):
        assert 1e-5 < rel(g, w) < TOL
