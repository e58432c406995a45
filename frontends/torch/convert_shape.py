"""ATen converters for views, copies, joins, splits, slices, padding and repetition.

dlc values have no strides, so every ATen view (`view`, `permute`, `expand`, `slice`, ...)
becomes a value-semantics `shape.*` op, and the copy/alias ops that only matter for
torch's memory model (`clone` with any memory_format, `alias`, `detach`,
`lift_fresh_copy`, `contiguous`) become the operand itself. The functional `*_copy`
spellings that some export paths emit map to the same converters.
"""

from __future__ import annotations

from typing import Any

from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value
from dlc.ops.shape import INT64_MAX


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# -- no-ops ----------------------------------------------------------------------------


@torch_op("aten.clone.default", "aten.alias.default", "aten.alias_copy.default",
          "aten.detach.default", "aten.detach_copy.default", "aten.lift_fresh_copy.default",
          "aten.lift_fresh.default", "aten.contiguous.default")
def _identity(b: Any, node: Any, x: Value, *args: Any, **kwargs: Any) -> Value:
    return x


# -- views -----------------------------------------------------------------------------


@torch_op("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
          "aten.view_copy.default")
def _view(b: Any, node: Any, x: Value, shape: list[Any]) -> Value:
    if list(shape) == list(x.shape):
        return x
    return b.op("shape.reshape", x, shape=list(shape))


@torch_op("aten.flatten.using_ints")
def _flatten(b: Any, node: Any, x: Value, start_dim: int = 0, end_dim: int = -1) -> Value:
    return b.op("shape.flatten", x, start=start_dim, end=end_dim)


@torch_op("aten.permute.default", "aten.permute_copy.default")
def _permute(b: Any, node: Any, x: Value, dims: list[int]) -> Value:
    perm = [_axis(d, x.type.rank) for d in dims]
    if perm == list(range(len(perm))):
        return x
    return b.op("shape.permute", x, perm=perm)


@torch_op("aten.t.default", "aten.t_copy.default", "aten.numpy_T.default")
def _t(b: Any, node: Any, x: Value) -> Value:
    rank = x.type.rank
    return x if rank < 2 else b.op("shape.permute", x, perm=list(range(rank))[::-1])


@torch_op("aten.transpose.int", "aten.transpose_copy.int")
def _transpose(b: Any, node: Any, x: Value, dim0: int, dim1: int) -> Value:
    perm = list(range(x.type.rank))
    if not perm:
        return x
    i, j = _axis(dim0, len(perm)), _axis(dim1, len(perm))
    perm[i], perm[j] = perm[j], perm[i]
    return _permute(b, node, x, perm)


@torch_op("aten.expand.default", "aten.expand_copy.default")
def _expand(b: Any, node: Any, x: Value, size: list[Any], implicit: bool = False) -> Value:
    if list(size) == list(x.shape):
        return x
    return b.op("shape.expand", x, shape=list(size))


@torch_op("aten.squeeze.dims", "aten.squeeze_copy.dims", "aten.squeeze.dim",
          "aten.squeeze.default")
def _squeeze(b: Any, node: Any, x: Value, dims: Any = None) -> Value:
    rank = x.type.rank
    if dims is None:
        dims = range(rank)
    elif isinstance(dims, int):
        dims = [dims]
    # torch leaves an axis of size other than 1 alone; dlc's squeeze insists on 1.
    axes = sorted({_axis(d, rank) for d in dims if rank and x.shape[_axis(d, rank)] == 1})
    return b.op("shape.squeeze", x, axes=axes) if axes else x


@torch_op("aten.unsqueeze.default", "aten.unsqueeze_copy.default")
def _unsqueeze(b: Any, node: Any, x: Value, dim: int) -> Value:
    return b.op("shape.unsqueeze", x, axes=[_axis(dim, x.type.rank + 1)])


# -- slices ----------------------------------------------------------------------------


@torch_op("aten.slice.Tensor", "aten.slice_copy.Tensor")
def _slice(b: Any, node: Any, x: Value, dim: int = 0, start: Any = None, end: Any = None,
           step: int = 1) -> Value:
    start = 0 if start is None else start
    end = INT64_MAX if end is None else end
    if start == 0 and isinstance(end, int) and step == 1 and (
            end >= INT64_MAX // 2 or end == x.shape[_axis(dim, x.type.rank)]):
        return x  # the whole axis
    return b.op("shape.slice", x, axes=[_axis(dim, x.type.rank)], starts=[start],
                ends=[end], steps=[step])


@torch_op("aten.select.int", "aten.select_copy.int")
def _select(b: Any, node: Any, x: Value, dim: int, index: Any) -> Value:
    axis = _axis(dim, x.type.rank)
    end = INT64_MAX if isinstance(index, int) and index == -1 else index + 1
    piece = b.op("shape.slice", x, axes=[axis], starts=[index], ends=[end], steps=[1])
    return b.op("shape.squeeze", piece, axes=[axis])


@torch_op("aten.narrow.default")
def _narrow(b: Any, node: Any, x: Value, dim: int, start: Any, length: Any) -> Value:
    axis = _axis(dim, x.type.rank)
    if isinstance(start, int) and start < 0:
        start = start + x.shape[axis]
    return b.op("shape.slice", x, axes=[axis], starts=[start], ends=[start + length],
                steps=[1])


@torch_op("aten.flip.default")
def _flip(b: Any, node: Any, x: Value, dims: list[int]) -> Value:
    return b.op("shape.flip", x, axes=[_axis(d, x.type.rank) for d in dims]) if dims else x


# -- joins and splits ------------------------------------------------------------------


def _same_dtype(b: Any, node: Any, xs: list[Value]) -> list[Value]:
    return b.promote(b.out_dtype(node), *xs)


@torch_op("aten.cat.default")
def _cat(b: Any, node: Any, tensors: list[Value], dim: int = 0) -> Value:
    rank = b.meta_type(node).rank
    # torch.cat skips legacy empty 1-D operands whatever the other operands' rank is
    xs = [x for x in tensors if not (x.type.rank == 1 and x.shape[0] == 0 and rank != 1)]
    if len(xs) == 1:
        return b.cast(xs[0], b.out_dtype(node))
    return b.op("shape.concat", *_same_dtype(b, node, xs), axis=_axis(dim, rank))


@torch_op("aten.stack.default")
def _stack(b: Any, node: Any, tensors: list[Value], dim: int = 0) -> Value:
    rank = tensors[0].type.rank + 1
    return b.op("shape.stack", *_same_dtype(b, node, tensors), axis=_axis(dim, rank))


def _split(b: Any, node: Any, x: Value, dim: int) -> tuple[Value, ...]:
    """Split into the pieces torch reports (its metadata already resolves the sizes)."""
    axis = _axis(dim, x.type.rank)
    pieces = node.meta["val"]
    sizes = [b.dim_of(t.shape[axis]) for t in pieces]
    if len(sizes) == 1:
        return (x,)
    return b.node("shape.split", [x], {"sizes": sizes, "axis": axis}).outputs


@torch_op("aten.split_with_sizes.default", "aten.split_with_sizes_copy.default")
def _split_with_sizes(b: Any, node: Any, x: Value, split_sizes: list[Any], dim: int = 0
                      ) -> tuple[Value, ...]:
    return _split(b, node, x, dim)


@torch_op("aten.split.Tensor", "aten.split_copy.Tensor")
def _split_tensor(b: Any, node: Any, x: Value, split_size: Any, dim: int = 0
                  ) -> tuple[Value, ...]:
    return _split(b, node, x, dim)


@torch_op("aten.unbind.int", "aten.unbind_copy.int")
def _unbind(b: Any, node: Any, x: Value, dim: int = 0) -> tuple[Value, ...]:
    axis = _axis(dim, x.type.rank)
    return tuple(b.op("shape.squeeze", p, axes=[axis]) for p in _split(b, node, x, dim))


# -- padding and repetition ------------------------------------------------------------


def _onnx_pads(torch_pads: list[int], rank: int) -> list[int]:
    """torch's (last-axis first) [begin, end] pairs as ONNX's begins-then-ends over all axes."""
    begins, ends = [0] * rank, [0] * rank
    for k in range(len(torch_pads) // 2):
        begins[rank - 1 - k] = torch_pads[2 * k]
        ends[rank - 1 - k] = torch_pads[2 * k + 1]
    return begins + ends


@torch_op("aten.constant_pad_nd.default")
def _constant_pad(b: Any, node: Any, x: Value, pad: list[int], value: float = 0) -> Value:
    return b.op("shape.pad", x, pads=_onnx_pads(pad, x.type.rank), mode="constant",
                value=float(value))


def _mode_pad(mode: str) -> Any:
    def convert(b: Any, node: Any, x: Value, padding: list[int]) -> Value:
        return b.op("shape.pad", x, pads=_onnx_pads(padding, x.type.rank), mode=mode)

    return convert


torch_op("aten.reflection_pad1d.default", "aten.reflection_pad2d.default",
         "aten.reflection_pad3d.default")(_mode_pad("reflect"))
torch_op("aten.replication_pad1d.default", "aten.replication_pad2d.default",
         "aten.replication_pad3d.default")(_mode_pad("replicate"))


@torch_op("aten.pad.default")
def _pad(b: Any, node: Any, x: Value, pad: list[int], mode: str = "constant",
         value: float | None = None) -> Value:
    return b.op("shape.pad", x, pads=_onnx_pads(pad, x.type.rank), mode=mode,
                value=float(value or 0.0))


@torch_op("aten.repeat.default")
def _repeat(b: Any, node: Any, x: Value, repeats: list[int]) -> Value:
    return b.op("shape.repeat", x, repeats=list(repeats))
