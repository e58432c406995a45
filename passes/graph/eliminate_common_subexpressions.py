"""eliminate-common-subexpressions: compute each distinct expression once."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import drop_orphans, substitute_inputs

NONDETERMINISTIC_ATTR = "nondeterministic"
"""An op declaration may set `nondeterministic = True` (random ops): never merged."""


@register_pass
@dataclass(frozen=True)
class EliminateCommonSubexpressions(GraphPass):
    """Common subexpression elimination: nodes with the same op, the same operands and the
    same attributes compute the same thing, so the later one reads the earlier one's result.

    Operands compare by identity, except constants of at most `constant_limit` elements,
    which compare by value (two `const(1.0)` literals are the same operand).

    Before:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          %1 = ew.exp(%x) : f32[4]
          %2 = ew.add(%0, %1) : f32[4]
          return %2
        }
    After:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          %1 = ew.add(%0, %0) : f32[4]
          return %1
        }
    """

    name: ClassVar[str] = "eliminate-common-subexpressions"
    constant_limit: int = 64

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        seen: dict[Hashable, Node] = {}
        subst: dict[Value, Value] = {}
        kept: list[Node] = []
        removed: list[Node] = []
        for node in graph.nodes:
            node = substitute_inputs(node, subst)
            key = self.key(node)
            first = seen.get(key) if key is not None else None
            if first is None:
                if key is not None:
                    seen[key] = node
                kept.append(node)
                continue
            subst.update(zip(node.outputs, first.outputs))
            removed.append(node)
        if not removed:
            return graph
        ctx.note(f"merged {len(removed)} duplicate node(s)")
        outputs = tuple(subst.get(v, v) for v in graph.outputs)
        return graph.with_nodes(drop_orphans(kept, removed, outputs), outputs)

    def key(self, node: Node) -> Hashable | None:
        """What makes two nodes interchangeable; None for nodes never merged."""
        if getattr(node.op, NONDETERMINISTIC_ATTR, False):
            return None
        try:
            hash(node.attrs)
        except TypeError:
            return None
        operands = tuple(self.operand_key(v) for v in node.inputs)
        types = tuple(str(v.type) for v in node.outputs)
        return (node.op.name, operands, _AttrsKey(node.attrs), types)

    def operand_key(self, v: Value) -> Hashable:
        if isinstance(v, Constant) and isinstance(v.data, np.ndarray) \
                and v.data.size <= self.constant_limit:
            return ("const", str(v.type), v.data.tobytes())
        return ("value", id(v))


@dataclass(frozen=True)
class _AttrsKey:
    """Attributes as a dict key (NaN-valued floats never compare equal, so never merge)."""

    attrs: Any

    def __hash__(self) -> int:
        return hash(self.attrs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AttrsKey) and self.attrs == other.attrs
