"""Reductions (`reduce.*`): sum, mean, prod, max, min, any, var, norm, arg-max/min, scans, topk.

ONNX's forms with their axes (or k) as a run-time operand (`reduce.dynamic_axes`,
`reduce.scan_dynamic_axis`, `reduce.topk_dynamic`) are OPAQUE and run in the interpreter.

Reductions over a set of axes take `axes` (none reduces every axis; an empty tuple reduces
none) and `keepdims` (reduced axes stay as size 1), and are declared with the `reduction`
factory. Their result dtype is the operand's: a frontend that accumulates in a wider type
(torch sums integers into i64) casts the operand first.

References accumulate f16 and bf16 in f32 and round the result once, as torch's CPU
kernels do; `var` and `norm` accumulate every float type in f64. The lowerings (`lower=`
in each declaration, the op's tensor-IR compute) accumulate in the same types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim
from dlc.ir.tensor.compute import (
    ReduceAxis,
    Tensor,
    compute,
    extern,
    identity,
    reduce,
    reduce_axis,
)
from dlc.ir.tensor.context import LowerContext, elementwise
from dlc.ir.tensor.expr import (
    Expr,
    add,
    call,
    cast,
    compare,
    const,
    logical,
    max_,
    mul,
    select,
    var,
)
from dlc.ir.tensor.stmt import Allocate, Buffer, For, IfThenElse, Stmt, Store, seq
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    get_op,
    normalize_axes,
    normalize_axis,
    register_op,
    tensor,
)
from dlc.ops.shape_dynamic import dynamic_shape_op, fresh_size

_AXES = Attr("ints", None, optional=True, doc="axes to reduce; none means all, () none")
_KEEPDIMS = Attr("bool", False, doc="keep reduced axes as size 1")
ZERO = const(0)  # the index of a one-element scratch buffer


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


# -- lowering helpers --------------------------------------------------------------------


def accumulator(dtype: DType) -> DType:
    """The type a kernel accumulates `dtype` in: f32 for f16/bf16 (as the references),
    i64 for bool (NumPy sums bools as integers, then the result is cast back)."""
    if dtype in (DType.f16, DType.bf16):
        return DType.f32
    return DType.i64 if dtype == DType.bool else dtype


class Over:
    """Where a reduction of `x` over `axes` reads: its reduce axes, and for each output
    position the input position (with `keepdims`, reduced axes stay as index-0 axes)."""

    def __init__(self, ctx: LowerContext, x: Tensor, axes: Sequence[int] | None,
                 keepdims: bool) -> None:
        self.x, self.keepdims = x, keepdims
        self.reduced = normalize_axes(axes, x.ndim, "") if x.ndim else ()
        self.axes: list[ReduceAxis] = [reduce_axis(x.shape[a], ctx.name(f"r{a}"))
                                       for a in self.reduced]

    def at(self, out: Sequence[Expr], red: Sequence[Expr] | None = None) -> tuple[Expr, ...]:
        """The input index read for output index `out` (reduce axes at `red`, default
        their loop variables)."""
        outs = iter(out)
        reds = iter(red if red is not None else [a.var for a in self.axes])
        index = []
        for d in range(self.x.ndim):
            if d in self.reduced:
                index.append(next(reds))
                if self.keepdims:
                    next(outs)
            else:
                index.append(next(outs))
        return tuple(index)

    def load(self, out: Sequence[Expr]) -> Expr:
        return self.x[self.at(out)]

    @property
    def count(self) -> Expr:
        """The number of elements each output reduces (an i64 expression)."""
        n: Expr = const(1)
        for a in self.axes:
            n = n * a.extent
        return n

    def unflatten(self, position: Expr) -> list[Expr]:
        """Reduce-axis indices of a row-major position (an argmax result)."""
        index = []
        for a in reversed(self.axes[1:]):
            extent = max_(a.extent, 1)  # an empty reduction must not divide by zero
            index.append(position % extent)
            position = position // extent
        return [position, *reversed(index)] if self.axes else []


def fold(ctx: LowerContext, over: Over, combiner: str,
         body: Callable[[tuple[Expr, ...]], Expr], hint: str = "") -> Tensor:
    """A reduction tensor of the output's shape: `combiner` of `body(out_index)` (no
    `hint`: it is the node's output itself)."""
    shape = ctx.out_shape()
    return compute(shape, lambda *i: reduce(combiner, body(i), over.axes), ctx.name(hint),
                   axis_names=ctx.axis_names(len(shape)))


def finish(ctx: LowerContext, fn: Callable[..., Expr], *totals: Tensor) -> Tensor:
    """The node's output: `fn` of reductions at the output position, in its dtype."""
    return elementwise(ctx, fn, *totals)


def folding(combiner: str, value: Callable[[Expr], Expr] | None = None,
            then: Callable[[Expr, Expr], Expr] | None = None) -> Callable[..., Tensor]:
    """The lowering of a plain reduction: `combiner` of `value(x)` (default: x in its
    accumulator type), then `then(total, count)` cast to the output dtype."""

    def lower(ctx: LowerContext, x: Tensor, *, axes: Sequence[int] | None,
              keepdims: bool) -> Tensor:
        over = Over(ctx, x, axes, keepdims)
        acc = accumulator(x.dtype)
        load = value or (lambda v: cast(v, acc))
        direct = then is None and load(const(0, x.dtype)).dtype == ctx.out_dtype()
        total = fold(ctx, over, combiner, lambda i: load(over.load(i)),
                     "" if direct else combiner)
        if direct:
            return total
        if then is None:
            return finish(ctx, lambda t: t, total)  # back from the accumulator type
        return finish(ctx, lambda t: then(t, cast(over.count, t.dtype)), total)

    return lower


def _var_lower(ctx: LowerContext, x: Tensor, *, axes: Sequence[int] | None, keepdims: bool,
               correction: float) -> Tensor:
    """Two passes in f64, as np.var: the mean, then the mean squared deviation."""
    over, f64 = Over(ctx, x, axes, keepdims), DType.f64
    n = cast(over.count, f64)
    total = fold(ctx, over, "sum", lambda i: cast(over.load(i), f64), "sum")

    def squared_deviation(i: tuple[Expr, ...]) -> Expr:
        d = cast(over.load(i), f64) - total[i] / n
        return d * d

    sq = fold(ctx, over, "sum", squared_deviation, "sq")
    return finish(ctx, lambda s: s / max_(n - correction, 0.0), sq)


def _norm_lower(ctx: LowerContext, x: Tensor, *, axes: Sequence[int] | None, keepdims: bool,
                ord: float) -> Tensor:
    """|x| in f64 reduced by ord: max (inf), min (-inf), nonzero count (0), or a sum of
    powers and its root."""
    over = Over(ctx, x, axes, keepdims)

    def a(i: tuple[Expr, ...]) -> Expr:
        return call("abs", cast(over.load(i), DType.f64))

    if ord in (np.inf, -np.inf):
        total = fold(ctx, over, "max" if ord > 0 else "min", a, "norm")
        return finish(ctx, lambda t: t, total)
    if ord == 0:
        total = fold(ctx, over, "sum", lambda i: cast(compare("ne", a(i), 0.0), DType.f64), "nz")
        return finish(ctx, lambda t: t, total)
    if ord == 1:
        return finish(ctx, lambda t: t, fold(ctx, over, "sum", a, "norm"))
    if ord == 2:
        total = fold(ctx, over, "sum", lambda i: a(i) * a(i), "norm")
        return finish(ctx, lambda t: call("sqrt", t), total)
    total = fold(ctx, over, "sum", lambda i: call("pow", a(i), const(ord, DType.f64)), "norm")
    return finish(ctx, lambda t: call("pow", t, const(1 / ord, DType.f64)), total)


def reduction(name: str, fn: Callable[..., np.ndarray], doc: str, *, float_only: bool = False,
              result: DType | None = None, attrs: dict[str, Attr] | None = None,
              lower: Callable[..., Tensor] | None = None) -> type[OpDef]:
    """Declare and register a reduction `fn(x, axis=..., keepdims=..., **attrs)` over `axes`.

    `result` fixes the output dtype (bool for `any`), otherwise it is the operand's.
    `lower(ctx, x, axes=, keepdims=, **attrs)` builds its tensor-IR compute.
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
    if lower is not None:
        Reduction.compute = _method(lower)
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


def _nonzero(v: Expr) -> Expr:
    return v if v.dtype == DType.bool else compare("ne", v, 0)  # NaN counts, as in NumPy


def _method(lower: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """`lower(ctx, x, **attrs)` as an OpDef `compute` method."""
    return lambda self, ctx, *xs, **attrs: lower(ctx, *xs, **attrs)


reduction("reduce.sum", np.sum, "Sum over `axes`.", lower=folding("sum"))
reduction("reduce.mean", np.mean, "Arithmetic mean over `axes`.", float_only=True,
          lower=folding("sum", then=lambda total, n: total / n))
reduction("reduce.prod", np.prod, "Product over `axes`.", lower=folding("prod"))
reduction("reduce.max", np.max, "Maximum over `axes`; NaN if any element is NaN.",
          lower=folding("max"))
reduction("reduce.min", np.min, "Minimum over `axes`; NaN if any element is NaN.",
          lower=folding("min"))
reduction("reduce.any", np.any, "Any element nonzero over `axes`.", result=DType.bool,
          lower=folding("max", value=_nonzero))
reduction("reduce.var", _var, "Variance over `axes`, dividing by N - correction.",
          float_only=True, attrs={"correction": Attr("float", 1.0)}, lower=_var_lower)
reduction("reduce.norm", _norm, "Vector `ord`-norm over `axes` (inf: max |x|, 0: nonzeros).",
          float_only=True, attrs={"ord": Attr("float", 2.0)}, lower=_norm_lower)


class _ArgReduction(OpDef):
    """Shared type rule of argmax / argmin: i64 indices along one axis (none: flattened)."""

    inputs = ("x",)
    attrs = {"axis": Attr("int", None, optional=True, doc="none: index into the flattened x"),
             "keepdims": _KEEPDIMS}
    fusion_kind = FusionKind.REDUCTION
    pick: Callable[..., np.ndarray] = staticmethod(np.argmax)
    combiner = "argmax"

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

    def compute(self, ctx: LowerContext, x: Tensor, *, axis: int | None,
                keepdims: bool) -> Tensor:
        """The tensor IR's first-wins argmax/argmin; for floats, the first NaN wins instead
        when there is one (the combiner's ordered compare never picks a NaN)."""
        over = Over(ctx, x, None if axis is None else (axis,), keepdims)
        if not x.dtype.is_float:
            return fold(ctx, over, self.combiner, over.load)
        best = fold(ctx, over, self.combiner, over.load, self.combiner)
        nan = fold(ctx, over, "argmax", lambda i: cast(call("isnan", over.load(i)), DType.i8),
                   "nan")

        def pick(*i: Expr) -> Expr:
            first_nan = nan[i]
            at_nan = over.x[over.at(i, over.unflatten(first_nan))]
            return select(call("isnan", at_nan), first_nan, best[i])

        shape = ctx.out_shape()
        return compute(shape, pick, ctx.name(), axis_names=ctx.axis_names(len(shape)))


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
    combiner = "argmin"


def scan_lower(combiner: str) -> Callable[..., Tensor]:
    """An inclusive scan as a loop nest: a running `combiner` (sum or prod) along `axis`
    in the accumulator type, each prefix cast to the output dtype once.

        for i in 0..M { acc = 0; for k in 0..K { acc = acc + X[i, k]; Out[i, k] = acc } }
    """
    combine = {"sum": add, "prod": mul}[combiner]

    def lower(ctx: LowerContext, x: Tensor, *, axis: int) -> Tensor:
        acc_dtype, out_dtype, rank = accumulator(x.dtype), ctx.out_dtype(), x.ndim
        index = tuple(var(ctx.name(f"s{d}")) for d in range(rank))
        acc = Buffer(ctx.name("acc"), (1,), acc_dtype, "local")

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            (src,), (dst,) = ins, outs
            if rank == 0:
                return Store(dst, (), src[()])
            along = axis % rank
            step = seq(Store(acc, (ZERO,), combine(acc[0], cast(src[index], acc_dtype))),
                       Store(dst, index, cast(acc[0], out_dtype)))
            nest: Stmt = Allocate(acc, seq(Store(acc, (ZERO,), identity(combiner, acc_dtype)),
                                           For(index[along], src.shape[along], step)))
            for d in reversed(range(rank)):
                if d != along:
                    nest = For(index[d], src.shape[d], nest)
            return nest

        (out,) = extern(ctx.name(), [x], [(ctx.out_shape(), out_dtype)], build)
        return out

    return lower


def scan(name: str, fn: Callable[..., np.ndarray], doc: str,
         lower: Callable[..., Tensor] | None = None) -> type[OpDef]:
    """Declare and register an inclusive scan `fn(x, axis=axis)` (cumsum, cumprod).

    Scans are OPAQUE to fusion: each output depends on a prefix of the input along
    `axis`, a loop-carried dependence that neither the elementwise nor the reduction
    template expresses (TVM classifies cumsum the same way). `lower` builds the compute.
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
    if lower is not None:
        Scan.compute = _method(lower)
    return register_op(Scan)


scan("reduce.cumsum", np.cumsum, "Inclusive prefix sum along `axis`.", lower=scan_lower("sum"))
scan("reduce.cumprod", np.cumprod, "Inclusive prefix product along `axis`.",
     lower=scan_lower("prod"))


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

    def compute(self, ctx: LowerContext, x: Tensor, *, k: int, axis: int, largest: bool,
                sorted: bool) -> tuple[Tensor, ...]:
        """Selection, O(k * n) per row: pick j is the best element ranked after pick j - 1
        in the total order (value, then index), so no element is picked twice.

            for j in 0..k { best = -1
              for i in 0..n { if after(prev, i) and (best < 0 or before(i, best)) { best = i } }
              Values[j] = X[best]; Indices[j] = best; prev = best }
        """
        rank = x.ndim
        along = axis % rank
        index = [var(ctx.name(f"t{d}")) for d in range(rank)]
        j, i = var(ctx.name("j")), var(ctx.name("i"))
        best = Buffer(ctx.name("best"), (1,), DType.i64, "local")
        prev = Buffer(ctx.name("prev"), (1,), DType.i64, "local")

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            (src,), (values, indices) = ins, outs

            def at(p: Expr) -> tuple[Expr, ...]:
                return tuple(p if d == along else index[d] for d in range(rank))

            def before(p: Expr, q: Expr) -> Expr:  # element p ranks before element q
                a, b = src[at(max_(p, 0))], src[at(max_(q, 0))]  # clamped: best may be -1
                return logical("or", _better(a, b, largest), logical(
                    "and", _same(a, b), compare("lt", p, q)))

            after_prev = logical("or", compare("eq", j, 0), before(prev[0], i))
            beats = logical("or", compare("lt", best[0], 0), before(i, best[0]))
            scan_row = For(i, src.shape[along], IfThenElse(logical("and", after_prev, beats),
                                                           Store(best, (ZERO,), i)))
            pick = seq(Store(best, (ZERO,), const(-1)), scan_row,
                       Store(values, at(j), src[at(max_(best[0], 0))]),
                       Store(indices, at(j), best[0]), Store(prev, (ZERO,), best[0]))
            nest: Stmt = Allocate(best, Allocate(prev, seq(Store(prev, (ZERO,), const(0)),
                                                           For(j, const(k), pick))))
            for d in reversed(range(rank)):
                if d != along:
                    nest = For(index[d], src.shape[d], nest)
            return nest

        shape = ctx.out_shape()
        return extern(ctx.name(), [x], [(shape, x.dtype), (shape, DType.i64)], build)


def _better(a: Expr, b: Expr, largest: bool) -> Expr:
    """a ranks strictly before b by value: NaN is the largest, as in the reference."""
    if not a.dtype.is_float:
        return compare("gt" if largest else "lt", a, b)
    nan_a, nan_b = call("isnan", a), call("isnan", b)
    if largest:
        return logical("or", logical("and", nan_a, logical("not", nan_b)), compare("gt", a, b))
    return logical("or", logical("and", nan_b, logical("not", nan_a)), compare("lt", a, b))


def _same(a: Expr, b: Expr) -> Expr:
    """a and b tie by value (two NaNs tie)."""
    if not a.dtype.is_float:
        return compare("eq", a, b)
    return logical("or", compare("eq", a, b), logical("and", call("isnan", a), call("isnan", b)))


# -- operands known only at run time -----------------------------------------------------
# ONNX passes the axes of a reduction or scan, and TopK's k, as operands; a result
# size that depends on one is a new size symbol, bound when the op runs.


_REDUCE_KINDS = ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum",
                 "log_sum_exp")


def _reduce_kind(x: np.ndarray, kind: str, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    with np.errstate(all="ignore"):
        if kind == "l1":
            return np.sum(np.abs(x), axis=axes, keepdims=keepdims)
        if kind == "l2":
            return np.sqrt(np.sum(np.square(x.astype(np.float64)), axis=axes, keepdims=keepdims))
        if kind == "sum_square":
            return np.sum(np.square(x), axis=axes, keepdims=keepdims)
        if kind == "log_sum":
            return np.log(np.sum(x, axis=axes, keepdims=keepdims))
        if kind == "log_sum_exp":
            xf = x.astype(np.float64)
            return np.log(np.sum(np.exp(xf), axis=axes, keepdims=keepdims))
        empty = any(x.shape[a] == 0 for a in axes)
        if empty and kind in ("max", "min"):
            shape = [1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or
                     i not in axes]
            info = np.finfo(x.dtype) if x.dtype.kind == "f" else None
            if x.dtype == np.bool_:
                return np.full(shape, kind == "min")
            if info is not None:
                return np.full(shape, -np.inf if kind == "max" else np.inf)
            limits = np.iinfo(x.dtype)
            return np.full(shape, limits.min if kind == "max" else limits.max)
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}[kind]
        return fn(x, axis=axes, keepdims=keepdims)


@register_op
class ReduceDynamicAxes(OpDef):
    """An ONNX Reduce* (`kind`: sum, mean, max, min, prod, l1, l2, sum_square, log_sum,
    log_sum_exp) over axes given by the i64 operand `axes` at run time. An empty `axes`
    reduces everything, or nothing with `noop_with_empty_axes`. Every result size is a
    new symbol (which axes shrink is known only when the op runs)."""

    name = "reduce.dynamic_axes"
    inputs = ("x", "axes")
    attrs = {"kind": Attr("str", choices=_REDUCE_KINDS), "keepdims": Attr("bool", True),
             "noop_with_empty_axes": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, axes: Any, *, kind: str, keepdims: bool,
                   noop_with_empty_axes: bool) -> TensorType:
        x, axes = tensor(x, self.name), tensor(axes, self.name)
        if axes.rank != 1 or not isinstance(axes.shape[0], int):
            raise self.error(f"axes must be a 1-D tensor of static length, got {axes}")
        n = axes.shape[0]
        if keepdims or (n == 0 and noop_with_empty_axes):
            rank = x.rank
        else:
            rank = 0 if n == 0 else x.rank - n
        return TensorType(tuple(fresh_size("reduced") for _ in range(rank)), x.dtype)

    def reference(self, x: np.ndarray, axes: np.ndarray, *, kind: str, keepdims: bool,
                  noop_with_empty_axes: bool) -> np.ndarray:
        if axes.size == 0 and noop_with_empty_axes:
            return _reduce_kind(x, kind, (), True).astype(x.dtype) if kind in (
                "l1", "l2", "sum_square", "log_sum") else x.copy()
        chosen = tuple(range(x.ndim)) if axes.size == 0 else tuple(
            sorted({int(a) % x.ndim for a in axes.reshape(-1)}))
        out = _reduce_kind(x, kind, chosen, keepdims)
        return np.asarray(out).astype(x.dtype)


@register_op
class ScanDynamicAxis(OpDef):
    """ONNX CumSum / CumProd (`kind` sum or prod) along the axis given by a 0-d or
    1-element operand at run time, with ONNX's `exclusive` and `reverse`."""

    name = "reduce.scan_dynamic_axis"
    inputs = ("x", "axis")
    attrs = {"kind": Attr("str", choices=("sum", "prod")), "exclusive": Attr("bool", False),
             "reverse": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, axis: Any, **_: Any) -> TensorType:
        return tensor(x, self.name)

    def reference(self, x: np.ndarray, axis: np.ndarray, *, kind: str, exclusive: bool,
                  reverse: bool) -> np.ndarray:
        a = int(np.asarray(axis).reshape(-1)[0]) % x.ndim
        y = np.flip(x, a) if reverse else x
        fn = np.cumsum if kind == "sum" else np.cumprod
        with np.errstate(all="ignore"):
            out = fn(y, axis=a, dtype=x.dtype)
        if exclusive:
            fill = np.zeros_like if kind == "sum" else np.ones_like
            out = np.concatenate([fill(np.take(out, [0], axis=a)),
                                  np.delete(out, -1, axis=a)], axis=a)
        return np.ascontiguousarray(np.flip(out, a) if reverse else out)


def _topk_at(x: np.ndarray, k: np.ndarray, *, axis: int, largest: bool, sorted: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    return get_op("reduce.topk").reference(x, k=int(np.asarray(k).reshape(-1)[0]), axis=axis,
                                           largest=largest, sorted=sorted)


dynamic_shape_op(
    "reduce.topk_dynamic", ("x", "k"), lambda x, k, **_: x.rank, _topk_at,
    "ONNX TopK with k known at run time: (values, i64 indices).",
    {"axis": Attr("int", -1), "largest": Attr("bool", True), "sorted": Attr("bool", True)},
    dtype=lambda x, k, **_: (x.dtype, DType.i64), outputs=lambda *_, **__: 2)
