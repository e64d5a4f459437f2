"""grukit.interop.torch_nn: to_torch / from_torch against torch.nn's own modules.

The oracle is the torch.nn twin run on the same input: outputs agree within 1e-6
(float32) / 1e-12 (float64); state_dicts survive both round trips bitwise.
"""

import pytest
import torch
from torch import nn

import grukit
from grukit.interop import from_torch, to_torch

# torch's own note when its LSTM with proj_size runs (grukit's "auto" and nn.LSTM alike)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

T, N, I, H = 5, 3, 4, 6

LAYERS = {
    "gru": lambda: grukit.GRU(I, H),
    "gru-2-bi-batch-first": lambda: grukit.GRU(
        I, H, num_layers=2, bidirectional=True, batch_first=True, dropout=0.25
    ),
    "gru-no-bias": lambda: grukit.GRU(I, H, bias=False, backend="fused"),
    "rnn-relu-2": lambda: grukit.RNN(I, H, num_layers=2, nonlinearity="relu"),
    "rnn-tanh-bi": lambda: grukit.RNN(I, H, bidirectional=True, bias=False),
    "lstm-proj-bi": lambda: grukit.LSTM(I, H, bidirectional=True, proj_size=2),
    "lstm-2": lambda: grukit.LSTM(I, H, num_layers=2, batch_first=True),
}
CELLS = {
    "gru-cell": lambda: grukit.GRUCell(I, H),
    "gru-cell-no-bias": lambda: grukit.GRUCell(I, H, bias=False),
    "rnn-cell-relu": lambda: grukit.RNNCell(I, H, nonlinearity="relu"),
    "lstm-cell": lambda: grukit.LSTMCell(I, H),
}
TWIN = {
    grukit.GRU: nn.GRU,
    grukit.RNN: nn.RNN,
    grukit.LSTM: nn.LSTM,
    grukit.GRUCell: nn.GRUCell,
    grukit.RNNCell: nn.RNNCell,
    grukit.LSTMCell: nn.LSTMCell,
}
ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout")
ARGS += ("bidirectional", "proj_size", "nonlinearity")


def _bitwise(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        assert a[k].view(torch.uint8).equal(b[k].view(torch.uint8)), k


def _run(module: nn.Module, x: torch.Tensor, h: object) -> list[torch.Tensor]:
    """Every tensor a module returns, flattened: [output, h_n(, c_n)] or [h'(, c')]."""
    out = module(x, h)
    flat = []
    for item in out if isinstance(out, tuple) else (out,):
        flat.extend(item if isinstance(item, tuple) else (item,))
    return flat


def _inputs(module: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, object]:
    is_cell = not hasattr(module, "num_layers")
    if is_cell:
        x = torch.randn(N, I, dtype=dtype)
        h = torch.randn(N, H, dtype=dtype)
        return x, ((h, torch.randn(N, H, dtype=dtype)) if isinstance(module, nn.LSTMCell) else h)
    x = (
        torch.randn(N, T, I, dtype=dtype)
        if module.batch_first
        else torch.randn(T, N, I, dtype=dtype)
    )
    rows = module.num_layers * (2 if module.bidirectional else 1)
    h = torch.randn(rows, N, module.proj_size or H, dtype=dtype)
    return x, ((h, torch.randn(rows, N, H, dtype=dtype)) if isinstance(module, nn.LSTM) else h)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "make", list(LAYERS.values()) + list(CELLS.values()), ids=[*LAYERS, *CELLS]
)
def test_to_torch_matches_the_grukit_module(make, dtype) -> None:
    ours = make().to(dtype).eval()
    theirs = to_torch(ours)
    assert type(theirs) is TWIN[type(ours)]
    for name in ARGS:
        if hasattr(theirs, name):
            assert getattr(theirs, name) == getattr(ours, name), name
    assert not theirs.training
    assert all(p.dtype == dtype and p.device == ours.weight_ih.device if hasattr(ours, "weight_ih")
               else p.dtype == dtype for p in theirs.parameters())  # fmt: skip
    x, h = _inputs(theirs, dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for got, want in zip(_run(ours, x, h), _run(theirs, x, h), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    _bitwise(from_torch(theirs).state_dict(), ours.state_dict())


@pytest.mark.parametrize(
    "make", list(LAYERS.values()) + list(CELLS.values()), ids=[*LAYERS, *CELLS]
)
def test_from_torch_matches_the_torch_module(make) -> None:
    torch_module = to_torch(make())  # a torch.nn module with torch's own fresh weights below
    theirs = type(torch_module)(**_ctor_args(torch_module)).eval()
    ours = from_torch(theirs)
    assert type(ours) in TWIN and TWIN[type(ours)] is type(theirs)
    for name in ARGS:
        if hasattr(theirs, name):
            assert getattr(ours, name) == getattr(theirs, name), name
    if hasattr(ours, "reset_after"):
        assert ours.reset_after
    x, h = _inputs(theirs, torch.float32)
    for got, want in zip(_run(ours, x, h), _run(theirs, x, h), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    _bitwise(to_torch(ours).state_dict(), theirs.state_dict())


def _ctor_args(m: nn.Module) -> dict:
    args = {k: getattr(m, k) for k in ARGS if hasattr(m, k)}
    if isinstance(m, (nn.GRU, nn.LSTM)) or not hasattr(m, "num_layers"):
        args.pop("nonlinearity", None)
    if not isinstance(m, nn.LSTM):
        args.pop("proj_size", None)
    return args


def test_copies_share_no_memory_and_keep_requires_grad_and_mode() -> None:
    ours = grukit.GRU(I, H, num_layers=2)
    ours.weight_hh_l1.requires_grad_(False)
    ours.train()
    theirs = to_torch(ours)
    assert theirs.training
    assert not theirs.weight_hh_l1.requires_grad and theirs.weight_ih_l0.requires_grad
    assert all(
        p.data_ptr() != q.data_ptr()
        for p, q in zip(ours.parameters(), theirs.parameters(), strict=True)
    )
    before = ours.weight_ih_l0.detach().clone()
    with torch.no_grad():
        theirs.weight_ih_l0.add_(1.0)
    assert torch.equal(ours.weight_ih_l0, before)
    back = from_torch(theirs.eval())
    assert not back.training and not back.weight_hh_l1.requires_grad
    with torch.no_grad():
        back.weight_ih_l0.zero_()
    assert not torch.equal(theirs.weight_ih_l0, back.weight_ih_l0)


def test_from_torch_backend_is_passed_on() -> None:
    gru = from_torch(nn.GRU(I, H), backend="reference")
    assert gru.backend == "reference"
    assert from_torch(nn.GRUCell(I, H), backend="fused").backend == "fused"


def test_gradients_match_after_conversion() -> None:
    """Training through either module gives the same weight gradients (1e-6, float32)."""
    theirs = nn.GRU(I, H, num_layers=2, bidirectional=True)
    ours = from_torch(theirs)
    x = torch.randn(T, N, I)
    theirs(x)[0].square().sum().backward()
    ours(x)[0].square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-6, msg=name)


def test_reset_after_false_has_no_torch_twin() -> None:
    with pytest.raises(ValueError, match="to_torch: torch.nn.GRU computes reset_after=True only"):
        to_torch(grukit.GRU(I, H, reset_after=False))
    with pytest.raises(ValueError, match="to_torch: torch.nn.GRUCell computes reset_after=True"):
        to_torch(grukit.GRUCell(I, H, reset_after=False))


def test_errors() -> None:
    with pytest.raises(TypeError, match="to_torch: expected a grukit GRU, .* got GRU"):
        to_torch(nn.GRU(I, H))
    with pytest.raises(TypeError, match="from_torch: expected a torch.nn GRU, .* got Linear"):
        from_torch(nn.Linear(I, H))
    with pytest.raises(ValueError, match="from_torch: grukit.RNNCell has no backend choice"):
        from_torch(nn.RNNCell(I, H), backend="native")
    with pytest.raises(ValueError, match="GRU: expected backend in"):
        from_torch(nn.GRU(I, H), backend="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_is_kept_on_cuda() -> None:
    ours = grukit.LSTM(I, H, num_layers=2, device="cuda")
    theirs = to_torch(ours)
    assert all(p.is_cuda for p in theirs.parameters())
    x = torch.randn(T, N, I, device="cuda")
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], rtol=0, atol=1e-5)
    back = from_torch(theirs)
    assert all(p.is_cuda for p in back.parameters())
    _bitwise(back.state_dict(), ours.state_dict())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_quantize_dynamic_with_the_mapping_quantizes_grukit_modules() -> None:
    """quantize_dynamic alone leaves grukit modules float (torch's mapping lacks them); with
    dynamic_quant_mapping() they become torch's dynamic quantized modules, equal (exactly)
    to quantizing the torch.nn twins."""
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import quantize_dynamic

    from grukit.interop import dynamic_quant_mapping

    model = nn.ModuleDict(
        {"gru": grukit.GRU(I, H, num_layers=2), "cell": grukit.LSTMCell(I, H)}
    ).eval()
    spec = {grukit.GRU, grukit.LSTMCell}
    assert type(quantize_dynamic(model, spec)["gru"]) is grukit.GRU  # the silent default
    q = quantize_dynamic(model, spec, mapping=dynamic_quant_mapping())
    assert type(q["gru"]) is nnqd.GRU and type(q["cell"]) is nnqd.LSTMCell
    twins = nn.ModuleDict({k: to_torch(m) for k, m in model.items()})
    q_twins = quantize_dynamic(twins, {nn.GRU, nn.LSTMCell})
    x = torch.randn(T, N, I)
    assert torch.equal(q["gru"](x)[0], q_twins["gru"](x)[0])
    assert torch.equal(q["cell"](x[0])[0], q_twins["cell"](x[0])[0])
    with pytest.raises(ValueError, match="reset_after=False"):
        old = nn.Sequential(grukit.GRU(I, H, reset_after=False))
        quantize_dynamic(old, {grukit.GRU}, mapping=dynamic_quant_mapping())
