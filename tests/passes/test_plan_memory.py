"""plan-memory, checked by simulation: no two live buffers overlap, reuse beats naive."""

from __future__ import annotations

import sympy

from dlc.ir.graph import Graph
from dlc.passes import PassContext, make_pass, run_pipeline
from dlc.passes.graph.fuse import fuse_graph
from dlc.passes.graph.plan_memory import MemoryPlan, liveness, nbytes, plan_memory
from tests.passes.helpers import ir


def chain(n: int, width: int = 256) -> Graph:
    ops = ["ew.exp", "ew.neg", "ew.sin", "ew.tanh"]
    lines = [f"  %{i} = {ops[i % 4]}({'%x' if i == 0 else f'%{i - 1}'}) : f32[{width}]"
             for i in range(n)]
    return ir(f"graph @f(%x: f32[{width}]) -> (f32[{width}]) {{\n" + "\n".join(lines)
              + f"\n  return %{n - 1}\n}}")


BRANCHY = """
graph @f(%x: f32[64, 64], %y: f32[64]) -> (f32[64, 64], f32[64]) {
  %0 = ew.exp(%x) : f32[64, 64]
  %1 = reduce.sum(%0, axes=[1]) : f32[64]
  %2 = ew.neg(%0) : f32[64, 64]
  %3 = shape.reshape(%1, shape=[8, 8]) : f32[8, 8]
  %4 = ew.add(%1, %y) : f32[64]
  %5 = ew.mul(%2, %0) : f32[64, 64]
  %6 = shape.permute(%5, perm=[1, 0]) : f32[64, 64]
  %7 = ew.relu(%3) : f32[8, 8]
  %8 = shape.reshape(%7, shape=[64]) : f32[64]
  %9 = ew.sub(%8, %4) : f32[64]
  %10 = linalg.matmul(%6, %2) : f32[64, 64]
  return %10, %9
}
"""


def simulate(plan: MemoryPlan, bindings: dict[str, int] | None = None) -> None:
    """Check the plan against its liveness: disjoint bytes for overlapping lifetimes."""
    placed = plan.resolve(bindings)
    arena = plan.size(bindings)
    items = list(placed.values())
    for offset, size, _, _ in items:
        assert offset % plan.alignment == 0
        assert 0 <= offset and offset + size <= arena
    for i, (o1, s1, a1, e1) in enumerate(items):
        for o2, s2, a2, e2 in items[i + 1:]:
            if a1 <= e2 and a2 <= e1:  # live at the same time
                assert o1 + s1 <= o2 or o2 + s2 <= o1, "two live values share bytes"
    for step in range(plan.steps):  # the arena holds the largest live set
        live = sum(s for _, s, a, e in items if a <= step <= e)
        assert arena >= live


def test_a_chain_reuses_two_buffers() -> None:
    graph = chain(8)
    plan = plan_memory(graph)
    simulate(plan)
    naive = plan_memory(graph, naive=True)
    simulate(naive)
    assert len(plan.allocations) == 7  # the last value is the graph output
    assert plan.size() == 2 * 1024 < naive.size() == 7 * 1024
    assert naive.size() == naive.naive_total() == plan.naive_total()


def test_branchy_graph_per_node_and_per_group() -> None:
    graph = ir(BRANCHY)
    by_node = plan_memory(graph)
    simulate(by_node)
    assert by_node.size() < plan_memory(graph, naive=True).size()
    fusion, fused = fuse_graph(graph)
    by_group = plan_memory(fused, fusion)
    simulate(by_group)
    # Values that stay inside a group are not in the arena.
    inner = {v for g in fusion.groups for n in g.nodes for v in n.outputs} \
        - {v for g in fusion.groups for v in g.outputs(fused)}
    assert inner and not inner & set(by_group.allocations)
    assert by_group.size() <= by_node.size()


def test_liveness_spans_from_writer_to_last_reader() -> None:
    graph = ir(BRANCHY)
    spans = {str(v.type): (s, e) for v, s, e in liveness(graph) if v is graph.nodes[0].outputs[0]}
    assert spans == {"f32[64, 64]": (0, 5)}  # %0 is read last by %5


def test_alignment() -> None:
    graph = ir("""
        graph @f(%x: f32[3]) -> (f32[3]) {
          %0 = ew.exp(%x) : f32[3]
          %1 = ew.neg(%0) : f32[3]
          %2 = ew.sin(%1) : f32[3]
          return %2
        }""")
    plan = plan_memory(graph, alignment=128)
    simulate(plan)
    assert [b.offset for b in plan.buffers] == [0, 128] and plan.size() == 256


def test_symbolic_sizes_are_expressions_evaluated_per_call() -> None:
    graph = ir("""
        graph @f(%x: f32[N, 16]) -> (f32[N]) {
          %0 = ew.exp(%x) : f32[N, 16]
          %1 = reduce.sum(%0, axes=[1]) : f32[N]
          %2 = ew.neg(%1) : f32[N]
          %3 = ew.sin(%2) : f32[N]
          %4 = ew.tanh(%3) : f32[N]
          return %4
        }""")
    plan = plan_memory(graph)
    assert isinstance(plan.total, sympy.Expr)
    assert plan.total.free_symbols == {sympy.Symbol("N", integer=True, positive=True)}
    for n in (1, 3, 17, 1000):
        simulate(plan, {"N": n})
        assert plan.size({"N": n}) < plan_memory(graph, naive=True).size({"N": n})
    # %1 (N floats) moves into %0's freed buffer (64 N bytes): no third buffer.
    assert len(plan.buffers) == 2


def test_sparse_values_are_sized_by_their_arrays() -> None:
    from dlc.ir.dtypes import DType
    from dlc.ir.types import SparseTensorType

    assert nbytes(SparseTensorType("coo", (5, 5), DType.f32, 7)) == 7 * 4 + 7 * 16
    assert nbytes(SparseTensorType("csr", (5, 5), DType.f32, 7)) == 7 * 4 + 7 * 8 + 6 * 8


def test_the_pass_annotates_and_shows_the_plan() -> None:
    graph = chain(4)
    ctx = PassContext()
    out = make_pass("plan-memory").run(graph, ctx)
    assert out is graph and ctx.memory_plan is not None
    assert "memory plan (best-fit reuse): 3 values in 2 buffers" in \
        make_pass("plan-memory").show(out, ctx)
    placement = ctx.memory_plan.placement  # the form the LLVM backend reads
    assert set(placement) == set(ctx.memory_plan.allocations)


def test_o3_plans_fused_groups_and_o2_is_naive() -> None:
    graph = ir(BRANCHY)
    ctx3, ctx2 = PassContext(), PassContext()
    out3 = run_pipeline(graph, 3, ctx=ctx3)
    out2 = run_pipeline(graph, 2, ctx=ctx2)
    simulate(ctx3.memory_plan)
    simulate(ctx2.memory_plan)
    assert ctx2.memory_plan.naive and not ctx3.memory_plan.naive
    assert ctx3.memory_plan.size() <= ctx2.memory_plan.size()
    assert len(out3.nodes) == len(out2.nodes)
