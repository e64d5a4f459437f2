"""Memory of a training step, measured as the activations autograd keeps for backward.

Between a training step's forward and its backward, the memory a recurrent layer
holds beyond its parameters and input is what its autograd graph saved: gate
activations, states, workspaces. This module counts exactly that, through
``torch.autograd.graph.saved_tensors_hooks``: every tensor packed for backward
during the forward is recorded, tensors are deduplicated by their storage (views of
one buffer count once, at the storage's full size), and the storages of the
parameters and of the input are left out (they exist whatever the layer does).

What it sees: ``ctx.save_for_backward`` of custom ``autograd.Function``\\ s and every
tensor a built-in op saves — torch's own fused kernels save their workspace as a
tensor too, so it is counted. What it cannot see: tensors a custom Function stashes
as plain ``ctx`` attributes, and transient memory freed before the forward returns
(the peak *inside* an op). The figure is therefore the activation memory held across
the forward/backward boundary, which is what grows with T·N·H and decides whether a
training batch fits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["saved_bytes"]


def _storage_key(t: Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def saved_bytes(forward: Callable[[], object], exclude: Iterable[Tensor] = ()) -> int:
    """Bytes of distinct storages autograd saves while ``forward()`` runs.

    Args:
        forward: runs a forward pass with autograd recording (returns its outputs,
            which are kept alive until the count is taken).
        exclude: tensors whose storages are not counted (parameters, the input).
    Returns:
        the total ``nbytes`` of the saved storages, each counted once.
    """
    skip = {_storage_key(t) for t in exclude}
    seen: dict[tuple[int, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.layout == torch.strided and t.device.type != "meta":
            key = _storage_key(t)
            if key not in skip:
                seen[key] = key[1]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = forward()
    del outputs
    return sum(seen.values())
