"""How one layer's time loop runs: backend selection.

    reference  Python loop over ``grukit.functional`` cells (autograd); the oracle.
    native     the fused GRU's loops compiled for the CPU (C++, built on first use).
    fused      GRU as an ``autograd.Function``: one input GEMM for the whole sequence, fused
               gates per step, hand-written BPTT, weight gradients as big GEMMs (any device).
    torch      torch's own kernels, where they compute the same function.
    auto       the fastest of these that is available and exact for the configuration.

Every backend module has ``name``, ``accepts_onehot``, ``available()``, ``supports(spec, x)``
and ``run``: the ``Backend`` Protocol of ``grukit.backends.spec``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _typed_torch
from . import fused, native, ops, reference, torch_builtin
from .spec import Backend, CellSpec, Noise, Weights, reverse_packed_index

__all__ = [
    "BACKENDS",
    "Backend",
    "CellSpec",
    "Noise",
    "Weights",
    "available_backends",
    "check_backend_name",
    "ops",
    "resolve",
    "under_torch_func",
    "reverse_packed_index",
]

#: Every backend, in the order "auto" prefers them (fastest exact first).
#: native first (CPU GRU); torch before fused: torch's kernels are faster than the torch-op
#: loops where they compute the same function (every cell but the reset_after=False GRU;
#: cuDNN on CUDA), and fused covers the rest on any device.
BACKENDS: dict[str, Backend] = {
    native.name: native,
    torch_builtin.name: torch_builtin,
    fused.name: fused,
    reference.name: reference,
}


#: Set by ``grukit.export_onnx`` while ``torch.export`` traces a module in eval mode for
#: the dynamo ONNX exporter: a LayerNormGRU then runs the reference loop, as torch's
#: ``scan`` of its cell, which the exporter writes as an ONNX ``Scan``.
scan_for_onnx = False


def available_backends() -> list[str]:
    """Names of the backends usable on this machine (``"auto"`` not included)."""
    return [name for name, mod in BACKENDS.items() if mod.available()]


def check_backend_name(owner: str, backend: object) -> str:
    """Validate a ``backend=`` argument; raise naming ``owner`` if it is unknown."""
    if not isinstance(backend, str):
        raise TypeError(f"{owner}: expected backend to be a str, got {type(backend).__name__}")
    names = ["auto", *BACKENDS]
    if backend not in names:
        raise ValueError(f"{owner}: expected backend in {names}, got {backend!r}")
    if backend != "auto" and not BACKENDS[backend].available():
        raise ValueError(
            f"{owner}: backend {backend!r} is not available on this machine; "
            f"available: {available_backends()}"
        )
    return backend


def under_torch_func() -> bool:
    """Whether a ``torch.func`` transform (grad, jvp, vmap, jacrev, …) is running this call.

    The fast loops are operators with registered reverse-mode autograd only; forward mode
    and batching rules are torch's own for plain ops. So under these transforms every layer
    and cell runs the reference loop (``functional`` cells, the same function) instead."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


def resolve(owner: str, backend: str, spec: CellSpec, x: Tensor) -> Backend:
    """The backend module that runs ``spec`` on tensors like ``x``.

    Under ``torch.func`` transforms the reference loop (``under_torch_func``); during ONNX
    export and ``jit.trace`` the backends that run one call per layer direction (the
    ``grukit::gru`` operator, torch's kernels), whatever ``backend`` says: same function.
    While ``grukit.export_onnx`` traces (``scan_for_onnx``) a LayerNormGRU runs the
    reference loop, which ``torch.export`` records as a ``scan`` (an ONNX ``Scan``)."""
    if under_torch_func():
        return reference
    if spec.kind == "layernorm_gru" and scan_for_onnx:
        return reference  # under torch.export: a scan of the cell, ONNX writes it as Scan
    if torch.onnx.is_in_onnx_export() or _typed_torch.is_tracing():
        # One call per layer direction that ONNX maps to its GRU / RNN / LSTM operators and
        # a jit trace replays at any length; a Python loop would be traced unrolled.
        # A LayerNormGRU exports through grukit.export_onnx (scan_for_onnx, above).
        if spec.noise or spec.kind not in ("gru", "rnn_tanh", "rnn_relu", "lstm"):
            what = "zoneout or recurrent dropout" if spec.noise else spec.kind
            hint = (
                "; grukit.export_onnx writes a LayerNormGRU in eval mode (zoneout as its "
                "expectation) with its time loop as an ONNX Scan"
                if spec.kind == "layernorm_gru"
                else ""
            )
            raise ValueError(
                f"{owner}: ONNX export and jit.trace are not supported for {what} "
                f"(no single ONNX operator computes it){hint}"
            )
        return fused if spec.kind == "gru" else torch_builtin
    if backend == "auto":
        for mod in BACKENDS.values():
            if mod.supports(spec, x) and mod.available():
                return mod
        return reference
    mod = BACKENDS[backend]
    if not mod.supports(spec, x):
        variant = f"{spec.kind} (reset_after={spec.reset_after})"
        variant += " with recurrent dropout or zoneout" if spec.noise else ""
        raise ValueError(
            f"{owner}: backend {backend!r} does not compute {variant} on "
            f"{x.device.type}/{x.dtype}; use backend='auto' or 'reference'"
        )
    return mod
