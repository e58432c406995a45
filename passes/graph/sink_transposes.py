"""sink-transposes: move permutes past elementwise ops so that pairs meet and cancel."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ops.registry import FusionKind, all_ops
from dlc.passes.graph.simplify import rules_data_movement
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import P, Rule, RuleSet, rewrite_to_fixpoint, single_use

TRANSPOSERS = ("shape.permute", "shape.layout_transform")
"""Ops that only reorder axes: a permute, or a layout transform without blocked axes
(`NCHW -> NHWC` is `permute(perm=[0, 2, 3, 1])`; `NCHW16c` is not a permutation)."""


def permutation(t: Node) -> tuple[int, ...] | None:
    """The axis permutation a transposer applies (output axis i is input axis perm[i])."""
    if t.op.name == "shape.permute":
        rank = len(t.attrs["perm"])
        return tuple(p % rank for p in t.attrs["perm"])
    src, dst = t.attrs["src_layout"], t.attrs["dst_layout"]
    if not (src.isalpha() and src.isupper() and sorted(src) == sorted(dst)):
        return None
    return tuple(src.index(a) for a in dst)


def _perm(t: Node) -> tuple[int, ...]:
    perm = permutation(t)
    assert perm is not None
    return perm


def _again(b: GraphBuilder, t: Node, value: Value) -> Value:
    """The same axis reordering as `t` (same op, same attributes), applied to `value`."""
    return b.op(t.op, value, **dict(t.attrs))


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation that undoes `perm`."""
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def _sink_unary(x: Value, t: Node, f: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    if permutation(t) is None or not single_use(graph, t.output):
        return None
    return _again(b, t, b.op(f.op, x, **dict(f.attrs)))


def _sink_pair(x: Value, y: Value, t: Node, u: Node, g: Node, b: GraphBuilder,
               graph: Graph) -> Value | None:
    if permutation(t) is None or permutation(t) != permutation(u) \
            or x.type.rank != y.type.rank:
        return None
    if not (single_use(graph, t.output) and single_use(graph, u.output)):
        return None
    return _again(b, t, b.op(g.op, x, y))


def _unpermuted(c: Constant, perm: tuple[int, ...]) -> Constant | None:
    """The constant that, broadcast against `x`, matches `c` broadcast against permute(x)."""
    data = c.data
    if data.ndim > len(perm):
        return None
    full = data.reshape((1,) * (len(perm) - data.ndim) + data.shape)
    moved = np.ascontiguousarray(np.transpose(full, inverse(perm)))
    return Constant.of(moved, f"{c.name}.unpermuted" if c.name else "")


def _sink_with_constant(x: Value, c: Constant, t: Node, g: Node, b: GraphBuilder,
                        graph: Graph, constant_first: bool) -> Value | None:
    if permutation(t) is None or not single_use(graph, t.output):
        return None
    moved = _unpermuted(c, _perm(t))
    if moved is None:
        return None
    operands = (moved, x) if constant_first else (x, moved)
    return _again(b, t, b.op(g.op, *operands))


def _sink_batch_norm(x: Value, t: Node, bn: Node, b: GraphBuilder, graph: Graph
                     ) -> Value | None:
    """batch_norm(permute(x, p), axis=a) -> permute(batch_norm(x, axis=p[a]), p)."""
    if permutation(t) is None or not single_use(graph, t.output):
        return None
    attrs = dict(bn.attrs)
    attrs["axis"] = _perm(t)[attrs["axis"] % x.type.rank]
    return _again(b, t, b.op(bn.op, x, *bn.inputs[1:], **attrs))


def _cancel(x: Value, t1: Node, t2: Node) -> Value | None:
    p, q = permutation(t1), permutation(t2)
    if p is None or q is None or tuple(p[i] for i in q) != tuple(range(len(q))):
        return None
    return x


def _with_constant_right(x: Value, c: Constant, t: Node, g: Node, b: GraphBuilder,
                         graph: Graph) -> Value | None:
    return _sink_with_constant(x, c, t, g, b, graph, constant_first=False)


def _with_constant_left(x: Value, c: Constant, t: Node, g: Node, b: GraphBuilder,
                        graph: Graph) -> Value | None:
    return _sink_with_constant(x, c, t, g, b, graph, constant_first=True)


@cache
def rules_sink_transposes() -> RuleSet:
    """The rules, built from the registry: every one-operand elementwise op, every
    two-operand broadcasting op and batch norm let a permute or layout transform through."""
    unary = [op.name for op in all_ops()
             if op.fusion_kind == FusionKind.ELEMENTWISE and op.inputs == ("x",)]
    binary = [op.name for op in all_ops()
              if op.fusion_kind == FusionKind.BROADCAST and len(op.inputs) == 2]
    rules = []
    for kind in TRANSPOSERS:
        t = P.op(kind, P.var("x"), name="t")
        u = P.op(kind, P.var("y"), name="u")
        tr = kind.split(".")[1]
        rules += [Rule(f"{op}({tr}(x)) -> {tr}({op}(x))", P.op(op, t, name="f"), _sink_unary)
                  for op in unary]
        for op in binary:
            rules += [
                Rule(f"{op}({tr}(x), {tr}(y)) -> {tr}({op}(x, y))", P.op(op, t, u, name="g"),
                     _sink_pair),
                Rule(f"{op}({tr}(x), c) -> {tr}({op}(x, c'))",
                     P.op(op, t, P.const(name="c"), name="g"), _with_constant_right),
                Rule(f"{op}(c, {tr}(x)) -> {tr}({op}(c', x))",
                     P.op(op, P.const(name="c"), t, name="g"), _with_constant_left),
            ]
        norm = P.op("nn.batch_norm", t, P.var("s"), P.var("c"), P.var("m"), P.var("v"),
                    name="bn")
        rules.append(Rule(f"batch_norm({tr}(x), axis=a) -> {tr}(batch_norm(x, axis=p[a]))",
                          norm, _sink_batch_norm))
        for inner in TRANSPOSERS:
            rules.append(Rule(f"{tr}({inner.split('.')[1]}(x)) -> x  if they cancel",
                              P.op(kind, P.op(inner, P.var("x"), name="t1"), name="t2"),
                              _cancel))
    return RuleSet(rules) + rules_data_movement


@register_pass
@dataclass(frozen=True)
class SinkTransposes(GraphPass):
    """Transpose sinking: push each permute (or axis-reordering layout transform) past the
    elementwise ops and batch norms after it, toward the outputs, so that a transpose and
    its inverse meet and cancel, and two permuted operands of a binary op share one
    permute. A constant operand is permuted once, at compile time. Only a transpose with
    a single reader moves, so none is ever duplicated.

    Before:
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = shape.permute(%x, perm=[1, 0]) : f32[3, 2]
          %1 = ew.exp(%0) : f32[3, 2]
          %2 = ew.mul(%1, const([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]) : f32[3, 2]) : f32[3, 2]
          %3 = shape.permute(%2, perm=[1, 0]) : f32[2, 3]
          return %3
        }
    After:
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = ew.exp(%x) : f32[2, 3]
          %1 = ew.mul(%0, const([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]) : f32[2, 3]) : f32[2, 3]
          return %1
        }
    """

    name: ClassVar[str] = "sink-transposes"
    max_rounds: int = 32

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return rewrite_to_fixpoint(graph, rules_sink_transposes(), ctx, self.max_rounds)
