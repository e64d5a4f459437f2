"""The native C++ kernel: NaN and ±Inf land where torch puts them, and malformed arguments
raise RuntimeError before any memory is touched.

NaN / Inf: a NaN or ±Inf injected into the input, h0 or one weight gives the same NaN and
±Inf positions as the oracle in the outputs, h_n and every gradient, and the values finite
on both agree within 1e-5 (float32) / 1e-10 (float64). Oracle: ``torch.nn.GRU`` /
``nn.GRUCell`` on the same state_dict (reset_after=True); grukit's "reference" backend, a
loop of torch ops, for reset_after=False, which torch does not compute. Two sizes: H = 8
(per-step products on at::mm) and H = 128, T = 6 (float32 on an AVX-512 build: the packed
kernel of gemm.h in forward and backward).

Arguments: the extension's functions (``build.load()``) called directly with one argument
wrong at a time — shape, dtype, device, batch_sizes — raise RuntimeError naming the
function; non-contiguous arguments give the contiguous result.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

import grukit
from grukit import functional as F
from grukit.backends.native import build

pytestmark = pytest.mark.usefixtures("native_kernel", "one_thread")  # skips without a kernel


TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
NAN, INF = math.nan, math.inf
I = 3
SIZES = {"mm": (8, 5, 4), "packed": (128, 6, 3)}  # name: (H, T, N)


def assert_same_values(got: Tensor, want: Tensor, what: str, tol: float) -> None:
    """Same NaN, +Inf and -Inf positions; the values finite in ``want`` agree within tol."""
    assert got.shape == want.shape, what
    for name, mask in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        g, w = mask(got), mask(want)
        assert torch.equal(g, w), (
            f"{what}: {name} at {int(g.sum())} places, expected {int(w.sum())}"
        )
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], rtol=tol, atol=tol, msg=what)


def poison(case: str, x: Tensor, h0: Tensor, sd: dict[str, Tensor], H: int) -> None:
    """Put a NaN / ±Inf / overflow into x (T, N, I), h0 (1, N, H) or a weight, in place."""
    big = 3e38 if x.dtype == torch.float32 else 1e308
    edits = {
        "x_nan": lambda: x[2, 1].__setitem__(0, NAN),
        "x_inf": lambda: x[1, 0].__setitem__(1, INF),
        "x_ninf": lambda: x[3, 2].__setitem__(2, -INF),
        "x_huge": lambda: x.mul_(big),  # x W_ihᵀ overflows: ±Inf and Inf − Inf = NaN
        "h0_nan": lambda: h0[0, 1].__setitem__(2, NAN),
        "h0_inf": lambda: h0[0, 0].__setitem__(1, INF),
        "w_hh_nan": lambda: sd["weight_hh_l0"][3].__setitem__(2, NAN),  # an r row
        "w_hh_z_inf": lambda: sd["weight_hh_l0"][H + 1].__setitem__(0, INF),  # a z row
        "w_ih_n_nan": lambda: sd["weight_ih_l0"][2 * H].__setitem__(1, NAN),  # an n row
        "b_hh_n_nan": lambda: sd["bias_hh_l0"].__setitem__(2 * H + 1, NAN),
        "b_ih_ninf": lambda: sd["bias_ih_l0"].__setitem__(H + 2, -INF),
    }
    edits[case]()


CASES = [
    "x_nan", "x_inf", "x_ninf", "x_huge", "h0_nan", "h0_inf",
    "w_hh_nan", "w_hh_z_inf", "w_ih_n_nan", "b_hh_n_nan", "b_ih_ninf",
]  # fmt: skip


def run_layer(layer: torch.nn.Module, x: Tensor, h0: Tensor, lengths: Tensor | None) -> list:
    """Outputs, h_n and the gradients of x, h0 and every parameter, as a flat list."""
    x = x.detach().clone().requires_grad_()
    h0 = h0.detach().clone().requires_grad_()
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h_n = layer(inp, h0)
    out = out if lengths is None else out.data  # (S, H) packed rows
    w = torch.linspace(-1, 1, out.numel(), dtype=x.dtype).view_as(out)  # upstream gradient
    torch.autograd.backward([out, h_n], [w, torch.ones_like(h_n)])
    return [out, h_n, x.grad, h0.grad] + [p.grad for p in layer.parameters()]


# The packed kernel is float32 only: float64 at H = 128 would run at::mm again.
DTYPE_SIZES = [(torch.float32, "mm"), (torch.float64, "mm"), (torch.float32, "packed")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize(("dtype", "size"), DTYPE_SIZES, ids=["f32-mm", "f64-mm", "f32-packed"])
def test_layer_nonfinite_like_oracle(
    case: str, packed: bool, reset_after: bool, dtype: torch.dtype, size: str
) -> None:
    H, T, N = SIZES[size]
    torch.manual_seed(11)
    if reset_after:
        oracle: torch.nn.Module = torch.nn.GRU(I, H, dtype=dtype)
    else:
        oracle = grukit.GRU(I, H, reset_after=False, backend="reference", dtype=dtype)
    fast = grukit.GRU(I, H, reset_after=reset_after, backend="native", dtype=dtype)
    sd = {k: v.clone() for k, v in oracle.state_dict().items()}
    x, h0 = torch.randn(T, N, I, dtype=dtype), torch.randn(1, N, H, dtype=dtype)
    poison(case, x, h0, sd, H)
    oracle.load_state_dict(sd)
    fast.load_state_dict(sd)
    lengths = torch.tensor([T, T - 2, T - 1, 1][:N]) if packed else None
    names = ["output", "h_n", "grad x", "grad h0"] + [
        f"grad {n}" for n, _ in fast.named_parameters()
    ]
    got, want = run_layer(fast, x, h0, lengths), run_layer(oracle, x, h0, lengths)
    for name, g, w in zip(names, got, want, strict=True):
        assert_same_values(g, w, f"{case}: {name}", TOL[dtype])
    if "nan" in case or case == "x_huge":  # (±Inf may only saturate gates: all finite)
        assert not all(torch.isfinite(w).all() for w in want)  # the case reaches the results


def test_issue_case_nan_input_float32() -> None:
    """The reported case: x[2, 1, 0] = NaN gives nn.GRU NaN outputs; native gave none."""
    torch.manual_seed(0)
    ref = torch.nn.GRU(3, 8)
    fast = grukit.GRU(3, 8, backend="native")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(5, 4, 3)
    x[2, 1, 0] = NAN
    with torch.no_grad():
        (out, h_n), (want, want_h) = fast(x), ref(x)
    assert int(want.isnan().sum()) == 24 and int(out.isnan().sum()) == 24
    assert_same_values(out, want, "output", 1e-5)
    assert_same_values(h_n, want_h, "h_n", 1e-5)


@pytest.mark.parametrize("case", ["x_nan", "x_inf", "h_nan", "h_inf", "w_hh_nan", "b_ih_inf"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("H", [8, 256])  # 256: the at::mm branch of gru_cell (N·3H(I+H) > 2^20)
def test_streaming_cell_nonfinite_like_oracle(
    case: str, reset_after: bool, dtype: torch.dtype, H: int
) -> None:
    """The no-grad streaming step (``native.gru_cell``) and, with grad, the one-step fused
    Function: NaN / ±Inf positions and finite values as nn.GRUCell (reset_after=False: the
    reference backend)."""
    torch.manual_seed(12)
    N, In = 4, 400 if H == 256 else 5
    if reset_after:
        oracle: torch.nn.Module = torch.nn.GRUCell(In, H, dtype=dtype)
    else:
        oracle = grukit.GRUCell(In, H, reset_after=False, backend="reference", dtype=dtype)
    cell = grukit.GRUCell(In, H, reset_after=reset_after, backend="native", dtype=dtype)
    sd = {k: v.clone() for k, v in oracle.state_dict().items()}
    x, h = torch.randn(N, In, dtype=dtype), torch.randn(N, H, dtype=dtype)
    {
        "x_nan": lambda: x[1].__setitem__(0, NAN),
        "x_inf": lambda: x[2].__setitem__(3, INF),
        "h_nan": lambda: h[0].__setitem__(5, NAN),
        "h_inf": lambda: h[3].__setitem__(1, -INF),
        "w_hh_nan": lambda: sd["weight_hh"][2 * H + 1].__setitem__(4, NAN),
        "b_ih_inf": lambda: sd["bias_ih"].__setitem__(H, INF),
    }[case]()
    oracle.load_state_dict(sd)
    cell.load_state_dict(sd)
    with torch.no_grad():
        assert_same_values(cell(x, h), oracle(x, h), f"{case}: streaming h'", TOL[dtype])
    results = []
    for m in (cell, oracle):
        xs, hs = x.clone().requires_grad_(), h.clone().requires_grad_()
        out = m(xs, hs)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out))
        results.append([out, xs.grad, hs.grad] + [p.grad for p in m.parameters()])
    for k, (g, w) in enumerate(zip(*results, strict=True)):
        assert_same_values(g, w, f"{case}: with grad, result {k}", TOL[dtype])


# ---- argument checks: called directly, one argument wrong at a time ----------------------

H_, N_, S_ = 5, 3, 7  # batch_sizes [3, 2, 2]: packed, 7 rows
BS = torch.tensor([3, 2, 2])


def forward_args(dtype: torch.dtype = torch.float32) -> list:
    """Valid gru_forward arguments: gi (S, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,),
    batch_sizes (T,), reverse, reset_after, save, copy_operand."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return [
        r(S_, 3 * H_),
        r(N_, H_),
        r(3 * H_, H_),
        r(3 * H_),
        BS.clone(),
        False,
        True,
        True,
        False,
    ]


def backward_args(dtype: torch.dtype = torch.float32) -> list:
    """Valid gru_backward arguments: dout (S, H), dh_n (N, H), gates (S, 3H), hn (S, H),
    hprev (S, H), w_hh (3H, H), batch_sizes, reverse, reset_after."""
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    gates = torch.rand(S_, 3 * H_, generator=g, dtype=dtype)
    return [
        r(S_, H_),
        r(N_, H_),
        gates,
        r(S_, H_),
        r(S_, H_),
        r(3 * H_, H_),
        BS.clone(),
        False,
        True,
    ]


def cell_args(dtype: torch.dtype = torch.float32, H: int = H_, In: int = 4) -> list:
    """Valid gru_cell arguments: x (N, I), h (N, H), w_ih (3H, I), w_hh (3H, H), b_ih, b_hh,
    reset_after."""
    g = torch.Generator().manual_seed(2)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return [r(N_, In), r(N_, H), r(3 * H, In), r(3 * H, H), r(3 * H), r(3 * H), True]


F32 = torch.float32
META = torch.empty(S_, 3 * H_, device="meta")
FORWARD_BAD = {
    "gi wide": (0, torch.zeros(S_, 3 * H_ + 1)),
    "gi 1-D": (0, torch.zeros(S_ * 3 * H_)),
    "gi rows": (0, torch.zeros(S_ + 1, 3 * H_)),  # batch_sizes sum to S_
    "gi float64": (0, torch.zeros(S_, 3 * H_, dtype=torch.float64)),
    "gi meta": (0, META),
    "h0 3-D": (1, torch.zeros(1, N_, H_)),
    "h0 half": (1, torch.zeros(N_, H_, dtype=torch.float16)),
    "w_hh (3H, 1)": (2, torch.zeros(3 * H_, 1)),
    "w_hh (H, 3H)": (2, torch.zeros(H_, 3 * H_)),
    "w_hh rows": (2, torch.zeros(3 * H_ - 1, H_)),
    "w_hh int": (2, torch.zeros(3 * H_, H_, dtype=torch.int64)),
    "b_hh 3": (3, torch.zeros(3)),
    "b_hh 2-D": (3, torch.zeros(1, 3 * H_)),
    "b_hh float64": (3, torch.zeros(3 * H_, dtype=torch.float64)),
    "bs sum": (4, torch.tensor([3, 2, 1])),
    "bs increasing": (4, torch.tensor([2, 2, 3])),
    "bs over N": (4, torch.tensor([4, 2, 1])),
    "bs negative": (4, torch.tensor([3, 5, -1])),
    "bs float": (4, torch.tensor([3.0, 2.0, 2.0])),
    "bs 2-D": (4, BS.view(1, 3)),
}
BACKWARD_BAD = {
    "dout wide": (0, torch.zeros(S_, H_ + 1)),
    "dout rows": (0, torch.zeros(S_ + 2, H_)),
    "dh_n 1-D": (1, torch.zeros(H_)),
    "dh_n float64": (1, torch.zeros(N_, H_, dtype=torch.float64)),
    "gates narrow": (2, torch.zeros(S_, 2 * H_)),
    "gates rows": (2, torch.zeros(S_ - 1, 3 * H_)),
    "hn empty": (3, torch.zeros(0, H_)),  # needed for reset_after
    "hprev wide": (4, torch.zeros(S_, 2 * H_)),
    "hprev meta": (4, torch.empty(S_, H_, device="meta")),
    "w_hh (3H, 1)": (5, torch.zeros(3 * H_, 1)),
    "w_hh (H, 3H)": (5, torch.zeros(H_, 3 * H_)),
    "bs over N": (6, torch.tensor([4, 2, 1])),
    "bs sum": (6, torch.tensor([3, 2, 2, 1])),
}
CELL_BAD = {
    "x features": (0, torch.zeros(N_, 5)),
    "x rows": (0, torch.zeros(N_ + 1, 4)),
    "x 1-D": (0, torch.zeros(4)),
    "h wide": (1, torch.zeros(N_, H_ + 1)),
    "w_ih (3H, 1)": (2, torch.zeros(3 * H_, 1)),
    "w_ih float64": (2, torch.zeros(3 * H_, 4, dtype=torch.float64)),
    "w_hh (3H, 1)": (3, torch.zeros(3 * H_, 1)),
    "w_hh (3H-1, H)": (3, torch.zeros(3 * H_ - 1, H_)),
    "b_ih 3": (4, torch.zeros(3)),
    "b_hh 3": (5, torch.zeros(3)),
    "b_hh meta": (5, torch.empty(3 * H_, device="meta")),
}


def call_bad(fn: str, args: list, index: int, value: Tensor) -> None:
    args = list(args)
    args[index] = value
    with pytest.raises(RuntimeError, match=f"grukit native {fn}"):
        getattr(build.load(), fn)(*args)


@pytest.mark.parametrize("name", list(FORWARD_BAD))
def test_forward_rejects(name: str) -> None:
    call_bad("gru_forward", forward_args(), *FORWARD_BAD[name])


@pytest.mark.parametrize("name", list(BACKWARD_BAD))
def test_backward_rejects(name: str) -> None:
    call_bad("gru_backward", backward_args(), *BACKWARD_BAD[name])


@pytest.mark.parametrize("name", list(CELL_BAD))
def test_cell_rejects(name: str) -> None:
    call_bad("gru_cell", cell_args(), *CELL_BAD[name])


def test_cell_rejects_issue_shapes_at_size() -> None:
    """The reported cases at their size: GRUCell(4, 256) with a (768, 1) weight_hh (a Bus
    error) or a 3-element bias_hh (silently returned numbers)."""
    args = cell_args(H=256)
    call_bad("gru_cell", args, 3, torch.randn(768, 1))
    call_bad("gru_cell", args, 5, torch.randn(3))


@pytest.mark.parametrize("grad", [False, True], ids=["streaming", "grad"])
@pytest.mark.parametrize(("name", "shape"), [("weight_hh", (768, 1)), ("bias_hh", (3,))])
def test_public_cell_with_wrong_parameter_raises(name: str, shape: tuple, grad: bool) -> None:
    """Through grukit.GRUCell: an error (the layer's ValueError, else the kernel's
    RuntimeError), not a crash or numbers."""
    cell = grukit.GRUCell(4, 256, backend="native")
    setattr(cell, name, torch.nn.Parameter(torch.randn(*shape)))
    with torch.set_grad_enabled(grad), pytest.raises((ValueError, RuntimeError)):
        cell(torch.randn(2, 4), torch.randn(2, 256))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(("name", "shape"), [("weight_hh_l0", (192, 1)), ("bias_hh_l0", (3,))])
def test_public_layer_with_wrong_parameter_raises(
    name: str, shape: tuple, reset_after: bool
) -> None:
    layer = grukit.GRU(4, 64, backend="native", reset_after=reset_after)
    setattr(layer, name, torch.nn.Parameter(torch.randn(*shape)))
    with pytest.raises((ValueError, RuntimeError)):
        layer(torch.randn(5, 2, 4))


def test_valid_calls_run_and_backward_accepts_unused_hn() -> None:
    ext = build.load()
    out, gates, hn, h_n = ext.gru_forward(*forward_args())
    assert out.shape == (S_, H_) and gates.shape == (S_, 3 * H_) and h_n.shape == (N_, H_)
    args = backward_args()
    args[3], args[8] = torch.zeros(0, H_), False  # reset_after=False does not read hn
    dgi, dghn, dh0 = ext.gru_backward(*args)
    assert dgi.shape == (S_, 3 * H_) and dh0.shape == (N_, H_)


def strided(t: Tensor) -> Tensor:
    """The same values as t, not contiguous (every other column of a wider tensor)."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    view = wide[..., ::2]
    assert not view.is_contiguous() or t.dim() == 0
    return view


@pytest.mark.parametrize("fn", ["gru_forward", "gru_backward", "gru_cell"])
def test_non_contiguous_arguments_give_contiguous_results(fn: str) -> None:
    args = {"gru_forward": forward_args, "gru_backward": backward_args, "gru_cell": cell_args}[fn](
        torch.float64
    )
    want = getattr(build.load(), fn)(*args)
    args = [strided(a) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
    got = getattr(build.load(), fn)(*args)
    for g, w in zip(
        got if isinstance(got, list) else [got],
        want if isinstance(want, list) else [want],
        strict=True,
    ):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize("which", ["b_ih", "b_hh"])
def test_cell_applies_each_bias_given_alone(which: str) -> None:
    """gru_cell with only one of the biases equals functional.gru_cell with the other None
    (before: b_ih alone was ignored; b_hh alone dereferenced the missing b_ih)."""
    x, h, w_ih, w_hh, b_ih, b_hh, _ = cell_args(torch.float64)
    b_ih, b_hh = (b_ih, None) if which == "b_ih" else (None, b_hh)
    for reset_after in (True, False):
        got = build.load().gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after)
        want = F.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after=reset_after)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
