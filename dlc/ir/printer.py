"""The textual form of the graph IR (it parses back: see `dlc.ir.parser`).

    graph @mlp(%x: f32[N, 784]) -> (f32[N, 10]) {
      %0 = linalg.matmul(%x, @fc1.weight) : f32[N, 128] loc("fc1" model.py:12)
      %1 = ew.add(%0, const(1.0) : f32[]) : f32[N, 128]
      return %1
    }

Graph inputs keep their (sanitized, unique) names; node outputs are numbered in order.
Constants with at most `INLINE_LIMIT` elements print inline as `const(<literal>) : type`;
larger ones print as `@name` references into the constant table (`constant_table(graph)`),
which travels beside the text, as the weights file travels beside a model.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.symbolic import dim_str

INLINE_LIMIT = 16

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def sanitize(name: str, fallback: str) -> str:
    """A name usable after `%` or `@`: letters, digits, `_` and `.`, not starting with a digit."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    if not name:
        return fallback
    return name if _IDENT.fullmatch(name) else f"v{name}" if name[0].isdigit() else f"_{name}"


class Namer:
    """Assigns the printed names: inputs by name, node outputs by number, constants by name."""

    def __init__(self, graph: Graph) -> None:
        self.names: dict[Value, str] = {}
        taken: set[str] = set()
        for i, v in enumerate(graph.inputs):
            self.names[v] = _unique(sanitize(v.name, f"arg{i}"), taken)
        count = 0
        for node in graph.nodes:
            for v in node.outputs:
                self.names[v] = str(count)
                count += 1
        self.constants: dict[Constant, str] = {}
        const_taken: set[str] = set()
        for k, c in enumerate(graph.constant_values()):
            if not is_inline(c):
                self.constants[c] = _unique(sanitize(c.name, f"c{k}"), const_taken)

    def ref(self, v: Value) -> str:
        """How an operand is written: `%name`, `@name`, or an inline constant."""
        if isinstance(v, Constant):
            if v in self.constants:
                return f"@{self.constants[v]}"
            return f"const({format_literal(v.data)}) : {v.type}"
        return f"%{self.names[v]}"


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        out = f"{name}_{k}"
        k += 1
    taken.add(out)
    return out


def is_inline(c: Constant) -> bool:
    """Small constants print inline; large ones go to the constant table."""
    return int(np.prod(c.data.shape, dtype=np.int64)) <= INLINE_LIMIT


def constant_table(graph: Graph) -> dict[str, np.ndarray]:
    """The `@name -> array` table that the printed text of `graph` refers to."""
    return {name: c.data for c, name in Namer(graph).constants.items()}


def print_graph(graph: Graph) -> str:
    """The textual IR of a graph."""
    namer = Namer(graph)
    params = ", ".join(f"%{namer.names[v]}: {v.type}" for v in graph.inputs)
    results = ", ".join(str(v.type) for v in graph.outputs)
    lines = [f"graph @{sanitize(graph.name, 'main')}({params}) -> ({results}) {{"]
    lines.extend(f"  {print_node(n, namer)}" for n in graph.nodes)
    lines.append(f"  return {', '.join(namer.ref(v) for v in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_node(node: Node, namer: Namer) -> str:
    """One line: `%3 = op(operands, attrs) : types loc(...)`."""
    outs = ", ".join(f"%{namer.names[v]}" for v in node.outputs)
    args = [namer.ref(v) for v in node.inputs]
    args += [f"{k}={format_attr(node.op.attrs[k].kind, v)}" for k, v in node.attrs.items()]
    types = ", ".join(str(v.type) for v in node.outputs)
    loc = f" {node.loc}" if node.loc else ""
    return f"{outs} = {node.op.name}({', '.join(args)}) : {types}{loc}"


def format_attr(kind: str, value: Any) -> str:
    """An attribute value's text, by its schema kind."""
    if value is None:
        return "none"
    if kind == "dims":
        return "[" + ", ".join(dim_str(d) for d in value) + "]"
    if kind == "dtype":
        return str(value)
    return format_literal(value)


def format_literal(value: Any) -> str:
    """Literals: ints, floats (exact: shortest repr), bools, strings, dtypes, nested lists."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return format_literal(value.item() if value.dtype != DType.bf16.numpy
                                  else float(value))
        return "[" + ", ".join(format_literal(x) for x in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        text = repr(f)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, DType):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_literal(x) for x in value) + "]"
    if value is None:
        return "none"
    raise TypeError(f"cannot print literal {value!r}")
