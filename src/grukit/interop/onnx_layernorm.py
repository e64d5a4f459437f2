"""LayerNormGRU under ONNX export: its operator as a ``scan`` of the reference cell.

``torch.export`` sees one LayerNormGRU layer direction as one call of the operator
``grukit::layernorm_gru`` (``grukit.backends.layernorm_ops``), as ``torch.compile`` does.
No ONNX operator computes it, so ``grukit.export_onnx`` decomposes that call
(``ExportedProgram.run_decompositions``) into the reference loop's ``scan`` over time
(``grukit.backends.reference``: the oracle, ``grukit.functional.layernorm_gru_cell`` per
step), which torch's dynamo ONNX translation writes as one ``Scan`` of dynamic length whose
body is Gemm, LayerNormalization (opset 17+), Add, Split, Sigmoid, Tanh and Mul::

    x (T, N, I) ──[one-hot rows if x is indices (T, N)]──┐            (reverse: flipped in time)
    Scan(h0 (N, H); x, keep?) body: h' = layernorm_gru_cell(x_t, h, …)   [zoneout: lerp]
    out (T, N, H) = the scanned states,  h_n (N, H) = out[-1] (out[0] reversed)

Evaluation-mode zoneout is deterministic (keep = p everywhere, the expectation
p·h_{t−1} + (1 − p)·h'_t) and exports as a second scanned input. Refused with ValueError:
packed input (``batch_sizes``) and a recurrent dropout mask (training mode only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..backends import reference
from ..backends.spec import CellSpec, Weights

__all__ = ["decompositions", "layernorm_gru_as_scan"]

_OWNER = "grukit ONNX export (LayerNormGRU)"


def layernorm_gru_as_scan(
    x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
    ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
    batch_sizes: Tensor | None, reverse: bool, reset_after: bool, save: bool, loops: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``grukit::layernorm_gru`` (same arguments and results) as the reference ``scan``.

    x (T, N, I) or one-hot indices (T, N), h0 (N, H), keep (T, N, H) or None → out
    (T, N, H), h_n (N, H), then the operator's saved tensors, empty unless ``save`` (the
    shapes of its fake kernel; only its backward reads them)."""
    if batch_sizes is not None:
        raise ValueError(
            f"{_OWNER}: packed input (PackedSequence) cannot be exported; "
            "export a padded batch (T, N, I) instead"
        )
    if h_mask is not None:
        raise ValueError(
            f"{_OWNER}: recurrent dropout in training mode cannot be exported (it is random); "
            "export the model in eval mode"
        )
    H = w_hh.shape[1]
    if not x.is_floating_point():  # one-hot indices (T, N) → rows (T, N, I)
        x = torch.eye(w_ih.shape[1], dtype=w_ih.dtype, device=w_ih.device)[x]
    spec = CellSpec("layernorm_gru", reset_after, keep is not None)
    weights = Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh)
    step = reference.step_function(spec)
    # torch's scan runs through torch.compile, whose cache outlives this export. Called
    # again with another number of scanned inputs (zoneout's keep or not) it recompiles
    # with sizes marked dynamic, and under run_decompositions that graph's size inputs
    # carry no value: the export fails (torch 2.13). Static recompiles are right here.
    with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
        out, (h_n,) = reference.scan_time(step, x, (h0,), weights, reverse, None, keep)
    R = x.shape[0] * x.shape[1] if save else 0  # rows of the saved tensors
    e = h0.new_zeros
    return out, h_n, e(R, 3 * H), e(R, 3 * H), e(R, 1), e(R, 3 * H), e(R, 2)


def decompositions() -> dict[torch._ops.OpOverload, object]:
    """``run_decompositions`` table: ``grukit::layernorm_gru`` → ``layernorm_gru_as_scan``."""
    from ..backends import layernorm_ops  # noqa: F401  (defines torch.ops.grukit.layernorm_gru)

    return {torch.ops.grukit.layernorm_gru.default: layernorm_gru_as_scan}
