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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import TypeInferenceError
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dims_equal, is_static
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
