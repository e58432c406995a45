"""Creation ops (`create.*`): tensors made from attributes, not from operand values.

`zeros`, `ones`, `empty` and `scalar_tensor` are all `create.full`; the `*_like` forms are
`create.full_like`, which takes its shape from an operand (so a symbolic shape needs no
size bindings). `create.full` and `create.arange` may have symbolic shapes (`[N, 1]`, a
position index of length `S`): their references need the sizes bound, see
`dlc.ops.shape.concrete_dims`.

Fill values and arange bounds are floats in the IR; integer results are exact up to 2**53
and saturate at the dtype's limits (so torch.iinfo(torch.int64).max survives).

ONNX's `create.range` and `create.full_dynamic` take their bounds or shape as operands
known only at run time; they are OPAQUE and run in the interpreter.

Lowering: `full` and `full_like` are computes with a constant body (inlined wherever they
are read), `arange` one whose body is `start + i * step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim
from dlc.ir.tensor.compute import Tensor, compute
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, cast, const
from dlc.ir.types import TensorType
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor
from dlc.ops.shape import concrete_dims
from dlc.ops.shape_dynamic import as_ints, dynamic_shape_op, fresh_size


def fill_value(value: float, dtype: DType) -> np.ndarray:
    """`value` as a 0-d array of `dtype` (integers saturate instead of wrapping)."""
    if dtype == DType.bool:
        return np.array(bool(value))
    if dtype.is_int:
        info = np.iinfo(dtype.numpy)
        if value >= float(info.max):
            return np.array(info.max, dtype=dtype.numpy)
        if value <= float(info.min):
            return np.array(info.min, dtype=dtype.numpy)
        return np.array(int(value), dtype=dtype.numpy)
    return np.array(value).astype(dtype.numpy)


def _constant(ctx: LowerContext, value: float, dtype: DType) -> Tensor:
    """The node's output with every element `value`, converted as the reference does."""
    fill = const(fill_value(value, dtype).item(), dtype)
    shape = ctx.out_shape()
    return compute(shape, lambda *axes: fill, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Full(OpDef):
    """A tensor of `shape` with every element `value` (zeros, ones, empty, scalar_tensor)."""

    name = "create.full"
    inputs = ()
    attrs = {"shape": Attr("dims"), "value": Attr("float"), "dtype": Attr("dtype")}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, *, shape: tuple[Dim, ...], value: float, dtype: DType) -> TensorType:
        if any(isinstance(d, int) and d < 0 for d in shape):
            raise self.error(f"shape [{', '.join(map(str, shape))}] has a negative size")
        return TensorType(shape, dtype)

    def reference(self, *, shape: tuple[Dim, ...], value: float, dtype: DType) -> np.ndarray:
        return np.full(concrete_dims(self.name, shape, "shape"), fill_value(value, dtype))

    def compute(self, ctx: LowerContext, *, shape: tuple[Dim, ...], value: float,
                dtype: DType) -> Tensor:
        return _constant(ctx, value, dtype)


@register_op
class FullLike(OpDef):
    """A tensor shaped like `x` with every element `value` (of `dtype`, default x's)."""

    name = "create.full_like"
    inputs = ("x",)
    attrs = {"value": Attr("float"), "dtype": Attr("dtype", None, optional=True)}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, value: float, dtype: DType | None) -> TensorType:
        x = tensor(x, self.name)
        return x.with_dtype(dtype or x.dtype)

    def reference(self, x: np.ndarray, *, value: float, dtype: DType | None) -> np.ndarray:
        dtype = dtype or DType.from_numpy(x.dtype)
        return np.full(x.shape, fill_value(value, dtype))

    def compute(self, ctx: LowerContext, x: Tensor, *, value: float, dtype: DType | None
                ) -> Tensor:
        return _constant(ctx, value, ctx.out_dtype())


@register_op
class Arange(OpDef):
    """`start + i * step` for i in 0 .. shape[0] - 1 (the length is given, not the end).

    Frontends turn torch's and ONNX's (start, end, step) into the length
    ceil((end - start) / step); a symbolic end gives a symbolic length (`arange(S)`).
    """

    name = "create.arange"
    inputs = ()
    attrs = {"shape": Attr("dims", doc="[length]"), "start": Attr("float", 0.0),
             "step": Attr("float", 1.0), "dtype": Attr("dtype")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, *, shape: tuple[Dim, ...], start: float, step: float,
                   dtype: DType) -> TensorType:
        if len(shape) != 1:
            raise self.error(f"shape must be [length], got [{', '.join(map(str, shape))}]")
        if isinstance(shape[0], int) and shape[0] < 0:
            raise self.error(f"length {shape[0]} is negative")
        if dtype == DType.bool:
            raise self.error("cannot count in bool; pick a number type")
        if dtype.is_int and not (float(start).is_integer() and float(step).is_integer()):
            raise self.error(f"start {start} and step {step} must be integers for {dtype}")
        return TensorType(shape, dtype)

    def reference(self, *, shape: tuple[Dim, ...], start: float, step: float,
                  dtype: DType) -> np.ndarray:
        (n,) = concrete_dims(self.name, shape, "shape")
        if dtype.is_int:  # exact integer arithmetic
            return (int(start) + np.arange(n, dtype=np.int64) * int(step)).astype(dtype.numpy)
        # torch computes start + i * step in double, then rounds once
        return (np.float64(start) + np.arange(n, dtype=np.float64) * step).astype(dtype.numpy)

    def compute(self, ctx: LowerContext, *, shape: tuple[Dim, ...], start: float, step: float,
                dtype: DType) -> Tensor:
        def body(i: Expr) -> Expr:
            if dtype.is_int:  # exact: i64 arithmetic, then wrap into dtype
                return cast(i * int(step) + int(start), dtype)
            # in f64, rounded once, as the reference (and torch) compute it
            return cast(cast(i, DType.f64) * const(step, DType.f64) + const(start, DType.f64),
                        dtype)

        return compute(ctx.out_shape(), body, ctx.name(), axis_names=ctx.axis_names(1))


# -- sizes known only at run time --------------------------------------------------------
# ONNX's Range and ConstantOfShape take their bounds or shape as operands; the
# result's length (or every size) is a new size symbol, bound when the op runs.


@register_op
class Range(OpDef):
    """`start + i * delta` while short of `limit` (ONNX Range), the bounds 0-d operands
    known at run time; the length is a new size symbol."""

    name = "create.range"
    inputs = ("start", "limit", "delta")
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, start: Any, limit: Any, delta: Any) -> TensorType:
        start = tensor(start, self.name)
        return TensorType((fresh_size("length"),), start.dtype)

    def reference(self, start: np.ndarray, limit: np.ndarray, delta: np.ndarray
                  ) -> np.ndarray:
        t = start.dtype.type
        s, lim, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
        count = int(max(np.ceil((lim - s) / d), 0)) if start.dtype.kind == "f" else \
            max(-(-(int(lim) - int(s)) // int(d)), 0)
        return (s + np.arange(count).astype(start.dtype) * t(d)).astype(start.dtype)


dynamic_shape_op(
    "create.full_dynamic", ("shape",), lambda s, **_: s.shape[0] if s.rank else 0,
    lambda s, *, value, dtype: np.full(as_ints(s), value, dtype=dtype.numpy),
    "ONNX ConstantOfShape with the shape known at run time.",
    {"value": Attr("float", 0.0), "dtype": Attr("dtype")},
    dtype=lambda s, *, value, dtype: dtype)
