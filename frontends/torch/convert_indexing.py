"""ATen converters for indexing: gather, index_select, embedding, scatters, advanced indexing.

After `run_decompositions()`, `index_add` arrives as `index_put(accumulate=True)`,
`torch.take` as a flatten plus `aten.index.Tensor`, and `masked_fill` as `where`; the
first two land here. ATen's index lists hold `None` for axes taken whole; the registry
ops record the axis each index tensor starts at instead (`axes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlc.errors import FrontendError
from dlc.frontends.torch.registry import torch_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value


def _index_list(node: Any, indices: Sequence[Value | None]) -> tuple[list[Value], list[int]]:
    """ATen's `Tensor?[] indices` as (index tensors, the input axis each starts at)."""
    values, axes, axis = [], [], 0
    for idx in indices:
        if idx is None:
            axis += 1
            continue
        if idx.dtype == DType.u8:  # torch's deprecated byte masks
            raise FrontendError(f"{node.target}: uint8 index masks are not supported; "
                                "index with a bool mask")
        values.append(idx)
        axes.append(axis)
        axis += idx.type.rank if idx.dtype == DType.bool else 1
    if not values:
        raise FrontendError(f"{node.target} has no index tensor")
    return values, axes


@torch_op("aten.gather.default")
def _gather(b: Any, node: Any, x: Value, dim: int, index: Value,
            sparse_grad: bool = False) -> Value:
    return b.op("index.gather", x, index, axis=dim)


@torch_op("aten.index_select.default")
def _index_select(b: Any, node: Any, x: Value, dim: int, index: Value) -> Value:
    if index.type.rank == 0:  # torch keeps the axis (length 1); np.take would drop it
        if not isinstance(index, Constant):
            raise FrontendError("index_select with a 0-d index tensor computed at run time "
                                "is not supported; pass a 1-element index")
        index = b.const(index.data.reshape(1))
    return b.check_output(node, b.op("index.take", x, index, axis=dim))


@torch_op("aten.embedding.default")
def _embedding(b: Any, node: Any, weight: Value, indices: Value, padding_idx: int = -1,
               scale_grad_by_freq: bool = False, sparse: bool = False) -> Value:
    # padding_idx, scale_grad_by_freq and sparse only change the gradient.
    return b.op("index.embedding", weight, indices)


@torch_op("aten.scatter_add.default")
def _scatter_add(b: Any, node: Any, x: Value, dim: int, index: Value, src: Value) -> Value:
    return b.op("index.scatter_add", x, index, b.cast(src, x.dtype), axis=dim)


@torch_op("aten.scatter.src", "aten.scatter.value")
def _scatter(b: Any, node: Any, x: Value, dim: int, index: Value, src: Any) -> Value:
    return b.op("index.scatter", x, index, b.as_value(src, x.dtype), axis=dim)


@torch_op("aten.scatter_reduce.two")
def _scatter_reduce(b: Any, node: Any, x: Value, dim: int, index: Value, src: Value,
                    reduce: str, include_self: bool = True) -> Value:
    return b.op("index.scatter_reduce", x, index, b.cast(src, x.dtype), axis=dim,
                reduce=reduce, include_self=include_self)


@torch_op("aten.index.Tensor")
def _index(b: Any, node: Any, x: Value, indices: Sequence[Value | None]) -> Value:
    values, axes = _index_list(node, indices)
    if any(v.dtype == DType.bool for v in values):
        raise FrontendError("indexing with a bool mask (x[mask]) has a data-dependent shape, "
                            "which dlc does not support yet; use torch.where(mask, x, 0) "
                            "if the shape may stay the same")
    return b.check_output(node, b.op("index.index", x, *values, axes=axes))


@torch_op("aten.index_put.default")
def _index_put(b: Any, node: Any, x: Value, indices: Sequence[Value | None], values: Any,
               accumulate: bool = False) -> Value:
    idx, axes = _index_list(node, indices)
    return b.op("index.index_put", x, b.as_value(values, x.dtype), *idx, axes=axes,
                accumulate=accumulate)


@torch_op("aten.index_add.default")
def _index_add(b: Any, node: Any, x: Value, dim: int, index: Value, source: Value,
               alpha: Any = 1) -> Value:
    source = b.cast(source, x.dtype)
    if alpha != 1:
        source = b.op("ew.mul", source, b.as_value(alpha, x.dtype))
    return b.op("index.index_put", x, source, index, axes=[dim % max(x.type.rank, 1)],
                accumulate=True)
