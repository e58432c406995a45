"""simplify: every rule on a small graph, each checked against the interpreter."""

from __future__ import annotations

import pytest

from dlc.ops import all_ops
from dlc.passes import PassContext, make_pass
from dlc.passes.graph.simplify import holds_exactly, rules_simplify
from tests.passes.helpers import assert_prints, assert_same_results, ir

FIRED: set[str] = set()

# (rule titles expected to fire, graph before, graph after)
CASES = [
    (["x * 1 -> x", "1 * x -> x"], """
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = ew.mul(%x, const(1.0) : f32[]) : f32[2, 3]
          %1 = ew.mul(const([1.0, 1.0, 1.0]) : f32[3], %0) : f32[2, 3]
          return %1
        }""", """
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          return %x
        }"""),
    (["x + 0 -> x", "0 + x -> x", "x - 0 -> x", "x / 1 -> x", "x ** 1 -> x"], """
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.add(%x, const(0.0) : f32[]) : f32[4]
          %1 = ew.add(const(0.0) : f32[], %0) : f32[4]
          %2 = ew.sub(%1, const(0.0) : f32[]) : f32[4]
          %3 = ew.div(%2, const(1.0) : f32[]) : f32[4]
          %4 = ew.pow(%3, const(1.0) : f32[]) : f32[4]
          %5 = ew.exp(%4) : f32[4]
          return %5
        }""", """
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          return %0
        }"""),
    (["x ** 2 -> x * x"], """
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.pow(%x, const(2.0) : f32[]) : f32[4]
          return %0
        }""", """
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.mul(%x, %x) : f32[4]
          return %0
        }"""),
    (["-(-x) -> x", "relu(relu(x)) -> relu(x)", "abs(abs(x)) -> abs(x)",
      "where(c, x, x) -> x"], """
        graph @f(%x: f32[4], %c: bool[4]) -> (f32[4]) {
          %0 = ew.neg(%x) : f32[4]
          %1 = ew.neg(%0) : f32[4]
          %2 = ew.relu(%1) : f32[4]
          %3 = ew.relu(%2) : f32[4]
          %4 = ew.abs(%3) : f32[4]
          %5 = ew.abs(%4) : f32[4]
          %6 = ew.where(%c, %5, %5) : f32[4]
          return %6
        }""", """
        graph @f(%x: f32[4], %c: bool[4]) -> (f32[4]) {
          %0 = ew.relu(%x) : f32[4]
          %1 = ew.abs(%0) : f32[4]
          return %1
        }"""),
    (["cast(x, dtype(x)) -> x", "cast(cast(x, t), u) -> cast(x, u)  if t holds every value of x"],
     """
        graph @f(%x: f16[4], %y: f32[4]) -> (f64[4], f32[4], f16[4]) {
          %0 = ew.cast(%x, dtype=f32) : f32[4]
          %1 = ew.cast(%0, dtype=f64) : f64[4]
          %2 = ew.cast(%y, dtype=f32) : f32[4]
          %3 = ew.cast(%y, dtype=f16) : f16[4]
          %4 = ew.cast(%3, dtype=f32) : f32[4]
          %5 = ew.cast(%4, dtype=f16) : f16[4]
          return %1, %2, %5
        }""", """
        graph @f(%x: f16[4], %y: f32[4]) -> (f64[4], f32[4], f16[4]) {
          %0 = ew.cast(%x, dtype=f64) : f64[4]
          %1 = ew.cast(%y, dtype=f16) : f16[4]
          return %0, %y, %1
        }"""),
    (["reshape(reshape(x)) -> reshape(x)", "reshape(x) -> x  if the shape is unchanged",
      "flatten(unsqueeze(x)) -> reshape(x)", "squeeze(x) -> x  if the shape is unchanged"], """
        graph @f(%x: f32[2, 6], %y: f32[3, 4]) -> (f32[2, 6], f32[12]) {
          %0 = shape.reshape(%x, shape=[3, 4]) : f32[3, 4]
          %1 = shape.reshape(%0, shape=[2, 6]) : f32[2, 6]
          %2 = shape.unsqueeze(%y, axes=[0]) : f32[1, 3, 4]
          %3 = shape.flatten(%2) : f32[12]
          %4 = shape.squeeze(%3, axes=[]) : f32[12]
          return %1, %4
        }""", """
        graph @f(%x: f32[2, 6], %y: f32[3, 4]) -> (f32[2, 6], f32[12]) {
          %0 = shape.reshape(%y, shape=[12]) : f32[12]
          return %x, %0
        }"""),
    (["permute(permute(x, p), q) -> permute(x, p∘q)  (x if p∘q = id)", "permute(x, id) -> x"],
     """
        graph @f(%x: f32[2, 3, 4]) -> (f32[4, 2, 3], f32[2, 3, 4]) {
          %0 = shape.permute(%x, perm=[1, 0, 2]) : f32[3, 2, 4]
          %1 = shape.permute(%0, perm=[2, 1, 0]) : f32[4, 2, 3]
          %2 = shape.permute(%x, perm=[0, 1, 2]) : f32[2, 3, 4]
          %3 = shape.permute(%2, perm=[0, 2, 1]) : f32[2, 4, 3]
          %4 = shape.permute(%3, perm=[0, -1, 1]) : f32[2, 3, 4]
          return %1, %4
        }""", """
        graph @f(%x: f32[2, 3, 4]) -> (f32[4, 2, 3], f32[2, 3, 4]) {
          %0 = shape.permute(%x, perm=[2, 0, 1]) : f32[4, 2, 3]
          return %0, %x
        }"""),
    (["slice(x, 0:end:1) -> x  if it takes everything", "expand(x, shape(x)) -> x",
      "concat(x) -> x", "flip(flip(x, a), a) -> x", "pad(x, 0) -> x", "repeat(x, 1) -> x"], """
        graph @f(%x: f32[2, 3]) -> (f32[2, 3], f32[2, 2], f32[2, 3]) {
          %0 = shape.slice(%x, axes=[1], starts=[0], ends=[100]) : f32[2, 3]
          %1 = shape.slice(%x, axes=[1], starts=[1], ends=[100]) : f32[2, 2]
          %3 = shape.expand(%0, shape=[2, 3]) : f32[2, 3]
          %4 = shape.concat(%3, axis=0) : f32[2, 3]
          %5 = shape.flip(%4, axes=[1, 0]) : f32[2, 3]
          %6 = shape.flip(%5, axes=[0, -1]) : f32[2, 3]
          %7 = shape.pad(%6, pads=[0, 0, 0, 0]) : f32[2, 3]
          %8 = shape.repeat(%7, repeats=[1, 1]) : f32[2, 3]
          %9 = shape.flip(%8, axes=[1]) : f32[2, 3]
          return %8, %1, %9
        }""", """
        graph @f(%x: f32[2, 3]) -> (f32[2, 3], f32[2, 2], f32[2, 3]) {
          %0 = shape.slice(%x, axes=[1], starts=[1], ends=[100], steps=none) : f32[2, 2]
          %1 = shape.flip(%x, axes=[1]) : f32[2, 3]
          return %x, %0, %1
        }"""),
    (["layout_transform(layout_transform(x, A, B), B, A) -> x"], """
        graph @f(%x: f32[1, 2, 3, 4]) -> (f32[1, 2, 3, 4]) {
          %0 = shape.layout_transform(%x, src_layout="NCHW", dst_layout="NHWC") : f32[1, 3, 4, 2]
          %1 = shape.layout_transform(%0, src_layout="NHWC", dst_layout="NCHW") : f32[1, 2, 3, 4]
          return %1
        }""", """
        graph @f(%x: f32[1, 2, 3, 4]) -> (f32[1, 2, 3, 4]) {
          return %x
        }"""),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_simplify_rules(case: int) -> None:
    titles, before, after = CASES[case]
    graph = ir(before)
    ctx = PassContext()
    out = make_pass("simplify").run(graph, ctx)
    assert_prints(out, after)
    assert_same_results(graph, out)
    fired = {f.rule for f in ctx.rule_firings()}
    assert set(titles) <= fired, f"did not fire: {set(titles) - fired}"
    FIRED.update(fired)


def test_rules_do_not_fire_where_they_would_be_wrong() -> None:
    g = ir("""
        graph @f(%x: f32[2, 2], %y: f32[3]) -> (f32[2, 2], f32[2, 2], f32[3], f32[3], f32[3],
                                                f32[2, 2]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[2, 2]
          %1 = shape.slice(%x, axes=[0], starts=[0], ends=[2], steps=[1]) : f32[2, 2]
          %2 = shape.flip(%y, axes=[0]) : f32[3]
          %3 = ew.cast(%y, dtype=f16) : f16[3]
          %4 = ew.cast(%3, dtype=f32) : f32[3]
          %5 = ew.round(%y, decimals=1) : f32[3]
          %6 = ew.round(%5, decimals=1) : f32[3]
          %7 = ew.mul(%y, const(0.0) : f32[]) : f32[3]
          %8 = shape.flip(%1, axes=[0]) : f32[2, 2]
          %9 = shape.flip(%8, axes=[1]) : f32[2, 2]
          return %0, %1, %4, %6, %7, %9
        }""")
    ctx = PassContext()
    graph = g
    out = make_pass("simplify").run(graph, ctx)
    # Only the slice that takes everything goes; a square transpose, a lossy cast round
    # trip, x * 0 (NaN * 0 is NaN) and flips of different axes all stay.
    assert [f.rule for f in ctx.rule_firings()] == \
        ["slice(x, 0:end:1) -> x  if it takes everything"]
    assert len(out.nodes) == len(graph.nodes) - 1
    assert_same_results(graph, out)


def test_symbolic_reshapes() -> None:
    g = ir("""
        graph @f(%x: f32[N, 6]) -> (f32[N, 6], f32[N, 2, 3]) {
          %0 = shape.reshape(%x, shape=[N, 2, 3]) : f32[N, 2, 3]
          %1 = shape.reshape(%0, shape=[N, 6]) : f32[N, 6]
          %2 = shape.flatten(%0, start=1) : f32[N, 6]
          %3 = shape.reshape(%2, shape=[-1, 2, 3]) : f32[N, 2, 3]
          return %1, %3
        }""")
    out = make_pass("simplify")(g)
    assert_prints(out, """
        graph @f(%x: f32[N, 6]) -> (f32[N, 6], f32[N, 2, 3]) {
          %0 = shape.reshape(%x, shape=[N, 2, 3]) : f32[N, 2, 3]
          return %x, %0
        }""")
    assert_same_results(g, out)


def test_every_rule_fired_somewhere_and_names_real_ops() -> None:
    for case in range(len(CASES)):
        test_simplify_rules(case)
    registered = {op.name for op in all_ops()}
    for rule in rules_simplify:
        assert rule.ops <= registered, f"{rule.title}: unknown ops {rule.ops - registered}"
    exercised_families = {t.split("(")[0] for t in FIRED}
    assert {"reshape", "permute", "slice", "expand", "concat", "cast"} <= exercised_families


def test_holds_exactly() -> None:
    from dlc.ir.dtypes import DType as D

    assert holds_exactly(D.f32, D.f16) and holds_exactly(D.f64, D.i32)
    assert holds_exactly(D.f32, D.i16) and not holds_exactly(D.f32, D.i32)
    assert holds_exactly(D.i16, D.u8) and not holds_exactly(D.u16, D.i8)
    assert not holds_exactly(D.bf16, D.f16) and holds_exactly(D.bf16, D.u8)
    assert holds_exactly(D.u8, D.bool) and not holds_exactly(D.bool, D.u8)
