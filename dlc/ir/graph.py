"""The graph IR: values, nodes and graphs (a typed SSA dataflow DAG).

Values are produced by exactly one node, or are graph inputs, or constants. Nodes and
graphs are immutable; a pass builds a new graph (reusing the old values and constants, so
weights are never copied).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import SparseTensorType, TensorType, ValueType

if TYPE_CHECKING:
    from dlc.ops.registry import OpDef


@dataclass(frozen=True, slots=True)
class Location:
    """Where a node came from: a module path or ONNX node name, and a source position.

    Prints as `loc("encoder.conv1" model.py:42)`; both parts are optional.
    """

    name: str = ""
    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        parts = []
        if self.name:
            parts.append(_quote(self.name))
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        return f"loc({' '.join(parts)})"

    def describe(self) -> str:
        """Human form for error messages: `encoder.conv1 (model.py:42)`."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.name and where:
            return f"{self.name} ({where})"
        return self.name or where


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    """An SSA value. Identity is object identity; `name` is only a hint for printing."""

    type: ValueType
    name: str = ""

    @property
    def is_constant(self) -> bool:
        return False

    @property
    def tensor_type(self) -> TensorType:
        """The type, asserting it is dense (the common case in op rules)."""
        assert isinstance(self.type, TensorType), f"{self} is not a dense tensor"
        return self.type

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name or '?'}: {self.type}"


@dataclass(frozen=True, slots=True, eq=False)
class Constant(Value):
    """A value whose data is a NumPy array held by reference (never copied by passes)."""

    data: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @staticmethod
    def of(array: Any, name: str = "", dtype: DType | None = None) -> Constant:
        """A constant from an array-like, keeping the array itself when it is already NumPy."""
        arr = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype.numpy)
        return Constant(TensorType(arr.shape, DType.from_numpy(arr.dtype)), name, arr)

    @property
    def is_constant(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"@{self.name or '?'}: {self.type}"


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One operation: `outputs = op(inputs, attrs)`, with an optional source location."""

    op: OpDef
    inputs: tuple[Value, ...]
    attrs: Mapping[str, Any]
    outputs: tuple[Value, ...]
    loc: Location | None = None

    @property
    def output(self) -> Value:
        """The single output (asserts there is exactly one)."""
        assert len(self.outputs) == 1, f"{self.op.name} has {len(self.outputs)} outputs"
        return self.outputs[0]

    def __repr__(self) -> str:
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        return f"<Node {outs} = {self.op.name}>"


@dataclass(frozen=True, eq=False)
class Graph:
    """A function: inputs, nodes in topological order, outputs.

    Constants used by nodes are found by walking the nodes; `constants` maps each large
    constant's printed name to its Value (the constant table the text form refers to).
    """

    name: str
    inputs: tuple[Value, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Value, ...]

    @cached_property
    def producers(self) -> dict[Value, Node]:
        """Map from each node output to the node that produces it."""
        return {v: n for n in self.nodes for v in n.outputs}

    @cached_property
    def users(self) -> dict[Value, list[Node]]:
        """Map from each value to the nodes that read it (in order, once per node)."""
        out: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in dict.fromkeys(n.inputs):
                out.setdefault(v, []).append(n)
        return out

    @cached_property
    def constants(self) -> dict[str, Constant]:
        """Every constant the graph uses, keyed by its name (unique after `name_constants`)."""
        seen: dict[str, Constant] = {}
        for c in self.constant_values():
            seen.setdefault(c.name, c)
        return seen

    def constant_values(self) -> Iterator[Constant]:
        """Each distinct constant value used by a node or returned, in first-use order."""
        seen: set[int] = set()
        for v in [*(x for n in self.nodes for x in n.inputs), *self.outputs]:
            if isinstance(v, Constant) and id(v) not in seen:
                seen.add(id(v))
                yield v

    @property
    def symbols(self) -> set[str]:
        """Size symbols of the inputs (the dimensions a caller binds at run time)."""
        out: set[str] = set()
        for v in self.inputs:
            out |= v.type.symbols
        return out

    def ops_used(self) -> list[str]:
        """Sorted names of the ops the graph uses."""
        return sorted({n.op.name for n in self.nodes})

    def with_nodes(self, nodes: tuple[Node, ...] | list[Node],
                   outputs: tuple[Value, ...] | None = None) -> Graph:
        """A new graph with the same name and inputs and the given nodes (and outputs)."""
        return Graph(self.name, self.inputs, tuple(nodes),
                     tuple(outputs) if outputs is not None else self.outputs)

    def __str__(self) -> str:
        from dlc.ir.printer import print_graph

        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"


def is_sparse(v: Value) -> bool:
    """True for a value of sparse matrix type."""
    return isinstance(v.type, SparseTensorType)


ValueTypeT = ValueType
