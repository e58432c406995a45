"""The pattern-rewrite engine: matching, type preservation, firings, fixpoint, cleanup."""

from __future__ import annotations

import pytest

from dlc.passes import PassContext
from dlc.passes.rewrite import P, Rule, RuleSet, match, rewrite_once, rewrite_to_fixpoint
from tests.passes.helpers import assert_prints, assert_same_results, ir

MUL_ONE = RuleSet([Rule("x * 1 -> x", P.op("ew.mul", P.var("x"), P.const(1)), lambda x: x)])


def test_const_pattern_matches_only_all_equal_constants() -> None:
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[2], f32[2], f32[2]) {
          %0 = ew.mul(%x, const([1.0, 1.0]) : f32[2]) : f32[2]
          %1 = ew.mul(%x, const([1.0, 2.0]) : f32[2]) : f32[2]
          %2 = ew.mul(%x, %x) : f32[2]
          return %0, %1, %2
        }""")
    pattern = MUL_ONE.rules[0].pattern
    found = [match(pattern, n, g.producers) for n in g.nodes]
    assert found[0] == {"x": g.inputs[0]}
    assert found[1] is None and found[2] is None


def test_a_variable_used_twice_must_bind_the_same_value() -> None:
    g = ir("""
        graph @f(%x: f32[2], %y: f32[2]) -> (f32[2], f32[2]) {
          %0 = ew.add(%x, %x) : f32[2]
          %1 = ew.add(%x, %y) : f32[2]
          return %0, %1
        }""")
    pattern = P.op("ew.add", P.var("a"), P.var("a"))
    assert match(pattern, g.nodes[0], g.producers) is not None
    assert match(pattern, g.nodes[1], g.producers) is None


def test_a_rule_never_changes_a_type() -> None:
    # x * ones([3, 2]) broadcasts x: f32[2] to f32[3, 2], so it is not x.
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[3, 2]) {
          %0 = ew.mul(%x, const([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]) : f32[3, 2]) : f32[3, 2]
          return %0
        }""")
    ctx = PassContext()
    assert rewrite_once(g, MUL_ONE, ctx) is None
    assert ctx.rule_firings() == []


def test_chains_collapse_in_one_round_and_each_firing_is_logged() -> None:
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.mul(%x, const(1.0) : f32[]) : f32[2]
          %1 = ew.mul(%0, const(1.0) : f32[]) : f32[2]
          %2 = ew.relu(%1) : f32[2] loc("act" model.py:7)
          %3 = ew.mul(%2, const(1.0) : f32[]) : f32[2] loc("scale" model.py:8)
          return %3
        }""")
    ctx = PassContext(current_pass="simplify")
    out = rewrite_once(g, MUL_ONE, ctx)
    assert out is not None
    assert_prints(out, """
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.relu(%x) : f32[2] loc("act" model.py:7)
          return %0
        }""")
    assert [f.rule for f in ctx.rule_firings()] == ["x * 1 -> x"] * 3
    assert str(ctx.rule_firings()[2]) == \
        'simplify: "x * 1 -> x" on ew.mul at scale (model.py:8)'
    assert rewrite_once(out, MUL_ONE, ctx) is None  # a fixpoint


def test_none_means_no_match_and_the_next_rule_is_tried() -> None:
    rules = RuleSet([
        Rule("never", P.op("ew.neg", P.var("x")), lambda x: None),
        Rule("neg(x) -> x (not true; for the test)", P.op("ew.neg", P.var("x")),
             lambda x: x),
    ])
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.neg(%x) : f32[2]
          return %0
        }""")
    ctx = PassContext()
    rewrite_to_fixpoint(g, rules, ctx)
    assert [f.rule for f in ctx.rule_firings()] == ["neg(x) -> x (not true; for the test)"]


def test_rules_may_build_new_nodes_at_the_matched_location() -> None:
    rules = RuleSet([
        Rule("exp(x) * exp(y) -> exp(x + y)",
             P.op("ew.mul", P.op("ew.exp", P.var("x")), P.op("ew.exp", P.var("y"))),
             lambda x, y, b: b.op("ew.exp", b.op("ew.add", x, y))),
    ])
    g = ir("""
        graph @f(%x: f32[2], %y: f32[2]) -> (f32[2]) {
          %0 = ew.exp(%x) : f32[2]
          %1 = ew.exp(%y) : f32[2]
          %2 = ew.mul(%0, %1) : f32[2] loc("m")
          return %2
        }""")
    out = rewrite_to_fixpoint(g, rules, PassContext())
    assert_prints(out, """
        graph @f(%x: f32[2], %y: f32[2]) -> (f32[2]) {
          %0 = ew.add(%x, %y) : f32[2] loc("m")
          %1 = ew.exp(%0) : f32[2] loc("m")
          return %1
        }""")  # the two exps lost their only user and went with the product
    assert_same_results(g, out, rtol=1e-5)


def test_existing_dead_code_is_left_for_dce() -> None:
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.exp(%x) : f32[2]
          %1 = ew.mul(%x, const(1.0) : f32[]) : f32[2]
          return %1
        }""")
    out = rewrite_to_fixpoint(g, MUL_ONE, PassContext())
    assert [n.op.name for n in out.nodes] == ["ew.exp"]
    assert out.outputs == (g.inputs[0],)


def test_rules_are_indexed_by_root_op_and_list_their_ops() -> None:
    rules = MUL_ONE + RuleSet([Rule("-(-x) -> x", P.op("ew.neg", P.op("ew.neg", P.var("x"))),
                                    lambda x: x)])
    assert [r.title for r in rules.for_op("ew.neg")] == ["-(-x) -> x"]
    assert rules.for_op("ew.add") == []
    assert rules.ops() == {"ew.mul", "ew.neg"}


def test_a_rule_asking_for_an_unbound_name_is_rejected_when_declared() -> None:
    with pytest.raises(AssertionError, match="unbound names"):
        Rule("bad", P.op("ew.neg", P.var("x")), lambda y: y)


def test_fixpoint_stops_after_max_rounds() -> None:
    # A rule that always rewrites neg(x) into a fresh neg(x) never reaches a fixpoint.
    rules = RuleSet([Rule("neg(x) -> neg(x)", P.op("ew.neg", P.var("x")),
                          lambda x, b: b.op("ew.neg", x))])
    g = ir("""
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.neg(%x) : f32[2]
          return %0
        }""")
    ctx = PassContext()
    rewrite_to_fixpoint(g, rules, ctx, max_rounds=3)
    assert len(ctx.rule_firings()) == 3
    assert "still firing after 3 rounds" in str(ctx.notes()[0])
