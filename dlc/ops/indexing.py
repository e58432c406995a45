"""Indexing ops that read (`index.*`): gathers, takes, embeddings, advanced indexing.

Index operands may be any integer dtype (i32 and i64 both reach dlc from torch); the
reference wraps negative indices like NumPy and fails on out-of-range ones. Gathers read
one input element per output element (INJECTIVE). The ops that write to data-dependent
places (scatters, `index.index_put`) are in `scatter.py`; ONNX's selections by value
(`index.nonzero`, `index.unique`, `index.tfidf_vectorizer`) in `selection.py`.

Advanced indexing (`index.index`, and `index.index_put` in `scatter.py`) follows NumPy's
rules, which are torch's: the index tensors broadcast together; their result dimensions
replace the indexed axes in place when those axes are adjacent, and go first otherwise.
The `axes` attribute says which axis of `x` each index tensor starts at (torch's `None`
entries are the axes left out); a bool mask of rank k covers k axes.

Lowering: gathers are computes whose index expressions load from the index tensors.
Every index read from data goes through `clamp_index`: negative indices wrap as in the
reference, and an index that is still out of range is *clamped* to the nearest valid one.
The reference raises there; a kernel cannot, and it must never read or write outside a
buffer (even without debug bounds checks), so a bad index gives a wrong element instead
of a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, is_static
from dlc.ir.tensor import compute as te
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, const, min_
from dlc.ir.tensor.index import clamp_index
from dlc.ir.tensor.stmt import Buffer
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    normalize_axis,
    register_op,
    tensor,
)


def check_indices(op: OpDef, t: TensorType, *, allow_bool: bool = False) -> None:
    if t.dtype.is_int or (allow_bool and t.dtype == DType.bool):
        return
    want = "an integer or bool" if allow_bool else "an integer"
    raise op.error(f"indices must have {want} dtype, got {t}")


def _not_larger(a: Dim, b: Dim) -> bool:
    """False only when both sizes are known and a > b (symbolic sizes are trusted)."""
    return not (is_static(a) and is_static(b)) or a <= b


def check_scatter_shapes(op: OpDef, x: TensorType, idx: TensorType, src: TensorType | None,
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


def provably_fits(a: Expr, b: Expr) -> bool:
    """True when a <= b is known at compile time (same expression, or both constant)."""
    return a is b or (a.is_const and b.is_const and a.value <= b.value)


# -- gathers -----------------------------------------------------------------------------


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
        check_indices(self, indices)
        check_scatter_shapes(self, x, indices, None, axis)
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
            at = [a if provably_fits(n, m) else min_(a, m - 1)
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
        check_indices(self, indices)
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
        check_indices(self, ids)
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


# -- advanced indexing -------------------------------------------------------------------


def index_spans(op: OpDef, x: TensorType, indices: Sequence[TensorType],
                axes: tuple[int, ...]) -> list[tuple[int, int]]:
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


def indexed_shape(op: OpDef, x: TensorType, indices: Sequence[TensorType],
                  axes: tuple[int, ...]) -> tuple[Dim, ...]:
    """Shape of x[key] for integer index tensors (NumPy's advanced-indexing rule)."""
    spans = index_spans(op, x, indices, axes)
    covered = {a for a, w in spans for a in range(a, a + w)}
    middle = broadcast_shapes(op.name, *(t.shape for t in indices))
    adjacent = all(s[0] + s[1] == t[0] for s, t in zip(spans, spans[1:]))
    if adjacent:
        first, (last, width) = spans[0][0], spans[-1]
        return (*x.shape[:first], *middle, *x.shape[last + width:])
    return (*middle, *(d for k, d in enumerate(x.shape) if k not in covered))


def numpy_key(rank: int, axes: Sequence[int], indices: Sequence[np.ndarray]) -> tuple[Any, ...]:
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


def advanced_coords(x_shape: Sequence[Expr], indices: Sequence[Any], axes: Sequence[int],
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
            at.append(clamp_index(broadcast_read(indices[axes.index(k)], middle), n))
        else:
            at.append(next(rest))
    return tuple(at)


def broadcast_read(t: te.Tensor | Buffer, out_axes: Sequence[Expr]) -> Expr:
    """`t` read at an output position with NumPy broadcasting (size-1 dims read 0)."""
    offset = len(out_axes) - len(t.shape)
    return t[tuple(const(0) if d.is_const and d.value == 1 else out_axes[offset + k]
                   for k, d in enumerate(t.shape))]


def indexed_exprs(x_shape: Sequence[Expr], indices: Sequence[Any], axes: Sequence[int]
                  ) -> tuple[Expr, ...]:
    """The shape of x[key] for integer index tensors (`indexed_shape` on expressions)."""
    middle = _broadcast_shape([t.shape for t in indices])
    if all(a + 1 == b for a, b in zip(axes, axes[1:])):
        return (*x_shape[:axes[0]], *middle, *x_shape[axes[-1] + 1:])
    return (*middle, *(d for k, d in enumerate(x_shape) if k not in axes))


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
            check_indices(self, t)
        return TensorType(indexed_shape(self, x, idx, axes), x.dtype)

    def reference(self, x: np.ndarray, *indices: np.ndarray, axes: tuple[int, ...]
                  ) -> np.ndarray:
        return np.asarray(x[numpy_key(x.ndim, axes, indices)])

    def compute(self, ctx: LowerContext, x: te.Tensor, *indices: te.Tensor,
                axes: tuple[int, ...]) -> te.Tensor:
        """out[p] = x[coordinates of p], each indexed axis read from its index tensor."""
        shape = ctx.out_shape()
        return te.compute(shape, lambda *p: x[advanced_coords(x.shape, indices, axes, p)],
                          ctx.name(), axis_names=ctx.axis_names(len(shape)))
