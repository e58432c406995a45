"""Indexing ops (`index.*`): gathers, takes, embeddings, scatters and advanced indexing.

Index operands may be any integer dtype (i32 and i64 both reach dlc from torch); the
reference wraps negative indices like NumPy and fails on out-of-range ones. Gathers read
one input element per output element (INJECTIVE); scatters and `index_put` write to
data-dependent places, possibly several times, so they are OPAQUE.

Advanced indexing (`index.index`, `index.index_put`) follows NumPy's rules, which are
torch's: the index tensors broadcast together; their result dimensions replace the
indexed axes in place when those axes are adjacent, and go first otherwise. The `axes`
attribute says which axis of `x` each index tensor starts at (torch's `None` entries are
the axes left out); a bool mask of rank k covers k axes.

Lowering: gathers are computes whose index expressions load from the index tensors;
scatters and `index_put` are `extern` loop nests (copy `x` into the output, then visit
the updates in row-major order, so duplicates combine in NumPy's `ufunc.at` order).
Every index read from data goes through `clamp_index`: negative indices wrap as in the
reference, and an index that is still out of range is *clamped* to the nearest valid one.
The reference raises there; a kernel cannot, and it must never read or write outside a
buffer (even without debug bounds checks), so a bad index gives a wrong element instead
of a crash. Loops over an index tensor's positions are guarded where its size is not
provably within `x`'s (symbolic sizes the type rule had to trust).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.errors import MissingOp, TypeInferenceError, UnsupportedOpError
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dims_equal, is_static
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
    select,
    var,
)
from dlc.ir.tensor.stmt import Allocate, Buffer, For, IfThenElse, Stmt, Store, seq
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    normalize_axis,
    register_op,
    same_dtype,
    tensor,
)


def _check_indices(op: OpDef, t: TensorType, *, allow_bool: bool = False) -> None:
    if t.dtype.is_int or (allow_bool and t.dtype == DType.bool):
        return
    want = "an integer or bool" if allow_bool else "an integer"
    raise op.error(f"indices must have {want} dtype, got {t}")


def _not_larger(a: Dim, b: Dim) -> bool:
    """False only when both sizes are known and a > b (symbolic sizes are trusted)."""
    return not (is_static(a) and is_static(b)) or a <= b


def _check_scatter_shapes(op: OpDef, x: TensorType, idx: TensorType, src: TensorType | None,
                          axis: int) -> int:
    """torch's scatter/gather shape rules; returns the normalized axis."""
    axis = normalize_axis(axis, x.rank, op.name)
    if idx.rank != x.rank:
        raise op.error(f"indices {idx} must have the rank of the input {x}")
    for d in range(x.rank):
        if d != axis and not _not_larger(idx.shape[d], x.shape[d]):
            raise op.error(f"indices {idx} are larger than the input {x} along axis {d}")
    if src is not None and src.rank:
        if src.rank != idx.rank:
            raise op.error(f"source {src} must have the rank of the indices {idx}")
        if not all(_not_larger(i, s) for i, s in zip(idx.shape, src.shape)):
            raise op.error(f"indices {idx} are larger than the source {src}")
    return axis


def _scatter_coords(idx: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Output coordinates of each index element: its own position, `idx` along `axis`."""
    coords = list(np.indices(idx.shape, sparse=True))
    coords[axis] = idx
    return tuple(coords)


def _leading(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The leading `shape` block of `a` (torch reads only that much of src / input)."""
    return a[tuple(slice(0, n) for n in shape)]


# -- lowering helpers --------------------------------------------------------------------


def clamp_index(i: Expr, n: Expr) -> Expr:
    """An index read from data, made safe for an axis of length `n` (as i64).

    Negative indices wrap once, as in NumPy; anything still outside [0, n) is clamped
    to the nearest end, so a bad index reads a wrong element, never out of bounds.
    """
    i = cast(i, DType.i64)
    wrapped = select(compare("lt", i, const(0)), i + n, i)
    return max_(min_(wrapped, n - 1), const(0))


def _fits(a: Expr, b: Expr) -> bool:
    """True when a <= b is known at compile time (same expression, or both constant)."""
    return a is b or (a.is_const and b.is_const and a.value <= b.value)


def _within(axes: Sequence[Expr], extents: Sequence[Expr], bounds: Sequence[Expr]) -> Expr:
    """The condition that `axes` (looping over `extents`) stay below `bounds`; it is
    `true` where the type rule already proved it, so static shapes get no guard."""
    cond = const(True)
    for a, n, b in zip(axes, extents, bounds):
        if not _fits(n, b):
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


# -- gathers ---------------------------------------------------------------------------


@register_op
class Gather(OpDef):
    """torch.gather: out[i][j][k] = x[i][indices[i][j][k]][k] for axis=1; out has the
    shape of `indices`, which may be smaller than `x` on the other axes."""

    name = "index.gather"
    inputs = ("x", "indices")
    attrs = {"axis": Attr("int")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, indices: Any, *, axis: int) -> TensorType:
        x, indices = tensor(x, self.name), tensor(indices, self.name)
        _check_indices(self, indices)
        _check_scatter_shapes(self, x, indices, None, axis)
        return TensorType(indices.shape, x.dtype)

    def reference(self, x: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
        axis %= x.ndim
        window = tuple(slice(None) if d == axis else slice(0, n)
                       for d, n in enumerate(indices.shape))
        return np.take_along_axis(x[window], indices.astype(np.int64), axis)

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor, *, axis: int
                ) -> te.Tensor:
        """out[p] = x[p with p[axis] := indices[p]]; the other coordinates are clamped
        too where the index tensor is not provably smaller than `x`."""
        axis %= max(x.ndim, 1)

        def body(*p: Expr) -> Expr:
            if not p:
                return x[()]
            at = [a if _fits(n, m) else min_(a, m - 1)
                  for a, n, m in zip(p, indices.shape, x.shape)]
            at[axis] = clamp_index(indices[p], x.shape[axis])
            return x[tuple(at)]

        shape = ctx.out_shape()
        return te.compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Take(OpDef):
    """np.take / torch.index_select: x's `axis` is replaced by the shape of `indices`
    (a 1-D `indices` is index_select)."""

    name = "index.take"
    inputs = ("x", "indices")
    attrs = {"axis": Attr("int", 0)}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, indices: Any, *, axis: int) -> TensorType:
        x, indices = tensor(x, self.name), tensor(indices, self.name)
        _check_indices(self, indices)
        axis = normalize_axis(axis, x.rank, self.name)
        if x.rank == 0:
            raise self.error("cannot take from a scalar")
        return TensorType((*x.shape[:axis], *indices.shape, *x.shape[axis + 1:]), x.dtype)

    def reference(self, x: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
        return np.take(x, indices, axis=axis)

    def compute(self, ctx: LowerContext, x: te.Tensor, indices: te.Tensor, *, axis: int
                ) -> te.Tensor:
        """out[a..., q..., b...] = x[a..., indices[q...], b...]."""
        axis %= x.ndim
        k = indices.ndim

        def body(*p: Expr) -> Expr:
            at = clamp_index(indices[p[axis:axis + k]], x.shape[axis])
            return x[(*p[:axis], at, *p[axis + k:])]

        shape = ctx.out_shape()
        return te.compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Embedding(OpDef):
    """Embedding lookup: out[..., :] = table[ids[...], :] for a table of shape [V, D]."""

    name = "index.embedding"
    inputs = ("table", "ids")
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, table: Any, ids: Any) -> TensorType:
        table, ids = tensor(table, self.name), tensor(ids, self.name)
        _check_indices(self, ids)
        if table.rank != 2:
            raise self.error(f"the table must be 2-D [V, D], got {table}")
        return TensorType((*ids.shape, table.shape[1]), table.dtype)

    def reference(self, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.take(table, ids, axis=0)

    def compute(self, ctx: LowerContext, table: te.Tensor, ids: te.Tensor) -> te.Tensor:
        """out[q..., d] = table[ids[q...], d]."""

        def body(*p: Expr) -> Expr:
            return table[clamp_index(ids[p[:-1]], table.shape[0]), p[-1]]

        shape = ctx.out_shape()
        return te.compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


# -- scatters --------------------------------------------------------------------------


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
        _check_indices(self, indices)
        same_dtype(self.name, x, src)
        if src.rank != x.rank:
            raise self.error(f"source {src} must have the rank of the input {x}")
        _check_scatter_shapes(self, x, indices, src, axis)
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
        _check_indices(self, indices)
        same_dtype(self.name, x, src)
        _check_scatter_shapes(self, x, indices, src, axis)
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
        _check_indices(self, indices)
        same_dtype(self.name, x, src)
        if src.rank != x.rank:
            raise self.error(f"source {src} must have the rank of the input {x}")
        _check_scatter_shapes(self, x, indices, src, axis)
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


def _spans(op: OpDef, x: TensorType, indices: Sequence[TensorType], axes: tuple[int, ...]
           ) -> list[tuple[int, int]]:
    """(first axis, number of axes) covered by each index tensor, validated."""
    if not indices:
        raise op.error("needs at least one index tensor")
    if len(axes) != len(indices):
        raise op.error(f"has {len(indices)} index tensors but axes={list(axes)}")
    spans, end = [], 0
    for a, t in zip(axes, indices):
        width = t.rank if t.dtype == DType.bool else 1
        if a < end or a + width > x.rank:
            raise op.error(f"axes={list(axes)} must increase and fit the rank-{x.rank} input "
                           f"(index {t} at axis {a})")
        if t.dtype == DType.bool and not all(
                not (is_static(m) and is_static(d)) or m == d
                for m, d in zip(t.shape, x.shape[a:a + width])):
            raise op.error(f"bool mask {t} does not match the input {x} at axis {a}")
        spans.append((a, width))
        end = a + width
    return spans


def _indexed_shape(op: OpDef, x: TensorType, indices: Sequence[TensorType],
                   axes: tuple[int, ...]) -> tuple[Dim, ...]:
    """Shape of x[key] for integer index tensors (NumPy's advanced-indexing rule)."""
    spans = _spans(op, x, indices, axes)
    covered = {a for a, w in spans for a in range(a, a + w)}
    middle = broadcast_shapes(op.name, *(t.shape for t in indices))
    adjacent = all(s[0] + s[1] == t[0] for s, t in zip(spans, spans[1:]))
    if adjacent:
        first, (last, width) = spans[0][0], spans[-1]
        return (*x.shape[:first], *middle, *x.shape[last + width:])
    return (*middle, *(d for k, d in enumerate(x.shape) if k not in covered))


def _key(rank: int, axes: Sequence[int], indices: Sequence[np.ndarray]) -> tuple[Any, ...]:
    """The NumPy index tuple: full slices on the axes no index tensor covers."""
    key: list[Any] = []
    end = 0
    for a, idx in zip(axes, indices):
        key += [slice(None)] * (a - end)
        key.append(idx)
        end = a + (idx.ndim if idx.dtype == np.bool_ else 1)
    return tuple(key)


def _broadcast_shape(shapes: Sequence[Sequence[Expr]]) -> tuple[Expr, ...]:
    """NumPy broadcasting of index-expression shapes (the type rule checked they agree)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        d = const(1)
        for s in shapes:
            k = i - (rank - len(s))
            if k >= 0 and not (s[k].is_const and s[k].value == 1) and d.is_const \
                    and d.value == 1:
                d = s[k]
        out.append(d)
    return tuple(out)


def _advanced(x_shape: Sequence[Expr], indices: Sequence[Any], axes: Sequence[int],
              out_axes: Sequence[Expr]) -> tuple[Expr, ...]:
    """The x coordinates read (or written) at output position `out_axes` of x[key] for
    integer index tensors at `axes`: their broadcast dims replace the indexed axes in place
    when those are adjacent, and go first otherwise."""
    m = len(_broadcast_shape([t.shape for t in indices]))
    adjacent = all(a + 1 == b for a, b in zip(axes, axes[1:]))
    start = axes[0] if adjacent else 0
    middle = out_axes[start:start + m]
    rest = iter([*out_axes[:start], *out_axes[start + m:]])
    at = []
    for k, n in enumerate(x_shape):
        if k in axes:
            at.append(clamp_index(_broadcast_read(indices[axes.index(k)], middle), n))
        else:
            at.append(next(rest))
    return tuple(at)


def _broadcast_read(t: te.Tensor | Buffer, out_axes: Sequence[Expr]) -> Expr:
    """`t` read at an output position with NumPy broadcasting (size-1 dims read 0)."""
    offset = len(out_axes) - len(t.shape)
    return t[tuple(const(0) if d.is_const and d.value == 1 else out_axes[offset + k]
                   for k, d in enumerate(t.shape))]


def _indexed_exprs(x_shape: Sequence[Expr], indices: Sequence[Any], axes: Sequence[int]
                   ) -> tuple[Expr, ...]:
    """The shape of x[key] for integer index tensors (`_indexed_shape` on expressions)."""
    middle = _broadcast_shape([t.shape for t in indices])
    if all(a + 1 == b for a, b in zip(axes, axes[1:])):
        return (*x_shape[:axes[0]], *middle, *x_shape[axes[-1] + 1:])
    return (*middle, *(d for k, d in enumerate(x_shape) if k not in axes))


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
            elif n is not None and _fits(n, d):
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
class Index(OpDef):
    """Advanced indexing x[..., i, ..., j, ...] with integer index tensors at `axes`
    (aten.index.Tensor); the index tensors broadcast together."""

    name = "index.index"
    inputs = ("x", "indices*")
    attrs = {"axes": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *indices: Any, axes: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        idx = [tensor(t, self.name) for t in indices]
        for t in idx:
            _check_indices(self, t)
        return TensorType(_indexed_shape(self, x, idx, axes), x.dtype)

    def reference(self, x: np.ndarray, *indices: np.ndarray, axes: tuple[int, ...]
                  ) -> np.ndarray:
        return np.asarray(x[_key(x.ndim, axes, indices)])

    def compute(self, ctx: LowerContext, x: te.Tensor, *indices: te.Tensor,
                axes: tuple[int, ...]) -> te.Tensor:
        """out[p] = x[coordinates of p], each indexed axis read from its index tensor."""
        shape = ctx.out_shape()
        return te.compute(shape, lambda *p: x[_advanced(x.shape, indices, axes, p)],
                          ctx.name(), axis_names=ctx.axis_names(len(shape)))


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
            _check_indices(self, t, allow_bool=True)
        if any(t.dtype == DType.bool for t in idx):
            _spans(self, x, idx, axes)  # x[mask] has a data-dependent length
            return x
        target = _indexed_shape(self, x, idx, axes)
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
        key = _key(x.ndim, axes, indices)
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
                at = _advanced(out.shape, ib, axes, p)
                v = _broadcast_read(vb, p)
                return Store(out, at, out[at] + v if accumulate else v)

            return seq(copy, _nest(ctx.name("at"), _indexed_exprs(out.shape, ib, axes), put))

        return _scatter_extern(ctx, [x, values, *indices], build)


# -- ONNX's N-d scatter and data-dependent selections -------------------------------------


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
        _check_indices(self, indices)
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


_FRESH = [0]


def fresh_size(prefix: str) -> Dim:
    """A new size symbol for a data-dependent length (`nonzero`'s count, `unique`'s)."""
    from dlc.ir.symbolic import _SYMBOLS, symbol

    _FRESH[0] += 1
    while f"{prefix}{_FRESH[0]}" in _SYMBOLS:  # a parsed graph may already use the name
        _FRESH[0] += 1
    return symbol(f"{prefix}{_FRESH[0]}")


@register_op
class NonZero(OpDef):
    """The indices of the nonzero elements of `x`, as `i64[rank, n]` in row-major order
    (ONNX NonZero; `n` is a new size symbol bound when the op runs)."""

    name = "index.nonzero"
    inputs = ("x",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any) -> TensorType:
        x = tensor(x, self.name)
        return TensorType((x.rank, fresh_size("nnz")), DType.i64)

    def reference(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 0:
            return np.zeros((0, int(x != 0)), dtype=np.int64)
        return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@register_op
class Unique(OpDef):
    """The distinct values of `x` (flattened, or distinct slices along `axis`), with the
    index of each one's first occurrence, the inverse map and the counts (ONNX Unique).

    `sorted` orders the values ascending; otherwise they come in order of first
    occurrence. The number of distinct values is a new size symbol.
    """

    name = "index.unique"
    inputs = ("x",)
    attrs = {"axis": Attr("int", None, optional=True), "sorted": Attr("bool", True)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, *, axis: int | None, sorted: bool
                   ) -> tuple[TensorType, ...]:
        x = tensor(x, self.name)
        n = fresh_size("unique")
        if axis is None:
            values = TensorType((n,), x.dtype)
            size = x.numel
        else:
            a = normalize_axis(axis, x.rank, self.name)
            values = x.with_shape((*x.shape[:a], n, *x.shape[a + 1:]))
            size = x.shape[a]
        return (values, TensorType((n,), DType.i64), TensorType((size,), DType.i64),
                TensorType((n,), DType.i64))

    def reference(self, x: np.ndarray, *, axis: int | None, sorted: bool
                  ) -> tuple[np.ndarray, ...]:
        if axis is None:
            values, first, inverse, counts = np.unique(
                x.reshape(-1), return_index=True, return_inverse=True, return_counts=True)
        else:
            values, first, inverse, counts = np.unique(
                x, axis=axis, return_index=True, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if not sorted:  # order of first occurrence
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            values = np.take(values, order, axis=0 if axis is None else axis)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        return (values.astype(x.dtype), first.astype(np.int64), inverse.astype(np.int64),
                counts.astype(np.int64))


def _tfidf_columns(pool: Sequence[int], ngram_counts: Sequence[int],
                   ngram_indexes: Sequence[int]) -> dict[tuple[int, ...], int]:
    """Each pooled n-gram's output column (a repeated n-gram keeps its last column)."""
    column: dict[tuple[int, ...], int] = {}
    k = 0
    for n, start in enumerate(ngram_counts, start=1):
        end = ngram_counts[n] if n < len(ngram_counts) else len(pool)
        for s in range(start, end, n):
            column[tuple(pool[s:s + n])] = ngram_indexes[k]
            k += 1
    return column


@register_op
class TfIdfVectorizer(OpDef):
    """Count the n-grams of each row of integer tokens that appear in a pool (ONNX
    TfIdfVectorizer): n from `min_gram_length` to `max_gram_length`, tokens up to
    `max_skip_count` apart (every skip counts again for n >= 2). `pool` lists the
    1-grams, then the 2-grams, ... (`ngram_counts` gives where each length starts);
    `ngram_indexes` maps each pooled n-gram to its output column. `mode` TF gives the
    counts, IDF the `weights` of the n-grams present, TFIDF counts times weights."""

    name = "index.tfidf_vectorizer"
    inputs = ("x",)
    attrs = {"pool": Attr("ints"), "ngram_counts": Attr("ints"), "ngram_indexes": Attr("ints"),
             "weights": Attr("floats", ()), "min_gram_length": Attr("int"),
             "max_gram_length": Attr("int"), "max_skip_count": Attr("int"),
             "mode": Attr("str", choices=("TF", "IDF", "TFIDF"))}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, *, ngram_indexes: tuple[int, ...], **_: Any) -> TensorType:
        x = tensor(x, self.name)
        _check_indices(self, x)
        if x.rank not in (1, 2):
            raise self.error(f"expects [C] or [B, C] tokens, got {x}")
        size = max(ngram_indexes) + 1
        return TensorType((size,) if x.rank == 1 else (x.shape[0], size), DType.f32)

    def reference(self, x: np.ndarray, *, pool: tuple[int, ...], ngram_counts: tuple[int, ...],
                  ngram_indexes: tuple[int, ...], weights: tuple[float, ...],
                  min_gram_length: int, max_gram_length: int, max_skip_count: int,
                  mode: str) -> np.ndarray:
        column = _tfidf_columns(pool, ngram_counts, ngram_indexes)
        size = max(ngram_indexes) + 1
        rows = x.reshape(-1, x.shape[-1]) if x.ndim == 2 else x.reshape(1, -1)
        counts = np.zeros((rows.shape[0], size), dtype=np.float64)
        for r, row in enumerate(rows.tolist()):
            for n in range(min_gram_length, max_gram_length + 1):
                for skip in range(max_skip_count + 1 if n > 1 else 1):
                    d = skip + 1
                    for s in range(len(row) - d * (n - 1)):
                        col = column.get(tuple(row[s:s + d * (n - 1) + 1:d]))
                        if col is not None:
                            counts[r, col] += 1
        w = np.asarray(weights, dtype=np.float64) if weights else np.ones(size)
        if mode == "IDF":
            out = np.where(counts > 0, w, 0.0)
        elif mode == "TFIDF":
            out = counts * w
        else:
            out = counts
        return out.reshape((size,) if x.ndim == 1 else (x.shape[0], size)).astype(np.float32)

    def compute(self, ctx: LowerContext, x: te.Tensor, *, pool: tuple[int, ...],
                ngram_counts: tuple[int, ...], ngram_indexes: tuple[int, ...],
                weights: tuple[float, ...], min_gram_length: int, max_gram_length: int,
                max_skip_count: int, mode: str) -> te.Tensor:
        """Per row: zero the counts, then one loop per pooled n-gram and skip over the
        start positions, adding 1 where every token matches (the pool is an attribute,
        so the n-grams are constants in the loop nest); IDF and TFIDF then rewrite each
        pooled column, in f64 as the reference does."""
        column = {g: c for g, c in _tfidf_columns(pool, ngram_counts, ngram_indexes).items()
                  if min_gram_length <= len(g) <= max_gram_length}

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            (xb,), (out,) = ins, outs
            rows = xb.shape[0] if len(xb.shape) == 2 else const(1)
            r, c, s = var(ctx.name("row")), var(ctx.name("col")), var(ctx.name("start"))

            def cell(col: Any) -> tuple[Expr, ...]:
                return (r, col) if len(out.shape) == 2 else (col,)

            def token(pos: Expr) -> Expr:
                return xb[r, pos] if len(xb.shape) == 2 else xb[pos]

            steps = [For(c, out.shape[-1], Store(out, cell(c), const(0.0)))]
            for gram, col in column.items():
                n = len(gram)
                for skip in range(max_skip_count + 1 if n > 1 else 1):
                    d = skip + 1
                    match = const(True)
                    for t, g in enumerate(gram):
                        match = logical("and", match,
                                        compare("eq", token(s + d * t), const(g, xb.dtype)))
                    at = cell(const(col))
                    steps.append(For(s, xb.shape[-1] - d * (n - 1),
                                     IfThenElse(match, Store(out, at, out[at] + 1.0))))
            if mode != "TF":
                for col in sorted(set(column.values())):
                    w = const(weights[col] if weights else 1.0, DType.f64)
                    at = cell(const(col))
                    count = cast(out[at], DType.f64)
                    value = (select(compare("gt", count, const(0.0, DType.f64)), w,
                                    const(0.0, DType.f64)) if mode == "IDF" else count * w)
                    steps.append(Store(out, at, cast(value, DType.f32)))
            return For(r, rows, seq(*steps))

        (out,) = te.extern(ctx.name(), [x], [(ctx.out_shape(), ctx.out_dtype())], build)
        return out
