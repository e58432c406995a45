"""GraphBuilder: the one way frontends, passes and tests construct graphs.

    b = GraphBuilder("mlp")
    x = b.input("x", TensorType((symbol("N"), 784), f32))
    h = b.op("ew.relu", b.op("linalg.matmul", x, b.const(w1, "fc1.weight")))
    graph = b.build([h])

`op` validates the attributes against the op's schema and runs its type rule, so a
built graph is well typed by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Location, Node, Value
from dlc.ir.types import ValueType
from dlc.ops.registry import OpDef, get_op


class GraphBuilder:
    """Accumulates inputs and nodes in topological order."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.loc: Location | None = None  # applied to nodes built while it is set

    def input(self, name: str, type: ValueType) -> Value:
        """Add a graph input."""
        v = Value(type, name)
        self.inputs.append(v)
        return v

    def const(self, array: Any, name: str = "", dtype: DType | None = None) -> Constant:
        """A constant operand; NumPy arrays are held by reference, not copied."""
        return Constant.of(array, name, dtype)

    def scalar(self, value: float | int | bool, dtype: DType) -> Constant:
        """A rank-0 constant of the given dtype."""
        return Constant.of(np.array(value, dtype=dtype.numpy))

    def op(self, op: str | OpDef, *inputs: Value, loc: Location | None = None,
           **attrs: Any) -> Any:
        """Append `op(inputs, attrs)`; returns its output Value, or a tuple if several."""
        node = self.node(op, inputs, attrs, loc=loc)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def node(self, op: str | OpDef, inputs: Sequence[Value], attrs: dict[str, Any],
             loc: Location | None = None, names: Sequence[str] = ()) -> Node:
        """Append a node and return it (for ops with several outputs)."""
        opdef = get_op(op) if isinstance(op, str) else op
        frozen = opdef.check_attrs(attrs)
        types = opdef.output_types([v.type for v in inputs], frozen)
        outputs = tuple(Value(t, names[i] if i < len(names) else "") for i, t in enumerate(types))
        node = Node(opdef, tuple(inputs), frozen, outputs, loc or self.loc)
        self.nodes.append(node)
        return node

    def add_node(self, node: Node) -> Node:
        """Append an already-built node (used by passes that keep nodes unchanged)."""
        self.nodes.append(node)
        return node

    def build(self, outputs: Sequence[Value]) -> Graph:
        """The finished graph."""
        return Graph(self.name, tuple(self.inputs), tuple(self.nodes), tuple(outputs))
