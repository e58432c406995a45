"""Tensor-IR statements: loop nests over buffers (`PrimFunc`).

    kernel @fused_matmul_relu(A: f32[64, 32], W: f32[32, 16], Out: f32[64, 16]) {
      parallel for i in 0..64 {
        for j in 0..16 {
          acc: f32[1] local
          acc[0] = 0.0
          for k in 0..32 { acc[0] = acc[0] + A[i, k] * W[k, j] }
          Out[i, j] = max(acc[0], 0.0)
        }
      }
    }
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dlc.ir.dtypes import DType
from dlc.ir.tensor.expr import Expr, as_expr


@dataclass(frozen=True, eq=False)
class Buffer:
    """A multi-dimensional array in memory: a kernel parameter or a local scratch buffer.

    Identity is object identity (two buffers with one name are still different buffers).
    `scope` is "global" for parameters and arena slices, "local" for per-iteration scratch
    (an accumulator) that codegen places on the stack.
    """

    name: str
    shape: tuple[Expr, ...]
    dtype: DType
    scope: str = "global"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(as_expr(d) for d in self.shape))

    def __getitem__(self, indices: Any) -> Expr:
        from dlc.ir.tensor.expr import load

        if not isinstance(indices, tuple):
            indices = (indices,)
        return load(self, indices)

    def __repr__(self) -> str:
        return f"Buffer({self.name})"


class LoopKind(enum.Enum):
    """How a loop runs: in order, across threads, as vector lanes, or fully unrolled."""

    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"


class Stmt:
    """Base class of statements."""

    def children(self) -> tuple[Stmt, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class For(Stmt):
    """`for var in 0..extent { body }`, run according to `kind`."""

    var: Expr
    extent: Expr
    body: Stmt
    kind: LoopKind = LoopKind.SERIAL

    def children(self) -> tuple[Stmt, ...]:
        return (self.body,)


@dataclass(frozen=True, eq=False)
class Store(Stmt):
    """`buffer[indices] = value`."""

    buffer: Buffer
    indices: tuple[Expr, ...]
    value: Expr


@dataclass(frozen=True, eq=False)
class Seq(Stmt):
    """Statements run one after another."""

    stmts: tuple[Stmt, ...]

    def children(self) -> tuple[Stmt, ...]:
        return self.stmts


@dataclass(frozen=True, eq=False)
class IfThenElse(Stmt):
    """`if cond { then } else { otherwise }` (otherwise may be None)."""

    cond: Expr
    then: Stmt
    otherwise: Stmt | None = None

    def children(self) -> tuple[Stmt, ...]:
        return (self.then,) if self.otherwise is None else (self.then, self.otherwise)


@dataclass(frozen=True, eq=False)
class Allocate(Stmt):
    """A scratch buffer that lives for the duration of `body`."""

    buffer: Buffer
    body: Stmt

    def children(self) -> tuple[Stmt, ...]:
        return (self.body,)


def seq(*stmts: Stmt | None) -> Stmt:
    """A Seq, flattening nested Seqs and dropping Nones; one statement stays itself."""
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        flat.extend(s.stmts if isinstance(s, Seq) else (s,))
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


@dataclass(frozen=True, eq=False)
class PrimFunc:
    """A kernel: buffer parameters (inputs then outputs), size-symbol parameters, a body.

    `comment` names the graph nodes the kernel came from; codegen prints it above the
    function so generated code can be traced back to the model.
    """

    name: str
    params: tuple[Buffer, ...]
    body: Stmt
    sizes: tuple[Expr, ...] = ()  # i64 vars for symbolic dimensions, passed by value
    comment: str = ""
    outputs: tuple[Buffer, ...] = field(default=())  # the params written by the kernel

    def __str__(self) -> str:
        from dlc.ir.tensor.printer import print_func

        return print_func(self)


def walk(stmt: Stmt) -> Iterator[Stmt]:
    """Every statement in `stmt`, pre-order."""
    stack = [stmt]
    while stack:
        s = stack.pop()
        yield s
        stack.extend(reversed(s.children()))
