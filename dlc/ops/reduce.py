"""Reductions (`reduce.*`): sum, mean, prod, max, min, any, var, norm, arg-max/min, scans, topk.

Reductions over a set of axes take `axes` (none reduces every axis; an empty tuple reduces
none) and `keepdims` (reduced axes stay as size 1), and are declared with the `reduction`
factory. Their result dtype is the operand's: a frontend that accumulates in a wider type
(torch sums integers into i64) casts the operand first.

References accumulate f16 and bf16 in f32 and round the result once, as torch's CPU
kernels do; `var` and `norm` accumulate every float type in f64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType
from dlc.ops.elementwise import opmath
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    normalize_axes,
    normalize_axis,
    register_op,
    tensor,
)

_AXES = Attr("ints", None, optional=True, doc="axes to reduce; none means all, () none")
_KEEPDIMS = Attr("bool", False, doc="keep reduced axes as size 1")


def reduced_shape(x: TensorType, axes: Sequence[int] | None, keepdims: bool,
                  op: str) -> tuple[Dim, ...]:
    """The shape of `x` reduced over `axes` (none: all), symbolic sizes kept."""
    axes = normalize_axes(axes, x.rank, op)
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _np_axes(axes: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    # A rank-0 operand accepts axis 0 / -1 (as torch does) but NumPy has no axis to name.
    if axes is None:
        return tuple(range(ndim))
    return tuple(sorted({a % ndim for a in axes})) if ndim else ()


def reduction(name: str, fn: Callable[..., np.ndarray], doc: str, *, float_only: bool = False,
              result: DType | None = None, attrs: dict[str, Attr] | None = None
              ) -> type[OpDef]:
    """Declare and register a reduction `fn(x, axis=..., keepdims=..., **attrs)` over `axes`.

    `result` fixes the output dtype (bool for `any`), otherwise it is the operand's.
    """

    class Reduction(OpDef):
        __doc__ = doc
        inputs = ("x",)
        fusion_kind = FusionKind.REDUCTION

        def infer_type(self, x: Any, *, axes: tuple[int, ...] | None, keepdims: bool,
                       **attrs: Any) -> TensorType:
            x = tensor(x, self.name)
            if float_only and not x.dtype.is_float:
                raise self.error(f"expects a floating-point operand, got {x.dtype}")
            return TensorType(reduced_shape(x, axes, keepdims, self.name), result or x.dtype)

        def reference(self, x: np.ndarray, *, axes: tuple[int, ...] | None, keepdims: bool,
                      **attrs: Any) -> np.ndarray:
            with np.errstate(all="ignore"):  # mean of nothing is NaN in torch too
                out = fn(opmath(x), axis=_np_axes(axes, x.ndim), keepdims=keepdims, **attrs)
            return np.asarray(out).astype(result.numpy if result else x.dtype, copy=False)

    Reduction.name = name
    Reduction.attrs = {"axes": _AXES, "keepdims": _KEEPDIMS, **(attrs or {})}
    Reduction.__name__ = Reduction.__qualname__ = name.split(".")[1].title()
    return register_op(Reduction)


def _var(x: np.ndarray, axis: tuple[int, ...], keepdims: bool, correction: float
         ) -> np.ndarray:
    return np.var(x.astype(np.float64), axis=axis, keepdims=keepdims, ddof=correction)


def _norm(x: np.ndarray, axis: tuple[int, ...], keepdims: bool, ord: float) -> np.ndarray:
    a = np.abs(x.astype(np.float64))
    if ord == np.inf:
        return np.max(a, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return np.sum(a != 0, axis=axis, keepdims=keepdims)
    if ord == 1:
        return np.sum(a, axis=axis, keepdims=keepdims)
    if ord == 2:
        return np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))
    return np.sum(a**ord, axis=axis, keepdims=keepdims) ** (1 / ord)


reduction("reduce.sum", np.sum, "Sum over `axes`.")
reduction("reduce.mean", np.mean, "Arithmetic mean over `axes`.", float_only=True)
reduction("reduce.prod", np.prod, "Product over `axes`.")
reduction("reduce.max", np.max, "Maximum over `axes`; NaN if any element is NaN.")
reduction("reduce.min", np.min, "Minimum over `axes`; NaN if any element is NaN.")
reduction("reduce.any", np.any, "Any element nonzero over `axes`.", result=DType.bool)
reduction("reduce.var", _var, "Variance over `axes`, dividing by N - correction.",
          float_only=True, attrs={"correction": Attr("float", 1.0)})
reduction("reduce.norm", _norm, "Vector `ord`-norm over `axes` (inf: max |x|, 0: nonzeros).",
          float_only=True, attrs={"ord": Attr("float", 2.0)})


class _ArgReduction(OpDef):
    """Shared type rule of argmax / argmin: i64 indices along one axis (none: flattened)."""

    inputs = ("x",)
    attrs = {"axis": Attr("int", None, optional=True, doc="none: index into the flattened x"),
             "keepdims": _KEEPDIMS}
    fusion_kind = FusionKind.REDUCTION
    pick: Callable[..., np.ndarray] = staticmethod(np.argmax)

    def infer_type(self, x: Any, *, axis: int | None, keepdims: bool) -> TensorType:
        x = tensor(x, self.name)
        axes = None if axis is None else (axis,)
        return TensorType(reduced_shape(x, axes, keepdims, self.name), DType.i64)

    def reference(self, x: np.ndarray, *, axis: int | None, keepdims: bool) -> np.ndarray:
        # NumPy and torch both return the first index of the extreme value, NaN counting
        # as the extreme.
        if x.ndim == 0:
            return np.zeros((), np.int64)
        return np.asarray(self.pick(opmath(x), axis=axis, keepdims=keepdims),
                          dtype=np.int64)


@register_op
class Argmax(_ArgReduction):
    """Index of the largest element along `axis` (the first one on ties)."""

    name = "reduce.argmax"
    pick = staticmethod(np.argmax)


@register_op
class Argmin(_ArgReduction):
    """Index of the smallest element along `axis` (the first one on ties)."""

    name = "reduce.argmin"
    pick = staticmethod(np.argmin)


def scan(name: str, fn: Callable[..., np.ndarray], doc: str) -> type[OpDef]:
    """Declare and register an inclusive scan `fn(x, axis=axis)` (cumsum, cumprod).

    Scans are OPAQUE to fusion: each output depends on a prefix of the input along
    `axis`, a loop-carried dependence that neither the elementwise nor the reduction
    template expresses (TVM classifies cumsum the same way).
    """

    class Scan(OpDef):
        __doc__ = doc
        inputs = ("x",)
        attrs = {"axis": Attr("int")}
        fusion_kind = FusionKind.OPAQUE

        def infer_type(self, x: Any, *, axis: int) -> TensorType:
            x = tensor(x, self.name)
            normalize_axis(axis, x.rank, self.name)
            return x

        def reference(self, x: np.ndarray, *, axis: int) -> np.ndarray:
            if x.ndim == 0:
                return x.copy()
            with np.errstate(all="ignore"):
                return fn(opmath(x), axis=axis).astype(x.dtype, copy=False)

    Scan.name = name
    Scan.__name__ = Scan.__qualname__ = name.split(".")[1].title()
    return register_op(Scan)


scan("reduce.cumsum", np.cumsum, "Inclusive prefix sum along `axis`.")
scan("reduce.cumprod", np.cumprod, "Inclusive prefix product along `axis`.")


def _topk_order(v: np.ndarray, largest: bool) -> np.ndarray:
    """Stable ordering along the last axis: best first, ties by index, NaN the largest."""
    if v.dtype == np.bool_:
        v = v.astype(np.int8)
    if v.dtype.kind == "f":
        nan = np.isnan(v)
        key = np.where(nan, 0, v)
        # np.lexsort sorts by its last key first, stably.
        return np.lexsort((-key, ~nan)) if largest else np.lexsort((key, nan))
    # ~v reverses the order of integers (signed or not) without overflowing.
    return np.argsort(~v if largest else v, axis=-1, kind="stable")


@register_op
class TopK(OpDef):
    """The `k` largest (or smallest) elements along `axis` and their i64 indices.

    Sorted best first; NaN counts as the largest; tied values come in index order. torch
    leaves the order of ties unspecified (its CPU kernel runs nth_element / partial_sort),
    so on ties the indices may differ from torch's while the values agree. `sorted=False`
    is accepted and still returns sorted results (any order is valid then).
    """

    name = "reduce.topk"
    inputs = ("x",)
    attrs = {"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("bool", True),
             "sorted": Attr("bool", True)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, *, k: int, axis: int, largest: bool, sorted: bool
                   ) -> tuple[TensorType, TensorType]:
        x = tensor(x, self.name)
        if x.rank == 0:
            raise self.error("expects an operand of rank >= 1")
        axis = normalize_axis(axis, x.rank, self.name)
        size = x.shape[axis]
        if k < 0 or (isinstance(size, int) and k > size):
            raise self.error(f"k={k} is outside [0, {size}] (the size of axis {axis})")
        shape = tuple(k if i == axis else d for i, d in enumerate(x.shape))
        return TensorType(shape, x.dtype), TensorType(shape, DType.i64)

    def reference(self, x: np.ndarray, *, k: int, axis: int, largest: bool, sorted: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
        moved = np.moveaxis(x, axis, -1)
        order = _topk_order(opmath(moved), largest)[..., :k]
        values = np.take_along_axis(moved, order, axis=-1)
        return (np.moveaxis(values, -1, axis).copy(),
                np.moveaxis(order, -1, axis).astype(np.int64))
