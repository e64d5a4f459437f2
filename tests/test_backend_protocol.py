"""Every registered backend keeps the ``Backend`` Protocol (``grukit.backends.spec``).

At run time: the module is an instance of the runtime-checkable Protocol, its members have
the declared types, and ``run`` computes the reference backend's function (float64, within
1e-6) wherever ``supports`` says it does, padded and packed, both directions. The static half
(each module satisfies the Protocol for mypy) is in ``typing_cases.py`` (``test_typing.py``).
"""

from __future__ import annotations

import types

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

from grukit import OneHot
from grukit.backends import BACKENDS, Backend, CellSpec, Weights, reference

KINDS = ("gru", "rnn_tanh", "rnn_relu", "lstm")
SPECS = [CellSpec(k) for k in KINDS] + [CellSpec("gru", reset_after=False)]
NAMES = {CellSpec("gru", reset_after=False): "gru-reset_before"}
GATES = {"gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "lstm": 4}
T, N, I, H = 5, 3, 4, 6
TOL = 1e-6


def _weights(spec: CellSpec, gen: torch.Generator) -> Weights:
    g = GATES[spec.kind] * H

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5

    return Weights(rand(g, I), rand(g, H), rand(g), rand(g))


def _state(spec: CellSpec, gen: torch.Generator) -> tuple[Tensor, ...]:
    count = 2 if spec.kind == "lstm" else 1
    return tuple(torch.randn(N, H, generator=gen, dtype=torch.float64) for _ in range(count))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_registered_backend_is_a_backend(name: str) -> None:
    mod = BACKENDS[name]
    assert isinstance(mod, Backend)
    assert mod.name == name
    assert type(mod.accepts_onehot) is bool
    assert type(mod.available()) is bool
    x = torch.zeros(T, N, I, dtype=torch.float64)
    for spec in SPECS:
        assert type(mod.supports(spec, x)) is bool


def test_an_object_missing_a_member_is_not_a_backend() -> None:
    full = {
        "name": "x",
        "accepts_onehot": False,
        "available": lambda: True,
        "supports": lambda spec, x: True,
        "run": reference.run,
    }
    assert isinstance(types.SimpleNamespace(**full), Backend)
    for member in full:
        partial = {k: v for k, v in full.items() if k != member}
        assert not isinstance(types.SimpleNamespace(**partial), Backend), member


def _available(name: str) -> Backend:
    mod = BACKENDS[name]
    if not mod.available():  # asked here, not at collection: it builds the native kernel
        pytest.skip(f"backend {name!r} is not available on this machine")
    return mod


#: Every (backend, cell) that the backend says it computes for CPU float64 input.
PAIRS = [
    (name, spec)
    for name, mod in BACKENDS.items()
    for spec in SPECS
    if mod.supports(spec, torch.zeros(T, N, I, dtype=torch.float64))
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("name", "spec"), PAIRS, ids=[f"{n}-{NAMES.get(s, s.kind)}" for n, s in PAIRS]
)
def test_run_equals_the_reference_backend(name: str, spec: CellSpec, reverse: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, N, I, generator=gen, dtype=torch.float64)  # (T, N, I)
    mod = _available(name)
    w, state = _weights(spec, gen), _state(spec, gen)
    with torch.no_grad():
        out, fin = mod.run(spec, x, None, state, w, reverse=reverse)
        want_out, want_fin = reference.run(spec, x, None, state, w, reverse=reverse)
    assert out.shape == (T, N, H)
    torch.testing.assert_close(out, want_out, rtol=0, atol=TOL)
    assert len(fin) == len(want_fin)
    for got, want in zip(fin, want_fin, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)

    packed = pack_padded_sequence(x, torch.tensor([5, 3, 2]))  # lengths sorted: no permutation
    batch_sizes = packed.batch_sizes
    with torch.no_grad():
        out, fin = mod.run(spec, packed.data, batch_sizes, state, w, reverse=reverse)
        want_out, want_fin = reference.run(
            spec, packed.data, batch_sizes, state, w, reverse=reverse
        )
    torch.testing.assert_close(out, want_out, rtol=0, atol=TOL)
    for got, want in zip(fin, want_fin, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_onehot_input_follows_accepts_onehot(name: str) -> None:
    spec = CellSpec("gru")
    gen = torch.Generator().manual_seed(2)
    idx = torch.randint(0, I, (T, N), generator=gen)  # (T, N)
    onehot = OneHot(idx, I)
    dense = onehot.dense(torch.float64)  # (T, N, I)
    mod = _available(name)
    w, state = _weights(spec, gen), _state(spec, gen)
    if not mod.accepts_onehot:
        with pytest.raises(TypeError, match=f"{name} backend: expected x as a Tensor"):
            mod.run(spec, onehot, None, state, w)
        return
    with torch.no_grad():
        out, (h_n,) = mod.run(spec, onehot, None, state, w)
        want_out, (want_h,) = reference.run(spec, dense, None, state, w)
    torch.testing.assert_close(out, want_out, rtol=0, atol=TOL)
    torch.testing.assert_close(h_n, want_h, rtol=0, atol=TOL)
