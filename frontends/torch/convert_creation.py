"""ATen converters for tensor factories: arange, full and its spellings, and fills.

Shapes and dtypes come from torch's metadata of the node, which already resolves default
dtypes and symbolic sizes (`full([sym_size, 1])` gives `[N, 1]`). `empty` becomes zeros:
its contents are unspecified, and a deterministic fill keeps the interpreter comparable.
"""

from __future__ import annotations

from typing import Any

from dlc.errors import FrontendError
from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value
from dlc.ops.shape import INT64_MAX


def _number(node: Any, value: Any, what: str) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    raise FrontendError(f"{node.target}: a symbolic {what} ({value}) is not supported; "
                        "dlc fill values and arange bounds are numbers")


def _full(b: Any, node: Any, value: Any) -> Value:
    t = b.meta_type(node)
    return b.op("create.full", shape=list(t.shape), value=_number(node, value, "fill value"),
                dtype=t.dtype)


@torch_op("aten.full.default")
def _full_default(b: Any, node: Any, size: Any, fill_value: Any, **kwargs: Any) -> Value:
    return _full(b, node, fill_value)


@torch_op("aten.zeros.default", "aten.empty.memory_format")
def _zeros(b: Any, node: Any, size: Any, **kwargs: Any) -> Value:
    return _full(b, node, 0)


@torch_op("aten.empty_strided.default")
def _empty_strided(b: Any, node: Any, size: Any, stride: Any, **kwargs: Any) -> Value:
    return _full(b, node, 0)


@torch_op("aten.ones.default")
def _ones(b: Any, node: Any, size: Any, **kwargs: Any) -> Value:
    return _full(b, node, 1)


@torch_op("aten.new_zeros.default", "aten.new_empty.default")
def _new_zeros(b: Any, node: Any, x: Value, size: Any, **kwargs: Any) -> Value:
    return _full(b, node, 0)


@torch_op("aten.new_ones.default")
def _new_ones(b: Any, node: Any, x: Value, size: Any, **kwargs: Any) -> Value:
    return _full(b, node, 1)


@torch_op("aten.new_full.default")
def _new_full(b: Any, node: Any, x: Value, size: Any, fill_value: Any, **kwargs: Any
              ) -> Value:
    return _full(b, node, fill_value)


def _full_like(b: Any, node: Any, x: Value, value: Any) -> Value:
    return b.op("create.full_like", x, value=_number(node, value, "fill value"),
                dtype=b.out_dtype(node))


@torch_op("aten.full_like.default", "aten.fill.Scalar")
def _full_like_default(b: Any, node: Any, x: Value, fill_value: Any, **kwargs: Any) -> Value:
    return _full_like(b, node, x, fill_value)


@torch_op("aten.zeros_like.default", "aten.empty_like.default")
def _zeros_like(b: Any, node: Any, x: Value, **kwargs: Any) -> Value:
    return _full_like(b, node, x, 0)


@torch_op("aten.ones_like.default")
def _ones_like(b: Any, node: Any, x: Value, **kwargs: Any) -> Value:
    return _full_like(b, node, x, 1)


@torch_op("aten.fill.Tensor")
def _fill_tensor(b: Any, node: Any, x: Value, value: Value) -> Value:
    # zeros shaped like x plus the 0-d value: broadcasting needs no size bindings
    dtype = b.out_dtype(node)
    return b.op("ew.add", _full_like(b, node, x, 0), b.cast(value, dtype))


# -- arange ----------------------------------------------------------------------------


def _arange(b: Any, node: Any, start: Any, end: Any, step: Any) -> Value:
    t = b.meta_type(node)
    if isinstance(start, (bool, int, float)):
        return b.op("create.arange", shape=list(t.shape), start=float(start),
                    step=_number(node, step, "arange step"), dtype=t.dtype)
    # A symbolic start (positions past a KV cache): arange(0, end)[start::step].
    if not (isinstance(step, int) and step > 0):
        raise FrontendError(f"{node.target}: a symbolic start needs a positive integer step, "
                            f"got {step}")
    whole = b.op("create.arange", shape=[end], start=0.0, step=1.0, dtype=t.dtype)
    return b.op("shape.slice", whole, axes=[0], starts=[start], ends=[INT64_MAX], steps=[step])


@torch_op("aten.arange.default")
def _arange_end(b: Any, node: Any, end: Any, **kwargs: Any) -> Value:
    return _arange(b, node, 0, end, 1)


@torch_op("aten.arange.start")
def _arange_start(b: Any, node: Any, start: Any, end: Any, **kwargs: Any) -> Value:
    return _arange(b, node, start, end, 1)


@torch_op("aten.arange.start_step")
def _arange_start_step(b: Any, node: Any, start: Any, end: Any, step: Any = 1,
                       **kwargs: Any) -> Value:
    return _arange(b, node, start, end, step)
