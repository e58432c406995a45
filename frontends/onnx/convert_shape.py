"""ONNX converters for shape ops: reshapes, transposes, joins, splits, slices, pads, tiles.

Several of these moved attributes to operands over the opsets (Reshape's shape in 5,
Slice's bounds in 10, Pad's pads in 11, Squeeze/Unsqueeze's axes and Split's sizes in
13); the handlers are registered per opset. Operands that fix the output shape must be
known at import time (constants, or shape tensors with symbolic sizes); `Shape` and
`Size` produce such constants from the (possibly symbolic) type of their operand.
"""

from __future__ import annotations

import numpy as np

from dlc.errors import FrontendError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ir.symbolic import Dim, ceildiv, dim, floordiv, product
from dlc.ops.registry import broadcast_shapes, normalize_axes, normalize_axis

B = OnnxGraphBuilder


# -- shapes as values --------------------------------------------------------------------


@onnx_op("Shape")
def _shape(b: B, node: OnnxNode) -> Value:
    shape = list(b.shape_of(node.inputs[0]))
    rank = len(shape)
    start, end = node.attr("start", 0), node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return b.shape_constant(shape[start:end])


@onnx_op("Size")
def _size(b: B, node: OnnxNode) -> Value:
    total = product(b.shape_of(node.inputs[0]))
    return b.shape_constant([total], shape=())


# -- views -------------------------------------------------------------------------------


def reshape_target(x_shape: tuple[Dim, ...], target: tuple[Dim, ...], allowzero: bool
                   ) -> list[Dim]:
    """ONNX's reshape target: 0 copies the input's size (unless allowzero), -1 is inferred."""
    return [x_shape[i] if (d == 0 and not allowzero and i < len(x_shape)) else d
            for i, d in enumerate(target)]


@onnx_op("Reshape", since=1)
def _reshape_attr(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    return b.op("shape.reshape", x, shape=reshape_target(b.shape_of(x), tuple(node.attr("shape")),
                                                         False))


def at_run_time(node: OnnxNode, *indices: int) -> bool:
    """True when one of these operands is present and computed at run time."""
    return any(node.input(i) is not None and not isinstance(node.input(i), Constant)
               for i in indices)


def _i64(b: B, v: Value | None) -> Value:
    """An optional shape operand as i64 (an empty constant when absent)."""
    if v is None:
        return b.const(np.zeros(0, np.int64))
    return b.cast(v, DType.i64)


@onnx_op("Reshape", since=5)
def _reshape(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    if at_run_time(node, 1):
        return b.op("shape.reshape_dynamic", x, node.inputs[1],
                    allowzero=bool(node.attr("allowzero", 0)))
    target = b.static_dims(node, 1, "shape")
    return b.op("shape.reshape", x,
                shape=reshape_target(b.shape_of(x), target, bool(node.attr("allowzero", 0))))


@onnx_op("Flatten")
def _flatten(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    shape = b.shape_of(x)
    axis = node.attr("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    return b.op("shape.reshape", x, shape=[product(shape[:axis]), product(shape[axis:])])


def _squeeze_axes(b: B, node: OnnxNode) -> tuple[int, ...] | None:
    if node.opset >= 13:
        return b.optional_ints(node, 1, "axes")
    axes = node.attr("axes")
    return None if axes is None else tuple(axes)


@onnx_op("Squeeze")
def _squeeze(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    if node.opset >= 13 and at_run_time(node, 1):
        return b.op("shape.squeeze_dynamic", x, _i64(b, node.inputs[1]))
    shape = b.shape_of(x)
    axes = _squeeze_axes(b, node)
    if axes is None:
        axes = tuple(i for i, d in enumerate(shape) if d == 1)
    if not axes:
        return x
    return b.op("shape.squeeze", x, axes=normalize_axes(axes, len(shape), "Squeeze"))


@onnx_op("Unsqueeze")
def _unsqueeze(b: B, node: OnnxNode) -> Value:
    if node.opset >= 13 and at_run_time(node, 1):
        return b.op("shape.unsqueeze_dynamic", node.inputs[0], _i64(b, node.inputs[1]))
    axes = _squeeze_axes(b, node)
    if axes is None:
        raise FrontendError(f"{node.describe()}: needs axes")
    return b.op("shape.unsqueeze", node.inputs[0], axes=tuple(axes))


@onnx_op("Transpose")
def _transpose(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    rank = b.rank_of(x)
    perm = node.attr("perm") or list(reversed(range(rank)))
    if list(perm) == list(range(rank)):
        return x
    return b.op("shape.permute", x, perm=tuple(perm))


@onnx_op("Expand")
def _expand(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    if at_run_time(node, 1):
        return b.op("shape.expand_dynamic", x, _i64(b, node.inputs[1]))
    target = b.static_dims(node, 1, "shape")
    # ONNX broadcasts both ways: a target size 1 keeps the operand's size.
    out = broadcast_shapes("Expand", b.shape_of(x), target)
    if tuple(out) == tuple(b.shape_of(x)):
        return x
    return b.op("shape.expand", x, shape=out)


# -- joins and splits --------------------------------------------------------------------


@onnx_op("Concat")
def _concat(b: B, node: OnnxNode) -> Value:
    xs = [x for x in node.inputs if x is not None]
    axis = node.attr("axis", 1 if node.opset < 4 else None)
    if len(xs) == 1:
        return xs[0]
    return b.op("shape.concat", *xs, axis=axis)


def split_sizes(total: Dim, parts: int, node: OnnxNode) -> list[Dim]:
    """Equal pieces; from opset 18 the last may be smaller (ceil-sized pieces)."""
    if isinstance(total, int):
        if total % parts == 0:
            return [total // parts] * parts
        if node.opset < 18:
            raise FrontendError(f"{node.describe()}: size {total} does not split into "
                                f"{parts} equal parts")
        size = -(-total // parts)
        sizes = [size] * (parts - 1)
        return sizes + [total - sum(sizes)]
    size = ceildiv(total, parts) if node.opset >= 18 else dim(total / parts)
    return [size] * (parts - 1) + [dim(total - (parts - 1) * size)]


@onnx_op("Split")
def _split(b: B, node: OnnxNode) -> tuple[Value, ...]:
    x = node.inputs[0]
    shape = b.shape_of(x)
    axis = normalize_axis(node.attr("axis", 0), len(shape), "Split")
    if node.opset >= 13 and at_run_time(node, 1):
        outs = b.op("shape.split_dynamic", x, _i64(b, node.inputs[1]), axis=axis)
        return outs if isinstance(outs, tuple) else (outs,)
    if node.opset >= 13:
        sizes = None if node.input(1) is None else b.static_dims(node, 1, "split")
    elif node.opset >= 2 or node.input(1) is None:
        sizes = node.attr("split")
    else:
        sizes = b.static_dims(node, 1, "split")
    if not sizes:
        parts = node.attr("num_outputs") or node.num_outputs
        sizes = split_sizes(shape[axis], parts, node)
    outs = b.op("shape.split", x, sizes=tuple(sizes), axis=axis)
    return outs if isinstance(outs, tuple) else (outs,)


# -- slices, pads, tiles -----------------------------------------------------------------


@onnx_op("Slice", since=1)
def _slice_attrs(b: B, node: OnnxNode) -> Value:
    starts, ends = node.attr("starts"), node.attr("ends")
    axes = node.attr("axes") or list(range(len(starts)))
    return _slice_with(b, node.inputs[0], axes, starts, ends, None)


@onnx_op("Slice", since=10)
def _slice(b: B, node: OnnxNode) -> Value:
    if at_run_time(node, 1, 2, 3, 4):
        return b.op("shape.slice_dynamic", node.inputs[0],
                    *(_i64(b, node.input(i)) for i in range(1, 5)))
    starts = b.static_dims(node, 1, "starts")
    ends = b.static_dims(node, 2, "ends")
    axes = b.optional_ints(node, 3, "axes") or tuple(range(len(starts)))
    steps = b.optional_ints(node, 4, "steps")
    return _slice_with(b, node.inputs[0], axes, starts, ends, steps)


def _slice_with(b: B, x: Value, axes: list[int] | tuple[int, ...], starts: tuple, ends: tuple,
                steps: tuple[int, ...] | None) -> Value:
    rank = b.rank_of(x)
    axes = [normalize_axis(a, rank, "Slice") for a in axes]
    steps = tuple(steps) if steps else (1,) * len(axes)
    clamp = 2**63 - 1
    # ONNX bounds are int64; clamp the "to the end" sentinels into the registry's range.
    starts = tuple(max(min(s, clamp), -clamp - 1) if isinstance(s, int) else s for s in starts)
    ends = tuple(max(min(e, clamp), -clamp - 1) if isinstance(e, int) else e for e in ends)
    keep = [i for i in range(len(axes))
            if not (starts[i] == 0 and steps[i] == 1 and isinstance(ends[i], int)
                    and isinstance(b.shape_of(x)[axes[i]], int)
                    and ends[i] >= b.shape_of(x)[axes[i]])]
    if not keep:
        return x
    return b.op("shape.slice", x, axes=tuple(axes[i] for i in keep),
                starts=tuple(starts[i] for i in keep), ends=tuple(ends[i] for i in keep),
                steps=tuple(steps[i] for i in keep))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


@onnx_op("Pad", since=1)
def _pad_attrs(b: B, node: OnnxNode) -> Value:
    pads = node.attr("pads") if node.opset >= 2 else node.attr("paddings")
    return _pad_with(b, node, node.inputs[0], list(pads), node.attr("value", 0.0))


@onnx_op("Pad", since=11)
def _pad(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    runtime = [i for i in (1, 2) if node.input(i) is not None and
               not isinstance(node.input(i), Constant)]
    if runtime and node.input(3) is None:  # pads or value known only at run time
        value = node.input(2) if node.input(2) is not None else b.scalar_like(0, x)
        mode = node.attr("mode", "constant")
        if mode not in _PAD_MODES:
            raise b.unsupported(node, f"with mode={mode!r}")
        return b.op("shape.pad_dynamic", x, b.cast(node.inputs[1], DType.i64),
                    b.cast(value, x.dtype), mode=mode)
    pads = list(b.static_ints(node, 1, "pads"))
    value = 0.0
    if node.input(2) is not None:
        value = b.static_scalar(node, 2, "constant_value")
    axes = b.optional_ints(node, 3, "axes")
    if axes is not None:
        rank = b.rank_of(x)
        full = [0] * (2 * rank)
        for i, a in enumerate(normalize_axis(a, rank, "Pad") for a in axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        pads = full
    return _pad_with(b, node, x, pads, value)


def _pad_with(b: B, node: OnnxNode, x: Value, pads: list[int], value: float) -> Value:
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise b.unsupported(node, f"with mode={mode!r}")
    if not any(pads):
        return x
    return b.op("shape.pad", x, pads=tuple(pads), mode=_PAD_MODES[mode], value=float(value))


@onnx_op("Tile")
def _tile(b: B, node: OnnxNode) -> Value:
    if at_run_time(node, 1):
        return b.op("shape.tile_dynamic", node.inputs[0], _i64(b, node.inputs[1]))
    repeats = b.static_ints(node, 1, "repeats")
    return b.op("shape.repeat", node.inputs[0], repeats=repeats)


# -- rearrangements of channels ----------------------------------------------------------


@onnx_op("DepthToSpace")
def _depth_to_space(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    n, c, h, w = b.shape_of(x)
    s = node.attr("blocksize")
    depth = floordiv(c, s * s)
    if node.attr("mode", "DCR") == "DCR":
        y = b.op("shape.reshape", x, shape=(n, s, s, depth, h, w))
        y = b.op("shape.permute", y, perm=(0, 3, 4, 1, 5, 2))
    else:  # CRD
        y = b.op("shape.reshape", x, shape=(n, depth, s, s, h, w))
        y = b.op("shape.permute", y, perm=(0, 1, 4, 2, 5, 3))
    return b.op("shape.reshape", y, shape=(n, depth, dim(h * s), dim(w * s)))


@onnx_op("SpaceToDepth")
def _space_to_depth(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    n, c, h, w = b.shape_of(x)
    s = node.attr("blocksize")
    y = b.op("shape.reshape", x, shape=(n, c, floordiv(h, s), s, floordiv(w, s), s))
    crd = node.attr("mode", "DCR") == "CRD"
    y = b.op("shape.permute", y, perm=(0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
    return b.op("shape.reshape", y, shape=(n, dim(c * s * s), floordiv(h, s), floordiv(w, s)))


@onnx_op("Trilu")
def _trilu(b: B, node: OnnxNode) -> Value:
    """Keep the elements on or above (upper) / below diagonal k; k may be a run-time
    scalar, since only the mask depends on it."""
    x = node.inputs[0]
    if node.input(1) is None:
        k: Value = b.scalar(0, DType.i64)
    elif b.constant(node.input(1)) is not None:
        k = b.scalar(int(b.static_scalar(node, 1, "k")), DType.i64)
    else:
        k = b.op("shape.reshape", b.cast(node.input(1), DType.i64), shape=())
    rows, cols = b.shape_of(x)[-2:]
    i = b.op("shape.reshape", b.op("create.arange", shape=(rows,), dtype=DType.i64),
             shape=(rows, 1))
    j = b.op("shape.reshape", b.op("create.arange", shape=(cols,), dtype=DType.i64),
             shape=(1, cols))
    diagonal = b.op("ew.sub", j, i)  # j - i: the diagonal each element sits on
    keep = b.op("ew.ge" if node.attr("upper", 1) else "ew.le", diagonal, k)
    return b.op("ew.where", keep, x, b.scalar_like(0, x))
