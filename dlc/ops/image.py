"""Resizing (`image.resize`, `image.resize_nd`, `image.resize_dynamic`).

`image.resize` is torch's interpolate on the trailing spatial axes. Its reference
reproduces torch's CPU index arithmetic, including its float32 rounding (`floor(dst *
scale)` computed in f32 for nearest resize), because a nearest-neighbour index that is off
by one is a wrong pixel, not a rounding error. It reads a fixed neighbourhood of each
output position (one element for nearest, 2^k for linear), a pure function of the output
index, so it is INJECTIVE and can be inlined into its consumer as TVM does.

Lowering (`image.resize`): one compute whose body recomputes the reference's index
arithmetic for its output position, operation for operation in the same float types.

`image.resize_nd` is ONNX's Resize: nearest / linear / cubic, six coordinate mappings,
antialiasing, crop-and-resize, one interpolation matrix per axis. `image.resize_dynamic`
is the same with its scales or sizes known only at run time (new size symbols).
"""

from __future__ import annotations

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
from dlc.ops.opmath import opmath_dtype, upcast, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    check_len,
    float_tensor,
    register_op,
    tensor,
)
from dlc.ops.shape_dynamic import fresh_size

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


# -- resize with ONNX's coordinate rules -------------------------------------------------

RESIZE_COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                           "align_corners", "asymmetric", "tf_crop_and_resize")


def _source_coordinates(mode: str, size_in: int, size_out: int, scale: float,
                        roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Where each output position samples the input, in input pixels (ONNX's formulas);
    for tf_crop_and_resize also which positions fall outside (extrapolated)."""
    y = np.arange(size_out, dtype=np.float64)
    width = scale * size_in  # the real-valued output width ONNX's formulas use
    outside = None
    if mode == "align_corners":
        x = np.zeros(size_out) if width == 1 else y * (size_in - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        if width == 1:
            x = np.full(size_out, (end - start) * (size_in - 1) / 2)
        else:
            x = y * (end - start) * (size_in - 1) / (width - 1)
        x = x + start * (size_in - 1)
        outside = (x < 0) | (x > size_in - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(size_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = size_in / 2 * (1 - size_out / width)
        x = offset + (y + 0.5) / scale - 0.5
    return x, outside


def keys_cubic(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel at distance t."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _resize_taps(mode: str, ratio: np.ndarray, scale: float, nearest_mode: str,
                 cubic_a: float, antialias: bool) -> np.ndarray:
    """Weights `[out, taps]` of the taps `base - taps/2 + 1 + j` around each position,
    where `ratio` in (0, 1] is the position's distance past `base`."""
    r = ratio[:, None]
    if mode == "nearest":
        pick_high = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
                     "floor": ratio >= 1, "ceil": ratio > 0}[nearest_mode]
        pick_high = pick_high | (ratio == 1)
        return np.stack([~pick_high, pick_high], axis=1).astype(np.float64)
    s = min(scale, 1.0) if antialias else 1.0
    reach = 1 if mode == "linear" else 2  # the kernel's support radius at scale 1
    first = int(np.floor(-reach / s) + 1)
    offsets = np.arange(first, 1 - first + 1)[None, :] - 0 * r  # taps relative to base + 1
    distance = (offsets - r) * s
    if mode == "linear":
        w = np.clip(1 - np.abs(distance), 0, 1)
    else:
        w = keys_cubic(distance, cubic_a)
    return w / w.sum(axis=1, keepdims=True) if antialias else w


def resize_weights(size_in: int, size_out: int, scale: float, roi: tuple[float, float], *,
                   mode: str, coordinate_mode: str, nearest_mode: str, cubic_a: float,
                   exclude_outside: bool, antialias: bool
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The `[out, in]` interpolation matrix of one axis (edge pixels repeat past the
    ends) and the mask of extrapolated output positions (tf_crop_and_resize)."""
    x, outside = _source_coordinates(coordinate_mode, size_in, size_out, scale, roi)
    base = np.floor(x)
    ratio = x - base
    whole = ratio == 0
    base = np.where(whole, base - 1, base).astype(np.int64)  # ratio in (0, 1]
    ratio = np.where(whole, 1.0, ratio)
    w = _resize_taps(mode, ratio, scale, nearest_mode, cubic_a, antialias)
    taps = w.shape[1]
    index = base[:, None] - taps // 2 + 1 + np.arange(taps)[None, :]
    if exclude_outside:
        w = np.where((index < 0) | (index >= size_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    matrix = np.zeros((size_out, size_in))
    rows = np.repeat(np.arange(size_out)[:, None], taps, axis=1)
    np.add.at(matrix, (rows, np.clip(index, 0, size_in - 1)), w)
    return matrix, outside


@register_op
class ResizeNd(OpDef):
    """Resize the `axes` of `x` to `sizes` by ONNX's rules: `mode` nearest, linear or
    cubic (Keys, `cubic_coeff_a`), each output position mapped to the input by
    `coordinate_mode` with the axis' `scales` entry, optional antialiasing when
    shrinking, `exclude_outside` taps, and `roi` / `extrapolation_value` for
    tf_crop_and_resize. Separable: one interpolation matrix per axis. Integer results
    round and saturate."""

    name = "image.resize_nd"
    inputs = ("x",)
    attrs = {
        "axes": Attr("ints"),
        "sizes": Attr("ints", doc="output size of each resized axis"),
        "scales": Attr("floats", doc="the scale of each axis in the coordinate formulas"),
        "roi": Attr("floats", (), doc="starts then ends, normalized (tf_crop_and_resize)"),
        "mode": Attr("str", "nearest", choices=("nearest", "linear", "cubic")),
        "coordinate_mode": Attr("str", "half_pixel", choices=RESIZE_COORDINATE_MODES),
        "nearest_mode": Attr("str", "round_prefer_floor",
                             choices=("round_prefer_floor", "round_prefer_ceil", "floor",
                                      "ceil")),
        "cubic_coeff_a": Attr("float", -0.75),
        "exclude_outside": Attr("bool", False),
        "extrapolation_value": Attr("float", 0.0),
        "antialias": Attr("bool", False),
    }
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any, *, axes: tuple[int, ...], sizes: tuple[int, ...],
                   scales: tuple[float, ...], roi: tuple[float, ...], **_: Any) -> TensorType:
        x = tensor(x, self.name)
        if not len(axes) == len(sizes) == len(scales):
            raise self.error("axes, sizes and scales differ in length")
        if roi and len(roi) != 2 * len(axes):
            raise self.error(f"roi needs {2 * len(axes)} entries, got {len(roi)}")
        shape = list(x.shape)
        for a, s in zip(axes, sizes):
            if not 0 <= a < x.rank or s < 0:
                raise self.error(f"cannot resize axis {a} of {x} to {s}")
            shape[a] = s
        return x.with_shape(shape)

    def reference(self, x: np.ndarray, *, axes: tuple[int, ...], sizes: tuple[int, ...],
                  scales: tuple[float, ...], roi: tuple[float, ...], mode: str,
                  coordinate_mode: str, nearest_mode: str, cubic_coeff_a: float,
                  exclude_outside: bool, extrapolation_value: float,
                  antialias: bool) -> np.ndarray:
        y = x.astype(np.float64)
        outside = np.zeros((), dtype=bool)
        k = len(axes)
        for i, (axis, size, scale) in enumerate(zip(axes, sizes, scales)):
            span = (roi[i], roi[i + k]) if roi else (0.0, 1.0)
            matrix, out = resize_weights(
                y.shape[axis], size, scale, span, mode=mode, coordinate_mode=coordinate_mode,
                nearest_mode=nearest_mode, cubic_a=cubic_coeff_a,
                exclude_outside=exclude_outside, antialias=antialias)
            y = np.moveaxis(np.tensordot(matrix, np.moveaxis(y, axis, 0), axes=1), 0, axis)
            if out is not None:
                shape = [1] * x.ndim
                shape[axis] = size
                outside = outside | out.reshape(shape)
        if outside.any():
            y = np.where(outside, extrapolation_value, y)
        if x.dtype.kind in "iub":
            info = np.iinfo(x.dtype) if x.dtype.kind != "b" else None
            y = np.round(y)
            if info is not None:
                y = np.clip(y, info.min, info.max)
        return y.astype(x.dtype)


@register_op
class ResizeDynamic(OpDef):
    """ONNX Resize whose `roi`, `scales` or `sizes` operands are known only at run time
    (an empty operand is absent): the output sizes follow ONNX's rules (sizes, or
    floor(in * scale); `keep_aspect_ratio_policy`) when the op runs, so the sizes of
    `axes` are new symbols. Interpolation as `image.resize_nd`."""

    name = "image.resize_dynamic"
    inputs = ("x", "roi", "scales", "sizes")
    attrs = {k: v for k, v in ResizeNd.attrs.items() if k not in ("sizes", "scales", "roi")}
    attrs["keep_aspect_ratio_policy"] = Attr("str", "stretch",
                                             choices=("stretch", "not_larger", "not_smaller"))
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, roi: Any, scales: Any, sizes: Any, *, axes: tuple[int, ...],
                   **_: Any) -> TensorType:
        x = tensor(x, self.name)
        shape = list(x.shape)
        for a in axes:
            shape[a] = fresh_size("resized")
        return x.with_shape(shape)

    def reference(self, x: np.ndarray, roi: np.ndarray, scales: np.ndarray,
                  sizes: np.ndarray, *, axes: tuple[int, ...],
                  keep_aspect_ratio_policy: str, **attrs: Any) -> np.ndarray:
        k = len(axes)
        rank = x.ndim
        sizes_in = [x.shape[a] for a in axes]
        roi = [float(v) for v in roi.reshape(-1)]
        if len(roi) == 2 * rank and k != rank:
            roi = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
        if sizes.size:
            out = [int(v) for v in sizes.reshape(-1)][-k:]
            scale = [o / i for o, i in zip(out, sizes_in)]
            if keep_aspect_ratio_policy != "stretch":
                s = min(scale) if keep_aspect_ratio_policy == "not_larger" else max(scale)
                scale = [s] * k
                out = [int(s * i + 0.5) for i in sizes_in]
        else:
            scale = [float(v) for v in scales.reshape(-1)][-k:]
            out = [int(s * i) for s, i in zip(scale, sizes_in)]
        return ResizeNd().reference(x, axes=axes, sizes=tuple(out), scales=tuple(scale),
                                    roi=tuple(roi), **attrs)
