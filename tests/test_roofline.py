"""The roofline's parts (``grukit.benchmark.flops``, ``grukit.benchmark.roofline``,
``native/peak.cpp``): FLOP counts equal ``torch.utils.flop_counter``'s count of the
reference backend's products (forward, training with and without the input's and h0's
gradients, stacked and bidirectional) and of ``nn.Linear``; the native multiply-add chains
run every step they are asked for (their checksum is exact); the ceiling and the share a
target needs follow from their definitions; bad input is refused by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import grukit
from grukit.backends.native import build
from grukit.benchmark import roofline
from grukit.benchmark.flops import gru_flops, linear_flops
from grukit.benchmark.peers import GridPoint
from grukit.benchmark.roofline import Peak, ceiling, fma_peak, needed_share


def _counted(fn) -> int:  # type: ignore[no-untyped-def]
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@pytest.mark.parametrize(
    ("layers", "bidirectional", "input_grad", "h0_grad"),
    [(1, False, False, False), (1, False, True, True), (2, True, True, False),
     (3, False, False, True), (2, False, True, True), (1, True, False, False)],
)  # fmt: skip
def test_gru_flops_equal_the_counted_products_of_the_reference(
    layers: int, bidirectional: bool, input_grad: bool, h0_grad: bool
) -> None:
    I, H, N, T = 5, 7, 3, 4
    torch.manual_seed(0)
    layer = grukit.GRU(I, H, layers, bidirectional=bidirectional, backend="reference")
    D = 2 if bidirectional else 1
    x = torch.randn(T, N, I, requires_grad=input_grad)
    h0 = torch.randn(layers * D, N, H, requires_grad=h0_grad)
    work = GridPoint(I, H, N, T, layers, bidirectional)

    def infer() -> None:
        with torch.no_grad():
            layer(x, h0)

    def train() -> None:
        layer(x, h0)[0].sum().backward()

    assert gru_flops(work, training=False) == _counted(infer)
    expected = _counted(train)
    assert gru_flops(work, training=True, input_grad=input_grad, h0_grad=h0_grad) == expected


def test_one_hot_input_drops_the_first_layers_input_product_and_its_weight_gradient() -> None:
    I, H, N, T = 28, 16, 4, 5
    S, G = N * T, 3 * H
    for bidirectional, D in ((False, 1), (True, 2)):
        point = GridPoint(I, H, N, T, 2, bidirectional)
        product = 2 * S * I * G  # X W_ihᵀ of the first layer, one direction
        for training, products in ((False, 1), (True, 2)):  # training: and dW_ih, no dX
            dense = gru_flops(point, training=training)
            sparse = gru_flops(point, training=training, one_hot=True)
            assert dense - sparse == D * products * product
        # x needing its gradient changes nothing for indices: they have none
        with_dx = gru_flops(point, training=True, input_grad=True, one_hot=True)
        assert with_dx == gru_flops(point, training=True, one_hot=True)


def test_linear_flops_equal_the_counted_products_of_nn_linear() -> None:
    linear = nn.Linear(6, 5)
    x = torch.randn(9, 6, requires_grad=True)
    assert linear_flops(9, 6, 5, training=False) == _counted(lambda: linear(x))
    assert linear_flops(9, 6, 5, training=True) == _counted(lambda: linear(x).sum().backward())


def test_ceiling_and_needed_share_follow_their_definitions() -> None:
    # 2 GFLOP at 100 GFLOP/s take 20 ms at the peak: a 50 ms peer can be beaten 2.5× at most,
    # and 2.0× needs 25 ms, i.e. 80% of the peak
    assert ceiling(2 * 10**9, 100.0, 0.05) == pytest.approx(2.5)
    assert needed_share(2 * 10**9, 100.0, 0.05, 2.0) == pytest.approx(0.8)
    assert needed_share(2 * 10**9, 100.0, 0.05, 2.5) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ceiling(0, 100.0, 0.05), "ceiling: expected flops > 0, got 0"),
        (lambda: ceiling(10, float("nan"), 0.05), "ceiling: expected peak_gflops finite"),
        (lambda: ceiling(10, 100.0, -1.0), "ceiling: expected peer_seconds finite"),
        (lambda: needed_share(10, 100.0, 0.05, 0.0), "needed_share: expected a finite target"),
        (
            lambda: linear_flops(3, 0, 2, training=True),
            "linear_flops: expected in_features > 0, got 0",
        ),
        (lambda: fma_peak(seconds=0.0), "fma_peak: expected seconds > 0"),
        (lambda: fma_peak(repeats=0), "fma_peak: expected repeats > 0, got 0"),
    ],
)
def test_bad_input_is_refused_by_name(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_counts_of_the_wrong_type_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="fma_peak: expected repeats to be an int, got float"):
        fma_peak(repeats=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="linear_flops: expected rows to be an int, got bool"):
        linear_flops(True, 2, 2, training=False)


@pytest.mark.usefixtures("native_kernel")
def test_fma_chains_run_every_step_on_every_thread() -> None:
    native = build.load()
    assert native is not None
    chains = int(native.fma_chains_per_thread)
    lanes = {"AVX512": 16, "AVX2": 8}.get(native.cpu_capability())
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            steps = 1000
            seconds, ran, width, checksum = native.fma_chains(steps, 1.0, 1.0)  # a_j = j + steps
            assert ran == threads and seconds > 0
            assert checksum == threads * sum(j + steps for j in range(chains))
            if lanes is not None:
                assert width == lanes
            # another recurrence: a ← 2a doubles each start 10 times, exactly
            assert native.fma_chains(10, 2.0, 0.0)[3] == threads * sum(
                j * 2**10 for j in range(chains)
            )
    finally:
        torch.set_num_threads(old)


@pytest.mark.usefixtures("native_kernel")
def test_fma_peak_reports_the_threads_lanes_and_build() -> None:
    native = build.load()
    assert native is not None
    peak = fma_peak(seconds=0.005, repeats=2)
    assert isinstance(peak, Peak) and peak.gflops > 0
    assert peak.threads == torch.get_num_threads()
    assert peak.isa == native.cpu_capability()


def test_fma_peak_refuses_without_the_kernel_or_with_a_wrong_checksum(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(build, "load", lambda: None)
    monkeypatch.setattr(build, "failure", lambda: "no C++ compiler")
    with pytest.raises(RuntimeError, match=r"fma_peak: the native kernel is unavailable \(no C"):
        fma_peak()
    short = SimpleNamespace(  # a kernel that skips steps: its checksum falls short
        fma_chains_per_thread=12,
        fma_chains=lambda steps, b, c: (0.01, 1, 8, 12.0 * steps),
        cpu_capability=lambda: "AVX2",
    )
    monkeypatch.setattr(build, "load", lambda: short)
    with pytest.raises(RuntimeError, match="fma_peak: fma_chains' checksum is"):
        roofline.fma_peak(seconds=0.001, repeats=1)
