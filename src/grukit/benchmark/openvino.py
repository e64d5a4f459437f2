"""OpenVINO's CPU runtime as a benchmark peer (inference only), on the ONNX graph the ONNX
Runtime peer runs (``onnx_graph.gru_onnx_model``: a ``GRU`` node per layer, torch's weights).

OpenVINO compiles the node into one fused GRUSequence on oneDNN, a stronger inference peer
than ONNX Runtime at batched sizes on this project's CPUs (issue 21). Compiled for the CPU
plugin with float32 precision (``INFERENCE_PRECISION_HINT=f32``: on CPUs with bfloat16 units
it would otherwise run in bfloat16), the latency hint and ``threads`` inference threads.

Shapes: T time, N batch, I input size, H hidden size, L layers, D directions.
    X (T, N, I), initial_h (L·D, N, H) → output (T, N, D·H), h_n (L·D, N, H).

openvino (and onnx, which writes the graph) are optional: ``openvino_available()`` says
whether both import; the benchmark reports "n/a" for this peer when they do not.
"""

from __future__ import annotations

import numpy as np

from .onnx_graph import GRUPeer, importable, sequence, version_of

__all__ = ["OpenVINOBF16GRU", "OpenVINOGRU", "openvino_available", "openvino_version"]


def openvino_available() -> bool:
    """Whether openvino and onnx both import."""
    return importable("onnx", "openvino")


def openvino_version() -> str | None:
    """openvino's version, or None when it is not installed."""
    return version_of("openvino")


class OpenVINOGRU(GRUPeer):
    """A GRU compiled by OpenVINO for the CPU, float32
    (``GRUPeer``'s arguments)."""

    precision_hint = "f32"  # OpenVINO's INFERENCE_PRECISION_HINT

    def load(self, model: bytes, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": self.precision_hint,
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = core.compile_model(core.read_model(model), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.y, self.y_h = self.compiled.output("Y"), self.compiled.output("Y_h")

    def __call__(self, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (T, N, I) float32, h0 (L·D, N, H) float32 → output (T, N, D·H), h_n (L·D, N, H)."""
        result = self.request.infer({"X": x, "initial_h": h0})
        return sequence(result[self.y]), result[self.y_h]


class OpenVINOBF16GRU(OpenVINOGRU):
    """The same, with OpenVINO's bfloat16 precision hint: the mixed-precision peer
    (``--precision bf16``). On a CPU without bfloat16 units OpenVINO computes in float32."""

    precision_hint = "bf16"
