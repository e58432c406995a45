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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from dlc.ir.symbolic import Dim, dim, floordiv, is_static
from dlc.ir.types import TensorType
from dlc.ops.nn import check_len, float_tensor, upcast
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
