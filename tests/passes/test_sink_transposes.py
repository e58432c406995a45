"""sink-transposes: permutes move toward the outputs and cancel."""

from __future__ import annotations

from dlc.passes import PassContext, make_pass
from tests.passes.helpers import assert_prints, assert_same_results, ir


def sink(text: str):  # type: ignore[no-untyped-def]
    graph = ir(text)
    ctx = PassContext()
    out = make_pass("sink-transposes").run(graph, ctx)
    assert_same_results(graph, out)
    return graph, out, ctx


def test_a_permute_sinks_through_a_chain_and_cancels() -> None:
    _, out, ctx = sink("""
        graph @f(%x: f32[2, 3, 4, 5], %y: f32[2, 3, 4, 5]) -> (f32[2, 3, 4, 5]) {
          %0 = shape.permute(%x, perm=[0, 2, 1, 3]) : f32[2, 4, 3, 5]
          %1 = shape.permute(%y, perm=[0, 2, 1, 3]) : f32[2, 4, 3, 5]
          %2 = ew.mul(%0, const(0.5) : f32[]) : f32[2, 4, 3, 5]
          %3 = ew.add(%2, const([1.0, 2.0, 3.0, 4.0, 5.0]) : f32[5]) : f32[2, 4, 3, 5]
          %4 = ew.sub(%3, %1) : f32[2, 4, 3, 5]
          %5 = ew.tanh(%4) : f32[2, 4, 3, 5]
          %6 = shape.permute(%5, perm=[0, 2, 1, 3]) : f32[2, 3, 4, 5]
          return %6
        }""")
    assert [n.op.name for n in out.nodes] == ["ew.mul", "ew.add", "ew.sub", "ew.tanh"]
    assert "permute(permute(x)) -> x  if they cancel" in {f.rule for f in ctx.rule_firings()}


def test_a_constant_of_the_full_rank_is_permuted_at_compile_time() -> None:
    _, out, _ = sink("""
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = ew.sub(const([[1.0], [2.0], [3.0]]) : f32[3, 1], %0) : f32[3, 2]
          %2 = shape.permute(%1, perm=[1, 0]) : f32[2, 3]
          return %2
        }""")
    assert_prints(out, """
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = ew.sub(const([[1.0, 2.0, 3.0]]) : f32[1, 3], %x) : f32[2, 3]
          return %0
        }""")


def test_a_shared_permute_stays_and_a_result_permute_stays() -> None:
    graph, out, ctx = sink("""
        graph @f(%x: f32[2, 3]) -> (f32[3, 2], f32[3, 2]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = ew.exp(%0) : f32[3, 2]
          %2 = ew.neg(%0) : f32[3, 2]
          return %1, %2
        }""")
    assert out is graph and not ctx.rule_firings()
    _, out, _ = sink("""
        graph @f(%x: f32[2, 3]) -> (f32[3, 2]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = ew.exp(%0) : f32[3, 2]
          return %1
        }""")
    assert [n.op.name for n in out.nodes] == ["ew.exp", "shape.permute"]


def test_different_permutes_do_not_merge() -> None:
    graph, out, _ = sink("""
        graph @f(%x: f32[2, 2, 2], %y: f32[2, 2, 2]) -> (f32[2, 2, 2]) {
          %0 = shape.permute(%x, perm=[1, 0, 2]) : f32[2, 2, 2]
          %1 = shape.permute(%y, perm=[0, 2, 1]) : f32[2, 2, 2]
          %2 = ew.add(%0, %1) : f32[2, 2, 2]
          return %2
        }""")
    assert out is graph
