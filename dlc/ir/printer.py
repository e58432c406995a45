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

import functools
import math
import re
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Location, Node, Value
from dlc.ir.symbolic import Dim, dim_str, parse_dim
from dlc.ir.types import SparseTensorType, ValueType

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
            return f"const({format_literal(v.data)}) : {format_type(v.type)}"
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
    params = ", ".join(f"%{namer.names[v]}: {format_type(v.type)}" for v in graph.inputs)
    results = ", ".join(format_type(v.type) for v in graph.outputs)
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
    types = ", ".join(format_type(v.type) for v in node.outputs)
    loc = f" {format_location(node.loc)}" if node.loc else ""
    return f"{outs} = {node.op.name}({', '.join(args)}) : {types}{loc}"


def format_type(t: ValueType) -> str:
    """A type's text, as `str(t)` but with each size in its read-back form (`format_dim`)."""
    dims = ", ".join(format_dim(d) for d in t.shape)
    if isinstance(t, SparseTensorType):
        return f"{t.format}<{t.dtype}>[{dims}, nnz={format_dim(t.nnz)}]"
    return f"{t.dtype}[{dims}]"


@functools.lru_cache(maxsize=4096)
def format_dim(d: Dim) -> str:
    """A size's text, chosen so that reading it back and printing again gives the same text.

    SymPy prints the product `2*(N + 1)*(S + 1)` in a form it reads back as
    `(2*N + 2)*(S + 1)` (it distributes `2*(N + 1)` while parsing), so the printer writes
    the read-back form, the fixed point of print-then-parse.
    """
    text = dim_str(d)
    if isinstance(d, int):
        return text
    for _ in range(4):
        again = dim_str(parse_dim(text))
        if again == text:
            break
        text = again
    return text


def format_location(loc: Location) -> str:
    """`loc("name" file.py:12)`: like `str(loc)`, but escaping newlines in the name and
    quoting a file name that would not read back bare (spaces, parentheses, quotes, or a
    `:digits` ending while the line is 0). A quoted file follows the name string, even an
    empty one: `loc("" "my model.py":3)`.
    """
    parts = []
    quote_file = _needs_quotes(loc.file, loc.line)
    if loc.name or quote_file:
        parts.append(format_literal(loc.name))
    if loc.file or quote_file:
        file = format_literal(loc.file) if quote_file else loc.file
        parts.append(f"{file}:{loc.line}" if loc.line else file)
    return f"loc({' '.join(parts)})"


_PLAIN_FILE = re.compile(r"[^\s()\"]+")


def _needs_quotes(file: str, line: int) -> bool:
    if not file:
        return line != 0  # an empty file name with a line number
    if not _PLAIN_FILE.fullmatch(file):
        return True
    # `a.py:3` with no line would read back as file `a.py`, line 3.
    return line == 0 and re.search(r":-?\d+$", file) is not None


def format_attr(kind: str, value: Any) -> str:
    """An attribute value's text, by its schema kind."""
    if value is None:
        return "none"
    if kind == "dims":
        return "[" + ", ".join(format_dim(d) for d in value) + "]"
    if kind == "dtype":
        return str(value)
    return format_literal(value)


def format_literal(value: Any) -> str:
    """Literals: ints, floats (exact: shortest repr), bools, strings, dtypes, nested lists."""
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype == DType.bf16.numpy:
        value = np.asarray(value).astype(np.float64)  # exact; bf16 scalars are not np.floating
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return format_literal(value.item())
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
