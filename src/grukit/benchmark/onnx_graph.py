"""The ONNX graph the inference peers run (ONNX Runtime, OpenVINO), and their shared parts.

The graph is built directly with ``onnx.helper``: one ``GRU`` node with
``linear_before_reset=1`` (torch's ``reset_after=True`` variant), its weights converted
from torch's gate order (r, z, n) to ONNX's (z, r, h).

Shapes: T time, N batch, I input size, H hidden size.
    W (1, 3H, I), R (1, 3H, H), B (1, 6H) = [Wb; Rb];  X (T, N, I), initial_h (1, N, H)
    → Y (T, 1, N, H), Y_h (1, N, H).
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

Peer = TypeVar("Peer", bound="GRUPeer")

__all__ = ["GRUPeer", "gru_onnx_model", "importable", "torch_to_onnx_gates", "version_of"]


def importable(*modules: str) -> bool:
    """Whether every one of ``modules`` imports (the peers' optional dependencies)."""
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def version_of(module: str) -> str | None:
    """``module.__version__``, or None when it is not installed."""
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return None


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


class GRUPeer:
    """An inference peer: one unidirectional GRU layer with a torch GRU's weights, built
    for fixed T and N from the graph of ``gru_onnx_model`` (each runtime's ``load``),
    called as ``peer(x, h0)`` with float32 arrays x (T, N, I), h0 (1, N, H) → output
    (T, N, H), h_n (1, N, H).

    Args:
        w_ih (3H, I), w_hh (3H, H), b_ih (3H,), b_hh (3H,): torch.nn.GRU's ``weight_ih_l0``
            etc. (gate order r, z, n).
        seq_len, batch: T and N of the inputs it will see (fixed shapes).
        threads: the runtime's inference threads (match ``torch.get_num_threads()``).
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
    ) -> None:
        self.load(gru_onnx_model(w_ih, w_hh, b_ih, b_hh, seq_len=seq_len, batch=batch), threads)

    def load(self, model: bytes, threads: int) -> None:
        """Build the runtime's session for the serialised ONNX ``model``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_module(cls: type[Peer], gru: Any, *, seq_len: int, batch: int, threads: int) -> Peer:
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
