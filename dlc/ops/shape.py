"""Shape ops (`shape.*`): views, joins, splits and layout changes.

Slices, flips, padding and repetition are declared in `shape_slice.py`; ONNX's forms
whose sizes are known only at run time in `shape_dynamic.py`. What follows holds for all.

Every op here moves elements without computing new values (fusion kind INJECTIVE). Sizes in
attributes may be symbolic (`dims` kind): a torch view to `[2*N, 8]` keeps `2*N`.

How references see symbolic sizes. A reference gets concrete NumPy arrays, but a `dims`
attribute may still hold expressions such as `N`. Each reference first derives what it can
from its operands' actual shapes, then asks `concrete_dims` for the rest:

* `reshape` treats a single unknown entry (a symbol or `-1`) as NumPy's `-1`, so
  `[N, 64]` and `[-1, 64]` both work on any input;
* `expand` reads a symbolic target size from the operand wherever the operand's size is
  not 1 (broadcasting says they are equal), and `-1` means "keep the operand's size";
* the rest (a symbolic slice bound, split size or fill shape) needs the size bindings:
  the interpreter evaluates `dims` attributes under them, and `concrete_dims` raises a
  clear error when it did not.

Lowering: each op's `compute` is an index remapping, `out[i, j, ...] = x[f(i, j, ...)]`,
so lowering inlines it into whatever reads it. Sizes are index expressions (a symbol `N`
is a kernel size parameter). Every load is in bounds for every output position: where a
select picks between inputs (concat) or a fill value (constant pad), the loads it does not
pick are clamped, because generated code evaluates both arms of a select.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy

from dlc.ir.symbolic import Dim, dim, dims_equal, floordiv, free_symbols, product
from dlc.ir.tensor.compute import Tensor, compute
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, compare, const, select
from dlc.ir.tensor.index import clamp, is_one, reshape_index
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    normalize_axes,
    normalize_axis,
    register_op,
    same_dtype,
    tensor,
)

INT64_MAX = 2**63 - 1  # torch's and ONNX's "to the end" slice bound
INT64_MIN = -(2**63)  # ONNX's "to the beginning" bound for negative steps


# -- helpers shared by the shape and creation families -----------------------------------


def concrete_dims(op: str, dims: Sequence[Dim], what: str = "size") -> tuple[int, ...]:
    """`dims` as ints; a symbolic entry here means nobody evaluated it under the bindings."""
    symbolic = [d for d in dims if not isinstance(d, int)]
    if symbolic:
        names = sorted(set().union(*(free_symbols(d) for d in symbolic)))
        raise ValueError(f"{op}: {what} [{', '.join(map(str, dims))}] depends on size "
                         f"symbol(s) {', '.join(names)}; evaluate the dims attribute under "
                         "the call's size bindings before calling the reference")
    return tuple(dims)


def _provably_different(a: Dim, b: Dim) -> bool:
    """True when two sizes differ for every value of their symbols (not merely unproven)."""
    if isinstance(a, int) and isinstance(b, int):
        return a != b
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)).is_zero is False


def _shape(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


# -- lowering helpers --------------------------------------------------------------------


def remap(ctx: LowerContext, x: Tensor, index: Callable[..., Sequence[Expr]],
          out: int = 0) -> Tensor:
    """Output `out` of the node: `x` read at `index(*output_axes)`."""
    shape = ctx.out_shape(out)
    names = [f"{n}_{out}" if out else n for n in ctx.axis_names(len(shape))]
    return compute(shape, lambda *axes: x[tuple(index(*axes))],
                   ctx.name(str(out) if out else ""), axis_names=names)


# -- views -------------------------------------------------------------------------------


@register_op
class Reshape(OpDef):
    """View `x` with a new shape of the same element count; one entry may be -1 (inferred)."""

    name = "shape.reshape"
    inputs = ("x",)
    attrs = {"shape": Attr("dims", doc="target sizes; symbolic allowed; at most one -1")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, shape: tuple[Dim, ...]) -> TensorType:
        x = tensor(x, self.name)
        if sum(1 for d in shape if d == -1) > 1:
            raise self.error(f"shape {_shape(shape)} has more than one -1")
        if any(isinstance(d, int) and d < -1 for d in shape):
            raise self.error(f"shape {_shape(shape)} has a negative size")
        known = product([d for d in shape if d != -1])
        if -1 in shape:
            if known == 0:
                raise self.error(f"cannot infer the -1 in {_shape(shape)}: other sizes are 0")
            inferred = self._divide(x.numel, known, shape, x)
            return x.with_shape([inferred if d == -1 else d for d in shape])
        if _provably_different(known, x.numel):
            raise self.error(f"cannot view {x} ({x.numel} elements) as {_shape(shape)} "
                             f"({known} elements)")
        return x.with_shape(shape)

    def _divide(self, numel: Dim, known: Dim, shape: tuple[Dim, ...], x: TensorType) -> Dim:
        if isinstance(numel, int) and isinstance(known, int):
            if numel % known:
                raise self.error(f"cannot view {x} ({numel} elements) as {_shape(shape)}")
            return numel // known
        quotient = sympy.cancel(sympy.sympify(numel) / sympy.sympify(known))
        if sympy.fraction(quotient)[1] == 1:
            return dim(quotient)
        return floordiv(numel, known)  # divisible under the exporter's guards

    def reference(self, x: np.ndarray, *, shape: tuple[Dim, ...]) -> np.ndarray:
        unknown = [i for i, d in enumerate(shape) if not isinstance(d, int) or d == -1]
        if len(unknown) == 1:  # NumPy infers one entry from the element count
            shape = tuple(-1 if i == unknown[0] else d for i, d in enumerate(shape))
        return x.reshape(concrete_dims(self.name, shape, "shape"))

    def compute(self, ctx: LowerContext, x: Tensor, *, shape: tuple[Dim, ...]) -> Tensor:
        out_shape = ctx.out_shape()
        return remap(ctx, x, lambda *axes: reshape_index(axes, out_shape, x.shape))


@register_op
class Flatten(OpDef):
    """Merge axes `start`..`end` (inclusive, negative counts from the back) into one."""

    name = "shape.flatten"
    inputs = ("x",)
    attrs = {"start": Attr("int", 0), "end": Attr("int", -1)}
    fusion_kind = FusionKind.INJECTIVE

    def _range(self, rank: int, start: int, end: int) -> tuple[int, int]:
        if rank == 0:
            return 0, -1
        s, e = normalize_axis(start, rank, self.name), normalize_axis(end, rank, self.name)
        if s > e:
            raise self.error(f"start {start} comes after end {end} for rank {rank}")
        return s, e

    def infer_type(self, x: Any, *, start: int, end: int) -> TensorType:
        x = tensor(x, self.name)
        s, e = self._range(x.rank, start, end)
        return x.with_shape([*x.shape[:s], product(x.shape[s:e + 1]), *x.shape[e + 1:]])

    def reference(self, x: np.ndarray, *, start: int, end: int) -> np.ndarray:
        s, e = self._range(x.ndim, start, end)
        return x.reshape(*x.shape[:s], -1, *x.shape[e + 1:])

    def compute(self, ctx: LowerContext, x: Tensor, *, start: int, end: int) -> Tensor:
        out_shape = ctx.out_shape()
        return remap(ctx, x, lambda *axes: reshape_index(axes, out_shape, x.shape))


@register_op
class Permute(OpDef):
    """Reorder axes: output axis i is input axis `perm[i]` (NumPy's transpose)."""

    name = "shape.permute"
    inputs = ("x",)
    attrs = {"perm": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def _perm(self, rank: int, perm: tuple[int, ...]) -> tuple[int, ...]:
        norm = tuple(normalize_axis(p, rank, self.name) for p in perm) if rank else perm
        if sorted(norm) != list(range(rank)):
            raise self.error(f"perm {list(perm)} is not a permutation of {rank} axes")
        return norm

    def infer_type(self, x: Any, *, perm: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        return x.with_shape([x.shape[p] for p in self._perm(x.rank, perm)])

    def reference(self, x: np.ndarray, *, perm: tuple[int, ...]) -> np.ndarray:
        return np.transpose(x, self._perm(x.ndim, perm))

    def compute(self, ctx: LowerContext, x: Tensor, *, perm: tuple[int, ...]) -> Tensor:
        norm = self._perm(x.ndim, perm)

        def index(*axes: Expr) -> list[Expr]:
            out = [const(0)] * x.ndim
            for axis, p in zip(axes, norm):  # output axis i reads input axis perm[i]
                out[p] = axis
            return out

        return remap(ctx, x, index)


@register_op
class Squeeze(OpDef):
    """Remove the listed axes, each of size 1."""

    name = "shape.squeeze"
    inputs = ("x",)
    attrs = {"axes": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, axes: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        drop = normalize_axes(axes, x.rank, self.name, scalar_ok=False)
        for a in drop:
            if x.shape[a] != 1:
                raise self.error(f"axis {a} of {x} has size {x.shape[a]}, not 1")
        return x.with_shape([d for i, d in enumerate(x.shape) if i not in drop])

    def reference(self, x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
        return np.squeeze(x, normalize_axes(axes, x.ndim, self.name))

    def compute(self, ctx: LowerContext, x: Tensor, *, axes: tuple[int, ...]) -> Tensor:
        drop = normalize_axes(axes, x.ndim, self.name)

        def index(*out: Expr) -> list[Expr]:
            rest = iter(out)
            return [const(0) if k in drop else next(rest) for k in range(x.ndim)]

        return remap(ctx, x, index)


@register_op
class Unsqueeze(OpDef):
    """Insert size-1 axes; `axes` index the output (negative counts from its back)."""

    name = "shape.unsqueeze"
    inputs = ("x",)
    attrs = {"axes": Attr("ints")}
    fusion_kind = FusionKind.INJECTIVE

    def _out_shape(self, shape: tuple[Any, ...], axes: tuple[int, ...]) -> list[Any]:
        rank = len(shape) + len(axes)
        new = normalize_axes(axes, rank, self.name)
        if len(new) != len(axes):
            raise self.error(f"axes {list(axes)} repeat an axis")
        rest = iter(shape)
        return [1 if i in new else next(rest) for i in range(rank)]

    def infer_type(self, x: Any, *, axes: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        return x.with_shape(self._out_shape(x.shape, axes))

    def reference(self, x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
        return x.reshape(self._out_shape(x.shape, axes))

    def compute(self, ctx: LowerContext, x: Tensor, *, axes: tuple[int, ...]) -> Tensor:
        new = normalize_axes(axes, x.ndim + len(axes), self.name)
        return remap(ctx, x, lambda *out: [a for k, a in enumerate(out) if k not in new])


@register_op
class Expand(OpDef):
    """Broadcast `x` to `shape` (NumPy broadcast_to; -1 keeps the operand's size)."""

    name = "shape.expand"
    inputs = ("x",)
    attrs = {"shape": Attr("dims")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, shape: tuple[Dim, ...]) -> TensorType:
        x = tensor(x, self.name)
        lead = len(shape) - x.rank
        if lead < 0:
            raise self.error(f"cannot expand {x} to the lower-rank shape {_shape(shape)}")
        out = []
        for i, d in enumerate(shape):
            src = x.shape[i - lead] if i >= lead else 1
            if d == -1:
                if i < lead:
                    raise self.error(f"-1 in {_shape(shape)} names a new leading axis")
                d = src
            elif src != 1 and not dims_equal(src, d):
                raise self.error(f"cannot expand {x} to {_shape(shape)}: axis {i - lead} "
                                 f"has size {src}")
            out.append(d)
        return x.with_shape(out)

    def reference(self, x: np.ndarray, *, shape: tuple[Dim, ...]) -> np.ndarray:
        lead = len(shape) - x.ndim
        sizes = [x.shape[i - lead] if i >= lead and (d == -1 or not isinstance(d, int)
                                                      and x.shape[i - lead] != 1) else d
                 for i, d in enumerate(shape)]
        return np.broadcast_to(x, concrete_dims(self.name, sizes, "shape")).copy()

    def compute(self, ctx: LowerContext, x: Tensor, *, shape: tuple[Dim, ...]) -> Tensor:
        lead = len(ctx.out_shape()) - x.ndim  # new leading axes; size-1 axes read index 0
        return remap(ctx, x, lambda *axes: [const(0) if is_one(d) else axes[lead + k]
                                            for k, d in enumerate(x.shape)])


@register_op
class LayoutTransform(OpDef):
    """Change the data layout, e.g. NCHW -> NHWC or NCHW -> NCHW16c (blocked channels).

    A layout names each axis with a letter: upper case for a whole (primal) axis, lower case
    preceded by a factor for the inner block of one (TVM's convention). In `NCHW16c` the
    `C` axis holds channel blocks (C/16 of them) and `16c` the 16 channels inside a block.
    """

    name = "shape.layout_transform"
    inputs = ("x",)
    attrs = {"src_layout": Attr("str"), "dst_layout": Attr("str")}
    fusion_kind = FusionKind.INJECTIVE

    def _parse(self, layout: str) -> list[tuple[str, int | None]]:
        if not re.fullmatch(r"(?:[A-Z]|[1-9][0-9]*[a-z])+", layout):
            raise self.error(f"bad layout {layout!r}: write axes as letters, blocks as 16c")
        axes = [(m[1], int(m[0]) if m[0] else None)
                for m in re.findall(r"([0-9]*)([A-Za-z])", layout)]
        letters = [a for a, _ in axes]
        if len(set(letters)) != len(letters):
            raise self.error(f"layout {layout!r} repeats an axis")
        orphans = [a for a in letters if a.islower() and a.upper() not in letters]
        if orphans:
            raise self.error(f"layout {layout!r} blocks axis {orphans[0].upper()}, "
                             "which it does not have")
        return axes

    def _check(self, src: str, dst: str) -> tuple[list, list]:
        s, d = self._parse(src), self._parse(dst)
        if {a for a, _ in s if a.isupper()} != {a for a, _ in d if a.isupper()}:
            raise self.error(f"layouts {src!r} and {dst!r} have different axes")
        return s, d

    def _primal(self, axes: list, shape: Sequence[Any]) -> dict[str, Any]:
        """Size of each whole axis: its outer size times its block factor."""
        factor = {a.upper(): f for a, f in axes if a.islower()}
        return {a: shape[i] * factor.get(a, 1) for i, (a, _) in enumerate(axes) if a.isupper()}

    def infer_type(self, x: Any, *, src_layout: str, dst_layout: str) -> TensorType:
        x = tensor(x, self.name)
        src, dst = self._check(src_layout, dst_layout)
        if len(src) != x.rank:
            raise self.error(f"layout {src_layout!r} has {len(src)} axes, {x} has {x.rank}")
        sizes = self._primal(src, x.shape)
        factor = {a.upper(): f for a, f in dst if a.islower()}
        out: list[Dim] = []
        for a, f in dst:
            if a.islower():
                out.append(f)
                continue
            total, block = sizes[a], factor.get(a)
            if block and isinstance(total, int) and total % block:
                raise self.error(f"axis {a} of size {total} does not split into blocks of "
                                 f"{block}")
            out.append(floordiv(total, block) if block else total)
        return x.with_shape(out)

    def reference(self, x: np.ndarray, *, src_layout: str, dst_layout: str) -> np.ndarray:
        src, dst = self._check(src_layout, dst_layout)
        letters = [a for a, _ in src]
        # 1. To primal form: each whole axis followed by its block, then merged.
        order = [letters.index(c) for a in letters if a.isupper()
                 for c in (a, a.lower()) if c in letters]
        primal_names = [a for a in letters if a.isupper()]
        sizes = self._primal(src, x.shape)
        x = np.transpose(x, order).reshape([sizes[a] for a in primal_names])
        # 2. To the destination: split blocked axes, then move every axis into place.
        factor = {a.upper(): f for a, f in dst if a.islower()}
        split_names: list[str] = []
        split_shape: list[int] = []
        for a in primal_names:
            if a in factor:
                split_names += [a, a.lower()]
                split_shape += [sizes[a] // factor[a], factor[a]]
            else:
                split_names.append(a)
                split_shape.append(sizes[a])
        x = x.reshape(split_shape)
        return np.ascontiguousarray(np.transpose(x, [split_names.index(a) for a, _ in dst]))

    def compute(self, ctx: LowerContext, x: Tensor, *, src_layout: str, dst_layout: str
                ) -> Tensor:
        src, dst = self._check(src_layout, dst_layout)

        dst_block = {a.upper(): f for a, f in dst if a.islower()}
        src_block = {a.upper(): f for a, f in src if a.islower()}

        def index(*axes: Expr) -> list[Expr]:
            at = dict(zip((a for a, _ in dst), axes))
            out = []
            for a, f in src:
                whole = a.upper()
                pos = at[whole]  # the position along the whole (unblocked) axis
                if whole in dst_block:
                    pos = pos * dst_block[whole] + at[whole.lower()]
                if a.islower():
                    out.append(pos % f)
                elif a in src_block:
                    out.append(pos // src_block[a])
                else:
                    out.append(pos)
            return out

        return remap(ctx, x, index)


# -- joins and splits --------------------------------------------------------------------


@register_op
class Concat(OpDef):
    """Join tensors of one rank and dtype along `axis`."""

    name = "shape.concat"
    inputs = ("xs*",)
    attrs = {"axis": Attr("int")}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, *xs: Any, axis: int) -> TensorType:
        if not xs:
            raise self.error("needs at least one operand")
        xs = tuple(tensor(x, self.name) for x in xs)
        dtype = same_dtype(self.name, *xs)
        first = xs[0]
        a = normalize_axis(axis, first.rank, self.name, scalar_ok=False)
        for x in xs[1:]:
            if x.rank != first.rank or any(
                    i != a and not dims_equal(p, q)
                    for i, (p, q) in enumerate(zip(first.shape, x.shape))):
                raise self.error(f"cannot join {first} and {x} along axis {axis}")
        total = sum((x.shape[a] for x in xs[1:]), start=first.shape[a])
        return TensorType((*first.shape[:a], dim(total), *first.shape[a + 1:]), dtype)

    def reference(self, *xs: np.ndarray, axis: int) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    def compute(self, ctx: LowerContext, *xs: Tensor, axis: int) -> Tensor:
        a = normalize_axis(axis, xs[0].ndim, self.name)
        # an input with no elements along the axis is never read (unless all are empty)
        parts = [x for x in xs if x.shape[a] is not const(0)] or [xs[0]]
        starts = [const(0)]
        for x in parts[:-1]:
            starts.append(starts[-1] + x.shape[a])
        shape = ctx.out_shape()

        def body(*axes: Expr) -> Expr:
            # out[..., j, ...] = x_k[..., j - start_k, ...] for the last k with start_k <= j;
            # the other loads are clamped into their inputs (a select evaluates both arms)
            j, last = axes[a], len(parts) - 1
            value = const(0)
            for k in reversed(range(len(parts))):
                pos = clamp(j - starts[k], parts[k].shape[a], low=k > 0, high=k < last)
                load = parts[k][(*axes[:a], pos, *axes[a + 1:])]
                value = load if k == last else select(compare("lt", j, starts[k + 1]), load,
                                                      value)
            return value

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Stack(OpDef):
    """Join same-shaped tensors along a new axis `axis` (of the output)."""

    name = "shape.stack"
    inputs = ("xs*",)
    attrs = {"axis": Attr("int", 0)}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, *xs: Any, axis: int) -> TensorType:
        if not xs:
            raise self.error("needs at least one operand")
        xs = tuple(tensor(x, self.name) for x in xs)
        dtype = same_dtype(self.name, *xs)
        first = xs[0]
        if any(not x.same_as(first) for x in xs[1:]):
            raise self.error(f"operands differ in shape: {', '.join(map(str, xs))}")
        a = normalize_axis(axis, first.rank + 1, self.name)
        return TensorType((*first.shape[:a], len(xs), *first.shape[a:]), dtype)

    def reference(self, *xs: np.ndarray, axis: int) -> np.ndarray:
        return np.stack(xs, axis=axis)

    def compute(self, ctx: LowerContext, *xs: Tensor, axis: int) -> Tensor:
        a = normalize_axis(axis, xs[0].ndim + 1, self.name)
        shape = ctx.out_shape()

        def body(*axes: Expr) -> Expr:
            index = (*axes[:a], *axes[a + 1:])  # every operand has the same shape
            value = xs[-1][index]
            for k in reversed(range(len(xs) - 1)):
                value = select(compare("eq", axes[a], k), xs[k][index], value)
            return value

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class Split(OpDef):
    """Cut `x` along `axis` into consecutive pieces of the given sizes (one output each)."""

    name = "shape.split"
    inputs = ("x",)
    attrs = {"sizes": Attr("dims"), "axis": Attr("int", 0)}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, sizes: tuple[Dim, ...], axis: int) -> tuple[TensorType, ...]:
        x = tensor(x, self.name)
        a = normalize_axis(axis, x.rank, self.name, scalar_ok=False)
        if not sizes:
            raise self.error("needs at least one size")
        if _provably_different(dim(sum(sizes)), x.shape[a]):
            raise self.error(f"sizes {_shape(sizes)} do not add up to axis {axis} of {x}")
        return tuple(x.with_shape((*x.shape[:a], s, *x.shape[a + 1:])) for s in sizes)

    def reference(self, x: np.ndarray, *, sizes: tuple[Dim, ...], axis: int
                  ) -> tuple[np.ndarray, ...]:
        symbolic = [i for i, s in enumerate(sizes) if not isinstance(s, int)]
        if len(symbolic) == 1:  # the one unknown piece is what the others leave
            known = sum(s for s in sizes if isinstance(s, int))
            sizes = tuple(x.shape[axis] - known if not isinstance(s, int) else s for s in sizes)
        cuts = np.cumsum(concrete_dims(self.name, sizes, "sizes"))[:-1]
        return tuple(np.split(x, cuts, axis=axis))

    def compute(self, ctx: LowerContext, x: Tensor, *, sizes: tuple[Dim, ...], axis: int
                ) -> tuple[Tensor, ...]:
        a = normalize_axis(axis, x.ndim, self.name)
        outs, start = [], const(0)
        for k in range(len(sizes)):
            def index(*axes: Expr, start: Expr = start) -> list[Expr]:
                return [*axes[:a], axes[a] + start, *axes[a + 1:]]

            outs.append(remap(ctx, x, index, out=k))
            start = start + ctx.out_shape(k)[a]
        return tuple(outs)
