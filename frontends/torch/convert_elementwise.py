"""ATen converters for elementwise ops: arithmetic, math, activations, comparisons, casts.

Torch promotes operand dtypes implicitly; the converters make it explicit with
`b.promote` so every registry op sees operands of one dtype. Arithmetic computes in the
node's output dtype (`b.out_dtype(node)`); comparisons compute in torch's result type of
their operands (`_common_dtype`), since their output is bool.
"""

from __future__ import annotations

from typing import Any

from dlc.errors import FrontendError
from dlc.frontends.torch.builder import torch_dtype
from dlc.frontends.torch.registry import torch_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value

Operand = Value | float | int | bool


def operands(b: Any, node: Any, dtype: DType, *xs: Any) -> list[Value]:
    """`xs` as Values of `dtype`, refusing size-dependent scalars with a clear message."""
    for x in xs:
        if not isinstance(x, (Value, int, float, bool)):
            raise FrontendError(
                f"{node.target} ({node.name}) has the operand {x}, a scalar computed from "
                "tensor sizes; dlc cannot use a symbolic size as a tensor value yet. Export "
                "with a static size for that dimension, or compute it from a tensor.")
    return b.promote(dtype, *xs)


def _common_dtype(node: Any, n: int = 2) -> DType:
    """torch's result type of the node's first `n` operands (tensors and Python scalars)."""
    import torch

    vals = [a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in node.args[:n]]
    return torch_dtype(torch.result_type(*vals))


# -- arithmetic ------------------------------------------------------------------------


def _binary(op: str) -> Any:
    def convert(b: Any, node: Any, x: Operand, y: Operand, alpha: Any = 1) -> Value:
        dtype = b.out_dtype(node)
        x, y = operands(b, node, dtype, x, y)
        if alpha != 1:
            y = b.op("ew.mul", y, b.as_value(alpha, dtype))
        return b.op(op, x, y)

    return convert


torch_op("aten.add.Tensor", "aten.add.Scalar")(_binary("ew.add"))
torch_op("aten.sub.Tensor", "aten.sub.Scalar")(_binary("ew.sub"))
torch_op("aten.mul.Tensor", "aten.mul.Scalar")(_binary("ew.mul"))
torch_op("aten.div.Tensor", "aten.div.Scalar")(_binary("ew.div"))
torch_op("aten.pow.Tensor_Tensor", "aten.pow.Tensor_Scalar", "aten.pow.Scalar")(
    _binary("ew.pow"))
torch_op("aten.maximum.default")(_binary("ew.maximum"))
torch_op("aten.minimum.default")(_binary("ew.minimum"))
torch_op("aten.remainder.Tensor", "aten.remainder.Scalar")(_binary("ew.remainder"))
torch_op("aten.fmod.Tensor", "aten.fmod.Scalar")(_binary("ew.fmod"))
torch_op("aten.atan2.default")(_binary("ew.atan2"))


@torch_op("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div_mode(b: Any, node: Any, x: Operand, y: Operand, *,
              rounding_mode: str | None = None) -> Value:
    dtype = b.out_dtype(node)
    x, y = operands(b, node, dtype, x, y)
    op = {None: "ew.div", "floor": "ew.floor_div", "trunc": "ew.trunc_div"}[rounding_mode]
    return b.op(op, x, y)


# -- unary math and activations --------------------------------------------------------


def _unary(op: str) -> Any:
    # Torch computes integer inputs of float functions (exp of an int) in the default
    # float dtype: the output dtype says which.
    def convert(b: Any, node: Any, x: Value) -> Value:
        return b.op(op, b.cast(x, b.out_dtype(node)))

    return convert


_UNARY = {
    "neg": "ew.neg", "abs": "ew.abs", "sign": "ew.sign", "sgn": "ew.sign",
    "reciprocal": "ew.reciprocal", "floor": "ew.floor", "ceil": "ew.ceil", "trunc": "ew.trunc",
    "round": "ew.round", "exp": "ew.exp", "exp2": "ew.exp2", "expm1": "ew.expm1",
    "log": "ew.log", "log2": "ew.log2", "log10": "ew.log10", "log1p": "ew.log1p",
    "sqrt": "ew.sqrt", "rsqrt": "ew.rsqrt", "erf": "ew.erf", "sin": "ew.sin", "cos": "ew.cos",
    "tan": "ew.tan", "asin": "ew.asin", "acos": "ew.acos", "atan": "ew.atan",
    "sinh": "ew.sinh", "cosh": "ew.cosh", "tanh": "ew.tanh", "asinh": "ew.asinh",
    "acosh": "ew.acosh", "atanh": "ew.atanh", "relu": "ew.relu", "sigmoid": "ew.sigmoid",
    "silu": "ew.silu", "hardswish": "ew.hardswish", "hardsigmoid": "ew.hardsigmoid",
}
for _aten, _op in _UNARY.items():
    torch_op(f"aten.{_aten}.default")(_unary(_op))


@torch_op("aten.round.decimals")
def _round_decimals(b: Any, node: Any, x: Value, *, decimals: int = 0) -> Value:
    return b.op("ew.round", x, decimals=decimals)


@torch_op("aten.gelu.default")
def _gelu(b: Any, node: Any, x: Value, *, approximate: str = "none") -> Value:
    return b.op("ew.gelu", x, approximate=approximate)


@torch_op("aten.leaky_relu.default")
def _leaky_relu(b: Any, node: Any, x: Value, negative_slope: float = 0.01) -> Value:
    return b.op("ew.leaky_relu", x, negative_slope=negative_slope)


@torch_op("aten.elu.default")
def _elu(b: Any, node: Any, x: Value, alpha: float = 1.0, scale: float = 1.0,
         input_scale: float = 1.0) -> Value:
    return b.op("ew.elu", x, alpha=alpha, scale=scale, input_scale=input_scale)


@torch_op("aten.softplus.default")
def _softplus(b: Any, node: Any, x: Value, beta: float = 1.0, threshold: float = 20.0
              ) -> Value:
    return b.op("ew.softplus", x, beta=beta, threshold=threshold)


@torch_op("aten.clamp.default")
def _clamp(b: Any, node: Any, x: Value, min: Any = None, max: Any = None) -> Value:
    # An int tensor clamped to a float bound is a float result: cast x first.
    return b.op("ew.clamp", b.cast(x, b.out_dtype(node)), min=min, max=max)


@torch_op("aten.hardtanh.default")
def _hardtanh(b: Any, node: Any, x: Value, min_val: float = -1.0, max_val: float = 1.0
              ) -> Value:
    return b.op("ew.clamp", x, min=min_val, max=max_val)


@torch_op("aten.clamp.Tensor")
def _clamp_tensor(b: Any, node: Any, x: Value, min: Value | None = None,
                  max: Value | None = None) -> Value:
    dtype = b.out_dtype(node)
    out = b.cast(x, dtype)
    if min is not None:
        out = b.op("ew.maximum", out, b.cast(min, dtype))
    if max is not None:
        out = b.op("ew.minimum", out, b.cast(max, dtype))
    return out


# -- predicates, logic, bitwise --------------------------------------------------------


def _predicate(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value) -> Value:
        return b.op(op, x)

    return convert


torch_op("aten.isnan.default")(_predicate("ew.isnan"))
torch_op("aten.isinf.default")(_predicate("ew.isinf"))
torch_op("aten.signbit.default")(_predicate("ew.signbit"))
torch_op("aten.logical_not.default")(_predicate("ew.logical_not"))


def _logical(op: str) -> Any:
    # Logical ops read any dtype as "nonzero": a cast to bool says exactly that.
    def convert(b: Any, node: Any, x: Operand, y: Operand) -> Value:
        return b.op(op, *operands(b, node, DType.bool, x, y))

    return convert


torch_op("aten.logical_and.default")(_logical("ew.logical_and"))
torch_op("aten.logical_or.default")(_logical("ew.logical_or"))
torch_op("aten.logical_xor.default")(_logical("ew.logical_xor"))


def _bitwise(op: str, on_bool: str) -> Any:
    # On bool, bitwise and logical ops agree; the logical form is what passes look for.
    def convert(b: Any, node: Any, x: Operand, y: Operand) -> Value:
        dtype = b.out_dtype(node)
        return b.op(on_bool if dtype == DType.bool else op, *operands(b, node, dtype, x, y))

    return convert


torch_op("aten.bitwise_and.Tensor", "aten.bitwise_and.Scalar")(
    _bitwise("ew.bitwise_and", "ew.logical_and"))
torch_op("aten.bitwise_or.Tensor", "aten.bitwise_or.Scalar")(
    _bitwise("ew.bitwise_or", "ew.logical_or"))
torch_op("aten.bitwise_xor.Tensor", "aten.bitwise_xor.Scalar")(
    _bitwise("ew.bitwise_xor", "ew.logical_xor"))


@torch_op("aten.bitwise_not.default")
def _bitwise_not(b: Any, node: Any, x: Value) -> Value:
    return b.op("ew.logical_not" if x.dtype == DType.bool else "ew.bitwise_not", x)


# -- comparisons and select ------------------------------------------------------------


def _compare(op: str) -> Any:
    def convert(b: Any, node: Any, x: Operand, y: Operand) -> Value:
        return b.op(op, *operands(b, node, _common_dtype(node), x, y))

    return convert


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    torch_op(f"aten.{_name}.Tensor", f"aten.{_name}.Scalar")(_compare(f"ew.{_name}"))


@torch_op("aten.where.self")
def _where(b: Any, node: Any, cond: Value, x: Operand, y: Operand) -> Value:
    x, y = operands(b, node, b.out_dtype(node), x, y)
    return b.op("ew.where", b.cast(cond, DType.bool), x, y)


@torch_op("aten.scalar_tensor.default")
def _scalar_tensor(b: Any, node: Any, value: Any, **_: Any) -> Value:
    (value,) = operands(b, node, b.out_dtype(node), value)
    return value


# -- dtype conversions -----------------------------------------------------------------


@torch_op("aten._to_copy.default")
def _to_copy(b: Any, node: Any, x: Value, **_: Any) -> Value:
    # Device, layout and memory-format changes are no-ops for dlc; only the dtype counts.
    return b.cast(x, b.out_dtype(node))


@torch_op("aten.to.dtype")
def _to_dtype(b: Any, node: Any, x: Value, dtype: Any, *_: Any, **__: Any) -> Value:
    return b.cast(x, b.out_dtype(node))


@torch_op("aten._assert_tensor_metadata.default")
def _assert_metadata(b: Any, node: Any, *_: Any, **__: Any) -> None:
    # torch.export's check that an input of `.to()` has the traced dtype; the graph's
    # types already guarantee it, so it produces nothing.
    return None
