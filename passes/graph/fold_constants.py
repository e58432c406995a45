"""fold-constants: evaluate nodes whose operands are all constants, at compile time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlc.errors import DLCError
from dlc.interpreter import run_node
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.types import TensorType
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import drop_orphans, substitute_inputs


@register_pass
@dataclass(frozen=True)
class FoldConstants(GraphPass):
    """Constant folding: run a node whose operands are all constants with its op's NumPy
    reference, and use the result as a new constant.

    A size cap keeps folding from materializing huge tensors: a result is folded only if
    it has at most `max_elements` elements or no more than its operands together (so
    transposing or scaling a weight folds, but broadcasting a scalar to a large shape
    does not). Random ops (`nondeterministic = True` on the declaration) are never folded.

    Before:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(const(0.0) : f32[]) : f32[]
          %1 = ew.mul(%x, %0) : f32[4]
          return %1
        }
    After:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.mul(%x, const(1.0) : f32[]) : f32[4]
          return %0
        }
    """

    name: ClassVar[str] = "fold-constants"
    max_elements: int = 1 << 16

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        subst: dict[Value, Value] = {}
        kept: list[Node] = []
        removed: list[Node] = []
        for node in graph.nodes:
            node = substitute_inputs(node, subst)
            folded = self.fold(node, ctx)
            if folded is None:
                kept.append(node)
            else:
                subst.update(zip(node.outputs, folded))
                removed.append(node)
        if not removed:
            return graph
        outputs = tuple(subst.get(v, v) for v in graph.outputs)
        return graph.with_nodes(drop_orphans(kept, removed, outputs), outputs)

    def fold(self, node: Node, ctx: PassContext) -> tuple[Constant, ...] | None:
        """The node's results as constants, or None when it cannot or should not fold."""
        if not all(isinstance(v, Constant) and isinstance(v.data, np.ndarray)
                   for v in node.inputs):
            return None
        if getattr(node.op, "nondeterministic", False):
            return None
        types = [v.type for v in node.outputs]
        if not all(isinstance(t, TensorType) and t.is_static for t in types):
            return None
        budget = max(self.max_elements, sum(int(v.data.size) for v in node.inputs))
        if any(_numel(t) > budget for t in types):  # type: ignore[arg-type]
            return None
        try:
            results = run_node(node, [v.data for v in node.inputs], {})
        except DLCError as err:
            ctx.note(f"not folding {node.op.name}: {err}")
            return None
        base = node.loc.name if node.loc and node.loc.name else node.op.name.split(".")[-1]
        out = []
        for k, (value, result) in enumerate(zip(node.outputs, results)):
            array = np.asarray(result, order="C")  # (ascontiguousarray makes 0-d 1-d)
            name = f"{base}.folded" if len(results) == 1 else f"{base}.folded{k}"
            const = Constant(value.type, name, array)
            if tuple(array.shape) != tuple(value.type.shape):
                return None
            out.append(const)
        return tuple(out)


def _numel(t: TensorType) -> int:
    return int(np.prod([int(d) for d in t.shape], dtype=np.int64))
