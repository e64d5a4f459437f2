"""torch.compile, torch.export and jit.trace see grukit's fast path as operators.

Every kind on every backend (tool_grid): zero graph breaks (``torch._dynamo.explain``), no
recompilation per sequence length or batch size, a compiled training step equal to the
``torch.nn`` twin's (1e-5 float32), an exported program with dynamic batch and length
equal to the twin on other shapes, and a jit trace that is right at other shapes.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from torch.export import Dim

from grukit.models import CharLM
from tool_grid import ALL, CELLS, LAYERS, SOME, Case, assert_same, first, inputs


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()


@pytest.mark.parametrize("case", ALL, ids=str)
def test_compile_has_no_graph_break_and_one_dynamic_graph(case: Case) -> None:
    mod, twin = case.make()
    explained = torch._dynamo.explain(mod)(inputs(case, 4, 2))
    assert explained.graph_break_count == 0, explained.break_reasons
    counter = CompileCounter()
    compiled = torch.compile(mod, backend=counter, fullgraph=True)
    sizes = [(4, 2), (5, 3), (7, 5)]  # lengths and batch sizes both change
    for T, N in sizes:
        x = inputs(case, T, N)
        assert_same(compiled(x), twin(x))
    # the first shape compiles a static graph, the second a dynamic one, then no more
    assert counter.frame_count <= 2, f"recompiled {counter.frame_count} times"


@pytest.mark.parametrize("case", SOME, ids=str)
def test_compiled_training_step_equals_torch_nn(case: Case) -> None:
    mod, twin = case.make()
    compiled = torch.compile(mod, backend="aot_eager", fullgraph=True, dynamic=True)
    for T, N in ((4, 2), (6, 3)):
        x = inputs(case, T, N).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        first(compiled(x)).pow(2).sum().backward()
        first(twin(x2)).pow(2).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
        for (name, p), q in zip(mod.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5, msg=name)
            p.grad, q.grad = None, None


def test_inductor_compiles_the_native_gru_forward_and_backward() -> None:
    mod, twin = next(c for c in LAYERS if c.name == "GRU-native").make()
    compiled = torch.compile(mod, fullgraph=True)
    x = inputs(LAYERS[0], 5, 3).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out, h = compiled(x)
    (out.sum() + h.sum()).backward()
    want_out, want_h = twin(x2)
    (want_out.sum() + want_h.sum()).backward()
    assert_same((out, h), (want_out, want_h))
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)


def test_compiled_graph_holds_the_grukit_operator() -> None:
    """The fast path is one op in the graph, not Python: grukit::gru per layer direction."""
    mod, _ = next(c for c in LAYERS if c.name == "GRU-native").make()
    gm = torch.export.export(mod, (inputs(LAYERS[0], 4, 2),)).graph_module
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count("grukit.gru.default") == 4  # 2 layers × 2 directions


@pytest.mark.parametrize("case", SOME, ids=str)
def test_export_with_dynamic_batch_and_length(case: Case) -> None:
    mod, twin = case.make()
    mod.eval()
    if case.cell:
        spec = ({0: Dim("N", min=2, max=64)},)
        shapes = [(1, 2), (1, 7)]
    else:
        first_dim, second = ("T", "N") if not getattr(mod, "batch_first", False) else ("N", "T")
        spec = ({0: Dim(first_dim, min=2, max=64), 1: Dim(second, min=2, max=64)},)
        shapes = [(3, 2), (9, 5)]
    program = torch.export.export(mod, (inputs(case, 4, 3),), dynamic_shapes=spec)
    for T, N in shapes:
        x = inputs(case, T, N)
        assert_same(program.module()(x), twin(x))


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("case", ALL, ids=str)
def test_jit_trace_is_right_at_other_shapes(case: Case, grad: bool) -> None:
    mod, twin = case.make()
    with torch.set_grad_enabled(grad):
        traced = torch.jit.trace(mod, (inputs(case, 4, 3),))
        for T, N in ((2, 1), (7, 5)):
            x = inputs(case, T, N)
            assert_same(traced(x), twin(x))


def test_charlm_compiles_with_onehot_input() -> None:
    torch.manual_seed(0)
    model = CharLM(11, 8)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    tokens = torch.randint(0, 11, (3, 6))
    logits, _ = compiled(tokens)
    torch.testing.assert_close(logits, model(tokens)[0], rtol=1e-6, atol=1e-6)
    logits.sum().backward()
    assert model.rnn.weight_ih_l0.grad is not None


@pytest.mark.parametrize("case", CELLS[:1], ids=str)
def test_streaming_cell_in_eager_is_unchanged_by_tracing_support(case: Case) -> None:
    """The eager GRUCell step still takes the one-call native path (no operator dispatch)."""
    mod, twin = case.make()
    with torch.no_grad():
        x, h = inputs(case, 1, 2), torch.randn(2, 5)
        assert mod._streaming_step(x, h) is not None
        assert_same(mod(x, h), twin(x, h))
