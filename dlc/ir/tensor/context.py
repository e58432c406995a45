"""What a compute rule receives: the node's output types and a namer for its tensors.

An op's `compute(ctx, *inputs, **attrs)` (declared on the op, in its family module)
returns the Tensor(s) computing the node's outputs from input Tensors. It reads output
shapes from `ctx` rather than recomputing them: the type rule already did that, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import Tensor, compute
from dlc.ir.tensor.expr import Expr, as_expr, cast, const, from_sympy
from dlc.ir.types import TensorType


@dataclass
class LowerContext:
    """Per-node lowering state: output types, a name prefix, and used names."""

    out_types: tuple[TensorType, ...]
    prefix: str
    used: set[str] = field(default_factory=set)

    def out_shape(self, index: int = 0) -> tuple[Expr, ...]:
        """Output `index`'s shape as index expressions (symbols become size variables)."""
        return tuple(as_expr(d) if isinstance(d, int) else from_sympy(d)
                     for d in self.out_types[index].shape)

    def out_dtype(self, index: int = 0) -> DType:
        return self.out_types[index].dtype

    def name(self, hint: str = "") -> str:
        """A fresh name: `<prefix>` for the first, then `<prefix>_<hint>`... (never one of
        the loop-variable names `axis_names` gives)."""
        if not self.used:
            self.used.update(f"{self.prefix}_{c}" for c in "ijklmnop")
        base = self.prefix if not hint else f"{self.prefix}_{hint}"
        name, k = base, 1
        while name in self.used:
            name = f"{base}{k}"
            k += 1
        self.used.add(name)
        return name

    def axis_names(self, rank: int) -> list[str]:
        """Readable loop variable names for an output of `rank` dims (unique per kernel)."""
        return [f"{self.prefix}_{'ijklmnop'[k] if k < 8 else k}" for k in range(rank)]


def broadcast_load(x: Tensor, out_axes: Sequence[Expr]) -> Expr:
    """`x` read at the output position, NumPy broadcasting (size-1 dims read index 0)."""
    offset = len(out_axes) - x.ndim
    idx = []
    for k, d in enumerate(x.shape):
        idx.append(const(0) if d.is_const and d.value == 1 else out_axes[offset + k])
    return x[tuple(idx)]


def elementwise(ctx: LowerContext, fn: Callable[..., Any], *xs: Tensor,
                index: int = 0) -> Tensor:
    """A compute over the output shape applying `fn` to broadcast loads of `xs`."""
    shape = ctx.out_shape(index)
    dtype = ctx.out_dtype(index)

    def body(*axes: Expr) -> Expr:
        return cast(as_expr(fn(*(broadcast_load(x, axes) for x in xs))), dtype)

    return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))
