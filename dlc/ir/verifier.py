"""The verifier: the invariants every graph keeps, checked after each pass in debug mode.

* SSA: each value is defined once (a graph input or one node's output), each node appears
  once, and every operand is defined before the node that reads it (topological order);
  graph outputs are defined values or constants.
* Attributes are valid against the op's schema and already normalized (defaults filled).
* Each node's result types equal, up to symbolic simplification, what its op's type rule
  infers from its operands now.
* Size symbols: a symbol in a node's types or attributes is an input size (`N` of
  `%x: f32[N, 4]`) or was introduced by an earlier op for a data-dependent size. An op
  introduces a symbol when its type rule returns a symbol that none of its operands or
  attributes mention (a `nonzero` count); the written type may name it freely, but the
  name must be new to the graph.

Errors are `VerificationError`s that name the node (`%3 = ew.add`), its source location
and the printed line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import sympy

from dlc.errors import DLCError, VerificationError
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.symbolic import Dim, dims_equal, free_symbols
from dlc.ir.types import SparseTensorType, TensorType, ValueType


def verify_graph(graph: Graph) -> None:
    """Check SSA, topological order, attributes, types and size symbols of `graph`.

    Raises VerificationError naming the first broken node.
    """
    _Verifier(graph).run()


# -- helpers shared with the parser ------------------------------------------------------


def type_dims(t: ValueType) -> tuple[Dim, ...]:
    """Every size a type mentions: the shape, and a sparse type's stored count."""
    return (*t.shape, t.nnz) if isinstance(t, SparseTensorType) else tuple(t.shape)


def attr_symbols(attrs: Mapping[str, Any]) -> set[str]:
    """Names of the size symbols mentioned by attribute values (`dims` attributes)."""
    out: set[str] = set()

    def visit(v: Any) -> None:
        if isinstance(v, sympy.Basic):
            out.update(free_symbols(v))
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)

    for v in attrs.values():
        visit(v)
    return out


def match_types(written: Sequence[ValueType], inferred: Sequence[ValueType],
                bound: set[str]) -> dict[sympy.Symbol, Dim] | None:
    """Compare written result types with inferred ones; None if they differ.

    A symbol of an inferred type that is not in `bound` (the symbols of the operands and
    attributes) was minted by the op for a data-dependent size; it matches whatever the
    written type has in its place. Returns that mapping (fresh symbol -> written size).
    """
    if len(written) != len(inferred):
        return None
    fresh: dict[sympy.Symbol, Dim] = {}
    for w, i in zip(written, inferred):
        if type(w) is not type(i) or len(type_dims(w)) != len(type_dims(i)):
            return None
        for wd, d in zip(type_dims(w), type_dims(i)):
            if isinstance(d, sympy.Symbol) and d.name not in bound:
                if d in fresh and not dims_equal(fresh[d], wd):
                    return None
                fresh[d] = wd
    for w, i in zip(written, inferred):
        if fresh:
            i = _substitute(i, fresh)
        if not (w == i or w.same_as(i)):
            return None
    return fresh


def _substitute(t: ValueType, mapping: dict[sympy.Symbol, Dim]) -> ValueType:
    def sub(d: Dim) -> Dim:
        return d if isinstance(d, int) else d.xreplace(mapping)

    if isinstance(t, SparseTensorType):
        return SparseTensorType(t.format, tuple(map(sub, t.shape)), t.dtype, sub(t.nnz))
    return TensorType(tuple(map(sub, t.shape)), t.dtype)


# -- the verifier ------------------------------------------------------------------------


class _Verifier:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names = printed_names(graph)
        self.defined: set[Value] = set()
        self.symbols: set[str] = set()  # sizes in scope: input sizes, then introduced ones
        self.producer_index = {id(v): k for k, n in enumerate(graph.nodes) for v in n.outputs}

    def run(self) -> None:
        self.check_inputs()
        seen_nodes: set[int] = set()
        for index, node in enumerate(self.graph.nodes):
            if id(node) in seen_nodes:
                self.fail(node, "this node object appears twice in the graph's node list")
            seen_nodes.add(id(node))
            self.check_operands(node, index)
            attrs = self.check_attrs(node)
            self.check_types(node, attrs)
            for v in node.outputs:
                self.defined.add(v)
        for k, v in enumerate(self.graph.outputs):
            if not isinstance(v, Constant) and v not in self.defined:
                raise VerificationError(f"@{self.graph.name}: returned value {k} "
                                        f"({self.name(v)}) is not defined in the graph")

    def check_inputs(self) -> None:
        for k, v in enumerate(self.graph.inputs):
            where = f"@{self.graph.name}: input {k} ({self.name(v)})"
            if isinstance(v, Constant):
                raise VerificationError(f"{where} is a constant; constants are operands, "
                                        "not graph inputs")
            if not isinstance(v.type, (TensorType, SparseTensorType)):
                raise VerificationError(f"{where} has no tensor type: {v.type!r}")
            if v in self.defined:
                raise VerificationError(f"{where} is listed twice")
            self.defined.add(v)
            self.symbols |= v.type.symbols

    def check_operands(self, node: Node, index: int) -> None:
        for k, v in enumerate(node.inputs):
            if isinstance(v, Constant):
                self.check_constant(node, k, v)
            elif v not in self.defined:
                later = self.producer_index.get(id(v))
                if later is not None and later >= index:
                    self.fail(node, f"operand {k} ({self.name(v)}) is used before it is "
                                    f"defined (by node {later}); nodes must be in "
                                    "topological order")
                self.fail(node, f"operand {k} ({self.name(v)}) is not defined in this graph "
                                "(not an input, a constant, or an earlier node's output)")
        for k, v in enumerate(node.outputs):
            if isinstance(v, Constant):
                self.fail(node, f"result {k} is a Constant; results must be plain Values")
            if v in self.defined or any(v is w for w in node.outputs[:k]):
                self.fail(node, f"result {k} ({self.name(v)}) is already defined; "
                                "each value is defined once (SSA)")

    def check_constant(self, node: Node, k: int, c: Constant) -> None:
        data = c.data
        if not isinstance(data, np.ndarray):
            self.fail(node, f"constant operand {k} holds no NumPy array")
        try:
            want = TensorType(data.shape, DType.from_numpy(data.dtype))
        except DLCError as err:
            self.fail(node, f"constant operand {k}: {err}")
        if c.type != want:
            self.fail(node, f"constant operand {k} has type {c.type} but its data is {want}")

    def check_attrs(self, node: Node) -> Mapping[str, Any]:
        try:
            normalized = node.op.check_attrs(node.attrs)
        except DLCError as err:
            self.fail(node, f"bad attribute: {err}")
        if not attrs_equal(normalized, node.attrs):
            self.fail(node, f"attributes {dict(node.attrs)} are not normalized (expected "
                            f"{dict(normalized)}); build nodes with GraphBuilder or "
                            "op.check_attrs")
        unknown = attr_symbols(normalized) - self.symbols
        if unknown:
            self.fail(node, f"attributes use size symbol(s) {', '.join(sorted(unknown))} that "
                            "no input or earlier op defines")
        return normalized

    def check_types(self, node: Node, attrs: Mapping[str, Any]) -> None:
        try:
            inferred = node.op.output_types([v.type for v in node.inputs], attrs)
        except DLCError as err:
            self.fail(node, f"the type rule rejects the operands: {err}")
        except Exception as err:  # a bug in the rule; still name the node
            self.fail(node, f"the type rule crashed ({type(err).__name__}: {err}); a rule "
                            "must reject bad operands with op.error(...)")
        written = [v.type for v in node.outputs]
        if len(written) != len(inferred):
            self.fail(node, f"has {len(written)} result(s); the type rule gives {len(inferred)}")
        bound = attr_symbols(attrs)
        for v in node.inputs:
            bound |= v.type.symbols
        fresh = match_types(written, inferred, bound)
        if fresh is None:
            self.fail(node, f"result types {', '.join(map(str, written))} differ from the type "
                            f"rule's {', '.join(map(str, inferred))}")
        introduced = set()
        for size in fresh.values():
            if not isinstance(size, sympy.Symbol):
                self.fail(node, f"a data-dependent size is written as {size}; it must be a new "
                                "symbol")
            if size.name in self.symbols or size.name in introduced:
                self.fail(node, f"the data-dependent size {size} reuses a symbol already in "
                                "use; give it a new name")
            introduced.add(size.name)
        self.symbols |= introduced
        for v in node.outputs:
            unknown = v.type.symbols - self.symbols
            if unknown:
                self.fail(node, f"result type {v.type} uses size symbol(s) "
                                f"{', '.join(sorted(unknown))} that no input or op defines")

    # -- messages ------------------------------------------------------------------------
    def name(self, v: Value) -> str:
        if isinstance(v, Constant):
            return f"constant {v.type}"
        printed = self.names.get(v)
        return f"%{printed}" if printed is not None else f"%{v.name or '?'} (not in this graph)"

    def fail(self, node: Node, message: str) -> NoReturn:
        raise VerificationError(f"{describe_node(node, self.names)}: {message}")


def printed_names(graph: Graph) -> dict[Value, str]:
    """The names the printer gives, robust to broken graphs (the first definition wins)."""
    from dlc.ir.printer import sanitize

    names: dict[Value, str] = {}
    for i, v in enumerate(graph.inputs):
        name, k = sanitize(v.name, f"arg{i}"), 1
        while name in names.values():
            name, k = f"{sanitize(v.name, f'arg{i}')}_{k}", k + 1
        names.setdefault(v, name)
    count = 0
    for node in graph.nodes:
        for v in node.outputs:
            names.setdefault(v, str(count))
            count += 1
    return names


def describe_node(node: Node, names: Mapping[Value, str]) -> str:
    """`%3 = ew.add at encoder.fc1 (model.py:12)` for messages."""
    outs = ", ".join(f"%{names.get(v, v.name or '?')}" for v in node.outputs)
    where = f" at {node.loc.describe()}" if node.loc and node.loc.describe() else ""
    return f"node {outs} = {node.op.name}{where}"


def attrs_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Attribute maps with the same keys and equal values (NaN equals NaN, 1 != True)."""
    return list(a) == list(b) and all(values_equal(a[k], b[k]) for k in a)


def values_equal(a: Any, b: Any) -> bool:
    """Equality of attribute values as the printer would show them."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
                and len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        if a != a or b != b:  # NaN
            return a != a and b != b
        return a == b and np.signbit(a) == np.signbit(b)
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return a == b or (not isinstance(a, (str, DType)) and not isinstance(b, (str, DType))
                          and dims_equal(a, b))
    return type(a) is type(b) and a == b
