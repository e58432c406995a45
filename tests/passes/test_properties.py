"""Property tests: on random small graphs every pass and pipeline keeps the results."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc.ir import DType, GraphBuilder, TensorType
from dlc.ir.graph import Graph
from dlc.ir.printer import print_graph
from dlc.ir.verifier import verify_graph
from dlc.passes import LEVEL_OF, PassContext, make_pass, registered_passes, run_pipeline
from tests.passes.helpers import assert_same_results
from tests.passes.test_fuse import check_plan
from tests.passes.test_plan_memory import simulate

UNARY = ["ew.tanh", "ew.sin", "ew.neg", "ew.relu", "ew.abs", "ew.sigmoid"]
BINARY = ["ew.add", "ew.sub", "ew.mul", "ew.maximum"]
CONSTANTS = [0.0, 1.0, 0.5, -2.0]


@st.composite
def elementwise_graphs(draw: st.DrawFn) -> Graph:
    """A random DAG of elementwise, broadcast and reshape/permute ops on f32[3, 4] inputs,
    with identities (x * 1, x + 0), duplicates and constant subexpressions sprinkled in."""
    b = GraphBuilder("random")
    values = [b.input(f"x{i}", TensorType((3, 4), DType.f32))
              for i in range(draw(st.integers(1, 2)))]
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "shape", "repeat", "folded",
                                     "heavy"]))
        x = draw(st.sampled_from(values))
        if kind == "unary":
            values.append(b.op(draw(st.sampled_from(UNARY)), x))
        elif kind == "binary":
            y = draw(st.sampled_from(values))
            values.append(b.op(draw(st.sampled_from(BINARY)), x, y))
        elif kind == "const":
            c = draw(st.sampled_from(CONSTANTS))
            shape = draw(st.sampled_from([(), (4,), (3, 4)]))
            const = b.const(np.full(shape, c, np.float32))
            op = draw(st.sampled_from(BINARY))
            args = (x, const) if draw(st.booleans()) else (const, x)
            values.append(b.op(op, *args))
        elif kind == "shape":
            if x.type.shape == (3, 4):
                t = b.op("shape.permute", x, perm=[1, 0])
                values.append(b.op("shape.permute", t, perm=[1, 0]) if draw(st.booleans())
                              else b.op("shape.reshape", t, shape=[3, 4]))
        elif kind == "repeat":  # an exact duplicate, for CSE
            node = b.nodes[-1] if b.nodes else None
            if node is not None:
                values.append(b.op(node.op, *node.inputs, **dict(node.attrs)))
        elif kind == "heavy":  # reductions, out_fusable and opaque ops, for fusion
            if x.type.shape == (3, 4):
                heavy = draw(st.sampled_from(["softmax", "sum", "matmul", "cumsum"]))
                if heavy == "softmax":
                    values.append(b.op("nn.softmax", x, axis=-1))
                elif heavy == "sum":
                    values.append(b.op("ew.sub", x, b.op("reduce.sum", x, axes=[1],
                                                         keepdims=True)))
                elif heavy == "matmul":
                    w = b.const(np.linspace(-0.5, 0.5, 16, dtype=np.float32).reshape(4, 4))
                    values.append(b.op("linalg.matmul", x, w))
                else:
                    values.append(b.op("reduce.cumsum", x, axis=1))
        else:  # a constant subexpression, for folding
            c = b.const(np.linspace(-1, 1, 4, dtype=np.float32))
            values.append(b.op("ew.add", x, b.op("ew.tanh", b.op("ew.mul", c, c))))
    results = values[-draw(st.integers(1, min(2, len(values)))):]
    return b.build(results)


def run_checked(graph: Graph, name: str) -> Graph:
    ctx = PassContext()
    out = make_pass(name).run(graph, ctx)
    verify_graph(out)
    assert_same_results(graph, out, rtol=1e-5)
    return out


@settings(max_examples=40, deadline=None)
@given(elementwise_graphs())
def test_every_pass_keeps_the_results_and_is_idempotent(graph: Graph) -> None:
    for name in registered_passes():
        once = run_checked(graph, name)
        twice = make_pass(name).run(once, PassContext())
        assert print_graph(twice) == print_graph(once), f"{name} is not idempotent"


@settings(max_examples=30, deadline=None)
@given(elementwise_graphs(), st.integers(0, 3), st.sets(st.sampled_from(sorted(LEVEL_OF))))
def test_every_pipeline_keeps_the_results(graph: Graph, level: int, disable: set[str]) -> None:
    ctx = PassContext(debug=True)
    out = run_pipeline(graph, level, disable=sorted(disable), ctx=ctx)
    assert_same_results(graph, out, rtol=1e-5)
    assert ctx.fusion_plan is not None and ctx.memory_plan is not None
    assert len(out.nodes) <= len(graph.nodes)
    check_plan(out, ctx.fusion_plan)
    simulate(ctx.memory_plan)
