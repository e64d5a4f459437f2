"""ONNX Runtime's GRU operator as a benchmark peer (inference only), on the graph of
``onnx_graph.gru_onnx_model``.

onnx and onnxruntime are optional dependencies: ``ort_available()`` says whether both
import, and the benchmark reports "n/a" for this peer when they do not.
"""

from __future__ import annotations

import numpy as np

from .onnx_graph import (
    GRUPeer,
    gru_onnx_model,
    importable,
    sequence,
    torch_to_onnx_gates,
    version_of,
)

__all__ = ["ORTGRU", "gru_onnx_model", "ort_available", "ort_version", "torch_to_onnx_gates"]

#: What the session is told about its worker threads (reported in the benchmark's meta).
SPINNING_NOTE = "ORT session.intra_op.allow_spinning=0 (workers sleep between runs)"


def ort_available() -> bool:
    """Whether onnx and onnxruntime both import."""
    return importable("onnx", "onnxruntime")


def ort_version() -> str | None:
    """onnxruntime's version, or None when it is not installed."""
    return version_of("onnxruntime")


class ORTGRU(GRUPeer):
    """An ONNX Runtime GRU session with a torch GRU's weights
    (``GRUPeer``'s arguments; ``threads`` is ORT's intra-op thread count). ORT's idle
    workers do not spin (SPINNING_NOTE): spinning workers steal the 2 cores from whatever
    runs next (DESIGN.md §5)."""

    def load(self, model: bytes, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (T, N, I) float32, h0 (L·D, N, H) float32 → output (T, N, D·H), h_n (L·D, N, H)."""
        y, y_h = self.session.run(None, {"X": x, "initial_h": h0})
        return sequence(y), y_h
