"""Elementwise ops (`ew.*`): math, activations, comparisons, logic, bit operations, select,
clamp, cast and bitcast.

Unary and binary ops are declared with the `unary` / `binary` factories: one line per op
is its whole declaration (name, reference, operand and result dtype rules, fusion kind).
Binary ops broadcast like NumPy and require equal operand dtypes: frontends insert
`ew.cast` where the source framework promotes.

References compute f16 and bf16 in f32 and round the result once, as PyTorch's CPU
kernels do ("opmath"); transcendental functions on f32 are evaluated by NumPy in f32
except `erf` (and `gelu`, which uses it), computed in f64 because NumPy has no erf.

Each declaration also gives the op's lowering: `lower=` is the same function written on
tensor-IR expressions (`dlc.ir.tensor.expr`), receiving f16/bf16 elements widened to f32
just as the reference does, so the compiled kernel rounds where the reference rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import Tensor
from dlc.ir.tensor.context import LowerContext, elementwise
from dlc.ir.tensor.expr import (
    Expr,
    call,
    cast,
    compare,
    const,
    div,
    floordiv,
    logical,
    max_,
    min_,
    mod,
    select,
)
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    register_op,
    same_dtype,
    tensor,
)


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


Lowering = Callable[..., Expr]  # tensor-IR elements (and the op's attributes) -> element


def pointwise(lower: Lowering) -> Callable[..., Tensor]:
    """An op's `compute`: `lower` applied to its (broadcast, widened) operand elements,
    cast to the output dtype once."""

    def compute(self: OpDef, ctx: LowerContext, *xs: Tensor, **attrs: Any) -> Tensor:
        return elementwise(ctx, lambda *vs: lower(*map(widen, vs), **attrs), *xs)

    return compute


def _class_name(name: str) -> str:
    return "".join(p.title() for p in name.split(".")[1].split("_"))


def unary(name: str, fn: Callable[..., np.ndarray], doc: str, *, float_only: bool = True,
          int_only: bool = False, result: DType | None = None,
          attrs: dict[str, Attr] | None = None, lower: Lowering | None = None
          ) -> type[OpDef]:
    """Declare and register a unary elementwise op `name` computing `fn(x, **attrs)`.

    `result` fixes the output dtype (bool for predicates), otherwise it is the operand's.
    `lower(x, **attrs)` is the same function on a tensor-IR element (the op's compute).
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
    if lower is not None:
        Unary.compute = pointwise(lower)
    Unary.__name__ = Unary.__qualname__ = _class_name(name)
    return register_op(Unary)


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str, *,
           result: DType | None = None, float_only: bool = False,
           int_only: bool = False, lower: Lowering | None = None) -> type[OpDef]:
    """Declare and register a broadcasting binary op; `result` fixes the output dtype
    (bool for comparisons), otherwise it is the operands' dtype. `lower(a, b)` is the
    same function on tensor-IR elements (the op's compute)."""

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
    if lower is not None:
        Binary.compute = pointwise(lower)
    Binary.__name__ = Binary.__qualname__ = _class_name(name)
    return register_op(Binary)


# -- helpers for references --------------------------------------------------------------

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


def _shift_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits = a.dtype.itemsize * 8
    out = np.left_shift(a, np.minimum(b, bits - 1).astype(a.dtype))
    return np.where(b >= bits, np.zeros((), a.dtype), out)  # every bit shifted out


def _shift_right(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits = a.dtype.itemsize * 8
    out = np.right_shift(a, np.minimum(b, bits - 1).astype(a.dtype))
    if a.dtype.kind == "i":
        return out  # arithmetic: a shift by the width or more leaves the sign (0 or -1)
    return np.where(b >= bits, np.zeros((), a.dtype), out)


# -- helpers for lowerings (tensor-IR twins of the references above) ---------------------


def _intrinsic(name: str) -> Lowering:
    return lambda *xs: call(name, *xs)


def _if_float(lower: Lowering) -> Lowering:
    """`lower` on floating-point elements, the identity on integers (like `_on_floats`)."""
    return lambda x, **kw: lower(x, **kw) if x.dtype.is_float else x


def _truth(x: Expr) -> Expr:
    """x != 0 as a bool (NaN is true, as in NumPy)."""
    return x if x.dtype == DType.bool else compare("ne", x, 0)


def _differ(p: Expr, q: Expr) -> Expr:
    return compare("ne", p, q)


def _add(a: Expr, b: Expr) -> Expr:
    return logical("or", a, b) if a.dtype == DType.bool else a + b  # NumPy: bool + is or


def _mul(a: Expr, b: Expr) -> Expr:
    return logical("and", a, b) if a.dtype == DType.bool else a * b


def _neg(x: Expr) -> Expr:
    return x * -1 if x.dtype.is_float else -x  # x * -1 flips the sign of 0.0 and NaN too


def _safe_divisor(b: Expr) -> Expr:
    """b with 0 (and -1, when signed) replaced by 1: x86 traps on x / 0 and INT_MIN / -1,
    where NumPy gives 0 and wraps; the callers patch those lanes."""
    bad = compare("eq", b, 0)
    if b.dtype.is_signed:
        bad = logical("or", bad, compare("eq", b, -1))
    return select(bad, 1, b)


def _np_divmod(a: Expr, b: Expr) -> tuple[Expr, Expr]:
    """NumPy's float floor division and remainder (`npy_divmod`): fmod, moved to the
    divisor's sign, and a quotient snapped to the nearest integer; x / 0 gives a / b."""
    # Written to mention each operand few times: codegen emits a shared subexpression once
    # per use, so the size of a fused chain of these multiplies.
    m = mod(a, b)  # fmod on floats; NaN when b == 0, and then `fix` is false
    fix = logical("and", compare("ne", m, 0), _differ(compare("lt", b, 0), compare("lt", m, 0)))
    one, zero = const(1, a.dtype), const(0, a.dtype)
    quotient = (a - m) / b - select(fix, one, zero)
    floor = call("floor", quotient)
    snapped = floor + select(compare("gt", quotient - floor, 0.5), one, zero)
    return select(compare("eq", b, 0), a / b, snapped), select(fix, m + b, m)


def _floor_div(a: Expr, b: Expr) -> Expr:
    if a.dtype.is_float:
        return _np_divmod(a, b)[0]
    q = floordiv(a, _safe_divisor(b))
    if a.dtype.is_signed:
        q = select(compare("eq", b, -1), -a, q)
    return select(compare("eq", b, 0), 0, q)


def _trunc_div(a: Expr, b: Expr) -> Expr:
    if a.dtype.is_float:
        return call("trunc", a / b)
    q = _floor_div(a, b)
    if not a.dtype.is_signed:
        return q
    inexact = logical("and", compare("ne", q * b, a),
                      _differ(compare("lt", a, 0), compare("lt", b, 0)))
    return q + cast(inexact, a.dtype)


def _remainder(a: Expr, b: Expr) -> Expr:
    if a.dtype.is_float:
        return _np_divmod(a, b)[1]
    return mod(a, _safe_divisor(b))  # x % 0 and x % -1 are 0, as x % 1


def _fmod(a: Expr, b: Expr) -> Expr:
    if a.dtype.is_float:
        return mod(a, b)  # C fmod
    r = mod(a, _safe_divisor(b))  # the sign of b; C's remainder has the sign of a
    if not a.dtype.is_signed:
        return r
    return select(logical("and", compare("ne", r, 0),
                          _differ(compare("lt", r, 0), compare("lt", a, 0))), r - b, r)


def _abs_expr(x: Expr) -> Expr:
    return call("abs", x) if x.dtype.is_signed else x  # floats count as signed


def _sign_expr(x: Expr) -> Expr:
    if x.dtype == DType.bool:
        return x
    zero, one = const(0, x.dtype), const(1, x.dtype)
    below = select(compare("lt", x, 0), const(-1, x.dtype), zero) if x.dtype.is_signed else zero
    return select(compare("gt", x, 0), one, below)  # NaN fails both tests: 0


def _round_expr(x: Expr, decimals: int) -> Expr:
    if decimals == 0:
        return call("round", x)
    scale = float(x.dtype.numpy.type(10.0 ** abs(decimals)))
    if decimals > 0:
        return call("round", x * scale) / scale
    return call("round", x / scale) * scale


def _erf_dtype(x: Expr) -> DType:
    """f64 stays f64; every narrower float computes erf in f32, where the backend has an
    inline polynomial (backends/llvm/vmath.py, ~2 ulp) instead of a libm call per lane."""
    return DType.f64 if x.dtype == DType.f64 else DType.f32


def _erf_expr(x: Expr) -> Expr:
    return call("erf", cast(x, _erf_dtype(x)))


def _gelu_expr(x: Expr, approximate: str) -> Expr:
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + call("tanh", inner))
    xw = cast(x, _erf_dtype(x))
    return 0.5 * xw * (1 + call("erf", xw * (1 / math.sqrt(2))))


def _softplus_expr(x: Expr, beta: float, threshold: float) -> Expr:
    bx = x * beta
    return select(compare("gt", bx, threshold), x, call("log1p", call("exp", bx)) / beta)


def _elu_expr(x: Expr, alpha: float, scale: float, input_scale: float) -> Expr:
    t = x.dtype.numpy.type
    neg = float(t(alpha) * t(scale)) * call("expm1", x * input_scale)
    return select(compare("gt", x, 0), x * scale, neg)


def _hardsigmoid_expr(x: Expr) -> Expr:
    return min_(max_(x + 3, 0), 6) / 6  # max_/min_ propagate NaN, as np.clip


def _relu_expr(x: Expr) -> Expr:
    return x if x.dtype == DType.bool else max_(x, 0)


def _isnan_expr(x: Expr) -> Expr:
    return call("isnan", x) if x.dtype.is_float else const(False)


def _isinf_expr(x: Expr) -> Expr:
    return call("isinf", x) if x.dtype.is_float else const(False)


def _signbit_expr(x: Expr) -> Expr:
    if x.dtype.is_float:
        return call("signbit", x)
    return compare("lt", x, 0) if x.dtype.is_signed else const(False)


def _bitwise(name: str, logic: str) -> Lowering:
    def lower(a: Expr, b: Expr) -> Expr:
        if a.dtype != DType.bool:
            return call(name, a, b)
        return _differ(a, b) if logic == "xor" else logical(logic, a, b)

    return lower


def _bitwise_not(x: Expr) -> Expr:
    if x.dtype == DType.bool:
        return logical("not", x)
    ones = -1 if x.dtype.is_signed else int(np.iinfo(x.dtype.numpy).max)
    return call("bitwise_xor", x, const(ones, x.dtype))


def _compare(op: str) -> Lowering:
    return lambda a, b: compare(op, a, b)


# -- arithmetic --------------------------------------------------------------------------
binary("ew.add", np.add, "a + b, broadcasting.", lower=_add)
binary("ew.sub", np.subtract, "a - b, broadcasting.", lower=lambda a, b: a - b)
binary("ew.mul", np.multiply, "a * b, broadcasting.", lower=_mul)
binary("ew.div", np.true_divide, "a / b, true division of floats.", float_only=True, lower=div)
binary("ew.floor_div", np.floor_divide, "floor(a / b) (torch rounding_mode='floor').",
       lower=_floor_div)
binary("ew.trunc_div", _trunc_divide, "trunc(a / b) (torch rounding_mode='trunc', C ints).",
       lower=_trunc_div)
binary("ew.remainder", np.remainder, "a mod b with the sign of b (Python's %, torch.remainder).",
       lower=_remainder)
binary("ew.fmod", np.fmod, "a mod b with the sign of a (C fmod, torch.fmod).", lower=_fmod)
binary("ew.pow", np.power, "a ** b.", lower=_intrinsic("pow"))
binary("ew.maximum", np.maximum, "max(a, b); NaN if either is NaN.", lower=max_)
binary("ew.minimum", np.minimum, "min(a, b); NaN if either is NaN.", lower=min_)
binary("ew.atan2", np.arctan2, "atan2(a, b): the angle of the point (b, a).", float_only=True,
       lower=_intrinsic("atan2"))
unary("ew.neg", np.negative, "-x.", float_only=False, lower=_neg)
unary("ew.abs", np.abs, "|x|.", float_only=False, lower=_abs_expr)
unary("ew.sign", _sign, "-1, 0 or 1 by the sign of x (0 for NaN).", float_only=False,
      lower=_sign_expr)
unary("ew.reciprocal", lambda x: 1 / x, "1 / x.", lower=lambda x: div(1, x))
unary("ew.floor", _on_floats(np.floor), "Round toward -inf (identity on integers).",
      float_only=False, lower=_if_float(_intrinsic("floor")))
unary("ew.ceil", _on_floats(np.ceil), "Round toward +inf (identity on integers).",
      float_only=False, lower=_if_float(_intrinsic("ceil")))
unary("ew.trunc", _on_floats(np.trunc), "Round toward zero (identity on integers).",
      float_only=False, lower=_if_float(_intrinsic("trunc")))
unary("ew.round", _on_floats(_round), "Round half to even at `decimals` decimal places.",
      float_only=False, attrs={"decimals": Attr("int", 0)}, lower=_if_float(_round_expr))

# -- exponentials, logarithms, powers ----------------------------------------------------
unary("ew.exp", np.exp, "e ** x.", lower=_intrinsic("exp"))
unary("ew.exp2", np.exp2, "2 ** x.", lower=_intrinsic("exp2"))
unary("ew.expm1", np.expm1, "e ** x - 1, accurate near 0.", lower=_intrinsic("expm1"))
unary("ew.log", np.log, "Natural logarithm.", lower=_intrinsic("log"))
unary("ew.log2", np.log2, "Base-2 logarithm.", lower=_intrinsic("log2"))
unary("ew.log10", np.log10, "Base-10 logarithm.", lower=_intrinsic("log10"))
unary("ew.log1p", np.log1p, "log(1 + x), accurate near 0.", lower=_intrinsic("log1p"))
unary("ew.sqrt", np.sqrt, "Square root.", lower=_intrinsic("sqrt"))
unary("ew.rsqrt", lambda x: 1 / np.sqrt(x), "1 / sqrt(x).", lower=_intrinsic("rsqrt"))
unary("ew.erf", erf, "The error function.", lower=_erf_expr)

# -- trigonometric and hyperbolic --------------------------------------------------------
unary("ew.sin", np.sin, "Sine.", lower=_intrinsic("sin"))
unary("ew.cos", np.cos, "Cosine.", lower=_intrinsic("cos"))
unary("ew.tan", np.tan, "Tangent.", lower=_intrinsic("tan"))
unary("ew.asin", np.arcsin, "Inverse sine.", lower=_intrinsic("asin"))
unary("ew.acos", np.arccos, "Inverse cosine.", lower=_intrinsic("acos"))
unary("ew.atan", np.arctan, "Inverse tangent.", lower=_intrinsic("atan"))
unary("ew.sinh", np.sinh, "Hyperbolic sine.", lower=_intrinsic("sinh"))
unary("ew.cosh", np.cosh, "Hyperbolic cosine.", lower=_intrinsic("cosh"))
unary("ew.tanh", np.tanh, "Hyperbolic tangent.", lower=_intrinsic("tanh"))
unary("ew.asinh", np.arcsinh, "Inverse hyperbolic sine.", lower=_intrinsic("asinh"))
unary("ew.acosh", np.arccosh, "Inverse hyperbolic cosine.", lower=_intrinsic("acosh"))
unary("ew.atanh", np.arctanh, "Inverse hyperbolic tangent.", lower=_intrinsic("atanh"))

# -- activations -------------------------------------------------------------------------
unary("ew.relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), "max(x, 0).",
      float_only=False, lower=_relu_expr)
unary("ew.sigmoid", sigmoid, "1 / (1 + exp(-x)).", lower=_intrinsic("sigmoid"))
unary("ew.silu", lambda x: x * sigmoid(x), "x * sigmoid(x) (swish).",
      lower=lambda x: x * call("sigmoid", x))
unary("ew.gelu", _gelu, "x * Phi(x); `approximate='tanh'` uses the tanh formula.",
      attrs={"approximate": Attr("str", "none", choices=("none", "tanh"))}, lower=_gelu_expr)
unary("ew.leaky_relu", lambda x, negative_slope: np.where(x > 0, x, x * negative_slope),
      "x if x > 0 else negative_slope * x.", attrs={"negative_slope": Attr("float", 0.01)},
      lower=lambda x, negative_slope: select(compare("gt", x, 0), x, x * negative_slope))
unary("ew.elu", _elu, "scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1)); SELU too.",
      attrs={"alpha": Attr("float", 1.0), "scale": Attr("float", 1.0),
             "input_scale": Attr("float", 1.0)}, lower=_elu_expr)
unary("ew.hardsigmoid", lambda x: np.clip(x + 3, 0, 6) / 6, "clamp(x + 3, 0, 6) / 6.",
      lower=_hardsigmoid_expr)
unary("ew.hardswish", lambda x: x * np.clip(x + 3, 0, 6) / 6, "x * clamp(x + 3, 0, 6) / 6.",
      lower=lambda x: x * min_(max_(x + 3, 0), 6) / 6)
unary("ew.softplus", _softplus, "log(1 + exp(beta * x)) / beta; x where beta * x > threshold.",
      attrs={"beta": Attr("float", 1.0), "threshold": Attr("float", 20.0)},
      lower=_softplus_expr)

# -- predicates, logic, bitwise ----------------------------------------------------------
unary("ew.isnan", np.isnan, "x is NaN.", float_only=False, result=DType.bool,
      lower=_isnan_expr)
unary("ew.isinf", np.isinf, "x is +inf or -inf.", float_only=False, result=DType.bool,
      lower=_isinf_expr)
unary("ew.signbit", np.signbit, "The sign bit of x is set (true for -0.0).", float_only=False,
      result=DType.bool, lower=_signbit_expr)
unary("ew.logical_not", np.logical_not, "x == 0.", float_only=False, result=DType.bool,
      lower=lambda x: logical("not", _truth(x)))
binary("ew.logical_and", np.logical_and, "a != 0 and b != 0.", result=DType.bool,
       lower=lambda a, b: logical("and", _truth(a), _truth(b)))
binary("ew.logical_or", np.logical_or, "a != 0 or b != 0.", result=DType.bool,
       lower=lambda a, b: logical("or", _truth(a), _truth(b)))
binary("ew.logical_xor", np.logical_xor, "(a != 0) != (b != 0).", result=DType.bool,
       lower=lambda a, b: _differ(_truth(a), _truth(b)))
unary("ew.bitwise_not", np.invert, "~x on integers.", float_only=False, int_only=True,
      lower=_bitwise_not)
binary("ew.bitwise_and", np.bitwise_and, "a & b on integers.", int_only=True,
       lower=_bitwise("bitwise_and", "and"))
binary("ew.bitwise_or", np.bitwise_or, "a | b on integers.", int_only=True,
       lower=_bitwise("bitwise_or", "or"))
binary("ew.bitwise_xor", np.bitwise_xor, "a ^ b on integers.", int_only=True,
       lower=_bitwise("bitwise_xor", "xor"))
binary("ew.shift_left", _shift_left, "a << b on integers (0 once b >= the width).",
       int_only=True)
binary("ew.shift_right", _shift_right,
       "a >> b on integers: arithmetic for signed types (the sign fills in once b >= the "
       "width), logical for unsigned (0 once b >= the width).", int_only=True)

# -- comparisons -------------------------------------------------------------------------
binary("ew.eq", np.equal, "a == b.", result=DType.bool, lower=_compare("eq"))
binary("ew.ne", np.not_equal, "a != b.", result=DType.bool, lower=_compare("ne"))
binary("ew.lt", np.less, "a < b.", result=DType.bool, lower=_compare("lt"))
binary("ew.le", np.less_equal, "a <= b.", result=DType.bool, lower=_compare("le"))
binary("ew.gt", np.greater, "a > b.", result=DType.bool, lower=_compare("gt"))
binary("ew.ge", np.greater_equal, "a >= b.", result=DType.bool, lower=_compare("ge"))


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

    def compute(self, ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return elementwise(ctx, select, cond, a, b)


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

    def compute(self, ctx: LowerContext, x: Tensor, *, min: float | None,
                max: float | None) -> Tensor:
        bounds = []
        for bound, fn in ((min, max_), (max, min_)):
            if bound is not None:
                with np.errstate(invalid="ignore"):  # as the reference converts the scalar
                    bounds.append((fn, np.asarray(bound).astype(x.dtype.numpy)[()]))

        def clamp(v: Expr) -> Expr:
            v = widen(v)
            for fn, bound in bounds:
                v = fn(v, const(bound, v.dtype))
            return v

        return elementwise(ctx, clamp, x)


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

    def compute(self, ctx: LowerContext, x: Tensor, *, dtype: DType) -> Tensor:
        def convert(v: Expr) -> Expr:
            # float -> narrow unsigned goes through i64, as x86 NumPy does (-2.7 -> 254);
            # a direct conversion of a negative float is poison in LLVM.
            if v.dtype.is_float and dtype in (DType.u8, DType.u16, DType.u32):
                return cast(v, DType.i64)
            return v

        return elementwise(ctx, convert, x)  # elementwise casts to `dtype`


@register_op
class Bitcast(OpDef):
    """Reinterpret the bits of each element as `dtype` (of the same width)."""

    name = "ew.bitcast"
    inputs = ("x",)
    attrs = {"dtype": Attr("dtype")}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, dtype: DType) -> TensorType:
        x = tensor(x, self.name)
        if x.dtype.itemsize != dtype.itemsize:
            raise self.error(f"cannot reinterpret {x.dtype} as {dtype}: widths differ")
        return x.with_dtype(dtype)

    def reference(self, x: np.ndarray, *, dtype: DType) -> np.ndarray:
        out = x.copy().view(dtype.numpy)
        return out if dtype != DType.bool else out != 0
