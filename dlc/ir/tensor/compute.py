"""Compute definitions: *what* a kernel computes, separate from *how* (TVM's TE).

    A = placeholder((M, K), f32, "A"); B = placeholder((K, N), f32, "B")
    k = reduce_axis(K, "k")
    C = compute((M, N), lambda i, j: reduce("sum", A[i, k] * B[k, j], [k]), "C")

A `Tensor` is a buffer plus, for computed tensors, its index variables and body. Indexing
a tensor (`A[i, k]`) gives a load expression from its buffer; lowering either inlines the
body at that load (elementwise producers inside a fused group) or materializes the tensor
in a buffer and loops over it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlc.ir.dtypes import DType
from dlc.ir.tensor.expr import Expr, as_expr, children, const, load, var
from dlc.ir.tensor.stmt import Buffer

COMBINERS = ("sum", "prod", "max", "min", "argmax", "argmin")


@dataclass(frozen=True, eq=False)
class ReduceAxis:
    """An index variable that a reduction ranges over (`for k in 0..extent`)."""

    var: Expr
    extent: Expr


@dataclass(frozen=True, eq=False)
class Reduce:
    """A reduction over `axes` of `body` with `combiner`; only at the top of a compute body.

    argmax/argmin return the (row-major, first-wins) position over the reduce axes as i64.
    `init` overrides the combiner's identity (e.g. a running sum starting from a bias).
    """

    combiner: str
    body: Expr
    axes: tuple[ReduceAxis, ...]
    init: Expr | None = None

    @property
    def dtype(self) -> DType:
        return DType.i64 if self.combiner in ("argmax", "argmin") else self.body.dtype


@dataclass(eq=False)
class Tensor:
    """A placeholder (kernel input) or a computed tensor over index variables `axes`."""

    buffer: Buffer
    axes: tuple[Expr, ...] = ()
    body: Expr | Reduce | None = None
    tag: str = ""  # e.g. the graph op it came from, for comments and schedule rules
    attrs: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[Tensor, ...] = ()  # the tensors the body loads from (found by `compute`)
    extern: ExternOp | None = None  # set for the outputs of an imperative loop nest

    @property
    def name(self) -> str:
        return self.buffer.name

    @property
    def shape(self) -> tuple[Expr, ...]:
        return self.buffer.shape

    @property
    def dtype(self) -> DType:
        return self.buffer.dtype

    @property
    def ndim(self) -> int:
        return len(self.buffer.shape)

    @property
    def is_placeholder(self) -> bool:
        return self.body is None and self.extern is None

    @property
    def is_reduction(self) -> bool:
        return isinstance(self.body, Reduce)

    def __getitem__(self, indices: Any) -> Expr:
        if not isinstance(indices, tuple):
            indices = (indices,)
        return load(self.buffer, indices)

    def __post_init__(self) -> None:
        _TENSOR_OF[self.buffer] = self  # so `compute` can find a load's producer

    def __repr__(self) -> str:
        return f"Tensor({self.name})"


_TENSOR_OF: weakref.WeakValueDictionary[Buffer, Tensor] = weakref.WeakValueDictionary()


def _producers(*exprs: Expr | None) -> tuple[Tensor, ...]:
    """The tensors whose buffers the expressions load from, in first-seen order."""
    found: dict[Buffer, Tensor] = {}
    seen: set[int] = set()
    stack = [e for e in exprs if e is not None]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if e.op == "load" and e.args[0] in _TENSOR_OF:
            found.setdefault(e.args[0], _TENSOR_OF[e.args[0]])
        stack.extend(children(e))
    return tuple(found.values())


def placeholder(shape: Sequence[Any], dtype: DType, name: str) -> Tensor:
    """A kernel input."""
    return Tensor(Buffer(name, tuple(as_expr(d) for d in shape), dtype))


def reduce_axis(extent: Any, name: str) -> ReduceAxis:
    """A reduction variable over `0..extent`."""
    return ReduceAxis(var(name), as_expr(extent))


def reduce(combiner: str, body: Expr, axes: Sequence[ReduceAxis],
           init: Expr | None = None) -> Reduce:
    """`combiner` of `body` over `axes` (sum, prod, max, min, argmax, argmin)."""
    if combiner not in COMBINERS:
        raise ValueError(f"unknown combiner {combiner!r}; known: {', '.join(COMBINERS)}")
    return Reduce(combiner, body, tuple(axes), init)


def compute(shape: Sequence[Any], fcompute: Callable[..., Expr | Reduce], name: str,
            tag: str = "", axis_names: Sequence[str] | None = None) -> Tensor:
    """A tensor of `shape` whose element at `(i, j, ...)` is `fcompute(i, j, ...)`."""
    dims = tuple(as_expr(d) for d in shape)
    names = list(axis_names or [])
    names += [f"{name}_i{k}" for k in range(len(names), len(dims))]
    axes = tuple(var(n) for n in names)
    body = fcompute(*axes)
    if isinstance(body, Reduce):
        inputs = _producers(body.body, body.init)
    else:
        body = as_expr(body)
        inputs = _producers(body)
    return Tensor(Buffer(name, dims, body.dtype), axes, body, tag, inputs=inputs)


def identity(combiner: str, dtype: DType) -> Expr:
    """The neutral element of a combiner for `dtype` (max starts at -inf or the min int)."""
    import numpy as np

    if combiner == "sum":
        return const(0, dtype)
    if combiner == "prod":
        return const(1, dtype)
    if dtype.is_float:
        inf = float("inf")
        return const(-inf if combiner in ("max", "argmax") else inf, dtype)
    if dtype == DType.bool:
        return const(combiner in ("min", "argmin"), dtype)
    info = np.iinfo(dtype.numpy)
    return const(int(info.min if combiner in ("max", "argmax") else info.max), dtype)


@dataclass(eq=False)
class ExternOp:
    """A loop nest written imperatively, for ops that are not a compute over indices.

    `build(inputs, outputs)` receives the input and output Buffers and returns the Stmt
    that fills the outputs: data-dependent loops (sparse rows, scatter, top-k) are written
    this way. Its inputs are always materialized and it is never inlined.
    """

    name: str
    inputs: tuple[Tensor, ...]
    build: Callable[..., Any]
    outputs: tuple[Tensor, ...] = ()


def extern(name: str, inputs: Sequence[Tensor], outputs: Sequence[tuple[Sequence[Any], DType]],
           build: Callable[..., Any], tag: str = "") -> tuple[Tensor, ...]:
    """Output tensors of an imperative loop nest `build(input_buffers, output_buffers)`."""
    op = ExternOp(name, tuple(inputs), build)
    outs = []
    for k, (shape, dtype) in enumerate(outputs):
        buf = Buffer(name if k == 0 else f"{name}_{k}", tuple(as_expr(d) for d in shape), dtype)
        outs.append(Tensor(buf, tag=tag, inputs=tuple(inputs), extern=op))
    op.outputs = tuple(outs)
    return tuple(outs)
