"""Index arithmetic on tensor-IR expressions: the helpers op lowerings share.

A lowering writes each output element as a load at computed indices. These helpers build
the common index expressions: row-major linearization and its inverse (reshapes), clamping
into an axis, range checks, guarded loads (padding as a select around a clamped load) and
indices read from data (negative indices wrap, anything still out of range is clamped).

Two clamps live here on purpose: `clamp` writes `max(min(i, n - 1), 0)` and the clamp in
`guarded_load` writes `min(max(i, 0), n - 1)`. They select the same index, but they print
differently, and generated code must not change when helpers move.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import Tensor
from dlc.ir.tensor.expr import (
    Expr,
    as_expr,
    cast,
    compare,
    const,
    logical,
    max_,
    min_,
    select,
)


def is_one(d: Expr) -> bool:
    """The size is the constant 1 (such an axis is always read at index 0)."""
    return d is const(1)


def linear(axes: Sequence[Expr], dims: Sequence[Expr]) -> Expr:
    """Row-major position of `axes` in an array of shape `dims`."""
    out = const(0)
    for a, d in zip(axes, dims):
        out = out * d + a
    return out


def delinear(position: Expr, dims: Sequence[Expr]) -> list[Expr]:
    """Row-major indices of `position` in `dims` (the outermost is not wrapped)."""
    out = []
    for d in reversed(dims[1:]):
        out.append(position % d)
        position = position // d
    return [position, *reversed(out)]


def reshape_index(axes: Sequence[Expr], out_shape: Sequence[Expr],
                  in_shape: Sequence[Expr]) -> list[Expr]:
    """Input indices of output element `axes` of a row-major reshape.

    Size-1 axes are dropped and the rest matched in groups of equal element count, so
    [N, 3, 4] -> [N, 12] maps `N` directly and only the last group linearizes its output
    indices and splits the position over its input sizes. Past the first pair it cannot
    match (a symbolic size against another), one group takes everything that is left.
    """
    outs = [k for k, d in enumerate(out_shape) if not is_one(d)]
    ins = [k for k, d in enumerate(in_shape) if not is_one(d)]
    index = [const(0)] * len(in_shape)
    i = j = 0
    while i < len(outs) or j < len(ins):
        i0, j0 = i, j
        if i < len(outs) and j < len(ins):
            po, pi = out_shape[outs[i]], in_shape[ins[j]]
            i, j = i + 1, j + 1
            while po is not pi and po.is_const and pi.is_const:
                if po.value < pi.value and i < len(outs):
                    po, i = po * out_shape[outs[i]], i + 1
                elif pi.value < po.value and j < len(ins):
                    pi, j = pi * in_shape[ins[j]], j + 1
                else:
                    break
            if po is not pi:
                i, j = len(outs), len(ins)
        else:
            i, j = len(outs), len(ins)
        group_out, group_in = outs[i0:i], ins[j0:j]
        position = linear([axes[k] for k in group_out], [out_shape[k] for k in group_out])
        for k, e in zip(group_in, delinear(position, [in_shape[k] for k in group_in])):
            index[k] = e
    return index


def clamp(i: Expr, size: Expr, low: bool = True, high: bool = True) -> Expr:
    """`i` clamped into [0, size); `low`/`high` False when that side cannot be crossed."""
    if high:
        i = min_(i, size - 1)
    if low:
        i = max_(i, 0)
    return i


def inside(i: Expr, n: Any) -> Expr:
    """`0 <= i < n`."""
    return logical("and", compare("ge", i, 0), compare("lt", i, n))


def _clamped(i: Expr, n: Any) -> Expr:
    """`i` clamped into `[0, n)`: a guarded load reads there, so it is always in bounds."""
    return min_(max_(i, 0), as_expr(n) - 1)


def guarded_load(x: Tensor, index: Sequence[Expr], checked: Sequence[int], fill: Any,
                 ok: Expr | None = None) -> Expr:
    """`x[index]`, or `fill` where an index of the `checked` axes falls outside `x` (or
    where `ok` is false). Padding is a select around a clamped load, never a branch or an
    out-of-bounds read:  `select(0 <= h < H, x[min(max(h, 0), H - 1)], 0)`."""
    keep = const(True) if ok is None else ok
    idx = list(index)
    for a in checked:
        keep = logical("and", keep, inside(idx[a], x.shape[a]))
        idx[a] = _clamped(idx[a], x.shape[a])
    return select(keep, x[tuple(idx)], fill)


def clamp_index(i: Expr, n: Expr) -> Expr:
    """An index read from data, made safe for an axis of length `n` (as i64).

    Negative indices wrap once, as in NumPy; anything still outside [0, n) is clamped
    to the nearest end, so a bad index reads a wrong element, never out of bounds.
    """
    i = cast(i, DType.i64)
    wrapped = select(compare("lt", i, const(0)), i + n, i)
    return max_(min_(wrapped, n - 1), const(0))
