"""Golden tests of the cleanup passes: fold-constants, eliminate-dead-code, CSE."""

from __future__ import annotations

import numpy as np

from dlc.ir import DType, GraphBuilder, TensorType
from dlc.passes import PassContext, make_pass
from tests.passes.helpers import assert_prints, assert_same_results, ir


def run(name: str, text_or_graph, **options):  # type: ignore[no-untyped-def]
    graph = ir(text_or_graph) if isinstance(text_or_graph, str) else text_or_graph
    ctx = PassContext()
    out = make_pass(name, **options).run(graph, ctx)
    assert_same_results(graph, out)
    return out, ctx


# -- fold-constants ------------------------------------------------------------------------


def test_fold_a_chain_of_constant_ops() -> None:
    out, _ = run("fold-constants", """
        graph @f(%x: f32[3]) -> (f32[3]) {
          %0 = ew.add(const([1.0, 2.0, 3.0]) : f32[3], const(1.0) : f32[]) : f32[3]
          %1 = ew.mul(%0, const(2.0) : f32[]) : f32[3]
          %2 = ew.sub(%x, %1) : f32[3]
          return %2
        }""")
    assert_prints(out, """
        graph @f(%x: f32[3]) -> (f32[3]) {
          %0 = ew.sub(%x, const([4.0, 6.0, 8.0]) : f32[3]) : f32[3]
          return %0
        }""")


def test_fold_a_weight_transpose_however_large() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2, 300), DType.f32))
    w = b.const(np.arange(300 * 400, dtype=np.float32).reshape(400, 300), "fc.weight")
    y = b.op("linalg.matmul", x, b.op("shape.permute", w, perm=[1, 0]))
    g = b.build([y])
    out, _ = run("fold-constants", g, max_elements=16)
    assert [n.op.name for n in out.nodes] == ["linalg.matmul"]
    folded = out.nodes[0].inputs[1]
    assert folded.name == "permute.folded" and folded.data.shape == (300, 400)


def test_fold_never_materializes_a_huge_broadcast() -> None:
    out, ctx = run("fold-constants", """
        graph @f(%x: f32[64, 64]) -> (f32[64, 64]) {
          %0 = shape.expand(const(1.5) : f32[], shape=[64, 64]) : f32[64, 64]
          %1 = ew.mul(%x, %0) : f32[64, 64]
          return %1
        }""", max_elements=1000)
    assert [n.op.name for n in out.nodes] == ["shape.expand", "ew.mul"]
    out, _ = run("fold-constants", out, max_elements=4096)
    assert [n.op.name for n in out.nodes] == ["ew.mul"]


def test_fold_a_graph_output_and_creation_ops() -> None:
    out, _ = run("fold-constants", """
        graph @f(%x: f32[4]) -> (f32[4], f32[4]) {
          %0 = create.arange(shape=[4], start=0.0, step=1.0, dtype=f32) : f32[4]
          %1 = ew.add(%x, %0) : f32[4]
          %2 = ew.exp(%0) : f32[4]
          return %1, %2
        }""")
    assert [n.op.name for n in out.nodes] == ["ew.add"]
    np.testing.assert_allclose(out.outputs[1].data, np.exp(np.arange(4, dtype=np.float32)))


def test_fold_keeps_nodes_that_read_inputs() -> None:
    g = ir("""
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          return %0
        }""")
    out, _ = run("fold-constants", g)
    assert out is g


# -- eliminate-dead-code ---------------------------------------------------------------------


def test_dce_removes_unused_chains_and_multi_output_nodes_stay_whole() -> None:
    out, _ = run("eliminate-dead-code", """
        graph @f(%x: f32[4, 6]) -> (f32[4, 3]) {
          %0 = ew.exp(%x) : f32[4, 6]
          %1 = ew.relu(%0) : f32[4, 6]
          %2, %3 = shape.split(%x, sizes=[3, 3], axis=1) : f32[4, 3], f32[4, 3]
          %4 = ew.neg(%3) : f32[4, 3]
          return %4
        }""")
    assert_prints(out, """
        graph @f(%x: f32[4, 6]) -> (f32[4, 3]) {
          %0, %1 = shape.split(%x, sizes=[3, 3], axis=1) : f32[4, 3], f32[4, 3]
          %2 = ew.neg(%1) : f32[4, 3]
          return %2
        }""")


def test_dce_on_a_clean_graph_returns_it() -> None:
    g = ir("""
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          return %0
        }""")
    assert make_pass("eliminate-dead-code")(g) is g


# -- eliminate-common-subexpressions -----------------------------------------------------------


def test_cse_merges_same_op_operands_and_attrs_transitively() -> None:
    out, ctx = run("eliminate-common-subexpressions", """
        graph @f(%x: f32[2, 3]) -> (f32[3, 2]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %2 = ew.exp(%0) : f32[3, 2]
          %3 = ew.exp(%1) : f32[3, 2]
          %4 = ew.add(%2, %3) : f32[3, 2]
          return %4
        }""")
    assert_prints(out, """
        graph @f(%x: f32[2, 3]) -> (f32[3, 2]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = ew.exp(%0) : f32[3, 2]
          %2 = ew.add(%1, %1) : f32[3, 2]
          return %2
        }""")
    assert "merged 2 duplicate node(s)" in str(ctx.notes()[0])


def test_cse_keeps_nodes_that_differ_in_attrs_or_operand_order() -> None:
    g = ir("""
        graph @f(%x: f32[2, 2], %y: f32[2, 2]) -> (f32[2, 2], f32[2, 2], f32[2, 2], f32[2, 2]) {
          %0 = ew.sub(%x, %y) : f32[2, 2]
          %1 = ew.sub(%y, %x) : f32[2, 2]
          %2 = ew.leaky_relu(%x, negative_slope=0.1) : f32[2, 2]
          %3 = ew.leaky_relu(%x, negative_slope=0.2) : f32[2, 2]
          return %0, %1, %2, %3
        }""")
    out, _ = run("eliminate-common-subexpressions", g)
    assert out is g


def test_cse_compares_small_constants_by_value() -> None:
    out, _ = run("eliminate-common-subexpressions", """
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.add(%x, const(2.0) : f32[]) : f32[2]
          %1 = ew.add(%x, const(2.0) : f32[]) : f32[2]
          %2 = ew.add(%x, const(3.0) : f32[]) : f32[2]
          %3 = ew.mul(%0, %1) : f32[2]
          %4 = ew.mul(%3, %2) : f32[2]
          return %4
        }""")
    assert [n.op.name for n in out.nodes] == ["ew.add", "ew.add", "ew.mul", "ew.mul"]


def test_cse_merges_graph_outputs() -> None:
    out, _ = run("eliminate-common-subexpressions", """
        graph @f(%x: f32[2]) -> (f32[2], f32[2]) {
          %0 = ew.exp(%x) : f32[2]
          %1 = ew.exp(%x) : f32[2]
          return %0, %1
        }""")
    assert len(out.nodes) == 1 and out.outputs[0] is out.outputs[1]
