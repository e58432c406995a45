"""Structural equality of graphs, and the golden-test assertion built on it.

Two graphs are structurally equal when they compute the same thing the same way: the
same ops in the same order, with equal attributes, result types (up to symbolic
simplification) and source locations, wired the same way. Values are matched by position
(input k with input k, result j of node i with result j of node i), so value names are
ignored, as the printer renumbers them anyway; constants compare by value and dtype.
This is TVM's `structural_equal` with free variables mapped in order.

    assert_ir_equal(after, '''
      graph @f(%a: f32[4, 8]) -> (f32[4, 8]) {
        %0 = ew.relu(%a) : f32[4, 8]
        return %0
      }''')

On failure `assert_ir_equal` shows the first mismatching node with a caret under the
first differing column, and a unified diff of the two printed graphs.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Mapping

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.printer import Namer, constant_table, print_graph, print_node, sanitize
from dlc.ir.types import ValueType
from dlc.ir.verifier import attrs_equal


def structurally_equal(a: Graph, b: Graph, *, check_locations: bool = True) -> bool:
    """True when `a` and `b` are the same graph up to value names (see the module doc)."""
    return first_difference(a, b, check_locations=check_locations) is None


def assert_ir_equal(graph: Graph, expected: str | Graph,
                    constants: Mapping[str, np.ndarray] | None = None, *,
                    check_locations: bool = True) -> None:
    """Assert `graph` is structurally equal to `expected` (a Graph, or IR text).

    Text is parsed with `graph`'s own constant table (plus `constants`), so it may refer
    to the graph's large constants by their `@name`.
    """
    if isinstance(expected, str):
        from dlc.ir.parser import parse_graph

        table = {**constant_table(graph), **(constants or {})}
        expected = parse_graph(textwrap.dedent(expected), table)
    difference = first_difference(graph, expected, ("got", "expected"),
                                  check_locations=check_locations)
    if difference is None:
        return
    got, want = print_graph(graph), print_graph(expected)
    diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "expected",
                                          "got", lineterm=""))
    if not diff:
        diff = "(the printed texts are identical: the difference is in constant data)"
    raise AssertionError(f"graphs differ: {difference}\n{diff}")


def first_difference(a: Graph, b: Graph, labels: tuple[str, str] = ("a", "b"), *,
                     check_locations: bool = True) -> str | None:
    """A description of the first place where `a` and `b` differ, or None if they do not."""
    return _Comparison(a, b, labels, check_locations).run()


class _Comparison:
    def __init__(self, a: Graph, b: Graph, labels: tuple[str, str],
                 check_locations: bool) -> None:
        self.a, self.b = a, b
        self.labels = labels
        self.check_locations = check_locations
        self.mapping: dict[Value, Value] = {}  # value of a -> value of b at the same place

    def run(self) -> str | None:
        a, b = self.a, self.b
        if sanitize(a.name, "main") != sanitize(b.name, "main"):
            return f"graph names differ: @{a.name} vs @{b.name}"
        if len(a.inputs) != len(b.inputs):
            return f"{len(a.inputs)} inputs vs {len(b.inputs)}"
        for k, (x, y) in enumerate(zip(a.inputs, b.inputs)):
            if not same_type(x.type, y.type):
                return f"input {k} has type {x.type} vs {y.type}"
            self.mapping[x] = y
        for index, (m, n) in enumerate(zip(a.nodes, b.nodes)):
            problem = self.compare_nodes(m, n)
            if problem is not None:
                return self.show_nodes(index, m, n, problem)
            self.mapping.update(zip(m.outputs, n.outputs))
        if len(a.nodes) != len(b.nodes):
            shared = min(len(a.nodes), len(b.nodes))
            return f"{len(a.nodes)} nodes vs {len(b.nodes)} (the first {shared} agree)"
        if len(a.outputs) != len(b.outputs):
            return f"{len(a.outputs)} returned values vs {len(b.outputs)}"
        for k, (x, y) in enumerate(zip(a.outputs, b.outputs)):
            problem = self.compare_operands(x, y)
            if problem is not None:
                return f"returned value {k}: {problem}"
        return None

    def compare_nodes(self, m: Node, n: Node) -> str | None:
        if m.op.name != n.op.name:
            return f"op {m.op.name} vs {n.op.name}"
        if len(m.inputs) != len(n.inputs):
            return f"{len(m.inputs)} operands vs {len(n.inputs)}"
        for k, (x, y) in enumerate(zip(m.inputs, n.inputs)):
            problem = self.compare_operands(x, y)
            if problem is not None:
                return f"operand {k}: {problem}"
        if not attrs_equal(m.attrs, n.attrs):
            keys = [k for k in {**m.attrs, **n.attrs}
                    if k not in m.attrs or k not in n.attrs or not attrs_equal(
                        {k: m.attrs[k]}, {k: n.attrs[k]})]
            return f"attribute(s) {', '.join(keys) or '(order)'} differ"
        if len(m.outputs) != len(n.outputs):
            return f"{len(m.outputs)} results vs {len(n.outputs)}"
        for k, (x, y) in enumerate(zip(m.outputs, n.outputs)):
            if not same_type(x.type, y.type):
                return f"result {k} has type {x.type} vs {y.type}"
        if self.check_locations and m.loc != n.loc:
            return f"locations differ: {m.loc} vs {n.loc}"
        return None

    def compare_operands(self, x: Value, y: Value) -> str | None:
        if isinstance(x, Constant) or isinstance(y, Constant):
            if not (isinstance(x, Constant) and isinstance(y, Constant)):
                return "a constant vs a value" if isinstance(x, Constant) else \
                    "a value vs a constant"
            if x.type != y.type:
                return f"constants of type {x.type} vs {y.type}"
            if not same_array(x.data, y.data):
                return "constants with the same type but different data"
            return None
        if self.mapping.get(x) is not y:
            return "refers to a different value"
        return None

    def show_nodes(self, index: int, m: Node, n: Node, problem: str) -> str:
        lines = [_safe_line(m, self.a), _safe_line(n, self.b)]
        width = max(len(label) for label in self.labels) + 2
        common = 0
        while common < min(map(len, lines)) and lines[0][common] == lines[1][common]:
            common += 1
        out = [f"node {index} differs ({problem}):"]
        for label, line in zip(self.labels, lines):
            out.append(f"  {label + ':':<{width}}{line}")
        out.append(f"  {'':<{width}}{' ' * common}^")
        return "\n".join(out)


def _safe_line(node: Node, graph: Graph) -> str:
    try:
        return print_node(node, Namer(graph))
    except (KeyError, TypeError):  # a broken graph: fall back to the node's repr
        return repr(node)


def same_type(a: ValueType, b: ValueType) -> bool:
    """Types equal up to symbolic simplification (structural equality first: it is fast)."""
    return a == b or a.same_as(b)


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values; NaN equals NaN, and -0.0 differs from 0.0 (they print
    differently)."""
    if a is b:
        return True
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f" and a.dtype != DType.bf16.numpy:
        return bool(np.array_equal(a, b))
    x, y = a.astype(np.float64), b.astype(np.float64)
    nan = np.isnan(x)
    if not np.array_equal(nan, np.isnan(y)):
        return False
    x, y = x[~nan], y[~nan]
    return bool(np.array_equal(x, y) and np.array_equal(np.signbit(x), np.signbit(y)))
