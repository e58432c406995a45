"""simplify: algebraic identities and no-op elimination, as pattern-rewrite rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.graph import Graph, Node, Value
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import P, Rule, RuleSet, rewrite_to_fixpoint

x = P.var("x")

# -- arithmetic identities -------------------------------------------------------------
# Only identities that hold bit for bit (NaN and infinity included): x * 0 -> 0 is not
# one of them (NaN * 0 is NaN), nor x - x -> 0.

rules_algebra = RuleSet([
    Rule("x * 1 -> x", P.op("ew.mul", x, P.const(1)), lambda x: x),
    Rule("1 * x -> x", P.op("ew.mul", P.const(1), x), lambda x: x),
    Rule("x + 0 -> x", P.op("ew.add", x, P.const(0)), lambda x: x),
    Rule("0 + x -> x", P.op("ew.add", P.const(0), x), lambda x: x),
    Rule("x - 0 -> x", P.op("ew.sub", x, P.const(0)), lambda x: x),
    Rule("x / 1 -> x", P.op("ew.div", x, P.const(1)), lambda x: x),
    Rule("x ** 1 -> x", P.op("ew.pow", x, P.const(1)), lambda x: x),
    # x * x is x² rounded once, as a correctly rounded pow is; no libm call per element
    Rule("x ** 2 -> x * x", P.op("ew.pow", x, P.const(2)),
         lambda x, b: b.op("ew.mul", x, x)),
    Rule("-(-x) -> x", P.op("ew.neg", P.op("ew.neg", x)), lambda x: x),
    Rule("where(c, x, x) -> x", P.op("ew.where", P.var("c"), x, x), lambda x: x),
])

# -- idempotent activations: f(f(x)) = f(x) --------------------------------------------

IDEMPOTENT = ("ew.relu", "ew.abs", "ew.ceil", "ew.floor", "ew.trunc", "ew.sign")

rules_idempotent = RuleSet([
    Rule(f"{op[3:]}({op[3:]}(x)) -> {op[3:]}(x)",
         P.op(op, P.op(op, x, name="inner"), name="outer"),
         lambda inner, outer: inner if inner.attrs == outer.attrs else None)
    for op in IDEMPOTENT
])

# -- casts -----------------------------------------------------------------------------

_SIGNIFICAND_BITS = {DType.f16: 11, DType.bf16: 8, DType.f32: 24, DType.f64: 53}
_WIDER_FLOATS = {(DType.f16, DType.f32), (DType.f16, DType.f64), (DType.bf16, DType.f32),
                 (DType.bf16, DType.f64), (DType.f32, DType.f64)}


def holds_exactly(wide: DType, narrow: DType) -> bool:
    """True when every value of dtype `narrow` is exactly representable in `wide`."""
    if wide == narrow or narrow == DType.bool:
        return True
    if wide == DType.bool:
        return False
    if narrow.is_int and wide.is_int:
        n, w = np.iinfo(narrow.numpy), np.iinfo(wide.numpy)
        return bool(w.min <= n.min and n.max <= w.max)
    if narrow.is_int and wide.is_float:
        n = np.iinfo(narrow.numpy)
        return max(-int(n.min), int(n.max)) <= 2 ** _SIGNIFICAND_BITS[wide]
    return (narrow, wide) in _WIDER_FLOATS


def _cast_of_cast(x: Value, inner: Node, outer: Node, b: GraphBuilder) -> Value | None:
    if not holds_exactly(inner.attrs["dtype"], x.dtype):
        return None
    return b.op("ew.cast", x, dtype=outer.attrs["dtype"])


rules_casts = RuleSet([
    Rule("cast(x, dtype(x)) -> x", P.op("ew.cast", x), lambda x: x),
    Rule("cast(cast(x, t), u) -> cast(x, u)  if t holds every value of x",
         P.op("ew.cast", P.op("ew.cast", x, name="inner"), name="outer"), _cast_of_cast),
])

# -- views: reshape-like ops keep the row-major element order --------------------------
# The type check of the rewrite engine does the work of "to the same shape": a rule that
# returns x fires only when x has exactly the result's type.

VIEWS = ("shape.reshape", "shape.flatten", "shape.squeeze", "shape.unsqueeze")


def _short(op: str) -> str:
    return op.split(".")[1]


def _reshape_to(x: Value, outer: Node, b: GraphBuilder) -> Value | None:
    shape = outer.output.type.shape
    if sum(1 for d in shape if not isinstance(d, int)) > 1:
        return None  # the reference evaluates at most one unknown size (as -1)
    return b.op("shape.reshape", x, shape=shape)


rules_views = RuleSet(
    [Rule(f"{_short(op)}(x) -> x  if the shape is unchanged", P.op(op, x), lambda x: x)
     for op in VIEWS]
    + [Rule(f"{_short(outer)}({_short(inner)}(x)) -> reshape(x)",
            P.op(outer, P.op(inner, x), name="outer"), _reshape_to)
       for outer in VIEWS for inner in VIEWS]
)

# -- permutations, slices, and other data movement that can do nothing -----------------


def _normalized(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(p % len(perm) for p in perm)


def _identity_permute(x: Value, p: Node) -> Value | None:
    # Not the type check alone: a square matrix transposes to its own type.
    perm = _normalized(p.attrs["perm"])
    return x if perm == tuple(range(len(perm))) else None


def _compose_permutes(x: Value, p1: Node, p2: Node, b: GraphBuilder) -> Value:
    # out[i] = mid[q[i]] = x[p[q[i]]]
    p, q = _normalized(p1.attrs["perm"]), _normalized(p2.attrs["perm"])
    perm = tuple(p[i] for i in q)
    if perm == tuple(range(len(perm))):
        return x
    return b.op("shape.permute", x, perm=perm)


def _takes_everything(x: Value, s: Node) -> Value | None:
    steps = s.attrs["steps"] or (1,) * len(s.attrs["axes"])
    if any(step != 1 for step in steps) or any(st != 0 for st in s.attrs["starts"]):
        return None
    return x  # with start 0 and step 1, an unchanged shape means every element is taken


def _flip_flip(x: Value, f1: Node, f2: Node) -> Value | None:
    rank = x.type.rank
    a1 = sorted({a % rank for a in f1.attrs["axes"]})
    a2 = sorted({a % rank for a in f2.attrs["axes"]})
    return x if a1 == a2 else None


def _layout_round_trip(x: Value, t1: Node, t2: Node) -> Value | None:
    same = (t1.attrs["src_layout"] == t2.attrs["dst_layout"]
            and t1.attrs["dst_layout"] == t2.attrs["src_layout"])
    return x if same else None


def _no_padding(x: Value, p: Node) -> Value | None:
    return x if not any(p.attrs["pads"]) else None


def _no_repeat(x: Value, r: Node) -> Value | None:
    return x if all(k == 1 for k in r.attrs["repeats"]) else None


rules_data_movement = RuleSet([
    Rule("permute(x, id) -> x", P.op("shape.permute", x, name="p"), _identity_permute),
    Rule("permute(permute(x, p), q) -> permute(x, p∘q)  (x if p∘q = id)",
         P.op("shape.permute", P.op("shape.permute", x, name="p1"), name="p2"),
         _compose_permutes),
    Rule("slice(x, 0:end:1) -> x  if it takes everything", P.op("shape.slice", x, name="s"),
         _takes_everything),
    Rule("expand(x, shape(x)) -> x", P.op("shape.expand", x), lambda x: x),
    Rule("concat(x) -> x", P.op("shape.concat", x), lambda x: x),
    Rule("flip(flip(x, a), a) -> x",
         P.op("shape.flip", P.op("shape.flip", x, name="f1"), name="f2"), _flip_flip),
    Rule("layout_transform(layout_transform(x, A, B), B, A) -> x",
         P.op("shape.layout_transform", P.op("shape.layout_transform", x, name="t1"),
              name="t2"), _layout_round_trip),
    Rule("pad(x, 0) -> x", P.op("shape.pad", x, name="p"), _no_padding),
    Rule("repeat(x, 1) -> x", P.op("shape.repeat", x, name="r"), _no_repeat),
])

rules_simplify = rules_algebra + rules_idempotent + rules_casts + rules_views \
    + rules_data_movement


@register_pass
@dataclass(frozen=True)
class Simplify(GraphPass):
    """Algebraic simplification: apply identities and drop no-op data movement until
    nothing matches (`x * 1 -> x`, `relu(relu(x)) -> relu(x)`, identity casts,
    reshape-of-reshape, cancelling permutes, slices that take everything, ...).

    Every rule keeps types exactly: `x * 1 -> x` does not fire when broadcasting makes the
    product larger than `x`. CSE runs first, so equal operands are the same value.

    Before:
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = ew.mul(%x, const(1.0) : f32[]) : f32[2, 3]
          %1 = shape.permute(%0, perm=[1, 0]) : f32[3, 2]
          %2 = shape.permute(%1, perm=[1, 0]) : f32[2, 3]
          %3 = ew.relu(%2) : f32[2, 3]
          return %3
        }
    After:
        graph @f(%x: f32[2, 3]) -> (f32[2, 3]) {
          %0 = ew.relu(%x) : f32[2, 3]
          return %0
        }
    """

    name: ClassVar[str] = "simplify"
    max_rounds: int = 8

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return rewrite_to_fixpoint(graph, rules_simplify, ctx, max_rounds=self.max_rounds)


def rule_titles() -> list[str]:
    """Every rule of the pass, by title (for `dlc show --rules` and the docs)."""
    return [r.title for r in rules_simplify]

