"""Image sampling ops (`image.resize`, `image.grid_sample`, `image.affine_grid`).

The references reproduce torch's CPU index arithmetic, including its float32 rounding
(`floor(dst * scale)` computed in f32 for nearest resize, `nearbyint` for nearest grid
sampling), because a nearest-neighbour index that is off by one is a wrong pixel, not a
rounding error.

Fusion kinds: `image.resize` reads a fixed neighbourhood of each output position (one
element for nearest, 2^k for linear), a pure function of the output index, so it is
INJECTIVE and can be inlined into its consumer as TVM does. `image.affine_grid` reads
three elements of `theta` per output (INJECTIVE likewise). `image.grid_sample` gathers at
data-dependent positions: OPAQUE.

Lowering: each op is one compute whose body recomputes the reference's index arithmetic
for its output position, operation for operation in the same float types, and reads
through clamped (guarded) loads. Generated code may reassociate float arithmetic, so grid
sampling pins each rounding step (`_rounded`); nearest indices are then bit-exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dim, floordiv, is_static
from dlc.ir.tensor.compute import Tensor, compute
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import (
    Expr,
    call,
    cast,
    compare,
    const,
    max_,
    min_,
    select,
)
from dlc.ir.types import TensorType
from dlc.ops.nn import (
    check_len,
    float_tensor,
    guarded_load,
    opmath_dtype,
    upcast,
    widen,
)
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, same_dtype

_F32 = np.float32


# -- resize ------------------------------------------------------------------------------


def _scaled_size(size: Dim, scale: float) -> Dim:
    """`floor(size * scale)`: torch's output size for a scale factor."""
    if isinstance(size, int):
        return int(np.floor(size * scale))
    return dim(floordiv(dim(size * sympy.Rational(scale)), 1))


def _coordinate_scale(size_in: int, size_out: int, scale: float | None) -> _F32:
    """torch's `compute_scales_value<float>`: `1/scale` when the user gave a scale factor,
    else `in/out`, rounded to f32."""
    if scale is not None and scale > 0:
        return _F32(1.0 / scale)
    return _F32(size_in) / _F32(size_out)


def _nearest_index(size_in: int, size_out: int, scale: float | None,
                   exact: bool) -> np.ndarray:
    """Source index of every output position, as torch's CPU kernel computes it."""
    dst = np.arange(size_out)
    s = _coordinate_scale(size_in, size_out, scale)
    if exact:
        # area_pixel_compute_source_index: an f64 expression stored to f32, then the
        # `+ 0.5` (f64 again) is rounded to f32 by floorf.
        src = np.maximum((np.float64(s) * (dst + 0.5) - 0.5).astype(_F32), _F32(0))
        src = (src.astype(np.float64) + 0.5).astype(_F32)
    else:
        src = s * dst.astype(_F32)  # an f32 product
    return np.minimum(np.floor(src).astype(np.int64), size_in - 1)


def _linear_taps(size_in: int, size_out: int, scale: float | None, align_corners: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index0, index1, lambda1) of linear interpolation: torch's
    `compute_source_index_and_lambda` for one axis."""
    dst = np.arange(size_out)
    if size_out == size_in and not align_corners:
        return dst, dst, np.zeros(size_out, _F32)
    if align_corners:
        s = _F32(size_in - 1) / _F32(size_out - 1) if size_out > 1 else _F32(0)
        src = s * dst.astype(_F32)
    else:
        s = _coordinate_scale(size_in, size_out, scale)
        src = np.maximum(s * (dst.astype(_F32) + _F32(0.5)) - _F32(0.5), _F32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    lam = np.clip(src - i0.astype(_F32), 0, 1).astype(_F32)
    i1 = i0 + (i0 < size_in - 1)
    return i0, i1, lam


# Tensor-IR forms of the index rules above, operation for operation in the same float
# types, so nearest indices are bit-exact. Sizes are index expressions (maybe symbolic).

F32, F64, I64 = DType.f32, DType.f64, DType.i64


def _scale_expr(size_in: Expr, size_out: Expr, scale: float | None) -> Expr:
    """`_coordinate_scale` as an f32 expression."""
    if scale is not None and scale > 0:
        return const(float(_F32(1.0 / scale)), F32)
    if size_in.is_const and size_out.is_const:
        return const(float(_F32(size_in.value) / _F32(size_out.value)), F32)
    return cast(size_in, F32) / cast(size_out, F32)


def _nearest_expr(dst: Expr, size_in: Expr, size_out: Expr, scale: float | None,
                  exact: bool) -> Expr:
    """`_nearest_index` at output position `dst`."""
    s = _scale_expr(size_in, size_out, scale)
    if exact:
        src = cast(cast(s, F64) * (cast(dst, F64) + 0.5) - 0.5, F32)
        src = cast(cast(max_(src, const(0.0, F32)), F64) + 0.5, F32)
    else:
        src = s * cast(dst, F32)
    return min_(cast(call("floor", src), I64), size_in - 1)


def _linear_expr(dst: Expr, size_in: Expr, size_out: Expr, scale: float | None,
                 align_corners: bool) -> tuple[Expr, Expr, Expr]:
    """`_linear_taps` at output position `dst`: (index0, index1, lambda1 in f32)."""
    zero, one = const(0.0, F32), const(1.0, F32)
    if align_corners:
        if size_out.is_const and size_in.is_const:
            s = (const(float(_F32(size_in.value - 1) / _F32(size_out.value - 1)), F32)
                 if size_out.value > 1 else zero)
        else:
            s = select(compare("gt", size_out, 1),
                       cast(size_in - 1, F32) / cast(max_(size_out - 1, 1), F32), zero)
        src = s * cast(dst, F32)
    else:
        s = _scale_expr(size_in, size_out, scale)
        src = max_(s * (cast(dst, F32) + 0.5) - 0.5, zero)
    i0 = min_(cast(call("floor", src), I64), size_in - 1)
    lam = min_(max_(src - cast(i0, F32), zero), one)
    i1 = select(compare("lt", i0, size_in - 1), i0 + 1, i0)
    if align_corners:
        return i0, i1, lam
    same = compare("eq", size_out, size_in)  # torch copies an axis that keeps its size
    return select(same, dst, i0), select(same, dst, i1), select(same, zero, lam)


@register_op
class Resize(OpDef):
    """Resize the trailing `k` axes to `size` (or `floor(in * scales)`) by `mode`.

    Modes: `nearest` (torch's legacy `floor(dst * in/out)` rule), `nearest_exact`
    (`round((dst + 0.5) * in/out - 0.5)`, Pillow's rule), `linear` (linear along each resized
    axis: bilinear for two; `align_corners` maps corner pixel centres onto each other).
    When `scales` is given, the coordinate map uses `1/scale` rather than `in/out`, as
    torch does for `F.interpolate(scale_factor=...)`.
    """

    name = "image.resize"
    inputs = ("x",)
    attrs = {
        "size": Attr("dims", None, optional=True, doc="output sizes of the trailing axes"),
        "scales": Attr("floats", None, optional=True, doc="scale factor per trailing axis"),
        "mode": Attr("str", "nearest", choices=("nearest", "nearest_exact", "linear")),
        "align_corners": Attr("bool", False),
    }
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, size: tuple[Dim, ...] | None,
                   scales: tuple[float, ...] | None, mode: str,
                   align_corners: bool) -> TensorType:
        x = float_tensor(self, x)
        if size is None and scales is None:
            raise self.error("needs size or scales")
        k = len(size) if size is not None else len(scales or ())
        if scales is not None:
            check_len(self, "scales", scales, k)
        if not 1 <= k <= x.rank:
            raise self.error(f"cannot resize {k} trailing axes of {x}")
        if align_corners and mode != "linear":
            raise self.error("align_corners applies to mode='linear' only")
        if size is not None:
            out = tuple(size)
        else:
            out = tuple(_scaled_size(d, s) for d, s in zip(x.shape[-k:], scales or ()))
        if any(isinstance(o, int) and o < 1 for o in out):
            raise self.error(f"output size {list(out)} is empty")
        return x.with_shape((*x.shape[:-k], *out))

    def reference(self, x: np.ndarray, *, size: tuple[Dim, ...] | None,
                  scales: tuple[float, ...] | None, mode: str,
                  align_corners: bool) -> np.ndarray:
        k = len(size) if size is not None else len(scales or ())
        if size is not None and not all(is_static(d) for d in size):
            raise ValueError(f"size {list(size)} is symbolic; give scales instead")
        y = upcast(x) if mode == "linear" else x
        for i in range(k):
            axis = x.ndim - k + i
            n_in = x.shape[axis]
            n_out = size[i] if size is not None else _scaled_size(n_in, scales[i])
            scale = scales[i] if scales is not None else None
            if mode == "linear":
                i0, i1, lam = _linear_taps(n_in, n_out, scale, align_corners)
                shape = [1] * x.ndim
                shape[axis] = n_out
                lam = lam.reshape(shape).astype(y.dtype)
                y = np.take(y, i0, axis=axis) * (1 - lam) + np.take(y, i1, axis=axis) * lam
            else:
                y = np.take(y, _nearest_index(n_in, n_out, scale, mode == "nearest_exact"),
                            axis=axis)
        return y.astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, size: tuple[Dim, ...] | None,
                scales: tuple[float, ...] | None, mode: str, align_corners: bool) -> Tensor:
        """Each output reads its source pixel (nearest) or the 2^k corners around it
        (linear, interpolating the first resized axis innermost, as the reference's
        axis-by-axis passes do)."""
        k = len(size) if size is not None else len(scales or ())
        shape, dtype = ctx.out_shape(), ctx.out_dtype()
        lead = x.ndim - k

        def taps(out: tuple[Expr, ...]) -> list[tuple[Expr, ...]]:
            found = []
            for i in range(k):
                a = lead + i
                scale = scales[i] if scales is not None else None
                if mode == "linear":
                    found.append(_linear_expr(out[a], x.shape[a], shape[a], scale,
                                              align_corners))
                else:
                    found.append((_nearest_expr(out[a], x.shape[a], shape[a], scale,
                                                mode == "nearest_exact"),))
            return found

        def blend(out: tuple[Expr, ...], axes: list[tuple[Expr, ...]], index: list[Expr]
                  ) -> Expr:
            """Interpolate along the last of `axes`, recursing into the earlier ones."""
            if not axes:
                return widen(x[(*out[:lead], *index)])
            i0, i1, lam = axes[-1]
            lam = cast(lam, opmath_dtype(dtype))
            low = blend(out, axes[:-1], [i0, *index])
            high = blend(out, axes[:-1], [i1, *index])
            return low * (1.0 - lam) + high * lam

        def body(*out: Expr) -> Expr:
            found = taps(out)
            if mode != "linear":
                return x[(*out[:lead], *(t[0] for t in found))]
            return cast(blend(out, found, []), dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


# -- grid sampling -----------------------------------------------------------------------


def _reflect(c: np.ndarray, twice_low: int, twice_high: int) -> np.ndarray:
    """Reflect coordinates into [twice_low/2, twice_high/2] (torch's reflect_coordinates)."""
    if twice_low == twice_high:
        return np.zeros_like(c)
    low = _F32(twice_low / 2)
    span = _F32((twice_high - twice_low) / 2)
    c = np.abs(c - low)
    extra = np.fmod(c, span)
    flips = np.floor(c / span)
    return np.where(flips % 2 == 0, extra + low, span - extra + low).astype(c.dtype)


def _source_coords(g: np.ndarray, size: int, padding_mode: str, align_corners: bool
                   ) -> np.ndarray:
    """Grid values in [-1, 1] to pixel coordinates, with border/reflection padding
    applied (the arithmetic of torch's vectorized CPU kernel)."""
    if align_corners:
        c = (g + 1) * g.dtype.type((size - 1) / 2)
    else:
        c = (g + 1) * g.dtype.type(size / 2) - g.dtype.type(0.5)
    if padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
    if padding_mode in ("border", "reflection"):
        c = np.clip(c, 0, size - 1)
    return c


def _gather(xt: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """`xt[n, iy, ix, :]` for `xt: [N, H, W, C]` and integer maps `[N, Ho, Wo]`; zero
    where the position falls outside the image (the zeros padding)."""
    n, h, w = xt.shape[:3]
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    batch = np.arange(n).reshape(n, 1, 1)
    vals = xt[batch, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]
    return np.where(inside[..., None], vals, 0)


def _half_of(twice: Expr, dtype: DType) -> Expr:
    """`twice / 2` as a constant of `dtype` (a Python float rounded once, as the reference's
    `dtype.type(size / 2)`), or an expression for a symbolic size."""
    if twice.is_const:
        return const(twice.value / 2, dtype)
    return cast(cast(twice, F64) / 2.0, dtype)


def _rounded(e: Expr) -> Expr:
    """`e`, rounded here and not re-associated with its neighbours.

    Generated code may reassociate and contract float arithmetic, so `(g + 1) * a - 0.5`
    can become `g * a + (a - 0.5)` or an FMA: the same number up to rounding, but a
    different pixel when it lands on a half. `x != x ? NaN : x` is the identity that the
    optimizer does not see through (it does fold a max with -inf), so each of the
    reference's roundings happens where it does in the reference.
    """
    return select(compare("ne", e, e), const(math.nan, e.dtype), e)


def _reflect_expr(c: Expr, twice_low: Expr, twice_high: Expr) -> Expr:
    """`_reflect` on one coordinate."""
    zero = const(0.0, c.dtype)
    if twice_low.is_const and twice_high.is_const and twice_low.value == twice_high.value:
        return zero
    low = _half_of(twice_low, c.dtype)
    span = _half_of(twice_high - twice_low, c.dtype)
    c = _rounded(call("abs", c - low))
    extra = _rounded(c % span)  # fmod: c >= 0
    flips = call("floor", c / span)
    even = compare("eq", flips % 2.0, zero)
    out = select(even, extra + low, _rounded(span - extra) + low)
    if twice_low.is_const and twice_high.is_const:
        return out
    return select(compare("eq", twice_low, twice_high), zero, out)


def _source_expr(g: Expr, size: Expr, padding_mode: str, align_corners: bool) -> Expr:
    """`_source_coords` on one grid value, rounding step by step as the reference."""
    if align_corners:
        c = _rounded(_rounded(g + 1.0) * _half_of(size - 1, g.dtype))
    else:
        c = _rounded(_rounded(_rounded(g + 1.0) * _half_of(size, g.dtype)) - 0.5)
    if padding_mode == "reflection":
        c = (_reflect_expr(c, const(0), 2 * (size - 1)) if align_corners
             else _reflect_expr(c, const(-1), 2 * size - 1))
    if padding_mode in ("border", "reflection"):
        c = min_(max_(c, const(0.0, g.dtype)), cast(size - 1, g.dtype))
    return c


def _pixel(c: Expr, size: Expr) -> Expr:
    """An integral float coordinate as an index, clamped into `[-2, size]` first (NaN to -2)
    so the conversion is defined; positions outside `[0, size)` still read as padding, and
    so does the next pixel after one clamped to -2 or `size`."""
    low = const(-2.0, c.dtype)
    high = cast(size, c.dtype)
    c = select(compare("ge", c, low), c, low)
    return cast(select(compare("le", c, high), c, high), I64)


@register_op
class GridSample(OpDef):
    """Sample `x: [N, C, H, W]` at `grid: [N, Ho, Wo, 2]` (x, y in [-1, 1]) -> `[N, C, Ho, Wo]`.

    `mode` bilinear or nearest (round half to even, as torch's nearbyint);
    `padding_mode` zeros, border (clamp) or reflection; `align_corners` maps -1 and 1 to
    the corner pixels' centres rather than their outer edges.
    """

    name = "image.grid_sample"
    inputs = ("x", "grid")
    attrs = {
        "mode": Attr("str", "bilinear", choices=("bilinear", "nearest")),
        "padding_mode": Attr("str", "zeros", choices=("zeros", "border", "reflection")),
        "align_corners": Attr("bool", False),
    }
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, grid: Any, *, mode: str, padding_mode: str,
                   align_corners: bool) -> TensorType:
        x, grid = float_tensor(self, x), float_tensor(self, grid)
        dtype = same_dtype(self.name, x, grid)
        if x.rank != 4 or grid.rank != 4 or grid.shape[3] != 2:
            raise self.error(f"expects x [N, C, H, W] and grid [N, Ho, Wo, 2], got {x} and "
                             f"{grid}")
        return TensorType((x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]), dtype)

    def reference(self, x: np.ndarray, grid: np.ndarray, *, mode: str, padding_mode: str,
                  align_corners: bool) -> np.ndarray:
        xt = upcast(x).transpose(0, 2, 3, 1)  # [N, H, W, C]: gathers take whole pixels
        g = upcast(grid)
        h, w = x.shape[2:]
        cx = _source_coords(g[..., 0], w, padding_mode, align_corners)
        cy = _source_coords(g[..., 1], h, padding_mode, align_corners)
        if mode == "nearest":
            out = _gather(xt, np.rint(cy).astype(np.int64), np.rint(cx).astype(np.int64))
        else:
            x0, y0 = np.floor(cx), np.floor(cy)
            fx, fy = (cx - x0)[..., None], (cy - y0)[..., None]
            x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
            out = (_gather(xt, y0, x0) * (1 - fx) * (1 - fy)
                   + _gather(xt, y0, x0 + 1) * fx * (1 - fy)
                   + _gather(xt, y0 + 1, x0) * (1 - fx) * fy
                   + _gather(xt, y0 + 1, x0 + 1) * fx * fy)
        return out.transpose(0, 3, 1, 2).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, grid: Tensor, *, mode: str,
                padding_mode: str, align_corners: bool) -> Tensor:
        """Each output computes its source coordinates from its grid entry and reads one
        pixel (nearest, rounding half to even) or four (bilinear); pixels outside the image
        read 0 through guarded loads."""
        shape, dtype = ctx.out_shape(), ctx.out_dtype()
        h, w = x.shape[2], x.shape[3]

        def body(n: Expr, c: Expr, i: Expr, j: Expr) -> Expr:
            cx = _source_expr(widen(grid[n, i, j, 0]), w, padding_mode, align_corners)
            cy = _source_expr(widen(grid[n, i, j, 1]), h, padding_mode, align_corners)

            def pixel(iy: Expr, ix: Expr) -> Expr:
                return widen(guarded_load(x, (n, c, iy, ix), (2, 3), 0))

            if mode == "nearest":
                return cast(pixel(_pixel(call("round", cy), h), _pixel(call("round", cx), w)),
                            dtype)
            x0, y0 = call("floor", cx), call("floor", cy)
            fx, fy = cx - x0, cy - y0
            ix, iy = _pixel(x0, w), _pixel(y0, h)
            out = (pixel(iy, ix) * (1.0 - fx) * (1.0 - fy)
                   + pixel(iy, ix + 1) * fx * (1.0 - fy)
                   + pixel(iy + 1, ix) * (1.0 - fx) * fy
                   + pixel(iy + 1, ix + 1) * fx * fy)
            return cast(out, dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(4))


def _base_coords(n: int, align_corners: bool, dtype: np.dtype) -> np.ndarray:
    """torch's `linspace_from_neg_one`: pixel centres in [-1, 1] (corners if aligned)."""
    if n <= 1:
        return np.zeros(n, dtype)
    c = np.linspace(-1, 1, n, dtype=np.float64).astype(dtype)
    return c if align_corners else c * dtype.type((n - 1) / n)


@register_op
class AffineGrid(OpDef):
    """The sampling grid of affine maps `theta: [N, 2, 3]` over an `size = (H, W)` image:
    `[N, H, W, 2]`, each position's (x, y, 1) times `theta^T` (for image.grid_sample)."""

    name = "image.affine_grid"
    inputs = ("theta",)
    attrs = {"size": Attr("ints", doc="(H, W) of the output grid"),
             "align_corners": Attr("bool", False)}
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, theta: Any, *, size: tuple[int, ...],
                   align_corners: bool) -> TensorType:
        theta = float_tensor(self, theta)
        check_len(self, "size", size, 2)
        if theta.rank != 3 or theta.shape[1:] != (2, 3):
            raise self.error(f"expects theta [N, 2, 3], got {theta}")
        return TensorType((theta.shape[0], size[0], size[1], 2), theta.dtype)

    def reference(self, theta: np.ndarray, *, size: tuple[int, ...],
                  align_corners: bool) -> np.ndarray:
        t = upcast(theta)
        h, w = size
        base = np.ones((h, w, 3), t.dtype)
        base[..., 0] = _base_coords(w, align_corners, t.dtype)[None, :]
        base[..., 1] = _base_coords(h, align_corners, t.dtype)[:, None]
        grid = base.reshape(1, h * w, 3) @ np.swapaxes(t, 1, 2)  # [N, H*W, 2]
        return grid.reshape(-1, h, w, 2).astype(theta.dtype, copy=False)

    def compute(self, ctx: LowerContext, theta: Tensor, *, size: tuple[int, ...],
                align_corners: bool) -> Tensor:
        """`out[n, h, w, t] = theta[n, t, 0] * x(w) + theta[n, t, 1] * y(h) + theta[n, t, 2]`
        with the base coordinates of `_base_coords` computed from the index."""
        shape, dtype = ctx.out_shape(), ctx.out_dtype()
        wide = opmath_dtype(theta.dtype)

        def base(count: int, i: Expr) -> Expr:
            if count <= 1:
                return const(0.0, wide)
            # np.linspace: start + i * step in f64, the last point exactly the stop
            c = select(compare("eq", i, count - 1), const(1.0, F64),
                       cast(i, F64) * (2.0 / (count - 1)) - 1.0)
            c = cast(c, wide)
            return c if align_corners else c * const((count - 1) / count, wide)

        def body(n: Expr, i: Expr, j: Expr, t: Expr) -> Expr:
            row = [widen(theta[n, t, k]) for k in range(3)]
            return cast(base(size[1], j) * row[0] + base(size[0], i) * row[1] + row[2], dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(4))
