"""The ONNX graph the inference peers run (ONNX Runtime, OpenVINO), and their shared parts.

The graph is built directly with ``onnx.helper``: one ``GRU`` node per layer with
``linear_before_reset=1`` (torch's ``reset_after=True`` variant), its weights converted
from torch's gate order (r, z, n) to ONNX's (z, r, h).

Shapes: T time, N batch, I input size, H hidden size, L layers, D directions.
    per layer W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb; Rb];
    X (T, N, I), initial_h (L·D, N, H) → Y (T, D, N, H) of the last layer, Y_h (L·D, N, H).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

Peer = TypeVar("Peer", bound="GRUPeer")

__all__ = [
    "Direction",
    "GRUPeer",
    "gru_onnx_model",
    "importable",
    "sequence",
    "torch_to_onnx_gates",
    "version_of",
]


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


#: One direction of one layer: torch's (w_ih (3H, I), w_hh (3H, H), b_ih (3H,), b_hh (3H,)).
Direction = tuple[Tensor, Tensor, Tensor, Tensor]


def gru_onnx_model(layers: Sequence[Sequence[Direction]], *, seq_len: int, batch: int) -> bytes:
    """The serialised ONNX model (opset 14) of a stacked GRU with a torch GRU's weights: one
    ``GRU`` node per layer (``linear_before_reset=1``; direction "bidirectional" where a
    layer has two), gate order converted (module docstring). Fixed input shapes X
    (seq_len, batch, I), initial_h (L·D, batch, H) → Y (T, D, N, H) of the last layer,
    Y_h (L·D, N, H). Between layers Y becomes (T, N, D·H) (Transpose, Reshape) and each
    layer reads its D rows of initial_h (Slice); a one-layer graph is the one GRU node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    D, L = len(layers[0]), len(layers)
    hidden = layers[0][0][1].shape[1]
    f32 = TensorProto.FLOAT
    nodes, inits = [], []

    def const(name: str, values: list[int]) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    x = "X"
    for i, layer in enumerate(layers):
        sfx = "" if L == 1 else f"_l{i}"
        W = np.stack([torch_to_onnx_gates(w_ih) for w_ih, _, _, _ in layer])  # (D, 3H, I)
        R = np.stack([torch_to_onnx_gates(w_hh) for _, w_hh, _, _ in layer])  # (D, 3H, H)
        B = np.stack([
            np.concatenate([torch_to_onnx_gates(b_ih), torch_to_onnx_gates(b_hh)])
            for _, _, b_ih, b_hh in layer
        ])  # fmt: skip  # (D, 6H)
        for name, value in (("W", W), ("R", R), ("B", B)):
            inits.append(numpy_helper.from_array(value, name + sfx))
        h0 = "initial_h"
        if L > 1:  # this layer's D rows of initial_h
            h0 = f"initial_h{sfx}"
            starts, ends = const(f"h_start{sfx}", [i * D]), const(f"h_end{sfx}", [i * D + D])
            nodes.append(helper.make_node("Slice", ["initial_h", starts, ends], [h0]))
        last = i == L - 1
        y, y_h = ("Y" if last else f"Y{sfx}"), ("Y_h" if L == 1 else f"Y_h{sfx}")
        nodes.append(
            helper.make_node(
                "GRU",
                inputs=[x, "W" + sfx, "R" + sfx, "B" + sfx, "", h0],
                outputs=[y, y_h],
                hidden_size=hidden,
                linear_before_reset=1,
                direction="bidirectional" if D == 2 else "forward",
            )
        )
        if not last:  # (T, D, N, H) → (T, N, D·H), the next layer's input
            nodes.append(helper.make_node("Transpose", [y], [f"{y}_t"], perm=[0, 2, 1, 3]))
            shape = const(f"shape{sfx}", [seq_len, batch, D * hidden])
            x = f"X_l{i + 1}"
            nodes.append(helper.make_node("Reshape", [f"{y}_t", shape], [x]))
    if L > 1:
        nodes.append(helper.make_node("Concat", [f"Y_h_l{i}" for i in range(L)], ["Y_h"], axis=0))
    graph = helper.make_graph(
        nodes,
        "grukit_gru",
        inputs=[
            helper.make_tensor_value_info("X", f32, [seq_len, batch, layers[0][0][0].shape[1]]),
            helper.make_tensor_value_info("initial_h", f32, [L * D, batch, hidden]),
        ],
        outputs=[
            helper.make_tensor_value_info("Y", f32, [seq_len, D, batch, hidden]),
            helper.make_tensor_value_info("Y_h", f32, [L * D, batch, hidden]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


def sequence(y: np.ndarray) -> np.ndarray:
    """The graph's Y (T, D, N, H) as torch's output (T, N, D·H): a view for D = 1."""
    T, D, N, H = y.shape
    return y[:, 0] if D == 1 else y.transpose(0, 2, 1, 3).reshape(T, N, D * H)


class GRUPeer:
    """An inference peer: a GRU with a torch GRU's weights (any number of layers, one or two
    directions), built for fixed T and N from the graph of ``gru_onnx_model`` (each
    runtime's ``load``), called as ``peer(x, h0)`` with float32 arrays x (T, N, I),
    h0 (L·D, N, H) → output (T, N, D·H), h_n (L·D, N, H).

    Args:
        layers: per layer, per direction, torch.nn.GRU's (``weight_ih_l{k}``,
            ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``) (gate order r, z, n).
        seq_len, batch: T and N of the inputs it will see (fixed shapes).
        threads: the runtime's inference threads (match ``torch.get_num_threads()``).
    """

    def __init__(
        self, layers: Sequence[Sequence[Direction]], *, seq_len: int, batch: int, threads: int
    ) -> None:
        self.load(gru_onnx_model(layers, seq_len=seq_len, batch=batch), threads)

    def load(self, model: bytes, threads: int) -> None:
        """Build the runtime's session for the serialised ONNX ``model``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_module(cls: type[Peer], gru: Any, *, seq_len: int, batch: int, threads: int) -> Peer:
        """From a torch.nn.GRU or grukit.GRU (reset_after=True, with biases), any number of
        layers and directions."""
        D = 2 if gru.bidirectional else 1
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        layers = [
            [
                tuple(getattr(gru, f"{n}_l{k}{'_reverse' if d else ''}") for n in names)
                for d in range(D)
            ]
            for k in range(gru.num_layers)
        ]
        return cls(layers, seq_len=seq_len, batch=batch, threads=threads)
