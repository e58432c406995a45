"""Import-time evaluation: constant folding of converted nodes and symbolic shape arithmetic.

Two cases reach here:

* every operand of an ONNX node is a constant: its converted dlc nodes run once through
  their NumPy references (the interpreter's `run_node`) and become constants, so a shape
  assembled from constants (`Concat(Constant, Constant) -> Reshape`) is known when the
  Reshape is converted. Results larger than `FOLD_LIMIT` elements stay nodes.
* an operand is a symbolic shape tensor (`Shape` of an input with a dynamic batch): the
  few ops that do arithmetic on shapes are evaluated here on object arrays of dlc
  dimensions, so `Reshape(x, Concat(Gather(Shape(x), 0), [-1]))` becomes `[N, -1]`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from dlc.errors import DLCError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.interpreter import run_node
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ir.symbolic import dim
from dlc.ir.types import TensorType

FOLD_LIMIT = 1 << 20  # elements; larger constant results are computed at run time


def fold_constant_nodes(b: OnnxGraphBuilder, start: int, results: Any,
                        names: list[str] | None = None) -> Any:
    """Evaluate the nodes appended since `start` (all of whose operands are constants) and
    replace them by constants named `names` (the ONNX outputs); `results` (a Value or
    tuple) is mapped to the constants."""
    new = b.nodes[start:]
    if not new:
        return results
    total = 0
    for n in new:
        for v in n.outputs:
            t = v.type
            if not isinstance(t, TensorType) or not t.is_static:
                return results
            total += int(np.prod(t.shape, dtype=np.int64))
    if total > FOLD_LIMIT:
        return results
    env: dict[Value, np.ndarray] = {}
    try:
        for n in new:
            args = [v.data if isinstance(v, Constant) else env[v] for v in n.inputs]
            env.update(zip(n.outputs, run_node(n, args, {})))
    except (DLCError, KeyError):
        return results  # leave it to run time, where the same error names the node
    del b.nodes[start:]

    def as_constant(v: Any, i: int) -> Any:
        if isinstance(v, Value) and v in env:
            return Constant.of(env[v], names[i] if names and i < len(names) else "")
        return v

    if isinstance(results, (tuple, list)):
        return tuple(as_constant(v, i) for i, v in enumerate(results))
    return as_constant(results, 0)


def fold_symbolic(b: OnnxGraphBuilder, node: OnnxNode) -> Any:
    """The result of a shape-arithmetic node whose operands are all known at import time
    and some symbolic; None when the node is not one of those (its converter runs)."""
    if any(v is not None and not isinstance(v, Constant) for v in node.inputs):
        return None
    fn = _SYMBOLIC.get(node.op_type)
    if fn is None:
        return None
    args = [None if v is None else np.asarray(v.data) for v in node.inputs]
    out = fn(node, *args)
    if out is None:
        return None
    return _as_constant(b, np.asarray(out, dtype=object) if np.ndim(out) == 0 and
                        not isinstance(out, np.ndarray) else out)


def _as_constant(b: OnnxGraphBuilder, out: np.ndarray) -> Constant:
    if out.dtype != object:
        return Constant.of(out)
    flat = [dim(x) if not isinstance(x, (bool, np.bool_)) else bool(x) for x in out.reshape(-1)]
    if all(isinstance(x, (bool, np.bool_)) for x in flat):
        return Constant.of(np.array(flat, dtype=bool).reshape(out.shape))
    if all(isinstance(x, int) for x in flat):
        return Constant.of(np.array(flat, dtype=np.int64).reshape(out.shape))
    data = np.empty(len(flat), dtype=object)
    data[:] = flat
    return Constant(TensorType(out.shape, DType.i64), "", data.reshape(out.shape))


# -- the shape-arithmetic ops on object arrays --------------------------------------------


def _axes(node: OnnxNode, arg: np.ndarray | None) -> list[int] | None:
    if arg is not None:
        return [int(a) for a in arg.reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else list(axes)


def _unsqueeze(node: OnnxNode, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    ax = _axes(node, axes) or []
    rank = x.ndim + len(ax)
    out = x
    for a in sorted(a % rank for a in ax):
        out = np.expand_dims(out, a)
    return out


def _squeeze(node: OnnxNode, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    ax = _axes(node, axes)
    if ax is None:
        return np.squeeze(x)
    return np.squeeze(x, tuple(a % x.ndim for a in ax))


def _slice(node: OnnxNode, x: np.ndarray, *args: np.ndarray | None) -> np.ndarray:
    if node.opset < 10:
        starts, ends = node.attr("starts"), node.attr("ends")
        axes, steps = node.attr("axes"), None
    else:
        starts, ends = [int(v) for v in args[0]], [int(v) for v in args[1]]
        axes = None if len(args) < 3 or args[2] is None else [int(v) for v in args[2]]
        steps = None if len(args) < 4 or args[3] is None else [int(v) for v in args[3]]
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a % x.ndim] = slice(s, e, st)
    return x[tuple(index)]


def _reshape(node: OnnxNode, x: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
    target = [int(v) for v in (shape if shape is not None else node.attr("shape"))]
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return x.reshape(target)


def _int_div(a: Any, b: Any) -> Any:
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        q = abs(int(a)) // abs(int(b))
        return q if (a >= 0) == (b >= 0) else -q
    return sympy.floor(sympy.sympify(a) / sympy.sympify(b))  # sizes are non-negative


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return bool(a == b)
    return bool(sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0)


def _elementwise(fn: Any) -> Any:
    def apply(node: OnnxNode, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.vectorize(fn, otypes=[object])(a, b)
    return apply


def _variadic(fn: Any) -> Any:
    def apply(node: OnnxNode, *xs: np.ndarray) -> np.ndarray:
        out = xs[0]
        for x in xs[1:]:
            out = np.vectorize(fn, otypes=[object])(out, x)
        return out
    return apply


def _cast(node: OnnxNode, x: np.ndarray) -> np.ndarray | None:
    return x if node.attr("to") in (6, 7) else None  # INT32, INT64: sizes stay sizes


def _reduce(fn: Any) -> Any:
    def apply(node: OnnxNode, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
        ax = _axes(node, axes)
        keep = bool(node.attr("keepdims", 1))
        axis = None if not ax else tuple(a % x.ndim for a in ax)
        return fn(x, axis=axis, keepdims=keep)
    return apply


_SYMBOLIC = {
    "Identity": lambda node, x: x,
    "Cast": _cast,
    "Gather": lambda node, x, i: np.take(x, i.astype(np.int64), axis=node.attr("axis", 0)),
    "Concat": lambda node, *xs: np.concatenate(xs, axis=node.attr("axis")),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Reshape": _reshape,
    "Add": _elementwise(lambda a, b: a + b),
    "Sub": _elementwise(lambda a, b: a - b),
    "Mul": _elementwise(lambda a, b: a * b),
    "Div": _elementwise(_int_div),
    "Neg": lambda node, x: -x,
    "Equal": _elementwise(_equal),
    "Where": lambda node, c, a, b: np.where(c.astype(bool), a, b),
    "Max": _variadic(lambda a, b: sympy.Max(a, b)),
    "Min": _variadic(lambda a, b: sympy.Min(a, b)),
    "ReduceProd": _reduce(np.prod),
    "ReduceSum": _reduce(np.sum),
}
