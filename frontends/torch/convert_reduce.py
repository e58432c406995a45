"""ATen converters for reductions: sum, mean, prod, amax/amin, max/min, arg-max/min, any,
var, vector norms, cumulative sums and products, topk.

Torch accumulates in the node's output dtype (an int or bool sum is i64, `dtype=` picks
another): the converters cast the operand to `b.out_dtype(node)` first, so the registry
ops keep the simple rule "result dtype = operand dtype". An empty `dim` list means every
axis in ATen (`sum.dim_IntList(x, [])` is `x.sum()`); it becomes `axes=None`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value


def _axes(dim: int | Sequence[int] | None) -> tuple[int, ...] | None:
    if dim is None:
        return None
    if isinstance(dim, int):
        return (dim,)
    return tuple(dim) or None


def _used_outputs(node: Any) -> set[int]:
    """Which outputs of a multi-output node the graph reads (through getitem)."""
    return {u.args[1] for u in node.users if u.target is operator.getitem}


def _reduce(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value, dim: Any = None, keepdim: bool = False, *,
                dtype: Any = None) -> Value:
        return b.op(op, b.cast(x, b.out_dtype(node)), axes=_axes(dim), keepdims=keepdim)

    return convert


torch_op("aten.sum.dim_IntList", "aten.sum.default")(_reduce("reduce.sum"))
torch_op("aten.mean.dim", "aten.mean.default")(_reduce("reduce.mean"))
torch_op("aten.prod.dim_int", "aten.prod.default")(_reduce("reduce.prod"))
torch_op("aten.amax.default", "aten.max.default")(_reduce("reduce.max"))
torch_op("aten.amin.default", "aten.min.default")(_reduce("reduce.min"))
torch_op("aten.any.dim", "aten.any.dims", "aten.any.default")(_reduce("reduce.any"))


def _value_and_index(value_op: str, index_op: str) -> Any:
    # max.dim returns (values, indices); the index reduction is only built when read.
    def convert(b: Any, node: Any, x: Value, dim: int, keepdim: bool = False
                ) -> tuple[Value, Value | None]:
        used = _used_outputs(node)
        values = b.op(value_op, x, axes=(dim,), keepdims=keepdim) if 0 in used else None
        index = b.op(index_op, x, axis=dim, keepdims=keepdim) if 1 in used else None
        return values, index

    return convert


torch_op("aten.max.dim")(_value_and_index("reduce.max", "reduce.argmax"))
torch_op("aten.min.dim")(_value_and_index("reduce.min", "reduce.argmin"))


def _arg(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value, dim: int | None = None, keepdim: bool = False
                ) -> Value:
        return b.op(op, x, axis=dim, keepdims=keepdim)

    return convert


torch_op("aten.argmax.default")(_arg("reduce.argmax"))
torch_op("aten.argmin.default")(_arg("reduce.argmin"))


@torch_op("aten.var.correction")
def _var(b: Any, node: Any, x: Value, dim: Any = None, *, correction: float | None = None,
         keepdim: bool = False) -> Value:
    return b.op("reduce.var", x, axes=_axes(dim), keepdims=keepdim,
                correction=1.0 if correction is None else correction)


@torch_op("aten.var_mean.correction")
def _var_mean(b: Any, node: Any, x: Value, dim: Any = None, *,
              correction: float | None = None, keepdim: bool = False
              ) -> tuple[Value | None, Value | None]:
    used, axes = _used_outputs(node), _axes(dim)
    var = b.op("reduce.var", x, axes=axes, keepdims=keepdim,
               correction=1.0 if correction is None else correction) if 0 in used else None
    mean = b.op("reduce.mean", x, axes=axes, keepdims=keepdim) if 1 in used else None
    return var, mean


@torch_op("aten.linalg_vector_norm.default")
def _vector_norm(b: Any, node: Any, x: Value, ord: float = 2, dim: Any = None,
                 keepdim: bool = False, *, dtype: Any = None) -> Value:
    return b.op("reduce.norm", b.cast(x, b.out_dtype(node)), ord=ord, axes=_axes(dim),
                keepdims=keepdim)


def _scan(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value, dim: int, *, dtype: Any = None) -> Value:
        return b.op(op, b.cast(x, b.out_dtype(node)), axis=dim)

    return convert


torch_op("aten.cumsum.default")(_scan("reduce.cumsum"))
torch_op("aten.cumprod.default")(_scan("reduce.cumprod"))


@torch_op("aten.topk.default")
def _topk(b: Any, node: Any, x: Value, k: int, dim: int = -1, largest: bool = True,
          sorted: bool = True) -> tuple[Value, Value]:
    return b.op("reduce.topk", x, k=k, axis=dim, largest=largest, sorted=sorted)
