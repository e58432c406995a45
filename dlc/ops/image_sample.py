"""Grid sampling (`image.grid_sample`, `image.grid_sample_nd`, `image.affine_grid`).

`image.grid_sample` and `image.affine_grid` are torch's. The grid-sample reference
reproduces torch's CPU arithmetic, including its float32 rounding (`nearbyint` for nearest
sampling), because a nearest-neighbour index that is off by one is a wrong pixel, not a
rounding error. `image.grid_sample_nd` is ONNX's GridSample in 2-D and 3-D, with cubic
sampling.

Fusion kinds: `image.affine_grid` reads three elements of `theta` per output
(INJECTIVE); grid sampling gathers at data-dependent positions: OPAQUE.

Lowering: each torch op is one compute whose body recomputes the reference's index
arithmetic for its output position, operation for operation in the same float types, and
reads through clamped (guarded) loads. Generated code may reassociate float arithmetic, so
grid sampling pins each rounding step (`_rounded`); nearest indices are then bit-exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
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
from dlc.ir.tensor.index import guarded_load
from dlc.ir.types import TensorType
from dlc.ops.image import keys_cubic
from dlc.ops.opmath import opmath_dtype, upcast, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    check_len,
    float_tensor,
    register_op,
    same_dtype,
    tensor,
)

_F32 = np.float32
F32, F64, I64 = DType.f32, DType.f64, DType.i64


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


# -- grid sampling in any number of dimensions -------------------------------------------


def _reflect_into(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold coordinates into [low, high] by reflecting at the borders (repeatedly)."""
    span = high - low
    if span <= 0:
        return np.full_like(x, low)
    below, above = x < low, x > high
    d = np.where(below, low - x, np.where(above, x - high, 0.0))
    n = np.floor(d / span)
    r = d - n * span
    even = n % 2 == 0
    from_low = np.where(even, low + r, high - r)
    from_high = np.where(even, high - r, low + r)
    return np.where(below, from_low, np.where(above, from_high, x))


@register_op
class GridSampleNd(OpDef):
    """Sample `x: [N, C, *S]` at `grid: [N, *O, k]` (coordinates in [-1, 1], the last axis
    ordered x, y, z: innermost spatial axis first) -> `[N, C, *O]`, ONNX's GridSample:
    `mode` nearest (round half to even), linear or cubic (Keys, a = -0.75), and
    `padding_mode` zeros, border or reflection, for 2-D and 3-D images."""

    name = "image.grid_sample_nd"
    inputs = ("x", "grid")
    attrs = {"mode": Attr("str", "linear", choices=("nearest", "linear", "cubic")),
             "padding_mode": Attr("str", "zeros", choices=("zeros", "border", "reflection")),
             "align_corners": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, grid: Any, *, mode: str, padding_mode: str,
                   align_corners: bool) -> TensorType:
        x, grid = tensor(x, self.name), float_tensor(self, grid)
        k = x.rank - 2
        if k < 1 or grid.rank != k + 2 or grid.shape[-1] != k:
            raise self.error(f"expects x [N, C, +{k} axes] and grid [N, +{k} axes, {k}], "
                             f"got {x} and {grid}")
        return x.with_shape((x.shape[0], x.shape[1], *grid.shape[1:-1]))

    def reference(self, x: np.ndarray, grid: np.ndarray, *, mode: str, padding_mode: str,
                  align_corners: bool) -> np.ndarray:
        k = x.ndim - 2
        sizes = x.shape[2:]
        g = grid.astype(np.float64)
        coords, borders = [], []
        for i, size in enumerate(sizes):
            c = g[..., k - 1 - i]  # the grid lists the innermost axis first
            c = (c + 1) / 2 * (size - 1) if align_corners else ((c + 1) * size - 1) / 2
            if mode == "nearest":
                c = np.rint(c)
            low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
            if padding_mode == "border":
                c = np.where((c < low) | (c > high), np.clip(c, 0, size - 1), c)
            elif padding_mode == "reflection":
                c = _reflect_into(c, low, high)
            coords.append(c)
            borders.append((low, high))
        if mode == "nearest":
            taps = [[(np.floor(c).astype(np.int64), np.ones_like(c))] for c in coords]
        else:
            taps = []
            for c in coords:
                base = np.floor(c)
                t = c - base
                offsets = (0, 1) if mode == "linear" else (-1, 0, 1, 2)
                taps.append([(base.astype(np.int64) + o,
                              np.clip(1 - np.abs(o - t), 0, 1) if mode == "linear"
                              else keys_cubic(o - t, -0.75)) for o in offsets])
        n = x.shape[0]
        batch = np.arange(n).reshape((n,) + (1,) * (g.ndim - 2))
        xt = np.moveaxis(x, 1, -1).astype(np.float64)  # [N, *S, C]
        out = np.zeros((*g.shape[:-1], x.shape[1]))
        for combo in np.ndindex(*(len(t) for t in taps)):
            weight = np.ones(g.shape[:-1])
            index, inside = [], np.ones(g.shape[:-1], dtype=bool)
            for i, j in enumerate(combo):
                idx, w = taps[i][j]
                size = sizes[i]
                if padding_mode == "zeros":
                    inside &= (idx >= 0) & (idx < size)
                elif padding_mode == "reflection":
                    idx = _reflect_into(idx.astype(np.float64), *borders[i]).astype(np.int64)
                idx = np.clip(idx, 0, size - 1)
                index.append(idx)
                weight = weight * w
            vals = xt[(batch, *index)]
            out += np.where(inside, weight, 0.0)[..., None] * vals
        return np.moveaxis(out, -1, 1).astype(x.dtype)
