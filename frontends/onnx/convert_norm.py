"""ONNX converters for normalizations and softmax (`nn.*_norm`, `nn.softmax`, ...).

Before opset 13, Softmax, LogSoftmax and Hardmax flatten their input to 2-D at `axis`
and normalize each row; from 13 they normalize along `axis` alone. Norm layers map to
the registry's fused ops when their parameters have the registry's shapes, and are
written out in `reduce.*` / `ew.*` ops otherwise (training-mode batch norm, the
statistics outputs of LayerNormalization, broadcast scales).
"""

from __future__ import annotations

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.dtypes import from_onnx
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.symbolic import dims_equal, product
from dlc.ops.registry import normalize_axis

B = OnnxGraphBuilder


# -- softmax and friends -----------------------------------------------------------------


def _along_axis(b: B, node: OnnxNode, fn) -> Value:  # noqa: ANN001
    """Apply `fn(x, axis)`; before opset 13, to the input flattened to 2-D at `axis`."""
    x = node.inputs[0]
    rank = b.rank_of(x)
    if node.opset >= 13:
        return fn(x, normalize_axis(node.attr("axis", -1), rank, node.op_type))
    axis = normalize_axis(node.attr("axis", 1), rank, node.op_type)
    shape = b.shape_of(x)
    if axis == rank - 1:
        return fn(x, axis)
    flat = b.op("shape.reshape", x, shape=(product(shape[:axis]), product(shape[axis:])))
    return b.op("shape.reshape", fn(flat, 1), shape=shape)


@onnx_op("Softmax")
def _softmax(b: B, node: OnnxNode) -> Value:
    return _along_axis(b, node, lambda x, axis: b.op("nn.softmax", x, axis=axis))


@onnx_op("LogSoftmax")
def _log_softmax(b: B, node: OnnxNode) -> Value:
    return _along_axis(b, node, lambda x, axis: b.op("nn.log_softmax", x, axis=axis))


@onnx_op("Hardmax")
def _hardmax(b: B, node: OnnxNode) -> Value:
    def hardmax(x: Value, axis: int) -> Value:
        first = b.op("reduce.argmax", x, axis=axis, keepdims=True)
        size = b.shape_of(x)[axis]
        positions = b.op("create.arange", shape=(size,), dtype=DType.i64)
        shape = [1] * b.rank_of(x)
        shape[axis] = size
        positions = b.op("shape.reshape", positions, shape=shape)
        return b.cast(b.op("ew.eq", positions, first), x.dtype)
    return _along_axis(b, node, hardmax)


# -- batch, instance, layer, group and RMS norms ----------------------------------------


def _channel_shape(b: B, x: Value) -> tuple:
    """`[C, 1, 1, ...]`: a per-channel parameter broadcast over an [N, C, ...] input."""
    return (b.shape_of(x)[1], *([1] * (b.rank_of(x) - 2)))


@onnx_op("BatchNormalization")
def _batch_norm(b: B, node: OnnxNode) -> Value | tuple[Value, ...]:
    x = node.inputs[0]
    scale, bias, mean, var = (b.cast(v, x.dtype) for v in node.inputs[1:5])
    eps = node.attr("epsilon", 1e-5)
    training = node.attr("training_mode", 0) if node.opset >= 14 else 0
    if not training:
        if b.rank_of(x) == 1:
            raise b.unsupported(node, "on a rank-1 input")
        return b.op("nn.batch_norm", x, scale, bias, mean, var, eps=eps, axis=1)
    axes = (0, *range(2, b.rank_of(x)))
    batch_mean = b.op("reduce.mean", x, axes=axes, keepdims=False)
    batch_var = b.op("reduce.var", x, axes=axes, keepdims=False, correction=0.0)
    y = b.op("nn.batch_norm", x, scale, bias, batch_mean, batch_var, eps=eps, axis=1)
    momentum = node.attr("momentum", 0.9)

    def running(old: Value, new: Value) -> Value:
        kept = b.op("ew.mul", old, b.scalar_like(momentum, old))
        return b.op("ew.add", kept, b.op("ew.mul", new, b.scalar_like(1 - momentum, new)))

    return y, running(mean, batch_mean), running(var, batch_var)


@onnx_op("InstanceNormalization")
def _instance_norm(b: B, node: OnnxNode) -> Value:
    x, scale, bias = node.inputs[0], node.inputs[1], node.inputs[2]
    return b.op("nn.instance_norm", x, scale, bias, eps=node.attr("epsilon", 1e-5))


def _stash(b: B, node: OnnxNode, x: Value) -> DType:
    """The type statistics are computed in (`stash_type`; f32 by default)."""
    stash = node.attr("stash_type", 1)
    return from_onnx(stash) if stash else x.dtype


def _normalize_trailing(b: B, x: Value, axes: tuple[int, ...], eps: float, rms: bool,
                        stash: DType) -> tuple[Value, Value | None, Value]:
    """(normalized x in the stash type, mean or None, 1/std), statistics kept as dims."""
    xs = b.cast(x, stash)
    mean = None
    centered = xs
    if not rms:
        mean = b.op("reduce.mean", xs, axes=axes, keepdims=True)
        centered = b.op("ew.sub", xs, mean)
    var = b.op("reduce.mean", b.op("ew.mul", centered, centered), axes=axes, keepdims=True)
    inv_std = b.op("ew.rsqrt", b.op("ew.add", var, b.scalar_like(eps, var)))
    return b.op("ew.mul", centered, inv_std), mean, inv_std


def _matches(b: B, p: Value | None, shape: tuple) -> bool:
    if p is None:
        return True
    ps = b.shape_of(p)
    return len(ps) == len(shape) and all(dims_equal(a, c) for a, c in zip(ps, shape))


@onnx_op("LayerNormalization")
def _layer_norm(b: B, node: OnnxNode) -> Value | tuple[Value | None, ...]:
    x, scale, bias = node.inputs[0], node.input(1), node.input(2)
    rank = b.rank_of(x)
    axis = normalize_axis(node.attr("axis", -1), rank, node.op_type)
    axes = tuple(range(axis, rank))
    eps = node.attr("epsilon", 1e-5)
    norm_shape = b.shape_of(x)[axis:]
    stats = node.has_output(1) or node.has_output(2)
    if not stats and _matches(b, scale, norm_shape) and _matches(b, bias, norm_shape):
        params = [p for p in (scale, bias) if p is not None]
        if bias is not None and scale is None:
            return b.op("ew.add", b.op("nn.layer_norm", x, axes=axes, eps=eps), bias)
        return b.op("nn.layer_norm", x, *params, axes=axes, eps=eps)
    stash = _stash(b, node, x)
    y, mean, inv_std = _normalize_trailing(b, x, axes, eps, rms=False, stash=stash)
    y = b.cast(y, x.dtype)
    if scale is not None:
        y = b.op("ew.mul", y, scale)
    if bias is not None:
        y = b.op("ew.add", y, bias)
    return y, mean, inv_std


@onnx_op("RMSNormalization")
def _rms_norm(b: B, node: OnnxNode) -> Value:
    x, scale = node.inputs[0], node.input(1)
    rank = b.rank_of(x)
    axis = normalize_axis(node.attr("axis", -1), rank, node.op_type)
    axes = tuple(range(axis, rank))
    eps = node.attr("epsilon", 1e-5)
    if _matches(b, scale, b.shape_of(x)[axis:]):
        return b.op("nn.rms_norm", x, *([scale] if scale is not None else []), axes=axes,
                    eps=eps)
    y, _, _ = _normalize_trailing(b, x, axes, eps, rms=True, stash=_stash(b, node, x))
    y = b.cast(y, x.dtype)
    return y if scale is None else b.op("ew.mul", y, scale)


@onnx_op("GroupNormalization")
def _group_norm(b: B, node: OnnxNode) -> Value:
    x, scale, bias = node.inputs[0], node.inputs[1], node.inputs[2]
    groups = node.attr("num_groups")
    c = b.shape_of(x)[1]
    eps = node.attr("epsilon", 1e-5)
    if node.opset < 21 and not dims_equal(b.shape_of(scale)[0], c):
        # Opset 18 gives one scale and bias per group: repeat them per channel.
        def per_channel(p: Value) -> Value:
            col = b.op("shape.reshape", p, shape=(groups, 1))
            wide = b.op("shape.expand", col, shape=(groups, product([c]) // groups))
            return b.op("shape.reshape", wide, shape=(c,))
        scale, bias = per_channel(scale), per_channel(bias)
    return b.op("nn.group_norm", x, scale, bias, num_groups=groups, eps=eps)


@onnx_op("LpNormalization")
def _lp_normalization(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    axis = normalize_axis(node.attr("axis", -1), b.rank_of(x), node.op_type)
    p = node.attr("p", 2)
    norm = b.op("reduce.norm", x, axes=(axis,), keepdims=True, ord=float(p))
    zero = b.scalar_like(0, x)
    safe = b.op("ew.where", b.op("ew.eq", norm, zero), b.scalar_like(1, x), norm)
    return b.op("ew.where", b.op("ew.eq", norm, zero), zero, b.op("ew.div", x, safe))
