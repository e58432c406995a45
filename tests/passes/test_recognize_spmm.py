"""recognize-spmm: the edge-list form of a GCN layer becomes sparse.spmm."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.interpreter import run_graph
from dlc.ir.graph import Graph
from dlc.passes import PassContext, make_pass, run_pipeline
from dlc.testing import assert_close
from tests.passes.helpers import ir

LAYER = """
graph @f(%h: f32[5, 3], %src: i64[7], %dst: i64[7], %w: f32[7]) -> (f32[5, 3]) {{
  %0 = index.index(%h, %src, axes=[0]) : f32[7, 3]
  %1 = shape.unsqueeze(%w, axes=[1]) : f32[7, 1]
  %2 = {values}
  %3 = create.full_like(%h, value={init}) : f32[5, 3]
  %4 = index.index_put(%3, %2, %dst, axes=[0], accumulate={accumulate}) : f32[5, 3]
  return %4
}}
"""
RNG = np.random.default_rng(2)
ARGS = [RNG.standard_normal((5, 3)).astype(np.float32), RNG.integers(0, 5, 7),
        RNG.integers(0, 5, 7), RNG.standard_normal(7).astype(np.float32)]


def check(graph: Graph, out: Graph, args: list) -> None:
    assert_close(run_graph(out, *args), run_graph(graph, *args), rtol=1e-5)


@pytest.mark.parametrize("values", ["ew.mul(%0, %1) : f32[7, 3]", "ew.mul(%1, %0) : f32[7, 3]",
                                    "ew.exp(%0) : f32[7, 3]"])
def test_weighted_and_unweighted_layers(values: str) -> None:
    text = LAYER.format(values=values, init="0.0", accumulate="true")
    if values.startswith("ew.exp"):  # unweighted: scatter the gathered rows themselves
        text = text.replace("%2 = ew.exp(%0) : f32[7, 3]\n", "").replace(", %2, %dst", ", %0, %dst")
    graph = ir(text)
    ctx = PassContext()
    out = make_pass("recognize-spmm").run(graph, ctx)
    ops = [n.op.name for n in out.nodes]
    assert ops[-3:] == ["sparse.coo_from_edges", "sparse.coo_to_csr", "sparse.spmm"]
    assert "index.index_put" not in ops and "create.full_like" not in ops
    check(graph, out, ARGS)


@pytest.mark.parametrize("init, accumulate", [("1.0", "true"), ("0.0", "false")])
def test_not_a_product(init: str, accumulate: str) -> None:
    graph = ir(LAYER.format(values="ew.mul(%0, %1) : f32[7, 3]", init=init,
                            accumulate=accumulate))
    assert make_pass("recognize-spmm")(graph) is graph


def test_gcn_from_the_zoo_shares_one_adjacency() -> None:
    pytest.importorskip("torch")
    import dlc
    from dlc.model_source import load_model

    source = load_model("gcn", "tiny")
    graph = dlc.import_model(source.module, source.example_inputs, source.dynamic_shapes)
    ctx = PassContext(debug=True)
    out = run_pipeline(graph, 3, ctx=ctx)
    ops = [n.op.name for n in out.nodes]
    assert ops.count("sparse.spmm") == 2 and ops.count("sparse.coo_from_edges") == 1
    assert "index.index_put" not in ops
    args = [np.asarray(x) if not hasattr(x, "numpy") else x.numpy()
            for x in source.example_inputs]
    check(graph, out, args)
