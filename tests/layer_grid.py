"""The randomised grid of layer configurations, and torch.nn twins of grukit layers."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import grukit

# Tolerances of the core issue: float64 where exactness is the point, float32 for use.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@dataclass(frozen=True)
class LayerCase:
    """One layer configuration of the randomised grid."""

    kind: str  # "gru" | "rnn_tanh" | "rnn_relu" | "lstm"
    reset_after: bool = True
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    bias: bool = True
    proj_size: int = 0
    form: str = "batched"  # "batched" | "unbatched" | "packed"
    with_hx: bool = True
    input_size: int = 3
    hidden_size: int = 5
    T: int = 4
    N: int = 3

    def __str__(self) -> str:
        var = "" if self.reset_after else "-cho"
        flags = [
            f"L{self.num_layers}",
            "bi" if self.bidirectional else "uni",
            "bf" if self.batch_first else "tf",
            "bias" if self.bias else "nobias",
            self.form,
            "hx" if self.with_hx else "nohx",
        ]
        if self.proj_size:
            flags.append(f"proj{self.proj_size}")
        return f"{self.kind}{var}-" + "-".join(flags)


def random_cases(kind: str, count: int, seed: int, **fixed) -> list[LayerCase]:
    """``count`` configurations drawn at random (reproducibly) for one cell kind."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        c = dict(
            kind=kind,
            num_layers=rng.choice([1, 2, 3]),
            bidirectional=rng.random() < 0.5,
            batch_first=rng.random() < 0.5,
            bias=rng.random() < 0.75,
            form=rng.choice(["batched", "unbatched", "packed"]),
            with_hx=rng.random() < 0.6,
            input_size=rng.choice([1, 3, 4]),
            hidden_size=rng.choice([2, 5]),
            T=rng.choice([1, 2, 5]),
            N=rng.choice([1, 3, 4]),
        )
        if kind == "lstm" and rng.random() < 0.4 and c["hidden_size"] > 1:
            c["proj_size"] = 1
        c.update(fixed)
        cases.append(LayerCase(**c))
    return cases


def make_grukit(case: LayerCase, dtype: torch.dtype, backend: str = "auto") -> grukit.RNNBase:
    common = dict(
        num_layers=case.num_layers,
        bias=case.bias,
        batch_first=case.batch_first,
        bidirectional=case.bidirectional,
        dtype=dtype,
        backend=backend,
    )
    i, h = case.input_size, case.hidden_size
    if case.kind == "gru":
        return grukit.GRU(i, h, reset_after=case.reset_after, **common)
    if case.kind.startswith("rnn"):
        return grukit.RNN(i, h, nonlinearity=case.kind[4:], **common)
    return grukit.LSTM(i, h, proj_size=case.proj_size, **common)


def make_torch(case: LayerCase, dtype: torch.dtype) -> nn.RNNBase:
    common = dict(
        num_layers=case.num_layers,
        bias=case.bias,
        batch_first=case.batch_first,
        bidirectional=case.bidirectional,
        dtype=dtype,
    )
    i, h = case.input_size, case.hidden_size
    if case.kind == "gru":
        assert case.reset_after, "torch has no reset_after=False GRU"
        return nn.GRU(i, h, **common)
    if case.kind.startswith("rnn"):
        return nn.RNN(i, h, nonlinearity=case.kind[4:], **common)
    return nn.LSTM(i, h, proj_size=case.proj_size, **common)


def make_inputs(case: LayerCase, dtype: torch.dtype, seed: int = 0):
    """(input, hx, lengths) for a case; input is a leaf tensor (or PackedSequence over one),
    hx a leaf tensor / tuple of leaves or None."""
    g = torch.Generator().manual_seed(seed)
    D = 2 if case.bidirectional else 1
    rows = D * case.num_layers
    P = case.proj_size or case.hidden_size

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    lengths = None
    if case.form == "unbatched":
        x = leaf(case.T, case.input_size)
        hshape, cshape = (rows, P), (rows, case.hidden_size)
    else:
        shape = (
            (case.N, case.T, case.input_size)
            if case.batch_first
            else (case.T, case.N, case.input_size)
        )
        x = leaf(*shape)
        hshape, cshape = (rows, case.N, P), (rows, case.N, case.hidden_size)
        if case.form == "packed":
            lengths = torch.randint(1, case.T + 1, (case.N,), generator=g)
            lengths[torch.randint(0, case.N, (1,), generator=g)] = case.T  # one full length
    hx = None
    if case.with_hx:
        hx = (leaf(*hshape), leaf(*cshape)) if case.kind == "lstm" else leaf(*hshape)
    return x, hx, lengths


def run(module, case: LayerCase, x, hx, lengths):
    """Forward (packing when the case says so) and return (output tensor, states tuple)."""
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=case.batch_first, enforce_sorted=False)
    out, state = module(inp, hx)
    if isinstance(out, PackedSequence):
        out = out.data
    states = state if isinstance(state, tuple) else (state,)
    return out, states


def leaves(module, x, hx):
    hxs = [] if hx is None else list(hx if isinstance(hx, tuple) else (hx,))
    return [*module.parameters(), x, *hxs]


def grads_of(outputs, module, x, hx, seed: int = 1):
    """Gradients of a random linear functional of every output w.r.t. every leaf."""
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outputs)
    return torch.autograd.grad(loss, leaves(module, x, hx), allow_unused=True)
