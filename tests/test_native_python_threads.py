"""The native kernel called from several Python threads at once — a server sharing one
model for inference, or workers each training their own — gives bitwise what each call
gives alone: its per-thread scratch (the packed W_hh), the block cache and the row split
between torch's threads are not shared between concurrent calls. Oracle: the same calls
made one at a time beforehand, compared with ``torch.equal``."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch

import grukit

pytestmark = pytest.mark.usefixtures("native_kernel")


def _run_threads(work: Callable[[int], None], n: int) -> None:
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_one_model_shared_for_inference_across_threads() -> None:
    """Sequence calls (packed W_hh, row split at 32 rows) and one-step calls (the streaming
    kernel) of one 2-layer bidirectional model, interleaved over four threads."""
    torch.manual_seed(0)
    model = grukit.GRU(12, 160, 2, bidirectional=True).eval()
    xs = [torch.randn(T, N, 12) for T, N in ((20, 32), (1, 1), (1, 4), (30, 7), (8, 40))]
    with torch.no_grad():
        want = [model(x) for x in xs]
    mismatches: list[tuple[int, int]] = []

    def work(k: int) -> None:
        with torch.no_grad():
            for r in range(15):
                i = (k + r) % len(xs)
                out, h_n = model(xs[i])
                if not (torch.equal(out, want[i][0]) and torch.equal(h_n, want[i][1])):
                    mismatches.append((k, i))

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the row split's parallel regions, from every Python thread
    try:
        _run_threads(work, 4)
    finally:
        torch.set_num_threads(threads)
    assert mismatches == []


def test_models_trained_on_separate_threads() -> None:
    """Forward and backward of three models of different sizes (H = 256, 64, 130: packed
    panels of 24 and 16 columns, a partial panel), each on its own thread, repeated:
    outputs, h_n and every gradient equal the model's step run alone."""
    torch.manual_seed(1)
    sizes = ((28, 256, 32, 12, 1, False), (8, 64, 7, 30, 2, True), (16, 130, 11, 10, 1, True))
    cases = []
    for I, H, N, T, layers, bidirectional in sizes:
        model = grukit.GRU(I, H, layers, bidirectional=bidirectional)
        x = torch.randn(T, N, I)
        cases.append((model, x, _step(model, x)))
    mismatches: list[tuple[int, int]] = []

    def work(k: int) -> None:
        model, x, want = cases[k]
        for r in range(6):
            got = _step(model, x)
            if not all(torch.equal(a, b) for a, b in zip(got, want, strict=True)):
                mismatches.append((k, r))

    _run_threads(work, len(cases))
    assert mismatches == []


def _step(model: grukit.GRU, x: torch.Tensor) -> list[torch.Tensor]:
    """(output, h_n, dx, every parameter's gradient) of one training step."""
    model.zero_grad(set_to_none=True)
    xs = x.clone().requires_grad_()
    out, h_n = model(xs)
    (out.square().mean() + h_n.sum()).backward()
    assert xs.grad is not None
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    return [out.detach(), h_n.detach(), xs.grad, *[g for g in grads if g is not None]]
