"""ONNX Runtime's GRU operator as a benchmark peer (inference only).

The graph is built directly with ``onnx.helper``: one ``GRU`` node with
``linear_before_reset=1`` (torch's ``reset_after=True`` variant), its weights converted
from torch's gate order (r, z, n) to ONNX's (z, r, h).

Shapes: T time, N batch, I input size, H hidden size.
    W (1, 3H, I), R (1, 3H, H), B (1, 6H) = [Wb; Rb];  X (T, N, I), initial_h (1, N, H)
    → Y (T, 1, N, H), Y_h (1, N, H).

onnx and onnxruntime are optional dependencies: ``ort_available()`` says whether both
import, and the benchmark reports "n/a" for this peer when they do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ORTGRU", "gru_onnx_model", "ort_available", "ort_version", "torch_to_onnx_gates"]

#: What the session is told about its worker threads (reported in the benchmark's meta).
SPINNING_NOTE = "ORT session.intra_op.allow_spinning=0 (workers sleep between runs)"


def ort_available() -> bool:
    """Whether onnx and onnxruntime both import."""
    try:
        import onnx  # noqa: F401

        # onnxruntime ships no annotations (mypy: import-untyped); later imports are then Any.
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def ort_version() -> str | None:
    """onnxruntime's version, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def torch_to_onnx_gates(w: Tensor) -> np.ndarray:
    """Reorder the 3H gate rows of a torch GRU weight or bias: (r, z, n) → (z, r, h).

    w (3H, ·) or (3H,) → float32 ndarray of the same shape.
    """
    r, z, n = w.detach().to(torch.float32).cpu().chunk(3, dim=0)  # each (H, ·)
    return torch.cat([z, r, n], dim=0).numpy()  # (3H, ·)


def gru_onnx_model(
    w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, *, seq_len: int, batch: int
) -> bytes:
    """The serialised ONNX model of one ``GRU`` node (opset 14, ``linear_before_reset=1``)
    with a torch GRU layer's weights (gate order r, z, n; see the module docstring) and
    fixed input shapes X (seq_len, batch, I), initial_h (1, batch, H)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hidden = w_hh.shape[1]
    inp = w_ih.shape[1]
    W = torch_to_onnx_gates(w_ih)[None]  # (1, 3H, I)
    R = torch_to_onnx_gates(w_hh)[None]  # (1, 3H, H)
    B = np.concatenate([torch_to_onnx_gates(b_ih), torch_to_onnx_gates(b_hh)])[None]  # (1, 6H)
    node = helper.make_node(
        "GRU",
        inputs=["X", "W", "R", "B", "", "initial_h"],
        outputs=["Y", "Y_h"],
        hidden_size=hidden,
        linear_before_reset=1,
    )
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "grukit_gru",
        inputs=[
            helper.make_tensor_value_info("X", f32, [seq_len, batch, inp]),
            helper.make_tensor_value_info("initial_h", f32, [1, batch, hidden]),
        ],
        outputs=[
            helper.make_tensor_value_info("Y", f32, [seq_len, 1, batch, hidden]),
            helper.make_tensor_value_info("Y_h", f32, [1, batch, hidden]),
        ],
        initializer=[
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(R, "R"),
            numpy_helper.from_array(B, "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


class ORTGRU:
    """A one-layer, unidirectional ONNX Runtime GRU session with a torch GRU's weights.

    Args:
        w_ih (3H, I), w_hh (3H, H), b_ih (3H,), b_hh (3H,): torch.nn.GRU's
            ``weight_ih_l0`` etc. (gate order r, z, n).
        seq_len, batch: T and N of the inputs the session will see (fixed shapes).
        threads: ORT's intra-op thread count (match ``torch.get_num_threads()``).
        spinning: let ORT's idle workers spin; off by default, because spinning workers
            steal the 2 cores from whatever runs next (DESIGN.md §5).
    """

    def __init__(
        self,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
        *,
        seq_len: int,
        batch: int,
        threads: int,
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.log_severity_level = 3  # errors only
        model = gru_onnx_model(w_ih, w_hh, b_ih, b_hh, seq_len=seq_len, batch=batch)
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.seq_len, self.batch, self.hidden = seq_len, batch, w_hh.shape[1]

    def __call__(self, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (T, N, I) float32, h0 (1, N, H) float32 → output (T, N, H), h_n (1, N, H)."""
        y, y_h = self.session.run(None, {"X": x, "initial_h": h0})
        return y[:, 0], y_h  # (T, N, H), (1, N, H)

    @classmethod
    def from_module(cls, gru: Any, *, seq_len: int, batch: int, threads: int) -> ORTGRU:
        """From a one-layer, unidirectional torch.nn.GRU or grukit.GRU (reset_after=True)."""
        return cls(
            gru.weight_ih_l0,
            gru.weight_hh_l0,
            gru.bias_ih_l0,
            gru.bias_hh_l0,
            seq_len=seq_len,
            batch=batch,
            threads=threads,
        )
