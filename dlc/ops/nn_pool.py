"""Pools (`nn.*_pool2d`, `nn.adaptive_*_pool2d`, `nn.*_pool_nd`).

The 2-D pools are torch's: they act on the two spatial axes of an `[N, C, H, W]` or
unbatched `[C, H, W]` input (torch routes 1-D pools through these with an unsqueezed
axis), channels first unless `layout` says `NHWC`, with torch's symmetric padding and
ceil mode. The N-d pools are ONNX's: any number of spatial axes after `[N, C]`,
begin/end pads that may differ, dilations, ceil mode (and max-pool indices).

Fusion kind OUT_FUSABLE, as in TVM: each output reads a window, so a pool is not
injective, but an elementwise consumer can run in its epilogue.

Lowering (`compute`, 2-D and N-d max/avg pools): the max or the sum over the window,
computed in the opmath type and finished at the accumulator's write (`reduce_then`), avg
dividing there. Padding, ceil_mode overhang and adaptive bins narrower than the widest are
`select`s around clamped loads (`guarded_load`), so no access leaves its buffer. Max-pool
indices are an argmax over the same window, turned into a flat input index. `nn.lp_pool_nd`
has no compute yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, ceildiv, dim, floordiv
from dlc.ir.tensor.compute import (
    ReduceAxis,
    Tensor,
    compute,
    identity,
    reduce,
    reduce_axis,
)
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, cast, compare, const, logical, max_, min_, select
from dlc.ir.tensor.index import delinear, guarded_load, linear
from dlc.ir.types import TensorType
from dlc.ops.nn_window import channels_last, floordiv_nested, windows
from dlc.ops.opmath import reduce_then, upcast, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    check_len,
    float_tensor,
    register_op,
    tensor,
)

# -- torch's 2-D pools -------------------------------------------------------------------


def pool_out_size(size: Dim, kernel: int, stride: int, pad: int, dilation: int,
                  ceil_mode: bool) -> Dim:
    """torch's pooling output size; with `ceil_mode` the last window must start inside the
    input or its left padding, which is `min(ceil(L/s) + 1, ceil((size + pad)/s))`."""
    span = dim(size + 2 * pad - dilation * (kernel - 1) - 1)
    if not ceil_mode:
        return dim(floordiv_nested(span, stride) + 1)
    if isinstance(size, int):
        out = -(-span // stride) + 1
        return out - 1 if (out - 1) * stride >= size + pad else out
    return dim(sympy.Min(ceildiv(span, stride) + 1, ceildiv(dim(size + pad), stride)))


def _pool_attrs(with_dilation: bool) -> dict[str, Attr]:
    attrs = {
        "kernel": Attr("ints"),
        "stride": Attr("ints", doc="defaults to the kernel size in torch; always explicit here"),
        "padding": Attr("ints", (0, 0)),
    }
    if with_dilation:
        attrs["dilation"] = Attr("ints", (1, 1))
    attrs["ceil_mode"] = Attr("bool", False)
    return attrs


def _spatial_axes(op: OpDef, x: TensorType, layout: str) -> tuple[int, int]:
    if x.rank not in (3, 4):
        raise op.error(f"expects an [N, C, H, W] or [C, H, W] input, got {x}")
    return _pool_axes(x.rank, layout)


def _pool_axes(rank: int, layout: str) -> tuple[int, int]:
    return (rank - 3, rank - 2) if channels_last(layout) else (rank - 2, rank - 1)


def _window_body(x: Tensor, taps: Sequence[ReduceAxis], kernel: Sequence[int],
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                 ceil_mode: bool, layout: str, fill: Any) -> Callable[..., Expr]:
    """The element of output position `out`'s window at the taps' loop variables:
    `x[.., o*s - pad + k*d, ..]`, or `fill` where the window hangs over the input (its
    padding, and with ceil_mode the last window's overhang on the high side)."""
    axes = _pool_axes(x.ndim, layout)
    checked = [a for a, p in zip(axes, padding) if p > 0 or ceil_mode]

    def element(*out: Expr) -> Expr:
        index = list(out)
        for a, r, s, p, d in zip(axes, taps, stride, padding, dilation):
            index[a] = out[a] * s - p + r.var * d
        return guarded_load(x, index, checked, fill)

    return element


def _with_spatial(x: TensorType, axes: tuple[int, int], sizes: Sequence[Dim]) -> TensorType:
    shape = list(x.shape)
    for a, s in zip(axes, sizes):
        shape[a] = s
    return x.with_shape(shape)


def _spatial_last(x: np.ndarray, layout: str) -> np.ndarray:
    """Move the spatial axes to the end (a view), so references pool over [..., H, W]."""
    return np.moveaxis(x, -1, -3) if channels_last(layout) else x


def _spatial_back(y: np.ndarray, layout: str) -> np.ndarray:
    return np.moveaxis(y, -3, -1) if channels_last(layout) else y


class _Pool(OpDef):
    """Shared type rule of the windowed pools."""

    inputs = ("x",)
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, x: Any, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                   padding: tuple[int, ...], ceil_mode: bool, layout: str,
                   dilation: tuple[int, ...] = (1, 1), **_: Any) -> TensorType:
        x = tensor(x, self.name)
        axes = _spatial_axes(self, x, layout)
        for name, values in (("kernel", kernel), ("stride", stride), ("padding", padding),
                             ("dilation", dilation)):
            check_len(self, name, values, 2)
        if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
            raise self.error("kernel, stride and dilation must be positive")
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise self.error(f"padding {list(padding)} exceeds half the kernel {list(kernel)}")
        out = [pool_out_size(x.shape[a], k, s, p, d, ceil_mode)
               for a, k, s, p, d in zip(axes, kernel, stride, padding, dilation)]
        if any(isinstance(o, int) and o < 1 for o in out):
            raise self.error(f"input {x} is too small for kernel {list(kernel)}")
        return _with_spatial(x, axes, out)


def _padded_windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
                    padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool,
                    fill: Any) -> np.ndarray:
    """Windows `[..., oH, oW, kH, kW]` of `x`'s last two axes, padded with `fill` (on the
    high side too when ceil_mode's last window runs past the input)."""
    out = [pool_out_size(s, k, st, p, d, ceil_mode)
           for s, k, st, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation)]
    need = [(o - 1) * st + d * (k - 1) + 1 for o, st, d, k in zip(out, stride, dilation, kernel)]
    pads = [(p, max(n - s - p, 0)) for p, n, s in zip(padding, need, x.shape[-2:])]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + pads, constant_values=fill)
    return windows(xp, kernel, stride, dilation, out)


@register_op
class MaxPool2d(_Pool):
    """Max over `kernel` windows of the two spatial axes (padding never wins)."""

    name = "nn.max_pool2d"
    attrs = _pool_attrs(with_dilation=True) | {
        "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC"))}

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                  padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool,
                  layout: str) -> np.ndarray:
        xs = _spatial_last(x, layout)
        low = -np.inf if x.dtype.kind == "f" or x.dtype.kind == "V" else np.iinfo(x.dtype).min
        win = _padded_windows(xs, kernel, stride, padding, dilation, ceil_mode,
                              np.array(low).astype(x.dtype))
        return _spatial_back(win.max(axis=(-2, -1)), layout)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
                ceil_mode: bool, layout: str) -> Tensor:
        """out[.., oh, ow] = max_{kh, kw} x[.., oh*s - p + kh*d, ow*s - p + kw*d] (padding
        reads the dtype's lowest value, so it never wins)."""
        taps = [reduce_axis(k, ctx.name(f"rk{a}")) for a, k in enumerate(kernel)]
        element = _window_body(x, taps, kernel, stride, padding, dilation, ceil_mode, layout,
                               identity("max", x.dtype))
        return reduce_then(ctx, "max", element, taps)


@register_op
class AvgPool2d(_Pool):
    """Mean over `kernel` windows; the divisor counts padding if `count_include_pad`,
    and is `divisor_override` when set (torch's rules, window by window)."""

    name = "nn.avg_pool2d"
    attrs = _pool_attrs(with_dilation=False) | {
        "count_include_pad": Attr("bool", True),
        "divisor_override": Attr("int", None, optional=True),
        "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC")),
    }

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        out = super().infer_type(x, **attrs)
        if not out.dtype.is_float:
            raise self.error(f"expects a floating-point operand, got {out.dtype}")
        return out

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                  padding: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
                  divisor_override: int | None, layout: str) -> np.ndarray:
        xs = upcast(_spatial_last(x, layout))
        win = _padded_windows(xs, kernel, stride, padding, (1, 1), ceil_mode, 0)
        total = win.sum(axis=(-2, -1))
        if divisor_override is not None:
            y = total / xs.dtype.type(divisor_override)
        else:
            # Separable: a window's element count is the product of its per-axis extents.
            per_axis = []
            for size, k, s, p, o in zip(xs.shape[-2:], kernel, stride, padding,
                                        total.shape[-2:]):
                start = np.arange(o) * s - p
                end = np.minimum(start + k, size + p)
                if not count_include_pad:
                    start, end = np.maximum(start, 0), np.minimum(end, size)
                per_axis.append(end - start)
            count = np.multiply.outer(per_axis[0], per_axis[1])
            y = np.where(count > 0, total / np.maximum(count, 1).astype(xs.dtype), 0)
        return _spatial_back(y, layout).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                stride: tuple[int, ...], padding: tuple[int, ...], ceil_mode: bool,
                count_include_pad: bool, divisor_override: int | None,
                layout: str) -> Tensor:
        """A windowed sum (padding reads 0), divided at the write by the window's divisor:
        `divisor_override`, or the product over both axes of `end - start` with
        `start = o*s - p`, `end = min(start + k, size + p)`, both clipped to the input
        unless `count_include_pad`."""
        taps = [reduce_axis(k, ctx.name(f"rk{a}")) for a, k in enumerate(kernel)]
        element = _window_body(x, taps, kernel, stride, padding, (1, 1), ceil_mode, layout, 0)
        axes = _pool_axes(x.ndim, layout)

        def divide(total: Expr, *out: Expr) -> Expr:
            if divisor_override is not None:
                return total / const(divisor_override, total.dtype)
            count: Expr = const(1)
            for a, k, s, p in zip(axes, kernel, stride, padding):
                start = out[a] * s - p
                end = min_(start + k, x.shape[a] + p)
                if not count_include_pad:
                    start, end = max_(start, 0), min_(end, x.shape[a])
                count = count * (end - start)
            quotient = total / cast(max_(count, 1), total.dtype)
            return select(compare("gt", count, 0), quotient, const(0, total.dtype))

        return reduce_then(ctx, "sum", lambda *out: widen(element(*out)), taps, divide)


def _adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive bins: `[floor(i*size/out), ceil((i+1)*size/out))`."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _adaptive_window(ctx: LowerContext, x: Tensor, output_size: Sequence[int], layout: str
                     ) -> tuple[list[ReduceAxis], Callable[..., tuple[Expr, Expr, Expr]]]:
    """Reduce axes spanning the widest adaptive bin of each spatial axis, and for an output
    position `(in_bin, index, count)`: whether the taps fall inside its bin
    `[floor(o*size/out), ceil((o+1)*size/out))`, the (clamped) input index they read, and
    the bin's element count. Bins differ in width by at most one; when they are all equal
    (size divisible by out, say) the predicate is dropped."""
    axes = _pool_axes(x.ndim, layout)
    taps, uniform = [], []
    for a, out in zip(axes, output_size):
        size = x.shape[a]
        if size.is_const:
            start, end = _adaptive_bins(size.value, out)
            widest = int((end - start).max())
            uniform.append(bool((end - start == widest).all()))
        else:  # a bin spans at most ceil(size/out) + 1 elements
            widest = (size + out - 1) // out + 1
            uniform.append(False)
        taps.append(reduce_axis(widest, ctx.name(f"rk{a}")))

    def window(*out: Expr) -> tuple[Expr, Expr, Expr]:
        ok, count, index = const(True), const(1), list(out)
        for a, n_out, r, same in zip(axes, output_size, taps, uniform):
            size = x.shape[a]
            start = out[a] * size // n_out
            end = ((out[a] + 1) * size + n_out - 1) // n_out
            count = count * (end - start)
            index[a] = start + r.var
            if not same:
                ok = logical("and", ok, compare("lt", r.var, end - start))
                index[a] = min_(index[a], size - 1)
        return ok, x[tuple(index)], count

    return taps, window


class _AdaptivePool(OpDef):
    """Shared type rule: the spatial axes become `output_size`."""

    inputs = ("x",)
    attrs = {"output_size": Attr("ints"),
             "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC"))}
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, x: Any, *, output_size: tuple[int, ...], layout: str) -> TensorType:
        x = tensor(x, self.name)
        axes = _spatial_axes(self, x, layout)
        check_len(self, "output_size", output_size, 2)
        if min(output_size) < 1:
            raise self.error(f"output_size must be positive, got {list(output_size)}")
        return _with_spatial(x, axes, output_size)


@register_op
class AdaptiveAvgPool2d(_AdaptivePool):
    """Mean over torch's adaptive bins of the spatial axes, to a fixed `output_size`."""

    name = "nn.adaptive_avg_pool2d"

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        return super().infer_type(float_tensor(self, x), **attrs)

    def reference(self, x: np.ndarray, *, output_size: tuple[int, ...],
                  layout: str) -> np.ndarray:
        xs = upcast(_spatial_last(x, layout))
        # Averaging over a rectangle is averaging rows then columns: one matrix per axis.
        mats = []
        for size, out in zip(xs.shape[-2:], output_size):
            start, end = _adaptive_bins(size, out)
            j = np.arange(size)
            inside = (j >= start[:, None]) & (j < end[:, None])
            mats.append(inside / (end - start)[:, None].astype(xs.dtype))
        y = np.einsum("...hw,oh,pw->...op", xs, mats[0].astype(xs.dtype),
                      mats[1].astype(xs.dtype), optimize=True)
        return _spatial_back(y, layout).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, output_size: tuple[int, ...],
                layout: str) -> Tensor:
        """A sum over the widest bin (taps past the bin read 0), divided by the bin's size."""
        taps, window = _adaptive_window(ctx, x, output_size, layout)

        def element(*out: Expr) -> Expr:
            ok, value, _ = window(*out)
            return select(ok, widen(value), 0)

        def divide(total: Expr, *out: Expr) -> Expr:
            return total / cast(window(*out)[2], total.dtype)

        return reduce_then(ctx, "sum", element, taps, divide)


@register_op
class AdaptiveMaxPool2d(_AdaptivePool):
    """Max over torch's adaptive bins of the spatial axes, to a fixed `output_size`."""

    name = "nn.adaptive_max_pool2d"

    def reference(self, x: np.ndarray, *, output_size: tuple[int, ...],
                  layout: str) -> np.ndarray:
        y = _spatial_last(x, layout)
        # A rectangle's max is the max of its rows' maxima: reduce one axis at a time,
        # looping over output bins (a handful), not pixels.
        for axis, out in ((-1, output_size[1]), (-2, output_size[0])):
            start, end = _adaptive_bins(y.shape[axis], out)
            parts = [np.take(y, np.arange(s, e), axis=axis).max(axis=axis, keepdims=True)
                     for s, e in zip(start, end)]
            y = np.concatenate(parts, axis=axis)
        return _spatial_back(y, layout)

    def compute(self, ctx: LowerContext, x: Tensor, *, output_size: tuple[int, ...],
                layout: str) -> Tensor:
        """A max over the widest bin; taps past the bin read the dtype's lowest value."""
        taps, window = _adaptive_window(ctx, x, output_size, layout)

        def element(*out: Expr) -> Expr:
            ok, value, _ = window(*out)
            return select(ok, value, identity("max", x.dtype))

        return reduce_then(ctx, "max", element, taps)


# -- N-d pools with ONNX's padding rules -------------------------------------------------


def pool_nd_out_size(size: Dim, kernel: int, stride: int, begin: int, end: int,
                     dilation: int, ceil_mode: bool) -> Dim:
    """`floor` (or `ceil`) of `(size + begin + end - dilation*(kernel-1) - 1) / stride + 1`;
    in ceil mode the last window must start inside the input or its begin padding."""
    span = dim(size + begin + end - dilation * (kernel - 1) - 1)
    if not ceil_mode:
        return dim(floordiv(span, stride) + 1)
    if isinstance(size, int):
        out = -(-span // stride) + 1
        return out - 1 if (out - 1) * stride >= size + begin else out
    return dim(sympy.Min(ceildiv(span, stride) + 1, ceildiv(dim(size + begin), stride)))


def _pool_nd_attrs() -> dict[str, Attr]:
    return {
        "kernel": Attr("ints"),
        "strides": Attr("ints"),
        "pads": Attr("ints", doc="begins of every spatial axis, then ends (ONNX order)"),
        "dilations": Attr("ints"),
        "ceil_mode": Attr("bool", False),
    }


class _PoolNd(OpDef):
    """Shared type rule of the N-d pools over the axes after `[N, C]`."""

    inputs = ("x",)
    fusion_kind = FusionKind.OUT_FUSABLE

    def out_spatial(self, x: TensorType, kernel: tuple[int, ...], strides: tuple[int, ...],
                    pads: tuple[int, ...], dilations: tuple[int, ...], ceil_mode: bool
                    ) -> tuple[Dim, ...]:
        k = len(kernel)
        if x.rank != k + 2:
            raise self.error(f"a {k}-D kernel needs an [N, C, +{k} spatial] input, got {x}")
        check_len(self, "strides", strides, k)
        check_len(self, "dilations", dilations, k)
        check_len(self, "pads", pads, 2 * k)
        if min(kernel) < 1 or min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
            raise self.error("kernel, strides and dilations must be positive, pads >= 0")
        out = tuple(pool_nd_out_size(s, kk, st, pads[i], pads[i + k], d, ceil_mode)
                    for i, (s, kk, st, d) in enumerate(zip(x.shape[2:], kernel, strides,
                                                           dilations)))
        if any(isinstance(o, int) and o < 1 for o in out):
            raise self.error(f"input {x} is too small for kernel {list(kernel)}")
        return out

    def infer_type(self, x: Any, *, kernel: tuple[int, ...], strides: tuple[int, ...],
                   pads: tuple[int, ...], dilations: tuple[int, ...], ceil_mode: bool,
                   **_: Any) -> TensorType:
        x = tensor(x, self.name)
        out = self.out_spatial(x, kernel, strides, pads, dilations, ceil_mode)
        return x.with_shape((*x.shape[:2], *out))


def _nd_windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                pads: Sequence[int], dilations: Sequence[int], ceil_mode: bool, fill: Any
                ) -> tuple[np.ndarray, list[int]]:
    """Windows `[N, C, *out, *kernel]` of `x` padded with `fill` (also past the end
    padding where ceil mode's last window runs over), and the output sizes."""
    k = len(kernel)
    out = [pool_nd_out_size(s, kk, st, pads[i], pads[i + k], d, ceil_mode)
           for i, (s, kk, st, d) in enumerate(zip(x.shape[2:], kernel, strides, dilations))]
    need = [(o - 1) * st + d * (kk - 1) + 1 for o, st, d, kk in zip(out, strides, dilations,
                                                                   kernel)]
    widths = [(0, 0), (0, 0)] + [(pads[i], max(need[i] - x.shape[2 + i] - pads[i], 0))
                                 for i in range(k)]
    xp = np.pad(x, widths, constant_values=fill)
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(kernel, dilations))
    view = sliding_window_view(xp, span, axis=tuple(range(2, 2 + k)))
    index = (slice(None), slice(None)) + tuple(slice(0, (o - 1) * s + 1, s)
                                               for o, s in zip(out, strides))
    index += tuple(slice(None, None, d) for d in dilations)
    return view[index], out


def _axis_counts(size: int, out: int, kernel: int, stride: int, begin: int, end: int,
                 dilation: int, include_pad: bool) -> np.ndarray:
    """How many taps of each window along one axis fall inside the input (or inside the
    input and its explicit padding, with `include_pad`)."""
    lo, hi = (-begin, size + end) if include_pad else (0, size)
    taps = np.arange(out)[:, None] * stride - begin + np.arange(kernel)[None, :] * dilation
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


def _nd_window(x: Tensor, taps: Sequence[ReduceAxis], strides: Sequence[int],
               pads: Sequence[int], dilations: Sequence[int], ceil_mode: bool, fill: Any
               ) -> Callable[..., Expr]:
    """The element of output position `out`'s window at the taps' loop variables:
    `x[n, c, .., o*s - begin + k*d, ..]`, or `fill` where the window hangs over the input
    (its begin or end padding, or ceil mode's overhang past the end padding)."""
    k = len(taps)
    checked = [2 + i for i in range(k) if pads[i] or pads[i + k] or ceil_mode]

    def element(*out: Expr) -> Expr:
        index = list(out)
        for i, (r, s, d) in enumerate(zip(taps, strides, dilations)):
            index[2 + i] = out[2 + i] * s - pads[i] + r.var * d
        return guarded_load(x, index, checked, fill)

    return element


def _nd_taps(ctx: LowerContext, kernel: Sequence[int]) -> list[ReduceAxis]:
    return [reduce_axis(kk, ctx.name(f"rk{a}")) for a, kk in enumerate(kernel)]


def _tap_count(start: Expr, kernel: int, dilation: int, lo: Any, hi: Any) -> Expr:
    """How many of the taps `start + k*dilation` (k < kernel) fall in `[lo, hi)`."""
    if dilation == 1:
        return max_(min_(start + kernel, hi) - max_(start, lo), 0)
    count: Expr = const(0)
    for t in range(kernel):
        tap = start + t * dilation
        hit = logical("and", compare("ge", tap, lo), compare("lt", tap, hi))
        count = count + select(hit, const(1), const(0))
    return count


@register_op
class MaxPoolNd(_PoolNd):
    """Max over windows of the spatial axes of `x: [N, C, *spatial]` (padding never
    wins). With `indices`, a second i64 result holds each maximum's flat index into x
    (row-major, or column-major over the spatial axes with `storage_order=1`)."""

    name = "nn.max_pool_nd"
    attrs = _pool_nd_attrs() | {"indices": Attr("bool", False),
                                "storage_order": Attr("int", 0)}

    def infer_type(self, x: Any, *, indices: bool, **attrs: Any) -> Any:
        y = super().infer_type(x, **attrs)
        return (y, y.with_dtype(DType.i64)) if indices else y

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], strides: tuple[int, ...],
                  pads: tuple[int, ...], dilations: tuple[int, ...], ceil_mode: bool,
                  indices: bool, storage_order: int) -> Any:
        low = -np.inf if x.dtype.kind in "fV" else np.iinfo(x.dtype).min
        win, out = _nd_windows(x, kernel, strides, pads, dilations, ceil_mode,
                               np.array(low).astype(x.dtype))
        k = len(kernel)
        flat = win.reshape(*win.shape[:2 + k], -1)
        y = flat.max(axis=-1)
        if not indices:
            return y
        arg = flat.argmax(axis=-1)
        taps = np.unravel_index(arg, kernel)
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        coords = []
        for i in range(k):
            shape = [1] * (2 + k)
            shape[2 + i] = out[i]
            start = (np.arange(out[i]) * strides[i] - pads[i]).reshape(shape)
            coords.append(start + taps[i] * dilations[i])
        if storage_order:
            pos, scale = np.zeros_like(arg), 1
            for i in range(k):
                pos, scale = pos + coords[i] * scale, scale * spatial[i]
        else:
            pos = np.zeros_like(arg)
            for i in range(k):
                pos = pos * spatial[i] + coords[i]
        plane = (np.arange(n)[:, None] * c + np.arange(c)[None, :]).reshape(
            n, c, *([1] * k)) * int(np.prod(spatial))
        return y, (plane + pos).astype(np.int64)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                strides: tuple[int, ...], pads: tuple[int, ...], dilations: tuple[int, ...],
                ceil_mode: bool, indices: bool, storage_order: int) -> Any:
        """out[n, c, *o] = max over the window (padding reads the dtype's lowest value).
        With `indices`, an argmax over the same window (first wins, padding included, as
        NumPy's) is turned into the flat index of its tap: the tap's row-major position
        over the kernel split into per-axis offsets `o*s - begin + k*d`, linearized over
        the spatial sizes (reversed with `storage_order=1`) plus `(n*C + c) * prod(spatial)`."""
        low = identity("max", x.dtype)
        taps = _nd_taps(ctx, kernel)
        y = reduce_then(ctx, "max", _nd_window(x, taps, strides, pads, dilations, ceil_mode,
                                               low), taps)
        if not indices:
            return y
        taps = _nd_taps(ctx, kernel)
        element = _nd_window(x, taps, strides, pads, dilations, ceil_mode, low)
        shape, names = ctx.out_shape(1), ctx.axis_names(len(kernel) + 2)
        arg = compute(shape, lambda *o: reduce("argmax", element(*o), taps), ctx.name("arg"),
                      axis_names=names)
        spatial = list(x.shape[2:])

        def flat(*out: Expr) -> Expr:
            tap = delinear(arg[out], [const(kk) for kk in kernel])
            coords = [out[2 + i] * strides[i] - pads[i] + tap[i] * dilations[i]
                      for i in range(len(kernel))]
            order = slice(None, None, -1) if storage_order else slice(None)
            pos = linear(coords[order], spatial[order])
            plane = out[0] * x.shape[1] + out[1]
            for size in spatial:
                plane = plane * size
            return cast(plane + pos, DType.i64)

        return y, compute(shape, flat, ctx.name("indices"), axis_names=names)


@register_op
class AvgPoolNd(_PoolNd):
    """Mean over windows of the spatial axes of `x: [N, C, *spatial]`; the divisor counts
    the explicit padding if `count_include_pad` (never ceil mode's overhang)."""

    name = "nn.avg_pool_nd"
    attrs = _pool_nd_attrs() | {"count_include_pad": Attr("bool", False)}

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        return super().infer_type(float_tensor(self, x), **attrs)

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], strides: tuple[int, ...],
                  pads: tuple[int, ...], dilations: tuple[int, ...], ceil_mode: bool,
                  count_include_pad: bool) -> np.ndarray:
        xf = upcast(x)
        win, out = _nd_windows(xf, kernel, strides, pads, dilations, ceil_mode, 0)
        k = len(kernel)
        total = win.sum(axis=tuple(range(-k, 0)))
        count = np.ones((), dtype=np.int64)
        for i in range(k):
            c = _axis_counts(x.shape[2 + i], out[i], kernel[i], strides[i], pads[i],
                             pads[i + k], dilations[i], count_include_pad)
            count = np.multiply.outer(count, c)
        y = total / np.maximum(count, 1).astype(xf.dtype)
        return y.astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                strides: tuple[int, ...], pads: tuple[int, ...], dilations: tuple[int, ...],
                ceil_mode: bool, count_include_pad: bool) -> Tensor:
        """A windowed sum (padding reads 0), divided at the write by the product over the
        axes of how many taps `o*s - begin + k*d` fall inside the input (inside
        `[-begin, size + end)` with `count_include_pad`), at least 1."""
        taps = _nd_taps(ctx, kernel)
        element = _nd_window(x, taps, strides, pads, dilations, ceil_mode, 0)
        k = len(kernel)

        def divide(total: Expr, *out: Expr) -> Expr:
            count: Expr = const(1)
            for i in range(k):
                size = x.shape[2 + i]
                lo, hi = (-pads[i], size + pads[i + k]) if count_include_pad else (0, size)
                start = out[2 + i] * strides[i] - pads[i]
                count = count * _tap_count(start, kernel[i], dilations[i], lo, hi)
            return total / cast(max_(count, 1), total.dtype)

        return reduce_then(ctx, "sum", lambda *out: widen(element(*out)), taps, divide)


@register_op
class LpPoolNd(_PoolNd):
    """`(sum |x|^p) ^ (1/p)` over windows of the spatial axes of `x: [N, C, *spatial]`."""

    name = "nn.lp_pool_nd"
    attrs = _pool_nd_attrs() | {"p": Attr("float", 2.0)}

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        return super().infer_type(float_tensor(self, x), **attrs)

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], strides: tuple[int, ...],
                  pads: tuple[int, ...], dilations: tuple[int, ...], ceil_mode: bool,
                  p: float) -> np.ndarray:
        xf = upcast(x)
        win, _ = _nd_windows(np.abs(xf), kernel, strides, pads, dilations, ceil_mode, 0)
        k = len(kernel)
        total = (win ** xf.dtype.type(p)).sum(axis=tuple(range(-k, 0)))
        return (total ** xf.dtype.type(1.0 / p)).astype(x.dtype, copy=False)
