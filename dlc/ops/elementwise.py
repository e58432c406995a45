"""Elementwise ops (`ew.*`): math, activations, comparisons, logic, select, clamp and cast.

Unary and binary ops are declared with the `unary` / `binary` factories: one line per op
is its whole declaration (name, reference, operand and result dtype rules, fusion kind).
Binary ops broadcast like NumPy and require equal operand dtypes: frontends insert
`ew.cast` where the source framework promotes.

References compute f16 and bf16 in f32 and round the result once, as PyTorch's CPU
kernels do ("opmath"); transcendental functions on f32 are evaluated by NumPy in f32
except `erf` (and `gelu`, which uses it), computed in f64 because NumPy has no erf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    register_op,
    same_dtype,
    tensor,
)

_LOW_PRECISION = (DType.f16.numpy, DType.bf16.numpy)


def _float_only(op: OpDef, t: TensorType) -> None:
    if not t.dtype.is_float:
        raise op.error(f"expects a floating-point operand, got {t.dtype}")


def _int_only(op: OpDef, t: TensorType) -> None:
    if t.dtype.is_float:
        raise op.error(f"expects an integer or bool operand, got {t.dtype}")


def _check_operand(op: OpDef, t: TensorType, float_only: bool, int_only: bool) -> None:
    if float_only:
        _float_only(op, t)
    if int_only:
        _int_only(op, t)


def opmath(x: np.ndarray) -> np.ndarray:
    """`x` in the precision a kernel computes in: f16 and bf16 widen to f32."""
    return x.astype(np.float32) if x.dtype in _LOW_PRECISION else x


def _class_name(name: str) -> str:
    return "".join(p.title() for p in name.split(".")[1].split("_"))


def unary(name: str, fn: Callable[..., np.ndarray], doc: str, *, float_only: bool = True,
          int_only: bool = False, result: DType | None = None,
          attrs: dict[str, Attr] | None = None) -> type[OpDef]:
    """Declare and register a unary elementwise op `name` computing `fn(x, **attrs)`.

    `result` fixes the output dtype (bool for predicates), otherwise it is the operand's.
    """

    class Unary(OpDef):
        __doc__ = doc
        inputs = ("x",)
        fusion_kind = FusionKind.ELEMENTWISE

        def infer_type(self, x: Any, **attrs: Any) -> TensorType:
            x = tensor(x, self.name)
            _check_operand(self, x, float_only, int_only)
            return x.with_dtype(result) if result else x

        def reference(self, x: np.ndarray, **attrs: Any) -> np.ndarray:
            with np.errstate(all="ignore"):  # log(-1) is NaN in torch too, not a warning
                out = np.asarray(fn(opmath(x), **attrs))
            return out.astype(result.numpy if result else x.dtype, copy=False)

    Unary.name = name
    Unary.attrs = attrs or {}
    Unary.__name__ = Unary.__qualname__ = _class_name(name)
    return register_op(Unary)


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str, *,
           result: DType | None = None, float_only: bool = False,
           int_only: bool = False) -> type[OpDef]:
    """Declare and register a broadcasting binary op; `result` fixes the output dtype
    (bool for comparisons), otherwise it is the operands' dtype."""

    class Binary(OpDef):
        __doc__ = doc
        inputs = ("a", "b")
        fusion_kind = FusionKind.BROADCAST

        def infer_type(self, a: Any, b: Any) -> TensorType:
            a, b = tensor(a, self.name), tensor(b, self.name)
            dtype = same_dtype(self.name, a, b)
            _check_operand(self, a, float_only, int_only)
            return TensorType(broadcast_shapes(self.name, a.shape, b.shape), result or dtype)

        def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):  # x / 0 is inf in torch too, not a warning
                out = np.asarray(fn(opmath(a), opmath(b)))
            return out.astype(result.numpy if result else a.dtype, copy=False)

    Binary.name = name
    Binary.__name__ = Binary.__qualname__ = _class_name(name)
    return register_op(Binary)


# -- helpers for references ------------------------------------------------------------

_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function in f64 (NumPy has none; libm's erf through `math.erf`)."""
    return _ERF(np.asarray(x, dtype=np.float64)).astype(np.float64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)); large negative x underflows to 0 as in torch."""
    return 1 / (1 + np.exp(-x))


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + np.tanh(inner))
    x64 = x.astype(np.float64)
    return 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))


def _softplus(x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    bx = x * x.dtype.type(beta)
    return np.where(bx > threshold, x, np.log1p(np.exp(bx)) / x.dtype.type(beta))


def _elu(x: np.ndarray, alpha: float, scale: float, input_scale: float) -> np.ndarray:
    t = x.dtype.type
    neg = t(alpha) * t(scale) * np.expm1(x * t(input_scale))
    return np.where(x > 0, x * t(scale), neg)


def _on_floats(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`fn` on floating-point input, the identity on integers (floor, round of an int)."""
    return lambda x, **kw: fn(x, **kw) if x.dtype.kind == "f" else x


def _round(x: np.ndarray, decimals: int) -> np.ndarray:
    # torch scales by 10**|decimals| in the operand's precision, then rounds half to even.
    if decimals == 0:
        return np.rint(x)
    scale = x.dtype.type(10.0 ** abs(decimals))
    return np.rint(x * scale) / scale if decimals > 0 else np.rint(x / scale) * scale


def _sign(x: np.ndarray) -> np.ndarray:
    # (x > 0) - (x < 0): NaN and -0.0 map to 0 as in torch (np.sign keeps NaN).
    if x.dtype == np.bool_:
        return x
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def _trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.trunc(a / b)
    q = np.floor_divide(a, b)
    # floor and trunc differ when the division is inexact and the signs differ.
    inexact = (q * b != a) & ((a < 0) != (b < 0))
    return q + inexact.astype(q.dtype)


# -- arithmetic ------------------------------------------------------------------------
binary("ew.add", np.add, "a + b, broadcasting.")
binary("ew.sub", np.subtract, "a - b, broadcasting.")
binary("ew.mul", np.multiply, "a * b, broadcasting.")
binary("ew.div", np.true_divide, "a / b, true division of floats.", float_only=True)
binary("ew.floor_div", np.floor_divide, "floor(a / b) (torch rounding_mode='floor').")
binary("ew.trunc_div", _trunc_divide, "trunc(a / b) (torch rounding_mode='trunc', C ints).")
binary("ew.remainder", np.remainder, "a mod b with the sign of b (Python's %, torch.remainder).")
binary("ew.fmod", np.fmod, "a mod b with the sign of a (C fmod, torch.fmod).")
binary("ew.pow", np.power, "a ** b.")
binary("ew.maximum", np.maximum, "max(a, b); NaN if either is NaN.")
binary("ew.minimum", np.minimum, "min(a, b); NaN if either is NaN.")
binary("ew.atan2", np.arctan2, "atan2(a, b): the angle of the point (b, a).", float_only=True)
unary("ew.neg", np.negative, "-x.", float_only=False)
unary("ew.abs", np.abs, "|x|.", float_only=False)
unary("ew.sign", _sign, "-1, 0 or 1 by the sign of x (0 for NaN).", float_only=False)
unary("ew.reciprocal", lambda x: 1 / x, "1 / x.")
unary("ew.floor", _on_floats(np.floor), "Round toward -inf (identity on integers).",
      float_only=False)
unary("ew.ceil", _on_floats(np.ceil), "Round toward +inf (identity on integers).",
      float_only=False)
unary("ew.trunc", _on_floats(np.trunc), "Round toward zero (identity on integers).",
      float_only=False)
unary("ew.round", _on_floats(_round), "Round half to even at `decimals` decimal places.",
      float_only=False, attrs={"decimals": Attr("int", 0)})

# -- exponentials, logarithms, powers --------------------------------------------------
unary("ew.exp", np.exp, "e ** x.")
unary("ew.exp2", np.exp2, "2 ** x.")
unary("ew.expm1", np.expm1, "e ** x - 1, accurate near 0.")
unary("ew.log", np.log, "Natural logarithm.")
unary("ew.log2", np.log2, "Base-2 logarithm.")
unary("ew.log10", np.log10, "Base-10 logarithm.")
unary("ew.log1p", np.log1p, "log(1 + x), accurate near 0.")
unary("ew.sqrt", np.sqrt, "Square root.")
unary("ew.rsqrt", lambda x: 1 / np.sqrt(x), "1 / sqrt(x).")
unary("ew.erf", erf, "The error function.")

# -- trigonometric and hyperbolic ------------------------------------------------------
unary("ew.sin", np.sin, "Sine.")
unary("ew.cos", np.cos, "Cosine.")
unary("ew.tan", np.tan, "Tangent.")
unary("ew.asin", np.arcsin, "Inverse sine.")
unary("ew.acos", np.arccos, "Inverse cosine.")
unary("ew.atan", np.arctan, "Inverse tangent.")
unary("ew.sinh", np.sinh, "Hyperbolic sine.")
unary("ew.cosh", np.cosh, "Hyperbolic cosine.")
unary("ew.tanh", np.tanh, "Hyperbolic tangent.")
unary("ew.asinh", np.arcsinh, "Inverse hyperbolic sine.")
unary("ew.acosh", np.arccosh, "Inverse hyperbolic cosine.")
unary("ew.atanh", np.arctanh, "Inverse hyperbolic tangent.")

# -- activations -----------------------------------------------------------------------
unary("ew.relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), "max(x, 0).",
      float_only=False)
unary("ew.sigmoid", sigmoid, "1 / (1 + exp(-x)).")
unary("ew.silu", lambda x: x * sigmoid(x), "x * sigmoid(x) (swish).")
unary("ew.gelu", _gelu, "x * Phi(x); `approximate='tanh'` uses the tanh formula.",
      attrs={"approximate": Attr("str", "none", choices=("none", "tanh"))})
unary("ew.leaky_relu", lambda x, negative_slope: np.where(x > 0, x, x * negative_slope),
      "x if x > 0 else negative_slope * x.", attrs={"negative_slope": Attr("float", 0.01)})
unary("ew.elu", _elu, "scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1)); SELU too.",
      attrs={"alpha": Attr("float", 1.0), "scale": Attr("float", 1.0),
             "input_scale": Attr("float", 1.0)})
unary("ew.hardsigmoid", lambda x: np.clip(x + 3, 0, 6) / 6, "clamp(x + 3, 0, 6) / 6.")
unary("ew.hardswish", lambda x: x * np.clip(x + 3, 0, 6) / 6, "x * clamp(x + 3, 0, 6) / 6.")
unary("ew.softplus", _softplus, "log(1 + exp(beta * x)) / beta; x where beta * x > threshold.",
      attrs={"beta": Attr("float", 1.0), "threshold": Attr("float", 20.0)})

# -- predicates, logic, bitwise --------------------------------------------------------
unary("ew.isnan", np.isnan, "x is NaN.", float_only=False, result=DType.bool)
unary("ew.isinf", np.isinf, "x is +inf or -inf.", float_only=False, result=DType.bool)
unary("ew.signbit", np.signbit, "The sign bit of x is set (true for -0.0).", float_only=False,
      result=DType.bool)
unary("ew.logical_not", np.logical_not, "x == 0.", float_only=False, result=DType.bool)
binary("ew.logical_and", np.logical_and, "a != 0 and b != 0.", result=DType.bool)
binary("ew.logical_or", np.logical_or, "a != 0 or b != 0.", result=DType.bool)
binary("ew.logical_xor", np.logical_xor, "(a != 0) != (b != 0).", result=DType.bool)
unary("ew.bitwise_not", np.invert, "~x on integers.", float_only=False, int_only=True)
binary("ew.bitwise_and", np.bitwise_and, "a & b on integers.", int_only=True)
binary("ew.bitwise_or", np.bitwise_or, "a | b on integers.", int_only=True)
binary("ew.bitwise_xor", np.bitwise_xor, "a ^ b on integers.", int_only=True)

# -- comparisons -----------------------------------------------------------------------
binary("ew.eq", np.equal, "a == b.", result=DType.bool)
binary("ew.ne", np.not_equal, "a != b.", result=DType.bool)
binary("ew.lt", np.less, "a < b.", result=DType.bool)
binary("ew.le", np.less_equal, "a <= b.", result=DType.bool)
binary("ew.gt", np.greater, "a > b.", result=DType.bool)
binary("ew.ge", np.greater_equal, "a >= b.", result=DType.bool)


@register_op
class Where(OpDef):
    """cond ? a : b, broadcasting all three operands."""

    name = "ew.where"
    inputs = ("cond", "a", "b")
    fusion_kind = FusionKind.BROADCAST

    def infer_type(self, cond: Any, a: Any, b: Any) -> TensorType:
        cond, a, b = (tensor(t, self.name) for t in (cond, a, b))
        if cond.dtype != DType.bool:
            raise self.error(f"the condition must be bool, got {cond.dtype}")
        dtype = same_dtype(self.name, a, b)
        return TensorType(broadcast_shapes(self.name, cond.shape, a.shape, b.shape), dtype)

    def reference(self, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(cond, a, b).astype(a.dtype, copy=False)


@register_op
class Clamp(OpDef):
    """min(max(x, min), max); a bound of none is absent. NaN stays NaN.

    The bounds are converted to x's dtype (frontends cast x to float first when a bound
    is fractional and x is an integer). With min > max the result is max, as in torch.
    """

    name = "ew.clamp"
    inputs = ("x",)
    attrs = {"min": Attr("float", None, optional=True),
             "max": Attr("float", None, optional=True)}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, min: float | None, max: float | None) -> TensorType:
        x = tensor(x, self.name)
        if x.dtype == DType.bool:
            raise self.error("cannot clamp a bool tensor")
        return x

    def reference(self, x: np.ndarray, *, min: float | None, max: float | None) -> np.ndarray:
        out = opmath(x)
        for bound, fn in ((min, np.maximum), (max, np.minimum)):
            if bound is not None:  # rounded to x's dtype first, as torch converts the scalar
                out = fn(out, np.asarray(bound).astype(x.dtype).astype(out.dtype))
        return out.astype(x.dtype, copy=False)


@register_op
class Cast(OpDef):
    """Convert the element type (C semantics: floats truncate toward zero into integers)."""

    name = "ew.cast"
    inputs = ("x",)
    attrs = {"dtype": Attr("dtype")}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, dtype: DType) -> TensorType:
        return tensor(x, self.name).with_dtype(dtype)

    def reference(self, x: np.ndarray, *, dtype: DType) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # NaN -> int is undefined in C and in torch
            return x.astype(dtype.numpy)
