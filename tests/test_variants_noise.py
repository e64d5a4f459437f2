"""Recurrent dropout and zoneout through the fast path (fused and native loops, the operator
``grukit::gru``) equal the reference loop, the oracle (float64, 1e-10): outputs, h_n and
every gradient, with fixed masks given to the backends and with the masks a ``grukit.GRU``
draws in training under a seed. In evaluation recurrent dropout is the plain GRU and zoneout
its expectation, h_t = p h_{t-1} + (1 - p) h'_t; in training the masks' effect has the right
mean (statistical, 5 standard errors of the sample).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit
from grukit import functional as F
from grukit.backends import CellSpec, Noise, Weights, fused, native, reference, resolve

TOL = 1e-10  # float64: the same function up to rounding order
D64 = torch.float64
BACKENDS = ["fused", "native"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny problems: OpenMP only waits


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "native" and not native.available():
        pytest.skip("no native kernel")
    return str(request.param)


def masks(N: int, rows: tuple[int, ...], H: int, kind: str, g: torch.Generator) -> Noise:
    """A recurrent dropout mask (p = 0.3) and/or a zoneout keep mask (p = 0.4)."""
    h_mask = keep = None
    if kind in ("dropout", "both"):
        h_mask = torch.bernoulli(torch.full((N, H), 0.7, dtype=D64), generator=g) / 0.7
    if kind in ("zoneout", "both"):
        keep = torch.bernoulli(torch.full((*rows, H), 0.4, dtype=D64), generator=g)
    return Noise(h_mask, keep)


def run_and_grads(mod: object, spec: CellSpec, args: tuple, noise: Noise, rev: bool) -> list:
    x, bs, h0, w = args
    out, (h_n,) = mod.run(spec, x, bs, (h0,), Weights(*w), reverse=rev, noise=noise)  # type: ignore[attr-defined]
    up = torch.linspace(-1, 1, out.numel(), dtype=D64).view_as(out)
    loss = (out * up).sum() + (h_n**2).sum()
    return [out, h_n, *torch.autograd.grad(loss, [x, h0, *w])]


@pytest.mark.parametrize(
    ("kind", "reverse"), [("dropout", True), ("zoneout", False), ("both", True)]
)
@pytest.mark.parametrize("form", ["padded", "packed"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_backend_run_with_given_masks_matches_reference(
    backend: str, reset_after: bool, form: str, reverse: bool, kind: str
) -> None:
    g = torch.Generator().manual_seed(7)
    I, H, N, T = 3, 5, 4, 6  # H = 5: a partial vector in the C++ loops

    def leaf(*s: int) -> Tensor:
        return torch.randn(*s, dtype=D64, generator=g).requires_grad_()

    if form == "packed":
        bs = torch.tensor([4, 3, 3, 1, 1])  # lengths 5, 3, 3, 1
        S = int(bs.sum())
        x, rows = leaf(S, I), (S,)
    else:
        bs, x, rows = None, leaf(T, N, I), (T, N)
    h0 = leaf(N, H)
    w = (leaf(3 * H, I), leaf(3 * H, H), leaf(3 * H), leaf(3 * H))
    noise = masks(N, rows, H, kind, g)
    spec = CellSpec("gru", reset_after, True)
    mod = native if backend == "native" else fused
    got = run_and_grads(mod, spec, (x, bs, h0, w), noise, reverse)
    want = run_and_grads(reference, spec, (x, bs, h0, w), noise, reverse)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    # the masks matter: without them the result differs
    plain = run_and_grads(mod, CellSpec("gru", reset_after), (x, bs, h0, w), Noise(), reverse)
    assert (plain[0] - got[0]).abs().max() > 1e-3


#: (layers, bidirectional, batch_first, bias, input form, reset_after, dropout between layers)
CONFIGS = [
    (1, False, False, True, "padded", True, 0.0),
    (1, False, True, False, "padded", False, 0.0),
    (2, True, False, True, "padded", True, 0.25),
    (2, True, True, True, "packed", False, 0.0),
    (1, True, False, True, "packed", True, 0.0),
    (2, False, False, True, "unbatched", False, 0.0),
    (1, True, False, True, "onehot", True, 0.0),
]


def layer_results(model: grukit.GRU, config: tuple, seed: int) -> list[Tensor]:
    """Forward in training mode under ``seed`` (the masks), then the gradients of a loss
    w.r.t. the input (if dense), h0 and every parameter."""
    layers, bidir, batch_first, _, form, _, _ = config
    I, H, N, T = model.input_size, model.hidden_size, 4, 6
    D = 2 if bidir else 1
    g = torch.Generator().manual_seed(11)
    h0 = torch.randn(D * layers, *(() if form == "unbatched" else (N,)), H, dtype=D64, generator=g)
    h0.requires_grad_()
    shape = (N, T) if batch_first else (T, N)
    wrt: list[Tensor] = [h0]
    if form == "onehot":
        x: object = grukit.OneHot(torch.randint(0, I, shape, generator=g), I)
    else:
        dense = torch.randn(*((T,) if form == "unbatched" else shape), I, dtype=D64, generator=g)
        x = dense.requires_grad_()
        wrt.append(dense)
        if form == "packed":
            lengths = [4, 6, 1, 3]  # unsorted, one of length 1
            x = pack_padded_sequence(dense, lengths, batch_first=batch_first, enforce_sorted=False)
    torch.manual_seed(seed)
    out, h_n = model(x, h0)
    if form == "packed":
        out, _ = pad_packed_sequence(out, batch_first=batch_first)
    loss = (out * torch.sin(out)).sum() + (h_n**3).sum()
    return [out, h_n, *torch.autograd.grad(loss, [*wrt, *model.parameters()])]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_layer_in_training_matches_reference_under_a_seed(backend: str, config: tuple) -> None:
    layers, bidir, batch_first, bias, _, reset_after, dropout = config
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias)
    kw |= dict(dtype=D64, reset_after=reset_after, dropout=dropout)
    fast = grukit.GRU(3, 5, backend=backend, recurrent_dropout=0.3, zoneout=0.2, **kw)
    ref = grukit.GRU(3, 5, backend="reference", recurrent_dropout=0.3, zoneout=0.2, **kw)
    ref.load_state_dict(fast.state_dict())
    got = layer_results(fast, config, seed=5)
    want = layer_results(ref, config, seed=5)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_training_is_deterministic_under_a_seed(backend: str) -> None:
    """The same seed draws the same masks (equal results, bit for bit); another seed
    draws others."""
    config = CONFIGS[3]  # 2 layers, bidirectional, packed
    layers, bidir, batch_first, _, _, reset_after, _ = config
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, dtype=D64)
    fast = grukit.GRU(3, 5, backend=backend, recurrent_dropout=0.3, zoneout=0.2, **kw)
    got = layer_results(fast, config, seed=5)
    again = layer_results(fast, config, seed=5)
    for a, b in zip(got, again, strict=True):
        assert torch.equal(a, b)
    other = layer_results(fast, config, seed=6)
    assert (other[0] - got[0]).abs().max() > 1e-3


def test_auto_takes_the_fast_path_with_noise() -> None:
    x = torch.zeros(2, 1, 3)
    mod = resolve("GRU", "auto", CellSpec("gru", True, True), x)
    assert mod in (native, fused)
    assert native.supports(CellSpec("gru", False, True), x)
    assert fused.supports(CellSpec("gru", False, True), x)
    assert not native.supports(CellSpec("lstm", True, True), x)


@pytest.mark.parametrize("reset_after", [True, False])
def test_eval_recurrent_dropout_is_the_plain_gru(backend: str, reset_after: bool) -> None:
    kw = dict(num_layers=2, bidirectional=True, dtype=D64, reset_after=reset_after)
    noisy = grukit.GRU(3, 5, backend=backend, recurrent_dropout=0.5, **kw).eval()
    plain = grukit.GRU(3, 5, backend="reference", **kw).eval()
    plain.load_state_dict(noisy.state_dict())
    x = torch.randn(6, 4, 3, dtype=D64)
    for a, b in zip(noisy(x), plain(x), strict=True):
        assert torch.equal(a, b) or (a - b).abs().max() < TOL
    noisy.train()
    assert (noisy(x)[0] - plain(x)[0]).abs().max() > 1e-3  # training does drop


@pytest.mark.parametrize("reset_after", [True, False])
def test_eval_zoneout_is_its_expectation(backend: str, reset_after: bool) -> None:
    """h_t = p h_{t-1} + (1 - p) h'_t with h'_t = gru_cell(x_t, h_{t-1}): a hand-written loop
    over ``functional.gru_cell`` (1e-10), and the reference backend (1e-10)."""
    p, H = 0.3, 5
    model = grukit.GRU(3, H, backend=backend, zoneout=p, dtype=D64, reset_after=reset_after)
    model.eval()
    x, h0 = torch.randn(7, 4, 3, dtype=D64), torch.randn(4, H, dtype=D64)
    out, h_n = model(x, h0[None])
    h = h0
    w = model._weights(0, 0)
    steps = []
    for x_t in x:
        new = F.gru_cell(x_t, h, w.w_ih, w.w_hh, w.b_ih, w.b_hh, reset_after=reset_after)
        h = p * h + (1 - p) * new
        steps.append(h)
    torch.testing.assert_close(out, torch.stack(steps), rtol=0, atol=TOL)
    torch.testing.assert_close(h_n[0], h, rtol=0, atol=TOL)
    ref = grukit.GRU(3, H, backend="reference", zoneout=p, dtype=D64, reset_after=reset_after)
    ref.load_state_dict(model.state_dict())
    for a, b in zip((out, h_n), ref.eval()(x, h0[None]), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_training_zoneout_one_step_has_the_right_mean(backend: str) -> None:
    """One step of M identical sequences: each unit keeps h0 with probability p, else takes
    h' (the cell's new value), so the sample mean is p h0 + (1 - p) h' within 5 standard
    errors, SE = sqrt(p (1 - p)) |h0 - h'| / sqrt(M)."""
    p, M, H = 0.3, 4000, 6
    model = grukit.GRU(3, H, backend=backend, zoneout=p, dtype=D64).train()
    x = torch.randn(1, 1, 3, dtype=D64).expand(1, M, 3)
    h0 = torch.randn(1, 1, H, dtype=D64).expand(1, M, H)
    with torch.no_grad():
        out, _ = model(x, h0)  # (1, M, H)
        w = model._weights(0, 0)
        new = F.gru_cell(x[0, :1], h0[0, :1], w.w_ih, w.w_hh, w.b_ih, w.b_hh)  # (1, H)
    kept = (out[0] - h0[0, :1]).abs() < 1e-12  # which units kept their value (M, H)
    rate_se = math.sqrt(p * (1 - p) / (M * H))
    assert abs(kept.double().mean().item() - p) <= 5 * rate_se
    want = p * h0[0, 0] + (1 - p) * new[0]
    se = math.sqrt(p * (1 - p)) * (h0[0, 0] - new[0]).abs() / math.sqrt(M)
    assert ((out[0].mean(0) - want).abs() <= 5 * se + 1e-12).all()
    # and each sample is exactly h0 or h' (nothing in between)
    assert torch.where(kept, h0[0, :1].expand(M, H), new.expand(M, H)).sub(out[0]).abs().max() < TOL


@pytest.mark.parametrize("reset_after", [True, False])
def test_training_recurrent_dropout_weight_gradient_has_the_right_mean(
    backend: str, reset_after: bool
) -> None:
    """With W_hh = 0 a step does not depend on the mask, and W_hh's gradient is linear in it:
    Σ_b dgh_b ⊗ (h0 ⊙ m_b). Over M identical sequences its mean is the gradient without
    dropout (E m = 1), within 5 standard errors, SE = |dgh ⊗ h0| sqrt(p / (1 - p)) / sqrt(M)."""
    p, M, H = 0.25, 4000, 4
    kw = dict(dtype=D64, reset_after=reset_after)
    noisy = grukit.GRU(3, H, backend=backend, recurrent_dropout=p, **kw).train()
    plain = grukit.GRU(3, H, backend="reference", **kw)
    with torch.no_grad():
        noisy.weight_hh_l0.zero_()
    plain.load_state_dict(noisy.state_dict())
    x = torch.randn(1, 1, 3, dtype=D64).expand(1, M, 3)
    h0 = torch.randn(1, 1, H, dtype=D64).expand(1, M, H)
    grads = []
    for model in (noisy, plain):
        out, h_n = model(x, h0)
        up = torch.arange(1.0, H + 1, dtype=D64)  # (H,) a loss weighting the units
        (grad,) = torch.autograd.grad((out * up).sum(), [model.weight_hh_l0])
        grads.append(grad)
    got, want = grads[0] / M, grads[1] / M  # per sequence
    se = want.abs() * math.sqrt(p / (1 - p)) / math.sqrt(M)
    assert ((got - want).abs() <= 5 * se + 1e-12).all()
    assert (got - want).abs().max() > 0  # the masks did act


def function_args(g: torch.Generator) -> tuple[tuple, Tensor, Noise]:
    """Leaves (x (S, I), h0, w_ih, w_hh, b_ih, b_hh) of a small packed batch, its batch
    sizes and masks of both kinds."""
    I, H = 2, 2
    bs = torch.tensor([2, 2, 1])  # lengths 3, 2
    S, N = int(bs.sum()), int(bs[0])
    shapes = ((S, I), (N, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))
    leaves = tuple(torch.randn(*s, dtype=D64, generator=g).requires_grad_() for s in shapes)
    return leaves, bs, masks(N, (S,), H, "both", g)


@pytest.mark.parametrize("reset_after", [True, False])
def test_double_backward_through_the_fast_path_with_noise(backend: str, reset_after: bool) -> None:
    """gradcheck and gradgradcheck (finite differences, float64, fast mode: random
    directions) of the fast function with fixed masks: its create_graph backward
    differentiates the reference loop with them."""
    args, bs, noise = function_args(torch.Generator().manual_seed(3))
    loops = native.NATIVE_LOOPS if backend == "native" else fused.TORCH_LOOPS

    def f(*a: Tensor) -> tuple[Tensor, Tensor]:
        return fused.GRUFunction.apply(*a, bs, True, reset_after, loops, *noise)

    assert torch.autograd.gradcheck(f, args, fast_mode=True)
    assert torch.autograd.gradgradcheck(f, args, fast_mode=True)


@pytest.mark.parametrize("reset_after", [True, False])
def test_operator_with_noise_matches_reference(backend: str, reset_after: bool) -> None:
    """grukit::gru with masks (the traced path): output and gradients equal the reference
    loop's (1e-10), through its registered autograd; once, torch.library.opcheck (schema,
    fake kernel, autograd registration)."""
    args, bs, noise = function_args(torch.Generator().manual_seed(4))
    op_args = (*args, bs, True, reset_after, True, backend if backend == "native" else "torch")
    if backend == "native" and reset_after:
        utils = ("test_schema", "test_autograd_registration", "test_faketensor")
        torch.library.opcheck(torch.ops.grukit.gru.default, (*op_args, *noise), test_utils=utils)
    out, h_n, _, _ = torch.ops.grukit.gru(*op_args, *noise)
    spec = CellSpec("gru", reset_after, True)
    want_out, (want_h,) = reference.run(spec, args[0], bs, (args[1],), Weights(*args[2:]),
                                        reverse=True, noise=noise)  # fmt: skip
    got = torch.autograd.grad((out * out).sum() + h_n.sum(), args)
    want = torch.autograd.grad((want_out * want_out).sum() + want_h.sum(), args)
    for a, b in zip((out, h_n, *got), (want_out, want_h, *want), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_compiled_training_step_with_noise_matches_reference() -> None:
    """torch.compile (aot_eager: the operator's fake kernel and autograd, eager RNG) of a
    GRU with both regularisers in training: the graph calls grukit::gru, and output and
    gradients equal the reference backend's under the same seed (1e-10)."""
    torch._dynamo.reset()
    kw = dict(bidirectional=True, dtype=D64, recurrent_dropout=0.3, zoneout=0.2)
    model = grukit.GRU(3, 5, **kw).train()
    ref = grukit.GRU(3, 5, backend="reference", **kw).train()
    ref.load_state_dict(model.state_dict())
    seen: list[str] = []

    def spy(gm: torch.fx.GraphModule, example: list) -> object:
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return torch._dynamo.lookup_backend("aot_eager")(gm, example)

    compiled = torch.compile(model, backend=spy, fullgraph=True)
    x = torch.randn(4, 2, 3, dtype=D64)
    results = []
    for m, params in ((compiled, list(model.parameters())), (ref, list(ref.parameters()))):
        torch.manual_seed(9)
        out, h_n = m(x)
        loss = (out**2).sum() + h_n.sum()
        results.append([out, h_n, *torch.autograd.grad(loss, params)])
    assert sum("grukit.gru" in t for t in seen) == 2, seen  # one per direction
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def test_errors_name_the_class() -> None:
    with pytest.raises(ValueError, match=r"GRU: expected recurrent_dropout in \[0, 1\), got 1.0"):
        grukit.GRU(3, 5, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="RNNBase: recurrent_dropout and zoneout are for GRU"):
        grukit.layers.RNNBase("lstm", 3, 5, zoneout=0.1)
    with pytest.raises(ValueError, match="RNNBase: .* got them for RNN_TANH"):
        grukit.layers.RNNBase("rnn_tanh", 3, 5, recurrent_dropout=0.1)
    with pytest.raises(TypeError, match="zoneout"):  # LSTM does not take them at all
        grukit.LSTM(3, 5, zoneout=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="GRU: ONNX export and jit.trace are not supported for zo"):
        torch.jit.trace(grukit.GRU(3, 5, zoneout=0.1).eval(), torch.randn(4, 2, 3))
