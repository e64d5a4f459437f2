"""``grukit.OneHot``: token indices as one-hot input. On every backend a layer given
``OneHot(indices, I)`` equals the same layer given ``F.one_hot(indices, I)`` — outputs and
final state exactly (the gather is exact), gradients of every parameter and of h0 within
1e-12 (float64; the scatter-add sums the same terms in another order) — and bad indices
raise before any computation."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import grukit
from grukit import OneHot
from grukit.onehot import projection, projection_weight_grad

BACKENDS = grukit.available_backends()


def _run(layer: torch.nn.Module, x: object, h0: torch.Tensor) -> list[torch.Tensor]:
    """(output, h_n, grads of every parameter and of h0) after a weighted-sum loss."""
    layer.zero_grad()
    h = h0.clone().requires_grad_()
    out, h_n = layer(x, h)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    ((out * w).sum() + h_n.sum()).backward()
    return [out.detach(), h_n.detach(), h.grad, *[p.grad for p in layer.parameters()]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["gru", "gru_cho", "rnn"])
@pytest.mark.parametrize("form", ["batched", "batch_first", "unbatched"])
def test_onehot_equals_dense_one_hot(backend: str, kind: str, form: str) -> None:
    torch.manual_seed(0)
    if kind == "gru_cho" and backend == "torch":
        pytest.skip("torch's kernels compute only the reset_after=True GRU")
    V, H, N, T = 7, 5, 3, 6
    common = dict(num_layers=2, bidirectional=True, dtype=torch.float64)
    common["batch_first"] = form == "batch_first"
    if kind == "rnn" and backend in ("native", "fused"):
        pytest.skip(f"{backend} computes only the GRU")
    if kind.startswith("gru"):
        layer = grukit.GRU(V, H, reset_after=kind == "gru", backend=backend, **common)
    else:
        layer = grukit.RNN(V, H, backend=backend, **common)
    shape = {"batched": (T, N), "batch_first": (N, T), "unbatched": (T,)}[form]
    idx = torch.randint(0, V, shape)
    h0 = torch.randn((4, H) if form == "unbatched" else (4, N, H), dtype=torch.float64)
    got = _run(layer, OneHot(idx, V), h0)
    want = _run(layer, F.one_hot(idx, V).double(), h0)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=0)
    for g, w in zip(got[2:], want[2:], strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


def test_onehot_lstm_pair_state() -> None:
    torch.manual_seed(1)
    layer = grukit.LSTM(6, 4, dtype=torch.float64)
    idx = torch.randint(0, 6, (5, 2))
    got_out, (got_h, got_c) = layer(OneHot(idx, 6))
    out, (h, c) = layer(F.one_hot(idx, 6).double())
    for g, w in ((got_out, out), (got_h, h), (got_c, c)):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_projection_gather_and_scatter_equal_the_products(bias: bool) -> None:
    """The two helpers the fast backends use, against the dense products (float64)."""
    torch.manual_seed(2)
    S, V, G = 40, 9, 12
    ids = torch.randint(0, V, (S,))
    dense = F.one_hot(ids, V).double()
    w = torch.randn(G, V, dtype=torch.float64)
    b = torch.randn(G, dtype=torch.float64) if bias else None
    want = dense @ w.t() + (0 if b is None else b)
    torch.testing.assert_close(projection(ids, w, b), want, rtol=0, atol=0)
    dgi = torch.randn(S, G, dtype=torch.float64)
    torch.testing.assert_close(
        projection_weight_grad(dgi, ids, V), dgi.t() @ dense, rtol=0, atol=1e-12
    )


def test_charlm_runs_its_gru_on_onehot_indices() -> None:
    """CharLM's one-hot input (embedding_dim=None) equals a GRU fed F.one_hot (float32)."""
    from grukit.models.charlm import CharLM

    torch.manual_seed(3)
    model = CharLM(11, 8)
    tokens = torch.randint(0, 11, (4, 7))  # (N, T)
    logits, state = model(tokens)
    y, h = model.rnn(F.one_hot(tokens.t(), 11).float())  # (T, N, V) dense
    torch.testing.assert_close(logits, model.head(y.reshape(-1, 8)), rtol=0, atol=0)
    torch.testing.assert_close(state, h, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (OneHot(torch.tensor([[0.0, 1.0]]), 4), TypeError, "OneHot indices of dtype int64"),
        (
            OneHot(torch.tensor([[0, 4]]), 4),
            ValueError,
            r"OneHot indices in \[0, 4\), got values in \[0, 4\]",
        ),
        (
            OneHot(torch.tensor([[-1, 2]]), 4),
            ValueError,
            r"OneHot indices in \[0, 4\), got values in \[-1, 2\]",
        ),
        (
            OneHot(torch.tensor([[0, 1]]), 5),
            ValueError,
            "input with 4 features .* OneHot of 5 classes",
        ),
        (
            OneHot(torch.zeros(2, 2, 2, dtype=torch.long), 4),
            ValueError,
            "OneHot indices of 2 dimensions .* got 3-D",
        ),
        (
            OneHot(torch.zeros(0, 2, dtype=torch.long), 4),
            ValueError,
            r"a non-empty sequence \(T >= 1\), got T = 0",
        ),
        (OneHot([[0, 1]], 4), TypeError, "OneHot indices to be a torch.Tensor, got list"),  # type: ignore[arg-type]
        (OneHot(torch.tensor([[0, 1]]), 0), ValueError, "OneHot num_classes a positive int"),
    ],
)
def test_bad_onehot_input_raises(x: OneHot, error: type, message: str) -> None:
    layer = grukit.GRU(4, 3)
    with pytest.raises(error, match=f"GRU: expected {message}"):
        layer(x)


def test_onehot_h0_is_checked_like_dense_input() -> None:
    layer = grukit.GRU(4, 3)
    with pytest.raises(ValueError, match="h_0"):
        layer(OneHot(torch.zeros(5, 2, dtype=torch.long), 4), torch.zeros(1, 3, 3))
