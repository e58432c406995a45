"""Views: groups that only reinterpret a dense buffer's shape need no kernel.

A reshape, flatten, squeeze or unsqueeze of a dense row-major tensor keeps every element
at the same byte offset, so the result can *be* its input's buffer — what PyTorch calls a
view and TVM's Relax VM lowers to `memory.view`. `plan-memory` finds such groups, gives
their output no buffer of its own (it aliases its root: the first value up the chain that
is not itself a view) and keeps the root alive as long as any alias is read; the backend
then emits no kernel for them and points the alias at the root's buffer.

    %3 = shape.reshape(%2, shape=[8, 256, 64])   # group of its own: no kernel, %3 -> %2
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.ir.graph import Graph, Node, Value
from dlc.ir.types import TensorType

VIEW_OPS = frozenset({"shape.reshape", "shape.flatten", "shape.squeeze", "shape.unsqueeze"})


def view_aliases(graph: Graph, groups: Sequence[Sequence[Node]]) -> dict[Value, Value]:
    """alias -> root for every group that is only a view of one dense value.

    Excluded: graph outputs (the caller owns their memory), values whose element type or
    count differs (never for these ops, but checked), sparse values, and groups with more
    than one input or output.
    """
    outputs = set(graph.outputs)
    aliases: dict[Value, Value] = {}
    for nodes in groups:
        if not nodes or any(n.op.name not in VIEW_OPS for n in nodes):
            continue
        inside = {v for n in nodes for v in n.outputs}
        sources = {v for n in nodes for v in n.inputs[:1] if v not in inside}
        ends = [v for n in nodes for v in n.outputs
                if v in outputs or any(u not in nodes for u in graph.users.get(v, []))]
        if len(sources) != 1 or len(ends) != 1 or ends[0] in outputs:
            continue
        (src,), out = tuple(sources), ends[0]
        if not (_dense(src) and _dense(out) and src.type.dtype == out.type.dtype):
            continue
        aliases[out] = aliases.get(src, src)
    return aliases


def _dense(v: Value) -> bool:
    return isinstance(v.type, TensorType)
