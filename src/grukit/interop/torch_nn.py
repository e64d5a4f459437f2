"""grukit modules <-> their ``torch.nn`` twins, with the same weights.

``to_torch(module)`` gives ``torch.nn.GRU`` / ``RNN`` / ``LSTM`` / ``GRUCell`` / ``RNNCell``
/ ``LSTMCell`` for tools that want torch's own class (quantization, exporters, code that
checks ``isinstance(m, nn.GRU)``); ``from_torch(module)`` goes back. Both copy: the new
module has the source's constructor arguments, parameters (values, device, dtype,
``requires_grad``) and training mode, and shares no memory with it. Parameter names,
shapes and gate order are the same on both sides (torch's), so the copy is a
``load_state_dict``.

One grukit variant has no torch twin: the GRU / GRUCell with ``reset_after=False``
(n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)); ``to_torch`` raises ValueError for it.

``dynamic_quant_mapping()`` lets ``torch.ao.quantization.quantize_dynamic`` quantize
grukit modules (through ``to_torch``) instead of silently leaving them in float; nothing
is registered in torch's global tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

import torch
from torch import nn

from ..cells import GRUCell, LSTMCell, RNNCell
from ..layers import GRU, LSTM, RNN

__all__ = ["to_torch", "from_torch", "dynamic_quant_mapping"]

GrukitModule = GRU | RNN | LSTM | GRUCell | RNNCell | LSTMCell
TorchModule = nn.GRU | nn.RNN | nn.LSTM | nn.GRUCell | nn.RNNCell | nn.LSTMCell
Target = TypeVar("Target", bound=nn.Module)


class _Factory(TypedDict):
    device: torch.device
    dtype: torch.dtype


class _LayerArgs(TypedDict):
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool


def _factory(module: nn.Module) -> _Factory:
    """The device and dtype of ``module``'s first input weight."""
    w = module.get_parameter("weight_ih_l0" if hasattr(module, "weight_ih_l0") else "weight_ih")
    return {"device": w.device, "dtype": w.dtype}


def _copy_into(target: Target, source: nn.Module) -> Target:
    """``target`` with ``source``'s parameter values, requires_grad flags and mode."""
    target.load_state_dict(source.state_dict())
    wanted = dict(source.named_parameters())
    for name, p in target.named_parameters():
        p.requires_grad_(wanted[name].requires_grad)
    return target.train(source.training)


def _layer_args(m: nn.RNNBase | GRU | RNN | LSTM) -> _LayerArgs:
    return {
        "num_layers": m.num_layers,
        "bias": m.bias,
        "batch_first": m.batch_first,
        "dropout": float(m.dropout),
        "bidirectional": m.bidirectional,
    }


def to_torch(module: object) -> TorchModule:
    """The ``torch.nn`` module computing the same function as a grukit GRU, RNN, LSTM,
    GRUCell, RNNCell or LSTMCell: same constructor arguments (num_layers, bias,
    batch_first, dropout, bidirectional, proj_size, nonlinearity), a copy of the weights on
    the same device and dtype, the same training mode. ``backend`` has no torch
    counterpart and is dropped. ValueError for reset_after=False GRU / GRUCell."""
    fn = "to_torch"
    if not isinstance(module, (GRU, RNN, LSTM, GRUCell, RNNCell, LSTMCell)):
        raise TypeError(
            f"{fn}: expected a grukit GRU, RNN, LSTM, GRUCell, RNNCell or LSTMCell, "
            f"got {type(module).__name__}"
        )
    if isinstance(module, (GRU, GRUCell)) and not module.reset_after:
        raise ValueError(
            f"{fn}: torch.nn.{type(module).__name__} computes reset_after=True only "
            "(n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); got a "
            f"{type(module).__name__} with reset_after=False, which has no torch equivalent"
        )
    factory = _factory(module)
    sizes = (module.input_size, module.hidden_size)
    twin: TorchModule
    if isinstance(module, GRU):
        twin = nn.GRU(*sizes, **_layer_args(module), **factory)
    elif isinstance(module, RNN):
        twin = nn.RNN(*sizes, nonlinearity=module.nonlinearity, **_layer_args(module), **factory)
    elif isinstance(module, LSTM):
        twin = nn.LSTM(*sizes, proj_size=module.proj_size, **_layer_args(module), **factory)
    elif isinstance(module, GRUCell):
        twin = nn.GRUCell(*sizes, bias=module.bias, **factory)
    elif isinstance(module, RNNCell):
        twin = nn.RNNCell(*sizes, bias=module.bias, nonlinearity=module.nonlinearity, **factory)
    else:
        twin = nn.LSTMCell(*sizes, bias=module.bias, **factory)
    return _copy_into(twin, module)


def from_torch(module: nn.Module, *, backend: str = "auto") -> GrukitModule:
    """The grukit module computing the same function as a ``torch.nn`` GRU, RNN, LSTM,
    GRUCell, RNNCell or LSTMCell: same constructor arguments, a copy of the weights on the
    same device and dtype, the same training mode; GRU / GRUCell get reset_after=True
    (the variant torch computes). ``backend`` as the grukit constructors take it (GRU,
    RNN, LSTM, GRUCell); RNNCell and LSTMCell have no backend choice, so anything but
    "auto" raises ValueError for them."""
    fn = "from_torch"
    if not isinstance(backend, str):
        raise TypeError(f"{fn}: expected backend to be a str, got {type(backend).__name__}")
    if not isinstance(module, (nn.GRU, nn.RNN, nn.LSTM, nn.GRUCell, nn.RNNCell, nn.LSTMCell)):
        raise TypeError(
            f"{fn}: expected a torch.nn GRU, RNN, LSTM, GRUCell, RNNCell or LSTMCell, "
            f"got {type(module).__name__}"
        )
    factory = _factory(module)
    sizes = (module.input_size, module.hidden_size)
    if isinstance(module, (nn.RNNCell, nn.LSTMCell)) and backend != "auto":
        raise ValueError(
            f"{fn}: grukit.{type(module).__name__} has no backend choice; "
            f"expected backend='auto', got {backend!r}"
        )
    twin: GrukitModule
    if isinstance(module, nn.GRU):
        twin = GRU(*sizes, **_layer_args(module), **factory, backend=backend)
    elif isinstance(module, nn.RNN):
        twin = RNN(
            *sizes,
            nonlinearity=module.nonlinearity,
            **_layer_args(module),
            **factory,
            backend=backend,
        )
    elif isinstance(module, nn.LSTM):
        twin = LSTM(
            *sizes, proj_size=module.proj_size, **_layer_args(module), **factory, backend=backend
        )
    elif isinstance(module, nn.GRUCell):
        twin = GRUCell(*sizes, bias=module.bias, **factory, backend=backend)
    elif isinstance(module, nn.RNNCell):
        twin = RNNCell(*sizes, bias=module.bias, nonlinearity=module.nonlinearity, **factory)
    else:
        twin = LSTMCell(*sizes, bias=module.bias, **factory)
    return _copy_into(twin, module)


class _ThroughTorch:
    """A ``quantize_dynamic`` mapping entry: ``from_float`` converts the grukit module with
    ``to_torch`` and hands it, with its qconfig, to torch's dynamic quantized class."""

    _target: Any  # torch.ao.nn.quantized.dynamic.GRU, ...

    @classmethod
    def from_float(cls, mod: nn.Module, **kwargs: Any) -> nn.Module:
        twin = to_torch(mod)
        twin.qconfig = getattr(mod, "qconfig", None)
        quantized: nn.Module = cls._target.from_float(twin, **kwargs)
        return quantized


def dynamic_quant_mapping() -> dict[Callable[..., Any], Any]:
    """torch's default dynamic-quantization mapping plus grukit's GRU, LSTM, GRUCell,
    LSTMCell and RNNCell (quantized as torch's ``nn.quantized.dynamic`` classes, after
    ``to_torch``). Use as
    ``quantize_dynamic(model, {grukit.GRU, nn.Linear}, mapping=dynamic_quant_mapping())``.
    torch has no dynamic quantized RNN, so grukit.RNN (like nn.RNN) stays float; a
    reset_after=False GRU raises ValueError (``to_torch``)."""
    from torch.ao.nn.quantized import dynamic as nnqd  # imported here: torch.ao warns on use
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    pairs = {
        GRU: nnqd.GRU,
        LSTM: nnqd.LSTM,
        GRUCell: nnqd.GRUCell,
        LSTMCell: nnqd.LSTMCell,
        RNNCell: nnqd.RNNCell,
    }
    mapping = dict(get_default_dynamic_quant_module_mappings())
    for ours, target in pairs.items():
        name = f"Quantized{ours.__name__}ThroughTorch"
        mapping[ours] = type(name, (_ThroughTorch,), {"_target": target, "_FLOAT_MODULE": ours})
    return mapping
