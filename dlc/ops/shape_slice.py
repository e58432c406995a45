"""Slices, flips, padding and repetition (`shape.slice`, `shape.flip`, `shape.pad`,
`shape.repeat`): each output element reads one input element, at a window of the input
moved, reversed, extended (or filled) or repeated.

Like every shape op (see `shape.py`) they move elements without computing new values
(fusion kind INJECTIVE), and each lowering is an index remapping in which every load is
in bounds: where a constant pad selects its fill value, the load it does not pick is
clamped, because generated code evaluates both arms of a select.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy

from dlc.ir.symbolic import Dim, ceildiv, dim
from dlc.ir.tensor.compute import Tensor, compute
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, as_expr, call, compare, const, logical, max_, min_, select
from dlc.ir.tensor.index import clamp, is_one
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    normalize_axes,
    normalize_axis,
    register_op,
    tensor,
)
from dlc.ops.shape import INT64_MAX, concrete_dims, remap


def _all(conds: Sequence[Expr]) -> Expr:
    out = const(True)
    for c in conds:
        out = logical("and", out, c)
    return out


# -- slicing, padding, repetition --------------------------------------------------------


def _bound(i: Dim, size: Dim) -> Dim:
    """A slice bound for a positive step: negative counts from the end, clamped to [0, size]."""
    if isinstance(i, int) and isinstance(size, int):
        return min(max(i + size if i < 0 else i, 0), size)
    if isinstance(i, int) and i >= INT64_MAX // 2:
        return size
    e = sympy.sympify(i)
    if e.is_negative:
        e = e + size
    if (size - e).is_nonnegative is not True:
        e = sympy.Min(e, size)
    if e.is_nonnegative is not True:
        e = sympy.Max(e, 0)
    return dim(e)


def _length(lo: Dim, hi: Dim, step: int) -> Dim:
    """max(0, ceil((hi - lo) / step)) for step > 0, distributing `-` over Min and Max so
    SymPy sees `N - Max(N - 3, 0)` as `Min(3, N)`."""
    if isinstance(lo, sympy.Max):
        diff = sympy.Min(*(hi - a for a in lo.args))
    elif isinstance(hi, sympy.Min):
        diff = sympy.Min(*(a - lo for a in hi.args))
    else:
        diff = sympy.sympify(hi - lo)
    count = diff if step == 1 else ceildiv(dim(diff), step)
    return dim(sympy.Max(0, count))


def _slice_start(start: Dim, size: Expr) -> Expr:
    """The first index a positive-step slice reads, as `_bound` computes it, at run time."""
    if isinstance(start, int):
        if start >= INT64_MAX // 2:
            return size
        return min_(const(start), size) if start >= 0 else max_(size + start, 0)
    e, sign = as_expr(start), sympy.sympify(start)
    if sign.is_negative:
        e = e + size
    return min_(e if sign.is_nonnegative else max_(e, 0), size)


@register_op
class Slice(OpDef):
    """`x[start:end:step]` on each listed axis, clamped as Python slicing clamps (ONNX Slice).

    INT64_MAX as an end means "to the end"; INT64_MIN with a negative step "to the start".
    """

    name = "shape.slice"
    inputs = ("x",)
    attrs = {"axes": Attr("ints"), "starts": Attr("dims"), "ends": Attr("dims"),
             "steps": Attr("ints", None, optional=True, doc="default all 1")}
    fusion_kind = FusionKind.INJECTIVE

    def _steps(self, axes: tuple[int, ...], starts: tuple, ends: tuple,
               steps: tuple[int, ...] | None) -> tuple[int, ...]:
        steps = steps if steps is not None else (1,) * len(axes)
        if not len(axes) == len(starts) == len(ends) == len(steps):
            raise self.error("axes, starts, ends and steps differ in length")
        if 0 in steps:
            raise self.error("a step is 0")
        return steps

    def infer_type(self, x: Any, *, axes: tuple[int, ...], starts: tuple[Dim, ...],
                   ends: tuple[Dim, ...], steps: tuple[int, ...] | None) -> TensorType:
        x = tensor(x, self.name)
        steps = self._steps(axes, starts, ends, steps)
        shape = list(x.shape)
        seen: set[int] = set()
        for axis, start, end, step in zip(axes, starts, ends, steps):
            a = normalize_axis(axis, x.rank, self.name, scalar_ok=False)
            if a in seen:
                raise self.error(f"axis {axis} is sliced twice")
            seen.add(a)
            size = shape[a]
            if all(isinstance(v, int) for v in (start, end, size)):
                shape[a] = len(range(*slice(start, end, step).indices(size)))
            elif step > 0:
                shape[a] = _length(_bound(start, size), _bound(end, size), step)
            else:
                raise self.error(f"a negative step on axis {axis} needs static bounds "
                                 f"(size {size}, start {start}, end {end})")
        return x.with_shape(shape)

    def reference(self, x: np.ndarray, *, axes: tuple[int, ...], starts: tuple[Dim, ...],
                  ends: tuple[Dim, ...], steps: tuple[int, ...] | None) -> np.ndarray:
        steps = self._steps(axes, starts, ends, steps)
        index = [slice(None)] * x.ndim
        lo = concrete_dims(self.name, starts, "starts")
        hi = concrete_dims(self.name, ends, "ends")
        for axis, start, end, step in zip(axes, lo, hi, steps):
            index[axis] = slice(start, end, step)
        return x[tuple(index)].copy()

    def compute(self, ctx: LowerContext, x: Tensor, *, axes: tuple[int, ...],
                starts: tuple[Dim, ...], ends: tuple[Dim, ...],
                steps: tuple[int, ...] | None) -> Tensor:
        steps = self._steps(axes, starts, ends, steps)
        first: dict[int, tuple[Expr, int]] = {}  # axis -> (first index read, step)
        for axis, start, end, step in zip(axes, starts, ends, steps):
            a = normalize_axis(axis, x.ndim, self.name)
            size = x.shape[a]
            if size.is_const and isinstance(start, int) and isinstance(end, int):
                first[a] = (const(slice(start, end, step).indices(size.value)[0]), step)
            else:  # positive step (the type rule says so): start clamped into [0, size]
                first[a] = (_slice_start(start, size), step)

        def index(*out: Expr) -> list[Expr]:
            return [first[k][0] + o * first[k][1] if k in first else o
                    for k, o in enumerate(out)]

        return remap(ctx, x, index)


@register_op
class Flip(OpDef):
    """Reverse the order of elements along `axes`."""

    name = "shape.flip"
    inputs = ("x",)
    attrs = {"axes": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, axes: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        normalize_axes(axes, x.rank, self.name)
        return x

    def reference(self, x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
        return np.flip(x, normalize_axes(axes, x.ndim, self.name)).copy()

    def compute(self, ctx: LowerContext, x: Tensor, *, axes: tuple[int, ...]) -> Tensor:
        flip = normalize_axes(axes, x.ndim, self.name)
        return remap(ctx, x, lambda *out: [x.shape[k] - 1 - o if k in flip else o
                                           for k, o in enumerate(out)])


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_index(mode: str, i: Expr, size: Expr) -> Expr:
    """Where a reflect/replicate/circular pad reads input position `i` (may be outside)."""
    if mode == "replicate":
        return clamp(i, size)
    if mode == "circular":
        return i % size
    # reflect: mirror about the edges without repeating them. With a static size the type
    # rule keeps pads below it, so one mirror suffices; a symbolic size might not be, so
    # fold `i` into one period first (NumPy's repeated reflection).
    last = size - 1
    if not size.is_const:
        i = i % max_(last * 2, 1)
    return last - call("abs", last - call("abs", i))


def _fill(ctx: LowerContext, value: Expr) -> Tensor:
    """The node's output with every element `value`."""
    shape = ctx.out_shape()
    return compute(shape, lambda *axes: value, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Pad(OpDef):
    """Pad each axis; `pads` = [begin_0, ..., begin_r-1, end_0, ..., end_r-1] (ONNX order).

    Modes: constant (`value`; negative pads crop), reflect (mirror without the edge),
    replicate (repeat the edge), circular (wrap around).
    """

    name = "shape.pad"
    inputs = ("x",)
    attrs = {"pads": Attr("ints"), "mode": Attr("str", "constant", choices=PAD_MODES),
             "value": Attr("float", 0.0)}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, pads: tuple[int, ...], mode: str, value: float
                   ) -> TensorType:
        x = tensor(x, self.name)
        if len(pads) != 2 * x.rank:
            raise self.error(f"pads has {len(pads)} entries; {x} needs {2 * x.rank}")
        if mode != "constant" and min(pads, default=0) < 0:
            raise self.error(f"negative pads crop only in constant mode, not {mode}")
        out = [dim(d + b + e) for d, b, e in zip(x.shape, pads[:x.rank], pads[x.rank:])]
        for i, (d, b, e) in enumerate(zip(x.shape, pads[:x.rank], pads[x.rank:])):
            if mode == "reflect" and isinstance(d, int) and max(b, e) >= d:
                raise self.error(f"reflect padding {max(b, e)} on axis {i} needs size > "
                                 f"{max(b, e)}, got {d}")
            if isinstance(out[i], int) and out[i] < 0:
                raise self.error(f"pads crop axis {i} of size {d} below zero")
        return x.with_shape(out)

    def reference(self, x: np.ndarray, *, pads: tuple[int, ...], mode: str, value: float
                  ) -> np.ndarray:
        rank = x.ndim
        widths = [(max(b, 0), max(e, 0)) for b, e in zip(pads[:rank], pads[rank:])]
        if mode == "constant":
            fill = np.array(value).astype(x.dtype)
            out = np.pad(x, widths, mode="constant", constant_values=fill)
        else:
            out = np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge",
                                          "circular": "wrap"}[mode])
        crop = tuple(slice(-min(b, 0), out.shape[i] + min(e, 0))
                     for i, (b, e) in enumerate(zip(pads[:rank], pads[rank:])))
        return np.ascontiguousarray(out[crop])

    def compute(self, ctx: LowerContext, x: Tensor, *, pads: tuple[int, ...], mode: str,
                value: float) -> Tensor:
        rank = x.ndim
        begins, ends = pads[:rank], pads[rank:]
        if mode != "constant":
            def index(*out: Expr) -> list[Expr]:
                return [_pad_index(mode, o - b, d) if b or e else o
                        for o, d, b, e in zip(out, x.shape, begins, ends)]

            return remap(ctx, x, index)
        fill = const(np.array(value).astype(x.dtype.numpy).item(), x.dtype)
        if any(d is const(0) for d in x.shape):
            return _fill(ctx, fill)
        shape = ctx.out_shape()

        def body(*out: Expr) -> Expr:
            # inside the input: x[o - begin]; outside: the fill, with the load clamped
            inside, index = [], []
            for o, d, b, e in zip(out, x.shape, begins, ends):
                i = o - b
                if b > 0:
                    inside.append(compare("ge", i, 0))
                if e > 0:
                    inside.append(compare("lt", i, d))
                index.append(clamp(i, d, low=b > 0, high=e > 0))
            return select(_all(inside), x[tuple(index)], fill)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Repeat(OpDef):
    """Tile `x` `repeats[i]` times along axis i (torch's repeat; extra repeats add axes)."""

    name = "shape.repeat"
    inputs = ("x",)
    attrs = {"repeats": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, repeats: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        lead = len(repeats) - x.rank
        if lead < 0:
            raise self.error(f"{len(repeats)} repeats for {x}: need at least {x.rank}")
        if min(repeats, default=0) < 0:
            raise self.error(f"repeats {list(repeats)} has a negative count")
        shape = [1] * lead + list(x.shape)
        return x.with_shape([dim(d * r) for d, r in zip(shape, repeats)])

    def reference(self, x: np.ndarray, *, repeats: tuple[int, ...]) -> np.ndarray:
        return np.tile(x, repeats)

    def compute(self, ctx: LowerContext, x: Tensor, *, repeats: tuple[int, ...]) -> Tensor:
        lead = len(repeats) - x.ndim

        def index(*out: Expr) -> list[Expr]:
            index = []
            for k, d in enumerate(x.shape):
                o = out[lead + k]  # the leading `lead` output axes only repeat
                index.append(const(0) if is_one(d) else o % d if repeats[lead + k] > 1 else o)
            return index

        return remap(ctx, x, index)
