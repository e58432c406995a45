"""fuse: group counts on known patterns, refusal reasons, the printed fused form."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.ir.graph import Graph
from dlc.passes import PassContext, make_pass
from dlc.passes.graph.fuse import fuse_graph
from dlc.passes.graph.fusion_plan import FusionPlan, print_fused
from tests.passes.helpers import assert_prints, assert_same_results, ir

RNG = np.random.default_rng(0)
W = {"w1": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
     "w2": RNG.standard_normal((4, 4, 3, 3)).astype(np.float32),
     "b": RNG.standard_normal((1, 4, 1, 1)).astype(np.float32)}


def fuse(text: str, **options) -> tuple[Graph, FusionPlan, PassContext]:  # type: ignore[no-untyped-def]
    graph = ir(text, W)
    ctx = PassContext()
    out = make_pass("fuse", **options).run(graph, ctx)
    assert ctx.fusion_plan is not None
    check_plan(out, ctx.fusion_plan)
    assert_same_results(graph, out)
    return out, ctx.fusion_plan, ctx


def check_plan(graph: Graph, plan: FusionPlan) -> None:
    """Every node in one group; groups contiguous, in a valid order; one root per group."""
    assert [n for g in plan.groups for n in g.nodes] == list(graph.nodes)
    done: set = set(graph.inputs)
    for g in plan.groups:
        for v in g.inputs():
            assert v.is_constant or v in done, f"group {g.index} reads a later value"
        outs = g.outputs(graph)
        assert all(v in g.root.outputs for v in outs), f"group {g.index} leaks an inner value"
        done.update(v for n in g.nodes for v in n.outputs)


def kinds(plan: FusionPlan) -> list[list[str]]:
    return [[n.op.name for n in g.nodes] for g in plan.groups]


def test_conv_bias_relu_is_one_group() -> None:
    _, plan, ctx = fuse("""
        graph @f(%x: f32[1, 3, 8, 8]) -> (f32[1, 4, 8, 8]) {
          %0 = nn.conv2d(%x, @w1, padding=[1, 1]) : f32[1, 4, 8, 8]
          %1 = ew.add(%0, @b) : f32[1, 4, 8, 8]
          %2 = ew.relu(%1) : f32[1, 4, 8, 8]
          return %2
        }""")
    assert kinds(plan) == [["nn.conv2d", "ew.add", "ew.relu"]]
    assert plan.groups[0].kind.value == "out_fusable"
    assert plan.groups[0].name == "fused_conv2d_add_relu"
    assert ctx.fusion_refusals() == []


def test_a_residual_add_joins_its_convs_group() -> None:
    _, plan, ctx = fuse("""
        graph @f(%x: f32[1, 3, 8, 8]) -> (f32[1, 4, 8, 8]) {
          %0 = nn.conv2d(%x, @w1, padding=[1, 1]) : f32[1, 4, 8, 8]
          %1 = ew.relu(%0) : f32[1, 4, 8, 8]
          %2 = nn.conv2d(%1, @w2, padding=[1, 1]) : f32[1, 4, 8, 8]
          %3 = ew.add(%2, @b) : f32[1, 4, 8, 8]
          %4 = ew.add(%3, %1) : f32[1, 4, 8, 8]
          %5 = ew.relu(%4) : f32[1, 4, 8, 8]
          return %5
        }""")
    assert kinds(plan) == [["nn.conv2d", "ew.relu"],
                           ["nn.conv2d", "ew.add", "ew.add", "ew.relu"]]
    messages = [r.message for r in ctx.fusion_refusals()]
    assert messages == [
        "cannot fuse %1 ew.relu with %2 nn.conv2d: out_fusable consumer after out_fusable "
        "(only an elementwise epilogue fuses into a conv or matmul)",
        "cannot fuse %1 ew.relu with %4 ew.add: out_fusable consumer after out_fusable "
        "(only an elementwise epilogue fuses into a conv or matmul)",
    ]


def test_softmax_is_not_split_and_takes_its_elementwise_producer_and_epilogue() -> None:
    _, plan, ctx = fuse("""
        graph @f(%x: f32[4, 16], %w: f32[16, 16]) -> (f32[4, 16]) {
          %0 = linalg.matmul(%x, %w) : f32[4, 16]
          %1 = ew.mul(%0, const(0.25) : f32[]) : f32[4, 16]
          %2 = nn.softmax(%1, axis=-1) : f32[4, 16]
          %3 = ew.exp(%2) : f32[4, 16]
          %4 = linalg.matmul(%3, %w) : f32[4, 16]
          return %4
        }""")
    assert kinds(plan) == [["linalg.matmul", "ew.mul"], ["nn.softmax", "ew.exp"],
                           ["linalg.matmul"]]
    assert plan.groups[1].kind.value == "reduction"
    assert [r.message for r in ctx.fusion_refusals()] == [
        "cannot fuse %1 ew.mul with %2 nn.softmax: reduction consumer after out_fusable "
        "(only an elementwise epilogue fuses into a conv or matmul)",
        "cannot fuse %3 ew.exp with %4 linalg.matmul: a reduction ends its group: only its "
        "producers and an elementwise epilogue fuse into it",
    ]
    _, plan, _ = fuse("""
        graph @f(%x: f32[4, 16]) -> (f32[4, 16]) {
          %0 = ew.mul(%x, const(0.25) : f32[]) : f32[4, 16]
          %1 = nn.softmax(%0, axis=-1) : f32[4, 16]
          return %1
        }""")
    assert kinds(plan) == [["ew.mul", "nn.softmax"]]
    assert plan.groups[0].kind.value == "reduction"


def test_a_diamond_is_one_group() -> None:
    _, plan, _ = fuse("""
        graph @f(%x: f32[8]) -> (f32[8]) {
          %0 = ew.exp(%x) : f32[8]
          %1 = ew.neg(%0) : f32[8]
          %2 = ew.tanh(%0) : f32[8]
          %3 = ew.add(%1, %2) : f32[8]
          return %3
        }""")
    assert len(plan.groups) == 1 and plan.groups[0].root.op.name == "ew.add"


def test_injective_chains_fuse_and_elementwise_joins_them() -> None:
    _, plan, _ = fuse("""
        graph @f(%x: f32[2, 6]) -> (f32[3, 4]) {
          %0 = ew.exp(%x) : f32[2, 6]
          %1 = shape.reshape(%0, shape=[4, 3]) : f32[4, 3]
          %2 = shape.permute(%1, perm=[1, 0]) : f32[3, 4]
          %3 = ew.relu(%2) : f32[3, 4]
          return %3
        }""")
    assert len(plan.groups) == 1


def test_opaque_ops_and_graph_outputs_end_groups() -> None:
    _, plan, ctx = fuse("""
        graph @f(%x: f32[4, 8]) -> (f32[4, 8], f32[4, 2]) {
          %0 = ew.exp(%x) : f32[4, 8]
          %1 = ew.relu(%0) : f32[4, 8]
          %2, %3 = reduce.topk(%1, k=2) : f32[4, 2], i64[4, 2]
          %4 = ew.neg(%2) : f32[4, 2]
          return %1, %4
        }""")
    assert kinds(plan) == [["ew.exp", "ew.relu"], ["reduce.topk"], ["ew.neg"]]
    assert [r.reason for r in ctx.fusion_refusals()] == [
        "its result is a graph output, so it is written out",
        "reduce.topk is opaque: it is never fused",
    ]


def test_elementwise_does_not_fuse_into_a_conv() -> None:
    _, plan, ctx = fuse("""
        graph @f(%x: f32[1, 3, 8, 8]) -> (f32[1, 4, 6, 6]) {
          %0 = ew.relu(%x) : f32[1, 3, 8, 8]
          %1 = nn.conv2d(%0, @w1) : f32[1, 4, 6, 6]
          return %1
        }""")
    assert len(plan.groups) == 2
    assert ctx.fusion_refusals()[0].reason.startswith("out_fusable consumer: elementwise ops")


def test_multi_output_nodes_fuse_as_units() -> None:
    _, plan, _ = fuse("""
        graph @f(%x: f32[4, 6]) -> (f32[4, 3]) {
          %0 = ew.exp(%x) : f32[4, 6]
          %1, %2 = shape.split(%0, sizes=[3, 3], axis=1) : f32[4, 3], f32[4, 3]
          %3 = ew.mul(%1, %2) : f32[4, 3]
          return %3
        }""")
    assert len(plan.groups) == 1


def test_max_group_size_is_respected() -> None:
    chain = "\n".join(f"  %{i + 1} = ew.neg(%{i}) : f32[4]" for i in range(9))
    text = (f"graph @f(%x: f32[4]) -> (f32[4]) {{\n  %0 = ew.exp(%x) : f32[4]\n{chain}\n"
            "  return %9\n}")
    _, plan, ctx = fuse(text, max_group_size=4)
    assert all(len(g) <= 4 for g in plan.groups) and len(plan.groups) == 3
    assert "max_group_size=4" in ctx.fusion_refusals()[0].reason


def test_naive_fusion_is_one_group_per_op() -> None:
    out, plan, ctx = fuse("""
        graph @f(%x: f32[8]) -> (f32[8]) {
          %0 = ew.exp(%x) : f32[8]
          %1 = ew.neg(%0) : f32[8]
          return %1
        }""", naive=True)
    assert plan.naive and kinds(plan) == [["ew.exp"], ["ew.neg"]]
    assert ctx.fusion_refusals()[0].reason == "fusion is off (naive: one group per op)"


def test_groups_are_made_contiguous() -> None:
    # %1 and %3 fuse; %2 (a reduction reading %0) sat between them and moves first.
    out, plan, _ = fuse("""
        graph @f(%x: f32[4, 8]) -> (f32[4, 8], f32[4]) {
          %0 = ew.exp(%x) : f32[4, 8]
          %1 = ew.neg(%0) : f32[4, 8]
          %2 = reduce.sum(%x, axes=[1]) : f32[4]
          %3 = ew.relu(%1) : f32[4, 8]
          return %3, %2
        }""")
    assert kinds(plan) == [["ew.exp", "ew.neg", "ew.relu"], ["reduce.sum"]]
    assert_prints(print_fused(out, plan), """
        graph @f(%x: f32[4, 8]) -> (f32[4, 8], f32[4]) {
          group #0 fused_exp_neg_relu (elementwise) {
            %0 = ew.exp(%x) : f32[4, 8]
            %1 = ew.neg(%0) : f32[4, 8]
            %2 = ew.relu(%1) : f32[4, 8]
          }
          group #1 sum (reduction) {
            %3 = reduce.sum(%x, axes=[1], keepdims=false) : f32[4]
          }
          return %2, %3
        }""")


def test_a_stale_plan_is_rejected() -> None:
    graph = ir("""
        graph @f(%x: f32[8]) -> (f32[8]) {
          %0 = ew.exp(%x) : f32[8]
          %1 = ew.neg(%0) : f32[8]
          return %1
        }""")
    plan, fused = fuse_graph(graph)
    with pytest.raises(Exception, match="fusion plan does not match"):
        print_fused(graph.with_nodes(graph.nodes[:1], (graph.nodes[0].output,)), plan)
    assert plan.node_groups() == [list(fused.nodes)]


def test_post_dominators_agree_with_networkx() -> None:
    nx = pytest.importorskip("networkx")
    from dlc.passes.graph.fuse import EXIT, immediate_post_dominators

    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(2, 25))
        consumers = [sorted({int(j) for j in rng.integers(i + 1, n, rng.integers(0, 3))})
                     if i + 1 < n else [] for i in range(n)]
        escapes = [bool(rng.random() < 0.15) for _ in range(n)]
        reverse = nx.DiGraph()
        reverse.add_nodes_from([EXIT, *range(n)])
        for i in range(n):
            if escapes[i] or not consumers[i]:
                reverse.add_edge(EXIT, i)
            reverse.add_edges_from((j, i) for j in consumers[i])
        idom = nx.immediate_dominators(reverse, EXIT)
        want = [None if escapes[i] or idom[i] == EXIT else idom[i] for i in range(n)]
        got = immediate_post_dominators(consumers, escapes)
        # An escaping node is written out whatever dominates it; compare the others.
        assert [g for g, e in zip(got, escapes) if not e] == \
            [w for w, e in zip(want, escapes) if not e]
