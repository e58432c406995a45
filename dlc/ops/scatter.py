"""Indexing ops that write (`index.scatter*`, `index.index_put`, `index.scatter_nd`).

Scatters and `index_put` write to data-dependent places, possibly several times, so they
are OPAQUE. The index rules are `indexing.py`'s: torch's scatter/gather shapes, NumPy's
advanced indexing, negative indices wrapping.

Lowering: each is an `extern` loop nest (copy `x` into the output, then visit the updates
in row-major order, so duplicates combine in NumPy's `ufunc.at` order). Every index read
from data goes through `clamp_index` (wrapped, then clamped into the axis), so a bad index
writes a wrong element, never outside the buffer. Loops over an index tensor's positions
are guarded where its size is not provably within `x`'s (symbolic sizes the type rule had
to trust).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.errors import MissingOp, TypeInferenceError, UnsupportedOpError
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import dims_equal, is_static
from dlc.ir.tensor import compute as te
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import (
    Expr,
    cast,
    compare,
    const,
    floordiv,
    logical,
    max_,
    min_,
    var,
)
from dlc.ir.tensor.index import clamp_index
from dlc.ir.tensor.stmt import Allocate, Buffer, For, IfThenElse, Stmt, Store, seq
from dlc.ir.types import TensorType
from dlc.ops.indexing import (
    advanced_coords,
    broadcast_read,
    check_indices,
    check_scatter_shapes,
    index_spans,
    indexed_exprs,
    indexed_shape,
    numpy_key,
    provably_fits,
)
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    register_op,
    same_dtype,
    tensor,
)


def _scatter_coords(idx: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Output coordinates of each index element: its own position, `idx` along `axis`."""
    coords = list(np.indices(idx.shape, sparse=True))
    coords[axis] = idx
    return tuple(coords)


def _leading(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The leading `shape` block of `a` (torch reads only that much of src / input)."""
    return a[tuple(slice(0, n) for n in shape)]


# -- lowering helpers: loop nests over the updates ---------------------------------------


def _within(axes: Sequence[Expr], extents: Sequence[Expr], bounds: Sequence[Expr]) -> Expr:
    """The condition that `axes` (looping over `extents`) stay below `bounds`; it is
    `true` where the type rule already proved it, so static shapes get no guard."""
    cond = const(True)
    for a, n, b in zip(axes, extents, bounds):
        if not provably_fits(n, b):
            cond = logical("and", cond, compare("lt", a, b))
    return cond


def _nest(prefix: str, shape: Sequence[Expr], body: Callable[..., Stmt]) -> Stmt:
    """`for p0 in 0..shape[0] { for p1 ... { body(p0, p1, ...) } }` (loop vars named
    `<prefix>_i`, `<prefix>_j`, ...)."""
    axes = [var(f"{prefix}_{'ijklmnop'[k] if k < 8 else k}") for k in range(len(shape))]
    stmt = body(*axes)
    for a, n in reversed(list(zip(axes, shape))):
        stmt = For(a, n, stmt)
    return stmt


def _guarded(cond: Expr, stmt: Stmt) -> Stmt:
    return stmt if cond.is_const and cond.value else IfThenElse(cond, stmt)


def _copy(src: Buffer, dst: Buffer, prefix: str) -> Stmt:
    """dst = src, element by element (the first step of every scatter)."""
    return _nest(prefix, dst.shape, lambda *p: Store(dst, p, src[p]))


def _scatter_positions(ctx: LowerContext, out: Buffer, idx: Buffer, src: Buffer | None,
                       axis: int, update: Callable[[tuple[Expr, ...], Expr], Stmt]) -> Stmt:
    """Visit every position p of `idx` in row-major order and run `update(coords, value)`
    with coords = p, its `axis` entry replaced by the (clamped) index, and value = src[p]
    (or the scalar src). Positions outside `out` or `src` (possible only with symbolic
    sizes the type rule trusted) are skipped."""

    def body(*p: Expr) -> Stmt:
        coords = list(p)
        coords[axis] = clamp_index(idx[p], out.shape[axis])
        value = const(0)  # unused by updates without a source
        if src is not None:
            value = src[p] if src.shape else src[()]
        cond = _within([a for d, a in enumerate(p) if d != axis],
                       [n for d, n in enumerate(idx.shape) if d != axis],
                       [n for d, n in enumerate(out.shape) if d != axis])
        if src is not None and src.shape:
            cond = logical("and", cond, _within(p, idx.shape, src.shape))
        return _guarded(cond, update(tuple(coords), value))

    return _nest(ctx.name("at"), idx.shape, body)


def _scatter_extern(ctx: LowerContext, tensors: Sequence[te.Tensor],
                    build: Callable[[list[Buffer], Buffer], Stmt]) -> te.Tensor:
    """The output of an extern nest `build(input buffers, out)` shaped like input 0."""
    (out,) = te.extern(ctx.name(), tensors, [(ctx.out_shape(), ctx.out_dtype())],
                       lambda ins, outs: build(ins, outs[0]))
    return out


# -- scatters ----------------------------------------------------------------------------


@register_op
class ScatterAdd(OpDef):
    """torch.scatter_add: out = x; out[i][indices[i][j]][j] += src[i][j] for axis=1.
    Duplicate indices add up."""

    name = "index.scatter_add"
    inputs = ("x", "indices", "src")
    attrs = {"axis": Attr("int")}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, indices: Any, src: Any, *, axis: int) -> TensorType:
        x, indices, src = (tensor(t, self.name) for t in (x, indices, src))
        check_indices(self, indices)
        same_dtype(self.name, x, src)
        if src.rank != x.rank:
            raise self.error(f"source {src} must have the rank of the input {x}")
        check_scatter_shapes(self, x, indices, src, axis)
        return x

    def reference(self, x: np.ndarray, indices: np.ndarray, src: np.ndarray, *,
                  axis: int) -> np.ndarray:
        out = x.copy()
        np.add.at(out, _scatter_coords(indices, axis % x.ndim), _leading(src, indices.shape))
        return out

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor, src: te.Tensor,
                *, axis: int) -> te.Tensor:
        """out = x; for p in indices (row-major): out[.., indices[p], ..] += src[p]."""
        axis %= x.ndim

        def build(ins: list[Buffer], out: Buffer) -> Stmt:
            xb, ib, sb = ins
            add = _scatter_positions(ctx, out, ib, sb, axis,
                                     lambda at, v: Store(out, at, out[at] + v))
            return seq(_copy(xb, out, ctx.name("copy")), add)

        return _scatter_extern(ctx, [x, indices, src], build)


@register_op
class Scatter(OpDef):
    """torch.scatter: out = x; out[i][indices[i][j]][j] = src[i][j] for axis=1 (a rank-0
    `src` is written everywhere). Which write wins at a duplicate index is unspecified."""

    name = "index.scatter"
    inputs = ("x", "indices", "src")
    attrs = {"axis": Attr("int")}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, indices: Any, src: Any, *, axis: int) -> TensorType:
        x, indices, src = (tensor(t, self.name) for t in (x, indices, src))
        check_indices(self, indices)
        same_dtype(self.name, x, src)
        check_scatter_shapes(self, x, indices, src, axis)
        return x

    def reference(self, x: np.ndarray, indices: np.ndarray, src: np.ndarray, *,
                  axis: int) -> np.ndarray:
        out = x.copy()
        values = src if src.ndim == 0 else _leading(src, indices.shape)
        out[_scatter_coords(indices, axis % x.ndim)] = values
        return out

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor, src: te.Tensor,
                *, axis: int) -> te.Tensor:
        """out = x; for p in indices (row-major): out[.., indices[p], ..] = src[p] (the
        last write to a duplicate index wins, as with NumPy's assignment)."""
        axis %= max(x.ndim, 1)

        def build(ins: list[Buffer], out: Buffer) -> Stmt:
            xb, ib, sb = ins
            put = _scatter_positions(ctx, out, ib, sb, axis, lambda at, v: Store(out, at, v))
            return seq(_copy(xb, out, ctx.name("copy")), put)

        return _scatter_extern(ctx, [x, indices, src], build)


_REDUCE_AT = {"sum": np.add, "mean": np.add, "prod": np.multiply,
              "amax": np.maximum, "amin": np.minimum}


def _reduce_identity(reduce: str, dtype: np.dtype) -> Any:
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if np.issubdtype(dtype, np.floating) or dtype.kind == "V":
        return -np.inf if reduce == "amax" else np.inf
    info = np.iinfo(dtype) if dtype != np.bool_ else None
    if info is None:
        return reduce == "amin"
    return info.min if reduce == "amax" else info.max


@register_op
class ScatterReduce(OpDef):
    """torch.scatter_reduce: out = x; out[i][indices[i][j]][j] = reduce(...) of every
    src[i][j] sent there, and of x's own element when `include_self`."""

    name = "index.scatter_reduce"
    inputs = ("x", "indices", "src")
    attrs = {"axis": Attr("int"),
             "reduce": Attr("str", choices=("sum", "prod", "mean", "amax", "amin")),
             "include_self": Attr("bool", True)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, indices: Any, src: Any, *, axis: int, reduce: str,
                   include_self: bool) -> TensorType:
        x, indices, src = (tensor(t, self.name) for t in (x, indices, src))
        check_indices(self, indices)
        same_dtype(self.name, x, src)
        if src.rank != x.rank:
            raise self.error(f"source {src} must have the rank of the input {x}")
        check_scatter_shapes(self, x, indices, src, axis)
        return x

    def reference(self, x: np.ndarray, indices: np.ndarray, src: np.ndarray, *, axis: int,
                  reduce: str, include_self: bool) -> np.ndarray:
        coords = _scatter_coords(indices, axis % x.ndim)
        values = _leading(src, indices.shape)
        count = np.zeros(x.shape, dtype=np.int64)
        np.add.at(count, coords, 1)
        touched = count > 0
        out = x.copy()
        if not include_self:
            out[touched] = _reduce_identity(reduce, x.dtype)
        _REDUCE_AT[reduce].at(out, coords, values)
        if reduce == "mean":
            count += include_self
            safe = np.maximum(count, 1).astype(x.dtype)
            floating = np.issubdtype(x.dtype, np.inexact) or x.dtype.kind == "V"  # bf16
            mean = out / safe if floating else out // safe  # torch floors integer means
            out = np.where(touched, mean, x).astype(x.dtype)
        return out

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor, src: te.Tensor,
                *, axis: int, reduce: str, include_self: bool) -> te.Tensor:
        """out = x; (without include_self: every target := the identity); then
        out[target] = combine(out[target], src[p]) in row-major order; a mean divides
        the touched elements by their count (plus one with include_self) at the end."""
        axis %= x.ndim
        dtype = x.dtype
        combiner = {"sum": "sum", "mean": "sum", "prod": "prod", "amax": "max",
                    "amin": "min"}[reduce]
        combine = {"sum": lambda a, b: a + b, "prod": lambda a, b: a * b, "max": max_,
                   "min": min_}[combiner]
        start = te.identity(combiner, dtype)

        def build(ins: list[Buffer], out: Buffer) -> Stmt:
            xb, ib, sb = ins
            steps = [_copy(xb, out, ctx.name("copy"))]
            if not include_self:
                steps.append(_scatter_positions(ctx, out, ib, None, axis,
                                                lambda at, _: Store(out, at, start)))
            if reduce != "mean":
                steps.append(_scatter_positions(
                    ctx, out, ib, sb, axis, lambda at, v: Store(out, at, combine(out[at], v))))
                return seq(*steps)
            count = Buffer(ctx.name("count"), out.shape, DType.i64)
            steps.insert(0, _nest(ctx.name("zero"), out.shape,
                                  lambda *q: Store(count, q, const(0))))
            steps.append(_scatter_positions(
                ctx, out, ib, sb, axis, lambda at, v: seq(Store(out, at, combine(out[at], v)),
                                                          Store(count, at, count[at] + 1))))

            def divide(*q: Expr) -> Stmt:
                n = cast(count[q] + int(include_self), dtype)
                mean = out[q] / n if dtype.is_float else floordiv(out[q], n)
                return IfThenElse(compare("gt", count[q], const(0)), Store(out, q, mean))

            steps.append(_nest(ctx.name("mean"), out.shape, divide))
            return Allocate(count, seq(*steps))

        return _scatter_extern(ctx, [x, indices, src], build)


# -- advanced indexing -------------------------------------------------------------------


def _put_masked(ctx: LowerContext, out: Buffer, values: Buffer, mask: Buffer, axis: int,
                accumulate: bool) -> Stmt:
    """out[..., mask, ...] = values (or +=): visit the mask's positions in row-major order,
    counting the true ones when `values` has x[mask]'s masked dim (the count is the
    position along it). The type rule cannot check `values` against a data-dependent
    length, so every read of it is clamped."""
    k = len(mask.shape)
    pre, post = out.shape[:axis], out.shape[axis + k:]
    counter = Buffer(ctx.name("seen"), (1,), DType.i64, "local")
    c = counter[const(0)]
    dims = (*pre, None, *post)  # x[mask]'s shape; None: the number of true elements
    offset = len(dims) - len(values.shape)
    counted = 0 <= len(pre) - offset < len(values.shape) and not (
        values.shape[len(pre) - offset].is_const and values.shape[len(pre) - offset].value == 1)

    def read(target: tuple[Expr, ...]) -> Expr:
        at = []
        for j, d in enumerate(values.shape):
            n = dims[offset + j]
            if d.is_const and d.value == 1:
                at.append(const(0))
            elif n is not None and provably_fits(n, d):
                at.append(target[offset + j])
            else:
                at.append(max_(min_(target[offset + j], d - 1), const(0)))
        return values[tuple(at)]

    def at_mask(*m: Expr) -> Stmt:
        def write(*q: Expr) -> Stmt:
            at = (*q[:len(pre)], *m, *q[len(pre):])
            v = read((*q[:len(pre)], c, *q[len(pre):]))
            return Store(out, at, out[at] + v if accumulate else v)

        put = _nest(ctx.name("put"), [*pre, *post], write)
        return IfThenElse(mask[m], seq(put, Store(counter, (const(0),), c + 1))
                          if counted else put)

    def guarded(*m: Expr) -> Stmt:
        return _guarded(_within(m, mask.shape, out.shape[axis:axis + k]), at_mask(*m))

    loops = _nest(ctx.name("mask"), mask.shape, guarded)
    if not counted:
        return loops
    return Allocate(counter, seq(Store(counter, (const(0),), const(0)), loops))


@register_op
class IndexPut(OpDef):
    """out = x; out[key] = values (or += with `accumulate`, where duplicate indices add
    up), key as in `index.index`; bool masks allowed. `values` broadcasts to x[key]."""

    name = "index.index_put"
    inputs = ("x", "values", "indices*")
    attrs = {"axes": Attr("ints"), "accumulate": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, values: Any, *indices: Any, axes: tuple[int, ...],
                   accumulate: bool) -> TensorType:
        x, values = tensor(x, self.name), tensor(values, self.name)
        same_dtype(self.name, x, values)
        idx = [tensor(t, self.name) for t in indices]
        for t in idx:
            check_indices(self, t, allow_bool=True)
        if any(t.dtype == DType.bool for t in idx):
            index_spans(self, x, idx, axes)  # x[mask] has a data-dependent length
            return x
        target = indexed_shape(self, x, idx, axes)
        try:
            fits = values.rank <= len(target) and all(
                dims_equal(a, b) for a, b in
                zip(broadcast_shapes(self.name, values.shape, target), target))
        except TypeInferenceError:
            fits = False
        if not fits:
            raise self.error(f"values {values} do not broadcast to the indexed shape "
                             f"[{', '.join(map(str, target))}]")
        return x

    def reference(self, x: np.ndarray, values: np.ndarray, *indices: np.ndarray,
                  axes: tuple[int, ...], accumulate: bool) -> np.ndarray:
        out = x.copy()
        key = numpy_key(x.ndim, axes, indices)
        if accumulate:
            np.add.at(out, key, values)
        else:
            out[key] = values
        return out

    def compute(self, ctx: LowerContext, x: te.Tensor, values: te.Tensor,
                *indices: te.Tensor, axes: tuple[int, ...], accumulate: bool) -> te.Tensor:
        """out = x; then for each position p of x[key] (row-major): out[key at p] =
        values[p] (+= with accumulate), values broadcast to x[key]'s shape. A bool mask
        must be the only index tensor here."""
        masked = any(t.dtype == DType.bool for t in indices)
        if masked and len(indices) > 1:
            raise UnsupportedOpError("llvm backend", [MissingOp(
                f"{self.name} with a bool mask among {len(indices)} index tensors")],
                hint="Index with the mask alone, or convert it with nonzero() first.")

        def build(ins: list[Buffer], out: Buffer) -> Stmt:
            xb, vb, *ib = ins
            copy = _copy(xb, out, ctx.name("copy"))
            if masked:
                return seq(copy, _put_masked(ctx, out, vb, ib[0], axes[0], accumulate))

            def put(*p: Expr) -> Stmt:
                at = advanced_coords(out.shape, ib, axes, p)
                v = broadcast_read(vb, p)
                return Store(out, at, out[at] + v if accumulate else v)

            return seq(copy, _nest(ctx.name("at"), indexed_exprs(out.shape, ib, axes), put))

        return _scatter_extern(ctx, [x, values, *indices], build)


# -- ONNX's N-d scatter ------------------------------------------------------------------


_SCATTER_ND_AT = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@register_op
class ScatterNd(OpDef):
    """ONNX ScatterND: out = x; out[indices[i, :]] = updates[i] (or combined with the
    existing element by `reduction`: add, mul, max, min). `indices: [..., k]` addresses
    the first k axes of x; `updates` has shape `indices.shape[:-1] + x.shape[k:]`."""

    name = "index.scatter_nd"
    inputs = ("x", "indices", "updates")
    attrs = {"reduction": Attr("str", "none", choices=("none", "add", "mul", "max", "min"))}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, indices: Any, updates: Any, *, reduction: str) -> TensorType:
        x, indices, updates = (tensor(t, self.name) for t in (x, indices, updates))
        check_indices(self, indices)
        same_dtype(self.name, x, updates)
        if indices.rank < 1 or not is_static(indices.shape[-1]):
            raise self.error(f"indices {indices} need a static last axis")
        k = indices.shape[-1]
        if k > x.rank:
            raise self.error(f"indices {indices} address {k} axes of the rank-{x.rank} {x}")
        want = (*indices.shape[:-1], *x.shape[k:])
        if updates.rank != len(want) or not all(map(dims_equal, updates.shape, want)):
            raise self.error(f"updates {updates} must have shape "
                             f"[{', '.join(map(str, want))}]")
        return x

    def reference(self, x: np.ndarray, indices: np.ndarray, updates: np.ndarray, *,
                  reduction: str) -> np.ndarray:
        out = x.copy()
        k = indices.shape[-1]
        key = tuple(np.moveaxis(indices.astype(np.int64), -1, 0)[:k])
        if reduction == "none":
            out[key] = updates
        else:
            _SCATTER_ND_AT[reduction].at(out, key, updates)
        return out

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor,
                updates: te.Tensor, *, reduction: str) -> te.Tensor:
        """out = x; for p in indices[..., 0] and q in x.shape[k:] (row-major):
        out[indices[p, :], q] = updates[p, q], or combined with `reduction`."""
        k = int(indices.shape[-1].value)
        combine = {"none": lambda a, b: b, "add": lambda a, b: a + b,
                   "mul": lambda a, b: a * b, "max": max_, "min": min_}[reduction]

        def build(ins: list[Buffer], out: Buffer) -> Stmt:
            xb, ib, ub = ins
            lead = len(ib.shape) - 1

            def put(*pq: Expr) -> Stmt:
                p, q = pq[:lead], pq[lead:]
                at = tuple(clamp_index(ib[(*p, const(d))], out.shape[d]) for d in range(k))
                return Store(out, (*at, *q), combine(out[(*at, *q)], ub[pq]))

            loops = _nest(ctx.name("at"), (*ib.shape[:-1], *out.shape[k:]), put)
            return seq(_copy(xb, out, ctx.name("copy")), loops)

        return _scatter_extern(ctx, [x, indices, updates], build)
