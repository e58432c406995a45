"""ONNX converters for reductions, arg-max/min, scans and top-k (`reduce.*`).

The `Reduce*` ops took `axes` as an attribute until they moved it to an operand (ReduceSum
in opset 13, the others in 18), adding `noop_with_empty_axes`. ONNX reduces an empty set
to the operation's identity (0 for a sum, -inf for a max), which is made a constant
here because NumPy refuses to take the max of nothing.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ops.registry import normalize_axes

B = OnnxGraphBuilder

_AXES_INPUT_FROM = {"ReduceSum": 13}  # every other Reduce* moved axes to an input in 18


def reduce_axes(b: B, node: OnnxNode) -> tuple[int, ...] | None:
    """The axes a Reduce* node reduces (normalized), None for "all", () for "none"."""
    x = node.inputs[0]
    if node.opset >= _AXES_INPUT_FROM.get(node.op_type, 18):
        axes = b.optional_ints(node, 1, "axes")
        if not axes:
            return () if node.attr("noop_with_empty_axes", 0) else None
    else:
        axes = node.attr("axes")
        if axes is None:
            return None
    return normalize_axes(axes, x.tensor_type.rank, node.op_type)


def _identity_of(kind: str, dtype: DType) -> float:
    if dtype == DType.bool:
        return float(kind == "min")
    if kind in ("max", "log_sum", "log_sum_exp"):
        return -math.inf if dtype.is_float else float(np.iinfo(dtype.numpy).min)
    if kind == "min":
        return math.inf if dtype.is_float else float(np.iinfo(dtype.numpy).max)
    if kind == "prod":
        return 1.0
    if kind == "mean":
        return math.nan
    return 0.0


def _dynamic_axes(node: OnnxNode) -> bool:
    """True when a Reduce* node's axes operand is computed at run time."""
    v = node.input(1)
    return (node.opset >= _AXES_INPUT_FROM.get(node.op_type, 18) and v is not None
            and not isinstance(v, Constant))


def _reduce(kind: str):
    def convert(b: B, node: OnnxNode) -> Value:
        x = node.inputs[0]
        keep = bool(node.attr("keepdims", 1))
        if _dynamic_axes(node):
            return b.op("reduce.dynamic_axes", x, b.cast(node.inputs[1], DType.i64),
                        kind=kind, keepdims=keep,
                        noop_with_empty_axes=bool(node.attr("noop_with_empty_axes", 0)))
        axes = reduce_axes(b, node)
        if axes == ():
            return _identity_reduce(b, kind, x)
        shape = b.shape_of(x)
        covered = range(len(shape)) if axes is None else axes
        if any(shape[a] == 0 for a in covered):
            out = [1 if (axes is None or i in axes) else d for i, d in enumerate(shape)
                   if keep or not (axes is None or i in axes)]
            return b.op("create.full", shape=out, value=_identity_of(kind, x.dtype),
                        dtype=x.dtype)
        return _REDUCERS[kind](b, x, axes, keep)
    return convert


def _identity_reduce(b: B, kind: str, x: Value) -> Value:
    """A Reduce* over no axes (noop_with_empty_axes): the elementwise part only."""
    if kind == "l1":
        return b.op("ew.abs", x)
    if kind in ("l2", "sum_square"):
        sq = b.op("ew.mul", x, x)
        return b.op("ew.sqrt", sq) if kind == "l2" else sq
    if kind == "log_sum":
        return b.op("ew.log", x)
    return x


def _plain(op: str):
    def reduce(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
        return b.op(op, x, axes=axes, keepdims=keep)
    return reduce


def _mean(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    if x.dtype.is_float:
        return b.op("reduce.mean", x, axes=axes, keepdims=keep)
    total = b.op("reduce.sum", x, axes=axes, keepdims=keep)
    shape = b.shape_of(x)
    count = int(np.prod([shape[a] for a in (axes if axes is not None else range(len(shape)))]))
    return b.op("ew.trunc_div", total, b.scalar_like(count, total))


def _l1(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    return b.op("reduce.sum", b.op("ew.abs", x), axes=axes, keepdims=keep)


def _l2(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    if x.dtype.is_float:
        return b.op("reduce.norm", x, axes=axes, keepdims=keep, ord=2.0)
    y = b.op("reduce.norm", b.cast(x, DType.f64), axes=axes, keepdims=keep, ord=2.0)
    return b.cast(y, x.dtype)


def _sum_square(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    return b.op("reduce.sum", b.op("ew.mul", x, x), axes=axes, keepdims=keep)


def _log_sum(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    return b.op("ew.log", b.op("reduce.sum", x, axes=axes, keepdims=keep))


def _log_sum_exp(b: B, x: Value, axes: tuple[int, ...] | None, keep: bool) -> Value:
    if not x.dtype.is_float:
        xf = b.cast(x, DType.f64)
        return b.cast(_log_sum_exp(b, xf, axes, keep), x.dtype)
    # log(sum(exp(x - m))) + m with m the max, where m is finite (0 elsewhere).
    m = b.op("reduce.max", x, axes=axes, keepdims=True)
    finite = b.op("ew.logical_not", b.op("ew.isinf", m))
    m = b.op("ew.where", finite, m, b.scalar_like(0, x))
    s = b.op("reduce.sum", b.op("ew.exp", b.op("ew.sub", x, m)), axes=axes, keepdims=keep)
    if not keep:
        m = b.op("shape.squeeze", m, axes=axes if axes is not None else
                 tuple(range(x.tensor_type.rank)))
    return b.op("ew.add", b.op("ew.log", s), m)


_REDUCERS = {
    "sum": _plain("reduce.sum"), "max": _plain("reduce.max"), "min": _plain("reduce.min"),
    "prod": _plain("reduce.prod"), "mean": _mean, "l1": _l1, "l2": _l2,
    "sum_square": _sum_square, "log_sum": _log_sum, "log_sum_exp": _log_sum_exp,
}

for _op_type, _kind in (("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max"),
                        ("ReduceMin", "min"), ("ReduceProd", "prod"), ("ReduceL1", "l1"),
                        ("ReduceL2", "l2"), ("ReduceSumSquare", "sum_square"),
                        ("ReduceLogSum", "log_sum"), ("ReduceLogSumExp", "log_sum_exp")):
    onnx_op(_op_type)(_reduce(_kind))


def _arg(op: str):
    def convert(b: B, node: OnnxNode) -> Value:
        x = node.inputs[0]
        axis = node.attr("axis", 0) % max(x.tensor_type.rank, 1)
        keep = bool(node.attr("keepdims", 1))
        if not node.attr("select_last_index", 0):
            return b.op(op, x, axis=axis, keepdims=keep)
        # The last extreme index is (size - 1) minus the first one in the reversed axis.
        flipped = b.op("shape.flip", x, axes=(axis,))
        first = b.op(op, flipped, axis=axis, keepdims=keep)
        last = b.scalar(int(b.shape_of(x)[axis]) - 1, DType.i64)
        return b.op("ew.sub", last, first)
    return convert


onnx_op("ArgMax")(_arg("reduce.argmax"))
onnx_op("ArgMin")(_arg("reduce.argmin"))


def _scan(op: str, fill: float):
    def convert(b: B, node: OnnxNode) -> Value:
        x = node.inputs[0]
        if not isinstance(node.inputs[1], Constant):  # the axis is known at run time only
            return b.op("reduce.scan_dynamic_axis", x, node.inputs[1],
                        kind="sum" if op == "reduce.cumsum" else "prod",
                        exclusive=bool(node.attr("exclusive", 0)),
                        reverse=bool(node.attr("reverse", 0)))
        rank = x.tensor_type.rank
        axis = int(b.static_scalar(node, 1, "axis")) % rank
        reverse, exclusive = node.attr("reverse", 0), node.attr("exclusive", 0)
        y = b.op("shape.flip", x, axes=(axis,)) if reverse else x
        y = b.op(op, y, axis=axis)
        if exclusive:  # shift by one along the axis, the identity entering first
            pads = [0] * (2 * rank)
            pads[axis] = 1
            padded = b.op("shape.pad", y, pads=pads, value=fill)
            size = b.shape_of(x)[axis]
            y = b.op("shape.slice", padded, axes=(axis,), starts=(0,), ends=(size,))
        return b.op("shape.flip", y, axes=(axis,)) if reverse else y
    return convert


onnx_op("CumSum")(_scan("reduce.cumsum", 0.0))
onnx_op("CumProd")(_scan("reduce.cumprod", 1.0))


@onnx_op("TopK")
def _topk(b: B, node: OnnxNode) -> tuple[Value, Value]:
    x = node.inputs[0]
    if node.opset >= 10 and not isinstance(node.inputs[1], Constant):  # k at run time
        return b.op("reduce.topk_dynamic", x, b.cast(node.inputs[1], DType.i64),
                    axis=node.attr("axis", -1) % x.tensor_type.rank,
                    largest=bool(node.attr("largest", 1)), sorted=bool(node.attr("sorted", 1)))
    k = node.attr("k") if node.opset < 10 else int(b.static_scalar(node, 1, "K"))
    axis = node.attr("axis", -1) % x.tensor_type.rank
    largest = bool(node.attr("largest", 1))
    return b.op("reduce.topk", x, k=k, axis=axis, largest=largest,
                sorted=bool(node.attr("sorted", 1)))
