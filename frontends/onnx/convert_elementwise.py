"""ONNX converters for elementwise ops: arithmetic, math, activations, logic, casts.

ONNX makes type promotion explicit (both operands of `Add` have one type), so these
converters rarely cast; where ONNX mixes types (Pow's exponent, BitShift, Clip's bounds)
they cast to the result type. Activations with parameters (HardSigmoid's alpha and beta,
Shrink, ThresholdedRelu) are written with `ew.*` arithmetic when no registry op has the
same parameters.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.dtypes import from_onnx
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value

B = OnnxGraphBuilder

# -- one-to-one maps ---------------------------------------------------------------------

_UNARY = {
    "Abs": "ew.abs", "Acos": "ew.acos", "Acosh": "ew.acosh", "Asin": "ew.asin",
    "Asinh": "ew.asinh", "Atan": "ew.atan", "Atanh": "ew.atanh", "Ceil": "ew.ceil",
    "Cos": "ew.cos", "Cosh": "ew.cosh", "Erf": "ew.erf", "Exp": "ew.exp", "Floor": "ew.floor",
    "Log": "ew.log", "Neg": "ew.neg", "Reciprocal": "ew.reciprocal", "Relu": "ew.relu",
    "Sigmoid": "ew.sigmoid", "Sign": "ew.sign", "Sin": "ew.sin", "Sinh": "ew.sinh",
    "Sqrt": "ew.sqrt", "Tan": "ew.tan", "Tanh": "ew.tanh", "Not": "ew.logical_not",
    "IsNaN": "ew.isnan", "BitwiseNot": "ew.bitwise_not", "HardSwish": "ew.hardswish",
    "Round": "ew.round",
}

_BINARY = {
    "Add": "ew.add", "Sub": "ew.sub", "Mul": "ew.mul", "And": "ew.logical_and",
    "Or": "ew.logical_or", "Xor": "ew.logical_xor", "BitwiseAnd": "ew.bitwise_and",
    "BitwiseOr": "ew.bitwise_or", "BitwiseXor": "ew.bitwise_xor", "Equal": "ew.eq",
    "Greater": "ew.gt", "Less": "ew.lt", "GreaterOrEqual": "ew.ge", "LessOrEqual": "ew.le",
}


def _unary(op: str):
    def convert(b: B, node: OnnxNode) -> Value:
        return b.op(op, node.inputs[0])
    return convert


def legacy_broadcast(b: B, node: OnnxNode, x: Value, y: Value) -> Value:
    """Before opset 7, `broadcast=1, axis=k` aligns `y`'s axes with `x`'s from axis k
    (not from the end, as NumPy does): give `y` trailing size-1 axes to match."""
    if node.opset >= 7 or not node.attr("broadcast", 0) or node.attr("axis") is None:
        return y
    rank_x, rank_y = b.rank_of(x), b.rank_of(y)
    axis = node.attr("axis") % max(rank_x, 1)
    trailing = rank_x - axis - rank_y
    if trailing <= 0:
        return y
    return b.op("shape.reshape", y, shape=(*b.shape_of(y), *([1] * trailing)))


def _binary(op: str):
    def convert(b: B, node: OnnxNode) -> Value:
        x, y = node.inputs[0], node.inputs[1]
        return b.op(op, x, legacy_broadcast(b, node, x, y))
    return convert


for _name, _op in _UNARY.items():
    onnx_op(_name)(_unary(_op))
for _name, _op in _BINARY.items():
    onnx_op(_name)(_binary(_op))


@onnx_op("Identity")
def _identity(b: B, node: OnnxNode) -> Value:
    return node.inputs[0]


@onnx_op("Div")
def _div(b: B, node: OnnxNode) -> Value:
    x, y = node.inputs[0], node.inputs[1]
    y = legacy_broadcast(b, node, x, y)
    # ONNX divides integers with truncation toward zero (C semantics).
    return b.op("ew.div" if x.dtype.is_float else "ew.trunc_div", x, y)


@onnx_op("Mod")
def _mod(b: B, node: OnnxNode) -> Value:
    x, y = node.inputs[0], node.inputs[1]
    return b.op("ew.fmod" if node.attr("fmod", 0) else "ew.remainder", x, y)


@onnx_op("Pow")
def _pow(b: B, node: OnnxNode) -> Value:
    x, y = node.inputs[0], node.inputs[1]
    y = legacy_broadcast(b, node, x, y)
    if y.dtype != x.dtype and not x.dtype.is_float and y.dtype.is_float:
        # An integer base with a fractional exponent: compute in float, cast back.
        return b.cast(b.op("ew.pow", b.cast(x, y.dtype), y), x.dtype)
    return b.op("ew.pow", x, b.cast(y, x.dtype))


@onnx_op("BitShift")
def _bitshift(b: B, node: OnnxNode) -> Value:
    x, y = node.inputs[0], node.inputs[1]
    direction = node.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise b.unsupported(node, f"with direction={direction!r}")
    return b.op("ew.shift_left" if direction == "LEFT" else "ew.shift_right", x, y)


def _variadic(op: str):
    def convert(b: B, node: OnnxNode) -> Value:
        xs = [x for x in node.inputs if x is not None]
        out = xs[0]
        for x in xs[1:]:
            out = b.op(op, out, x)
        return out
    return convert


onnx_op("Max")(_variadic("ew.maximum"))
onnx_op("Min")(_variadic("ew.minimum"))
onnx_op("Sum")(_variadic("ew.add"))


@onnx_op("Mean")
def _mean(b: B, node: OnnxNode) -> Value:
    xs = [x for x in node.inputs if x is not None]
    total = _variadic("ew.add")(b, node)
    return b.op("ew.div", total, b.scalar_like(len(xs), total))


@onnx_op("Where")
def _where(b: B, node: OnnxNode) -> Value:
    return b.op("ew.where", *node.inputs[:3])


@onnx_op("IsInf")
def _isinf(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    pos, neg = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    if pos and neg:
        return b.op("ew.isinf", x)
    if not pos and not neg:
        return b.op("create.full_like", x, value=0.0, dtype=DType.bool)
    inf = b.scalar_like(math.inf if pos else -math.inf, x)
    return b.op("ew.eq", x, inf)


# -- casts -------------------------------------------------------------------------------


@onnx_op("Cast")
def _cast(b: B, node: OnnxNode) -> Value:
    to = from_onnx(node.attr("to"), node.describe())
    return b.cast(node.inputs[0], to)


@onnx_op("CastLike")
def _cast_like(b: B, node: OnnxNode) -> Value:
    return b.cast(node.inputs[0], node.inputs[1].dtype)


@onnx_op("BitCast")
def _bitcast(b: B, node: OnnxNode) -> Value:
    to = from_onnx(node.attr("to"), node.describe())
    x = node.inputs[0]
    if to.itemsize != x.dtype.itemsize:
        raise b.unsupported(node, f"from {x.dtype} to {to} (sizes differ)")
    return x if to == x.dtype else b.op("ew.bitcast", x, dtype=to)


# -- activations -------------------------------------------------------------------------


@onnx_op("LeakyRelu")
def _leaky_relu(b: B, node: OnnxNode) -> Value:
    return b.op("ew.leaky_relu", node.inputs[0], negative_slope=node.attr("alpha", 0.01))


@onnx_op("Elu")
def _elu(b: B, node: OnnxNode) -> Value:
    return b.op("ew.elu", node.inputs[0], alpha=node.attr("alpha", 1.0))


@onnx_op("Selu")
def _selu(b: B, node: OnnxNode) -> Value:
    return b.op("ew.elu", node.inputs[0], alpha=node.attr("alpha", 1.67326319217681884765625),
                scale=node.attr("gamma", 1.05070102214813232421875))


@onnx_op("Celu")
def _celu(b: B, node: OnnxNode) -> Value:
    alpha = node.attr("alpha", 1.0)
    # max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) is elu with input_scale 1/alpha.
    return b.op("ew.elu", node.inputs[0], alpha=alpha, input_scale=1.0 / alpha)


@onnx_op("Gelu")
def _gelu(b: B, node: OnnxNode) -> Value:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise b.unsupported(node, f"with approximate={approximate!r}")
    return b.op("ew.gelu", node.inputs[0], approximate=approximate)


@onnx_op("Softplus")
def _softplus(b: B, node: OnnxNode) -> Value:
    return b.op("ew.softplus", node.inputs[0], beta=1.0, threshold=math.inf)


@onnx_op("Softsign")
def _softsign(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    return b.op("ew.div", x, b.op("ew.add", b.op("ew.abs", x), b.scalar_like(1, x)))


@onnx_op("HardSigmoid")
def _hard_sigmoid(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    y = b.op("ew.add", b.op("ew.mul", x, b.scalar_like(alpha, x)), b.scalar_like(beta, x))
    return b.op("ew.clamp", y, min=0.0, max=1.0)


@onnx_op("ThresholdedRelu")
def _thresholded_relu(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    keep = b.op("ew.gt", x, b.scalar_like(node.attr("alpha", 1.0), x))
    return b.op("ew.where", keep, x, b.scalar_like(0, x))


@onnx_op("Shrink")
def _shrink(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    bias, lambd = node.attr("bias", 0.0), node.attr("lambd", 0.5)
    zero = b.scalar_like(0, x)
    low = b.op("ew.where", b.op("ew.lt", x, b.scalar_like(-lambd, x)),
               b.op("ew.add", x, b.scalar_like(bias, x)), zero)
    return b.op("ew.where", b.op("ew.gt", x, b.scalar_like(lambd, x)),
                b.op("ew.sub", x, b.scalar_like(bias, x)), low)


@onnx_op("Mish")
def _mish(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    soft = b.op("ew.softplus", x, beta=1.0, threshold=math.inf)
    return b.op("ew.mul", x, b.op("ew.tanh", soft))


@onnx_op("Swish")
def _swish(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    alpha = node.attr("alpha", 1.0)
    if alpha == 1.0:
        return b.op("ew.silu", x)
    return b.op("ew.mul", x, b.op("ew.sigmoid", b.op("ew.mul", x, b.scalar_like(alpha, x))))


@onnx_op("PRelu")
def _prelu(b: B, node: OnnxNode) -> Value:
    x, slope = node.inputs[0], node.inputs[1]
    rank = b.rank_of(x)
    if node.opset < 7 and b.rank_of(slope) == 1 and rank > 2 and b.shape_of(slope)[0] != 1:
        # One slope per channel (axis 1), as PRelu's first versions broadcast it.
        slope = b.op("shape.reshape", slope, shape=(b.shape_of(slope)[0], *([1] * (rank - 2))))
    neg = b.op("ew.mul", x, slope)
    return b.op("ew.where", b.op("ew.lt", x, b.scalar_like(0, x)), neg, x)


@onnx_op("Clip", since=1)
def _clip_attrs(b: B, node: OnnxNode) -> Value:
    lo, hi = node.attr("min"), node.attr("max")
    return b.op("ew.clamp", node.inputs[0], min=lo, max=hi)


@onnx_op("Clip", since=11)
def _clip(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    lo, hi = node.input(1), node.input(2)
    bounds = [b.constant(v) for v in (lo, hi)]
    if all(v is None or (c is not None and c.dtype != object) for v, c in zip((lo, hi), bounds)):
        lo_v, hi_v = (None if c is None else np.asarray(c).reshape(()).item() for c in bounds)
        if all(v is None or _exact_in(v, x.dtype) for v in (lo_v, hi_v)):
            return b.op("ew.clamp", x, min=lo_v, max=hi_v)
    out = x
    if lo is not None:
        out = b.op("ew.maximum", out, lo)
    if hi is not None:
        # min > max gives max, as ONNX specifies (and as clamp does).
        out = b.op("ew.minimum", out, hi)
    return out


def _exact_in(value: float | int, dtype: DType) -> bool:
    """True when `value` survives a round trip through a float attribute."""
    return dtype.is_float or float(value) == value and abs(value) < 2**53


@onnx_op("Dropout")
def _dropout(b: B, node: OnnxNode) -> tuple[Value, Value | None]:
    x = node.inputs[0]
    training = node.attr("is_test", 1) == 0 if node.opset < 7 else False
    if node.opset >= 12 and node.input(2) is not None:
        training = bool(b.static_scalar(node, 2, "training_mode"))
    if training:
        ratio = node.attr("ratio", 0.5) if node.opset < 12 else (
            0.5 if node.input(1) is None else float(b.static_scalar(node, 1, "ratio")))
        if ratio != 0:
            raise b.unsupported(node, "in training mode (random masks are out of scope)")
    mask = None
    if node.has_output(1):  # the mask is bool from opset 10, of x's type before
        mask = b.op("create.full_like", x, value=1.0,
                    dtype=DType.bool if node.opset >= 10 else x.dtype)
    return x, mask
