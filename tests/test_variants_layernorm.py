"""LayerNormGRU: the cell against an independent formulation, and the fast path (native C++
loops, fused torch-op loops, the traced operator) against the reference loop.

Tolerances: float64 cell vs the hand-written oracle 1e-12; fast path vs reference 1e-10 for
output, h_n and every gradient; float32 vs float64 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_sequence

import grukit
from grukit import LayerNormGRU
from grukit.backends import CellSpec, Noise, Weights, fused, native, reference

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64
FAST = ["native", "fused"]


def _layer(backend: str, *, gains: bool = True, seed: int = 0, **kw: object) -> LayerNormGRU:
    """A float64 LayerNormGRU with gains and biases away from their init (ones / uniform)."""
    torch.manual_seed(seed)
    m = LayerNormGRU(backend=backend, dtype=D64, **kw)  # type: ignore[arg-type]
    if gains:
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.startswith("ln_"):
                    p.uniform_(0.5, 1.5)
    return m


def _need_native(backend: str) -> None:
    if backend == "native" and not native.available():
        pytest.skip("no native kernel")


# -- the cell against haste's formulation, written out here with F.layer_norm -------------


def _haste_step(x: Tensor, h: Tensor, p: dict[str, Tensor], reset_after: bool) -> Tensor:
    H = h.shape[1]
    ln = lambda a, g: F.layer_norm(a, (a.shape[1],), g, None, 1e-5)  # noqa: E731
    gi = ln(x @ p["weight_ih_l0"].T, p["ln_weight_ih_l0"]) + p["bias_ih_l0"]
    w, b, g = p["weight_hh_l0"], p["bias_hh_l0"], p["ln_weight_hh_l0"]
    if reset_after:
        gh = ln(h @ w.T, g) + b
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = torch.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    else:
        grz = ln(h @ w[: 2 * H].T, g[: 2 * H]) + b[: 2 * H]
        r = torch.sigmoid(gi[:, :H] + grz[:, :H])
        z = torch.sigmoid(gi[:, H : 2 * H] + grz[:, H:])
        n = torch.tanh(gi[:, 2 * H :] + ln((r * h) @ w[2 * H :].T, g[2 * H :]) + b[2 * H :])
    return (1 - z) * n + z * h


@pytest.mark.parametrize("reset_after", [True, False])
def test_reference_cell_matches_haste_formulation(reset_after: bool) -> None:
    m = _layer("reference", input_size=3, hidden_size=5, reset_after=reset_after)
    p = dict(m.named_parameters())
    x, h0 = torch.randn(4, 2, 3, dtype=D64), torch.randn(1, 2, 5, dtype=D64)
    out, h_n = m(x, h0)
    h, outs = h0[0], []
    for t in range(4):
        h = _haste_step(x[t], h, p, reset_after)
        outs.append(h)
    torch.testing.assert_close(out, torch.stack(outs), atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n[0], h, atol=1e-12, rtol=0)


# -- fast path vs reference ----------------------------------------------------------------

CONFIGS = [  # (layer kwargs, input kind)
    (dict(reset_after=True), "padded"),
    (dict(reset_after=False), "padded"),
    (dict(reset_after=True, bias=False), "padded"),
    (dict(reset_after=False, bias=False, batch_first=True), "padded"),
    (dict(reset_after=True, num_layers=2, bidirectional=True), "packed"),
    (dict(reset_after=False, num_layers=2, bidirectional=True), "packed"),
    (dict(reset_after=False, bidirectional=True), "unbatched"),
    (dict(reset_after=True, recurrent_dropout=0.3, zoneout=0.4), "padded"),
    (dict(reset_after=False, recurrent_dropout=0.3, zoneout=0.4, bidirectional=True), "packed"),
    (dict(reset_after=True, zoneout=0.5, bidirectional=True), "packed"),
]


def _inputs(kind: str, kw: dict, I: int) -> tuple[object, Tensor | None, list[Tensor]]:
    """(input or a function making it, h0 or None, leaves to differentiate)."""
    D = 2 if kw.get("bidirectional") else 1
    L = int(kw.get("num_layers", 1))
    if kind == "packed":  # unsorted lengths: the layer sorts and unsorts
        seqs = [torch.randn(n, I, dtype=D64, requires_grad=True) for n in (3, 5, 1, 4)]
        h0 = torch.randn(D * L, 4, 6, dtype=D64, requires_grad=True)
        return lambda: pack_sequence(seqs, enforce_sorted=False), h0, [*seqs, h0]
    if kind == "unbatched":
        x = torch.randn(5, I, dtype=D64, requires_grad=True)
        h0 = torch.randn(D * L, 6, dtype=D64, requires_grad=True)
        return x, h0, [x, h0]
    x = torch.randn(3, 5, I, dtype=D64, requires_grad=True)  # (T, N, I) or (N, T, I)
    h0 = torch.randn(D * L, 3 if kw.get("batch_first") else 5, 6, dtype=D64, requires_grad=True)
    return x, h0, [x, h0]


def _run(m: LayerNormGRU, inp: object, h0: Tensor | None, leaves: list[Tensor]) -> list[Tensor]:
    """[output, h_n, d(leaves), d(parameters)] with a fixed random cotangent, masks seeded."""
    torch.manual_seed(123)
    out, h_n = m(inp() if callable(inp) else inp, h0)
    o = out.data if isinstance(out, PackedSequence) else out
    gen = torch.Generator().manual_seed(7)
    loss = (o * torch.randn(o.shape, generator=gen, dtype=D64)).sum()
    loss = loss + (h_n * torch.randn(h_n.shape, generator=gen, dtype=D64)).sum()
    grads = torch.autograd.grad(loss, [*leaves, *m.parameters()])
    return [o, h_n, *grads]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[1]}-{c[0]}")
def test_fast_path_matches_reference(backend: str, config: tuple[dict, str]) -> None:
    _need_native(backend)
    kw, kind = config
    m = _layer("reference", input_size=3, hidden_size=6, **kw)
    inp, h0, leaves = _inputs(kind, kw, 3)
    want = _run(m, inp, h0, leaves)
    m.backend = backend
    got = _run(m, inp, h0, leaves)
    assert grukit.backends.resolve("t", backend, CellSpec("layernorm_gru"), leaves[0]) is not None
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("packed", [False, True])
def test_backend_run_with_fixed_noise(backend: str, reset_after: bool, packed: bool) -> None:
    """A given Noise (mask with zeros and 1/(1-p), keep with 0, 1 and a fraction) through
    ``run`` directly, reverse direction: equal to the reference backend with the same masks."""
    _need_native(backend)
    mod = {"native": native, "fused": fused}[backend]
    torch.manual_seed(3)
    N, H, I = 3, 5, 4
    sizes = torch.tensor([3, 3, 2, 1]) if packed else torch.tensor([3] * 4)
    S = int(sizes.sum())
    x = torch.randn(S, I, dtype=D64, requires_grad=True)
    h0 = torch.randn(N, H, dtype=D64, requires_grad=True)
    ws = [torch.randn(3 * H, I), torch.randn(3 * H, H), torch.randn(3 * H), torch.randn(3 * H)]
    ws += [torch.rand(3 * H) + 0.5, torch.rand(3 * H) + 0.5]
    ws = [w.to(D64).requires_grad_() for w in ws]
    w = Weights(ws[0], ws[1], ws[2], ws[3], None, ws[4], ws[5])
    h_mask = torch.bernoulli(torch.full((N, H), 0.7, dtype=D64)) / 0.7
    keep = torch.bernoulli(torch.full((S, H), 0.4, dtype=D64))
    keep[0, :2] = 0.25  # evaluation's expectation, mixed in
    spec = CellSpec("layernorm_gru", reset_after, True)

    def go(m: object) -> list[Tensor]:
        xs = x if packed else x.view(4, N, I)
        k = keep if packed else keep.view(4, N, H)
        out, (h_n,) = m.run(  # type: ignore[attr-defined]
            spec, xs, sizes if packed else None, (h0,), w, reverse=True, noise=Noise(h_mask, k)
        )
        out = out.reshape(S, H)
        loss = (out * torch.cos(out)).sum() + (h_n**2).sum()
        return [out, h_n, *torch.autograd.grad(loss, [x, h0, *ws])]

    for g, want in zip(go(mod), go(reference), strict=True):
        torch.testing.assert_close(g, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("reset_after", [True, False])
def test_native_rows_in_parallel_pieces(reset_after: bool) -> None:
    """Steps wide enough (N_t · H) for the native loops to split their rows over two threads,
    each piece summing the gains' and biases' gradients apart: equal to the reference 1e-10.
    N = 64, H = 352: every row pass of the first step runs in pieces; the second step's 40
    rows only in some (packed), with recurrent dropout and zoneout."""
    _need_native("native")
    torch.set_num_threads(2)  # the fixture restores one thread after the test
    torch.manual_seed(5)
    N, H, I = 64, 352, 3
    sizes = torch.tensor([64, 40])
    S = int(sizes.sum())
    x = torch.randn(S, I, dtype=D64, requires_grad=True)
    h0 = torch.randn(N, H, dtype=D64, requires_grad=True)
    ws = [torch.randn(3 * H, I), torch.randn(3 * H, H) / H**0.5, torch.randn(3 * H)]
    ws += [torch.randn(3 * H), torch.rand(3 * H) + 0.5, torch.rand(3 * H) + 0.5]
    ws = [w.to(D64).requires_grad_() for w in ws]
    w = Weights(ws[0], ws[1], ws[2], ws[3], None, ws[4], ws[5])
    h_mask = torch.bernoulli(torch.full((N, H), 0.8, dtype=D64)) / 0.8
    keep = torch.bernoulli(torch.full((S, H), 0.2, dtype=D64))
    spec = CellSpec("layernorm_gru", reset_after, True)

    def go(m: object) -> list[Tensor]:
        out, (h_n,) = m.run(  # type: ignore[attr-defined]
            spec, x, sizes, (h0,), w, noise=Noise(h_mask, keep)
        )
        loss = (out * torch.cos(out)).sum() + (h_n**2).sum()
        return [out, h_n, *torch.autograd.grad(loss, [x, h0, *ws])]

    for g, want in zip(go(native), go(reference), strict=True):
        torch.testing.assert_close(g, want, atol=1e-10, rtol=0)
    with torch.no_grad():  # inference: the input side of all rows first, in pieces
        for g, want in zip(go_infer(native, spec, x, sizes, h0, w, h_mask, keep),
                           go_infer(reference, spec, x, sizes, h0, w, h_mask, keep),
                           strict=True):  # fmt: skip
            torch.testing.assert_close(g, want, atol=1e-10, rtol=0)


def go_infer(m: object, spec: CellSpec, *args: object) -> list[Tensor]:
    """A backend's (out, h_n) without autograd (the native loops' no-save path)."""
    x, sizes, h0, w, h_mask, keep = args
    out, (h_n,) = m.run(spec, x, sizes, (h0,), w, noise=Noise(h_mask, keep))  # type: ignore[attr-defined]
    return [out, h_n]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("reset_after", [True, False])
def test_float32_matches_float64(backend: str, reset_after: bool) -> None:
    _need_native(backend)
    m = _layer(backend, input_size=4, hidden_size=16, reset_after=reset_after, zoneout=0.2)
    x = torch.randn(7, 3, 4, dtype=D64, requires_grad=True)
    want = _run(m, x, None, [x])
    m32 = m.float()
    x32 = x.detach().float().requires_grad_()
    torch.manual_seed(123)
    out, h_n = m32(x32)
    gen = torch.Generator().manual_seed(7)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=D64).float()).sum()
    loss = loss + (h_n * torch.randn(h_n.shape, generator=gen, dtype=D64).float()).sum()
    got = [out, h_n, *torch.autograd.grad(loss, [x32, *m32.parameters()])]
    # float32 rounding: the reference's worst element here is 0.6e-5 off float64, the
    # fast paths' (other summation orders: whole-sequence column sums) 1.3e-5; a wrong
    # formula is off by ~1e-1
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w, atol=3e-5, rtol=3e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_float32_rows_with_a_large_offset(reset_after: bool) -> None:
    """Input projection rows with mean ~1e3 and σ ~3 (inputs 250–255, weights 1 + k/256:
    the float32 projection is exact): the native row statistics (one pass, shifted by the
    row's first value) keep float32 precision (outputs within ~6e-6 of float64), where
    mean(a²) − μ² cancels (1e6 against σ² ~9: x̂ off by ~2e-2 on these rows). Oracle: the
    float64 reference; tolerance 1e-4."""
    _need_native("native")
    m = _layer("reference", input_size=4, hidden_size=16, reset_after=reset_after)
    with torch.no_grad():
        m.weight_ih_l0.copy_(1 + torch.randint(-2, 3, (48, 4)) / 256)
    x = 250.0 + torch.randint(0, 6, (6, 3, 4)).double()
    with torch.no_grad():
        want = m(x)
        m32 = m.float()
        m32.backend = "native"
        got = m32(x.float())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w, atol=1e-4, rtol=0)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_native_propagates_nan_and_inf_as_the_reference(reset_after: bool, bad: float) -> None:
    """One NaN or Inf input element: the native loops (no-grad path, and the saving path of
    a training forward) give NaN exactly where the reference does and its values elsewhere
    (1e-10, float64)."""
    _need_native("native")
    m = _layer("reference", input_size=3, hidden_size=5, reset_after=reset_after)
    x = torch.randn(4, 2, 3, dtype=D64)
    x[1, 0, 1] = bad
    with torch.no_grad():
        want = m(x)
    m.backend = "native"
    with torch.no_grad():
        got = m(x)
    saved = m(x.clone().requires_grad_())
    for g, w in (*zip(got, want, strict=True), *zip(saved, want, strict=True)):
        assert g.isnan().any() and torch.equal(g.isnan(), w.isnan())
        torch.testing.assert_close(g.nan_to_num(0), w.nan_to_num(0), atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", FAST)
def test_inference_without_grad_matches(backend: str) -> None:
    """The no-save forward (scratch rows only) gives the same output as the reference."""
    _need_native(backend)
    for reset_after in (True, False):
        m = _layer("reference", input_size=3, hidden_size=6, reset_after=reset_after)
        x = torch.randn(5, 4, 3, dtype=D64)
        with torch.no_grad():
            want = m(x)
            m.backend = backend
            got = m(x)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("reset_after", [True, False])
def test_gradgradcheck(backend: str, reset_after: bool) -> None:
    """Double backward is exact (differentiates the reference loop), not silently zero."""
    _need_native(backend)
    m = _layer(backend, input_size=2, hidden_size=3, reset_after=reset_after, zoneout=0.3)
    m.eval()  # zoneout's keep = p everywhere: deterministic
    x = torch.randn(3, 2, 2, dtype=D64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=D64, requires_grad=True)
    g = m.ln_weight_hh_l0
    f: Callable[..., Tensor] = lambda x, h0, g: m(x, h0)[0]  # noqa: E731
    assert torch.autograd.gradgradcheck(lambda x, h0: f(x, h0, g), (x, h0))
    (gx,) = torch.autograd.grad(m(x, h0)[0].pow(2).sum(), x, create_graph=True)
    (ggain,) = torch.autograd.grad(gx.sum(), g)
    assert ggain.abs().max() > 1e-6


@pytest.mark.parametrize("backend", FAST)
def test_torch_compile_runs_the_operator(backend: str) -> None:
    _need_native(backend)
    m = _layer(backend, input_size=3, hidden_size=4, reset_after=False, recurrent_dropout=0.2)
    x = torch.randn(5, 2, 3, dtype=D64, requires_grad=True)
    want = _run(m, x, None, [x])
    seen: list[str] = []

    def spy(gm: torch.fx.GraphModule, example: object) -> Callable[..., object]:
        seen.extend(str(n.target) for n in gm.graph.nodes)
        return gm

    compiled = torch.compile(m, backend=spy, fullgraph=True)
    got = _run(compiled, x, None, [x])  # type: ignore[arg-type]
    assert any("layernorm_gru" in s for s in seen), seen
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0)


def test_onehot_input_matches_dense() -> None:
    m = _layer("native" if native.available() else "fused", input_size=5, hidden_size=4)
    idx = torch.tensor([[0, 4], [2, 2], [1, 3]])
    oh = grukit.OneHot(idx, 5)
    want = m(F.one_hot(idx, 5).to(D64))
    got = m(oh)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=0)


def test_auto_picks_a_fast_backend() -> None:
    x = torch.randn(2, 1, 3)
    mod = grukit.backends.resolve("t", "auto", CellSpec("layernorm_gru", True, True), x)
    assert mod.name == ("native" if native.available() else "fused")


def test_errors_name_the_class() -> None:
    m = LayerNormGRU(3, 4)
    with pytest.raises(ValueError, match=r"^LayerNormGRU: expected input with 3 features"):
        m(torch.randn(2, 1, 5))
    with pytest.raises(ValueError, match=r"^LayerNormGRU:"):
        m(torch.randn(2, 1, 3), torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match=r"^LayerNormGRU:"):
        m(torch.randn(2, 3, 1, 3))


def test_native_kernel_checks_shapes(native_kernel: object) -> None:
    a_i, h0, w = torch.randn(4, 12), torch.randn(2, 4), torch.randn(12, 4)
    with pytest.raises(RuntimeError, match="ln_gru_forward: expected ln_hh of shape"):
        native_kernel.ln_gru_forward(  # type: ignore[attr-defined]
            a_i, h0, w, None, None, torch.ones(12), torch.ones(8), None, None,
            torch.tensor([2, 2]), False, True, True, False,
        )  # fmt: skip
