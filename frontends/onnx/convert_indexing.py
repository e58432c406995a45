"""ONNX converters for gathers, scatters and data-dependent selections (`index.*`).

`Gather` is NumPy's take, `GatherElements` torch's gather, `GatherND` advanced indexing
with one index tensor per leading axis (`index.index`). Ops whose result size depends on
the data (NonZero, Compress with a run-time condition, Unique) produce sizes that are new
symbols, bound when the graph runs.
"""

from __future__ import annotations

import numpy as np

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ops.registry import normalize_axis

B = OnnxGraphBuilder


@onnx_op("Gather")
def _gather(b: B, node: OnnxNode) -> Value:
    x, idx = node.inputs[0], node.inputs[1]
    axis = normalize_axis(node.attr("axis", 0), b.rank_of(x), node.op_type)
    return b.op("index.take", x, idx, axis=axis)


@onnx_op("GatherElements")
def _gather_elements(b: B, node: OnnxNode) -> Value:
    x, idx = node.inputs[0], node.inputs[1]
    axis = normalize_axis(node.attr("axis", 0), b.rank_of(x), node.op_type)
    return b.op("index.gather", x, idx, axis=axis)


def _split_last(b: B, idx: Value) -> list[Value]:
    """The index tensor `[..., k]` as k tensors `[...]`, one per addressed axis."""
    k = b.shape_of(idx)[-1]
    last = b.rank_of(idx) - 1
    return [b.op("shape.squeeze", b.op("shape.slice", idx, axes=(last,), starts=(i,),
                                       ends=(i + 1,)), axes=(last,)) for i in range(k)]


@onnx_op("GatherND")
def _gather_nd(b: B, node: OnnxNode) -> Value:
    x, idx = node.inputs[0], b.cast(node.inputs[1], DType.i64)
    batch = node.attr("batch_dims", 0)
    parts = _split_last(b, idx)
    lead = []
    part_rank = b.rank_of(idx) - 1
    for j in range(batch):  # batch axis j is addressed by its own position
        size = b.shape_of(x)[j]
        shape = [1] * part_rank
        shape[j] = size
        lead.append(b.op("shape.reshape", b.op("create.arange", shape=(size,),
                                               dtype=DType.i64), shape=tuple(shape)))
    indices = lead + parts
    if not indices:
        return x
    return b.op("index.index", x, *indices, axes=tuple(range(len(indices))))


def _scatter_elements(b: B, node: OnnxNode, reduction: str) -> Value:
    x, idx, src = node.inputs[0], node.inputs[1], node.inputs[2]
    axis = normalize_axis(node.attr("axis", 0), b.rank_of(x), node.op_type)
    if reduction == "none":
        return b.op("index.scatter", x, idx, src, axis=axis)
    if reduction == "add":
        return b.op("index.scatter_add", x, idx, src, axis=axis)
    reduce = {"mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return b.op("index.scatter_reduce", x, idx, src, axis=axis, reduce=reduce,
                include_self=True)


@onnx_op("ScatterElements")
def _scatter_elements_op(b: B, node: OnnxNode) -> Value:
    reduction = node.attr("reduction", "none")
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise b.unsupported(node, f"with reduction={reduction!r}")
    return _scatter_elements(b, node, reduction)


@onnx_op("Scatter")
def _scatter(b: B, node: OnnxNode) -> Value:
    return _scatter_elements(b, node, "none")


@onnx_op("ScatterND")
def _scatter_nd(b: B, node: OnnxNode) -> Value:
    reduction = node.attr("reduction", "none")
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise b.unsupported(node, f"with reduction={reduction!r}")
    return b.op("index.scatter_nd", *node.inputs[:3], reduction=reduction)


@onnx_op("NonZero")
def _nonzero(b: B, node: OnnxNode) -> Value:
    return b.op("index.nonzero", node.inputs[0])


@onnx_op("Compress")
def _compress(b: B, node: OnnxNode) -> Value:
    x, cond = node.inputs[0], node.inputs[1]
    axis = node.attr("axis")
    if axis is None:
        x = b.op("shape.reshape", x, shape=(-1,))
        axis = 0
    axis = normalize_axis(axis, b.rank_of(x), node.op_type)
    known = b.constant(cond)
    if known is not None and known.dtype != object:
        picked = np.nonzero(np.asarray(known).reshape(-1))[0].astype(np.int64)
        return b.op("index.take", x, b.const(picked), axis=axis)
    rows = b.op("index.nonzero", cond)
    picked = b.op("shape.reshape", rows, shape=(b.shape_of(rows)[1],))
    return b.op("index.take", x, picked, axis=axis)


@onnx_op("OneHot")
def _one_hot(b: B, node: OnnxNode) -> Value:
    idx, values = node.inputs[0], node.inputs[2]
    depth = int(b.static_scalar(node, 1, "depth"))
    rank = b.rank_of(idx) + 1
    axis = normalize_axis(node.attr("axis", -1), rank, node.op_type)
    if idx.dtype.is_float:
        idx = b.cast(idx, DType.i64)
    idx = b.cast(idx, DType.i64)
    # Negative indices count from the end of the depth axis.
    idx = b.op("ew.where", b.op("ew.lt", idx, b.scalar(0, DType.i64)),
               b.op("ew.add", idx, b.scalar(depth, DType.i64)), idx)
    idx = b.op("shape.unsqueeze", idx, axes=(axis,))
    shape = [1] * rank
    shape[axis] = depth
    positions = b.op("shape.reshape", b.op("create.arange", shape=(depth,), dtype=DType.i64),
                     shape=tuple(shape))
    hot = b.op("ew.eq", idx, positions)
    off = b.op("shape.reshape", b.op("shape.slice", values, axes=(0,), starts=(0,), ends=(1,)),
               shape=())
    on = b.op("shape.reshape", b.op("shape.slice", values, axes=(0,), starts=(1,), ends=(2,)),
              shape=())
    return b.op("ew.where", hot, on, off)


@onnx_op("Unique")
def _unique(b: B, node: OnnxNode) -> tuple[Value, ...]:
    return b.op("index.unique", node.inputs[0], axis=node.attr("axis"),
                sorted=bool(node.attr("sorted", 1)))


@onnx_op("ReverseSequence")
def _reverse_sequence(b: B, node: OnnxNode) -> Value:
    x, lengths = node.inputs[0], b.cast(node.inputs[1], DType.i64)
    batch_axis, time_axis = node.attr("batch_axis", 1), node.attr("time_axis", 0)
    rank = b.rank_of(x)
    shape = b.shape_of(x)
    t_size = shape[time_axis]
    t_shape = [1] * rank
    t_shape[time_axis] = t_size
    t = b.op("shape.reshape", b.op("create.arange", shape=(t_size,), dtype=DType.i64),
             shape=tuple(t_shape))
    l_shape = [1] * rank
    l_shape[batch_axis] = shape[batch_axis]
    n = b.op("shape.reshape", lengths, shape=tuple(l_shape))
    # Within the first `n` steps read step n - 1 - t; the rest stay in place.
    flipped = b.op("ew.sub", b.op("ew.sub", n, b.scalar(1, DType.i64)), t)
    src = b.op("ew.where", b.op("ew.lt", t, n), flipped, t)
    src = b.op("shape.expand", src, shape=shape)
    return b.op("index.gather", x, src, axis=time_axis)


@onnx_op("TensorScatter")
def _tensor_scatter(b: B, node: OnnxNode) -> Value:
    """Write `update` into the cache at each batch row's write index along `axis` (a KV
    cache update): a scatter whose indices are `write_index[batch] + position`."""
    cache, update, write = node.inputs[0], node.inputs[1], node.input(2)
    rank = b.rank_of(cache)
    axis = normalize_axis(node.attr("axis", -2), rank, node.op_type)
    length = b.shape_of(update)[axis]
    shape = [1] * rank
    shape[axis] = length
    index = b.op("shape.reshape", b.op("create.arange", shape=(length,), dtype=DType.i64),
                 shape=tuple(shape))
    if write is not None:
        start = [1] * rank
        start[0] = b.shape_of(cache)[0]
        index = b.op("ew.add", index, b.op("shape.reshape", b.cast(write, DType.i64),
                                           shape=tuple(start)))
    if node.attr("mode", "linear") == "circular":
        index = b.op("ew.remainder", index, b.scalar(b.shape_of(cache)[axis], DType.i64))
    index = b.op("shape.expand", index, shape=b.shape_of(update))
    return b.op("index.scatter", cache, index, update, axis=axis)


@onnx_op("TfIdfVectorizer")
def _tfidf(b: B, node: OnnxNode) -> Value:
    if node.attr("pool_strings"):
        raise b.unsupported(node, "with pool_strings (string ops are out of scope)")
    return b.op("index.tfidf_vectorizer", node.inputs[0], pool=node.attr("pool_int64s"),
                ngram_counts=node.attr("ngram_counts"), ngram_indexes=node.attr("ngram_indexes"),
                weights=node.attr("weights") or (), min_gram_length=node.attr("min_gram_length"),
                max_gram_length=node.attr("max_gram_length"),
                max_skip_count=node.attr("max_skip_count"), mode=node.attr("mode"))
