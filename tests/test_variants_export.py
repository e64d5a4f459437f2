"""torch.export of the variants: one graph with dynamic T and N that equals the eager
layer at another shape; LayerNormGRU and the GRU with zoneout keep their operators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import grukit

pytestmark = pytest.mark.usefixtures("native_kernel")

CASES = {
    "LayerNormGRU": (lambda: grukit.LayerNormGRU(4, 6, 2, bidirectional=True), "layernorm_gru"),
    "GRU zoneout": (lambda: grukit.GRU(4, 6, zoneout=0.2), "gru"),
    "MinGRU": (lambda: grukit.MinGRU(4, 6, 2), None),
}


@pytest.mark.parametrize("name", CASES)
def test_export_with_dynamic_shapes_equals_eager(name: str) -> None:
    make, op = CASES[name]
    torch.manual_seed(0)
    model: nn.Module = make().eval()
    dims = {0: torch.export.Dim("T", min=2), 1: torch.export.Dim("N", min=2)}
    ep = torch.export.export(model, (torch.randn(5, 3, 4),), dynamic_shapes=({**dims},))
    x = torch.randn(7, 2, 4)
    got, want = ep.module()(x), model(x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    targets = {str(n.target) for n in ep.graph.nodes}
    if op is not None:
        assert any(f"grukit.{op}" in t for t in targets), sorted(targets)
