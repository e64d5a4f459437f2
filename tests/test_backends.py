"""Backend plumbing: packed reversal, selection, and the contract every backend keeps."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import grukit
from grukit.backends import BACKENDS, CellSpec, Weights, resolve, reverse_packed_index


def test_reverse_packed_index_reverses_each_sequence_within_its_length() -> None:
    lengths = torch.tensor([5, 3, 3, 1])
    x = torch.arange(5 * 4, dtype=torch.float64).reshape(5, 4, 1)  # (T, N, 1)
    packed = pack_padded_sequence(x, lengths)
    index = reverse_packed_index(packed.batch_sizes)
    assert torch.equal(index[index], torch.arange(index.numel()))  # an involution
    rev = packed._replace(data=packed.data[index])
    padded, _ = pad_packed_sequence(rev)
    for b, L in enumerate(lengths.tolist()):
        assert torch.equal(padded[:L, b], x[:L, b].flip(0))


def test_auto_prefers_an_exact_backend_and_falls_back_to_reference() -> None:
    x = torch.zeros(1)
    assert resolve("GRU", "auto", CellSpec("gru", reset_after=False), x).name != "torch"
    for kind in ("gru", "rnn_tanh", "rnn_relu", "lstm"):
        mod = resolve("X", "auto", CellSpec(kind), x)
        assert mod.available() and mod.supports(CellSpec(kind), x)


GRU, GRU_CHO = CellSpec("gru"), CellSpec("gru", reset_after=False)
TANH, RELU, LSTM = CellSpec("rnn_tanh"), CellSpec("rnn_relu"), CellSpec("lstm")
SPECS = [GRU, GRU_CHO, TANH, RELU, LSTM]
CPU64 = torch.zeros(1, dtype=torch.float64)
F32, F16, BF16 = (
    torch.zeros(1),
    torch.zeros(1, dtype=torch.float16),
    torch.zeros(1, dtype=torch.bfloat16),
)
META = torch.zeros(1, device="meta")

#: What each backend computes (``supports``), case by case, on every machine.
SUPPORTS = [
    ("native", GRU, F32, True),
    ("native", GRU_CHO, CPU64, True),
    ("native", LSTM, F32, False),  # GRU only
    ("native", TANH, F32, False),
    ("native", GRU, F16, False),  # float32/float64 only
    ("native", GRU, BF16, False),
    ("native", GRU, META, False),  # CPU only
    ("torch", GRU, F32, True),
    ("torch", GRU_CHO, F32, False),  # torch has no reset_after=False GRU
    ("torch", TANH, CPU64, True),
    ("torch", RELU, F32, True),
    ("torch", LSTM, F32, True),
    ("fused", GRU, F32, True),
    ("fused", GRU_CHO, CPU64, True),
    ("fused", GRU, META, True),  # any device
    ("fused", LSTM, F32, False),  # GRU only
    ("fused", RELU, F32, False),
    *[("reference", spec, x, True) for spec in SPECS for x in (F32, CPU64, F16, META)],
]


def case_id(name: str, spec: CellSpec, x: torch.Tensor | None = None) -> str:
    variant = "" if spec.reset_after or spec.kind != "gru" else "-cho"
    where = "" if x is None else f"-{x.device.type}-{str(x.dtype).removeprefix('torch.')}"
    return f"{name}-{spec.kind}{variant}{where}"


@pytest.mark.parametrize(
    "name, spec, x, expected", SUPPORTS, ids=[case_id(*c[:3]) for c in SUPPORTS]
)
def test_supports_answers_what_each_backend_computes(
    name: str, spec: CellSpec, x: torch.Tensor, expected: bool
) -> None:
    assert BACKENDS[name].supports(spec, x) is expected


def test_backends_are_registered_under_their_names() -> None:
    assert list(BACKENDS) == ["native", "torch", "fused", "reference"]  # "auto"'s order
    for name, mod in BACKENDS.items():
        assert mod.name == name


def nn_module(spec: CellSpec, w: Weights) -> torch.nn.Module:
    """torch.nn's single-layer module computing ``spec`` with the weights ``w``."""
    H, I = w.w_hh.shape[1], w.w_ih.shape[1]
    make = {
        "gru": lambda: torch.nn.GRU(I, H, dtype=torch.float64),
        "lstm": lambda: torch.nn.LSTM(I, H, dtype=torch.float64),
        "rnn_tanh": lambda: torch.nn.RNN(I, H, nonlinearity="tanh", dtype=torch.float64),
        "rnn_relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu", dtype=torch.float64),
    }[spec.kind]
    module = make()
    module.load_state_dict(
        {"weight_ih_l0": w.w_ih, "weight_hh_l0": w.w_hh, "bias_ih_l0": w.b_ih, "bias_hh_l0": w.b_hh}
    )
    return module


def oracle(
    spec: CellSpec, xs: torch.Tensor, state: tuple[torch.Tensor, ...], w: Weights
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One sequence xs (L, I) from state (H,)-vectors → outputs (L, H), final state:
    torch.nn's modules; for the reset_after=False GRU (not in torch) Cho et al.'s equations
    by hand: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)."""
    if spec.kind == "gru" and not spec.reset_after:
        (h,) = state
        (w_ir, w_iz, w_in), (w_hr, w_hz, w_hn) = w.w_ih.chunk(3), w.w_hh.chunk(3)
        (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = w.b_ih.chunk(3), w.b_hh.chunk(3)
        outs = []
        for x in xs:
            r = torch.sigmoid(w_ir @ x + b_ir + w_hr @ h + b_hr)
            z = torch.sigmoid(w_iz @ x + b_iz + w_hz @ h + b_hz)
            n = torch.tanh(w_in @ x + b_in + w_hn @ (r * h) + b_hn)
            h = (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs), (h,)
    module = nn_module(spec, w)
    s0 = tuple(s.view(1, 1, -1) for s in state)  # (1, 1, H) each
    with torch.no_grad():
        out, s_n = module(xs.unsqueeze(1), s0 if spec.kind == "lstm" else s0[0])
    s_n = s_n if spec.kind == "lstm" else (s_n,)
    return out[:, 0], tuple(s.view(-1) for s in s_n)


RUNS = [
    (name, spec)
    for name in grukit.available_backends()
    for spec in SPECS
    if BACKENDS[name].supports(spec, CPU64)
]


@pytest.mark.parametrize("name, spec", RUNS, ids=[case_id(*r) for r in RUNS])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_backend_run_matches_torch_nn(
    name: str, spec: CellSpec, reverse: bool, packed: bool
) -> None:
    """``run`` on one direction of one layer equals torch.nn (float64, 1e-10): outputs and
    final state of every sequence, padded or packed (lengths 5, 3, 2), either direction."""
    T, N, I, H = 5, 3, 4, 6
    G = {"gru": 3, "lstm": 4}.get(spec.kind, 1)
    g = torch.Generator().manual_seed(7)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    w = Weights(randn(G * H, I), randn(G * H, H), randn(G * H), randn(G * H))
    x = randn(T, N, I)
    state = (randn(N, H), randn(N, H)) if spec.kind == "lstm" else (randn(N, H),)
    lengths = [5, 3, 2] if packed else [T] * N
    if packed:
        data = pack_padded_sequence(x, lengths)
        out, state_n = BACKENDS[name].run(
            spec, data.data, data.batch_sizes, state, w, reverse=reverse
        )
        out, _ = pad_packed_sequence(PackedSequence(out, data.batch_sizes))  # (T, N, H)
    else:
        out, state_n = BACKENDS[name].run(spec, x, None, state, w, reverse=reverse)
    assert out.shape == (T, N, H) and len(state_n) == len(state)
    for b, L in enumerate(lengths):
        xs = x[:L, b].flip(0) if reverse else x[:L, b]  # (L, I) in the order run
        want, want_n = oracle(spec, xs, tuple(s[b] for s in state), w)
        want = want.flip(0) if reverse else want  # (L, H) back in time order
        torch.testing.assert_close(out[:L, b], want, rtol=1e-10, atol=1e-10)
        for got_s, want_s in zip(state_n, want_n, strict=True):
            torch.testing.assert_close(got_s[b], want_s, rtol=1e-10, atol=1e-10)


def test_unavailable_backend_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setattr(BACKENDS["torch"], "available", lambda: False)
    with pytest.raises(ValueError, match=r"GRU: backend 'torch' is not available on this machine"):
        grukit.GRU(3, 4, backend="torch")
