"""Opmath: computing in a wider dtype and rounding once, as PyTorch's CPU kernels do.

f16 and bf16 ops compute in f32 (their "opmath" type) and round the result once at the
end. References do it on NumPy arrays (`opmath`, `upcast`); lowerings on tensor-IR
elements (`opmath_dtype`, `widen`), and reductions round at the accumulator's write
(`reduce_then`), so the compiled kernel rounds where the reference rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import Reduce, ReduceAxis, Tensor, compute, reduce
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, cast, var

_LOW_PRECISION = (DType.f16.numpy, DType.bf16.numpy)

# -- references (NumPy) ------------------------------------------------------------------


def opmath(x: np.ndarray) -> np.ndarray:
    """`x` in the precision a kernel computes in: f16 and bf16 widen to f32."""
    return x.astype(np.float32) if x.dtype in _LOW_PRECISION else x


def upcast(x: np.ndarray) -> np.ndarray:
    """`x` in a dtype fit to accumulate in: f16 and bf16 compute in f32, as torch's CPU
    kernels do (their opmath type), so references round once at the end. (Any dtype
    narrower than 4 bytes widens to f32: the nn families call it on float operands.)"""
    return x.astype(np.float32) if x.dtype.itemsize < 4 else x


# -- lowerings (tensor IR) ---------------------------------------------------------------


def opmath_dtype(dtype: DType) -> DType:
    """The dtype kernels compute in: f32 for f16/bf16, as `upcast` in the references."""
    return DType.f32 if dtype in (DType.f16, DType.bf16) else dtype


def widen(e: Expr) -> Expr:
    """A tensor-IR element in its opmath dtype (`opmath` for one element)."""
    return cast(e, opmath_dtype(e.dtype))


def reduce_then(ctx: LowerContext, combiner: str, body: Callable[..., Expr],
                axes: Sequence[ReduceAxis], finish: Callable[..., Expr] | None = None
                ) -> Tensor:
    """The node's output: `combiner` of `body(*out)` over `axes`, then `finish(acc, *out)`,
    cast to the output dtype.

    The reduction runs in the body's dtype (opmath). A finish, or a cast, is a second
    tensor reading the accumulator at its own position, so the lowering applies it as the
    accumulator is written, and a following elementwise op along with it:

        acc[n, o, h, w] = sum_{c, kh, kw} x[n, c, h + kh, w + kw] * w[o, c, kh, kw]
        out[n, o, h, w] = acc[n, o, h, w] + bias[o]         # epilogue: acc is never stored
    """
    shape, dtype = ctx.out_shape(), ctx.out_dtype()
    names = ctx.axis_names(len(shape))

    def reduced(*out: Expr) -> Reduce:
        return reduce(combiner, body(*out), axes)

    probe = body(*map(var, names))  # the index variables compute() will pass
    if finish is None and probe.dtype == dtype:
        return compute(shape, reduced, ctx.name(), axis_names=names)
    acc = compute(shape, reduced, ctx.name("acc"), axis_names=names)
    then = finish or (lambda value, *out: value)
    return compute(shape, lambda *out: cast(then(acc[out], *out), dtype), ctx.name(),
                   axis_names=names)
