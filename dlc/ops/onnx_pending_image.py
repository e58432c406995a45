"""Image ops the ONNX frontend needs, staged until `dlc/ops/image.py` takes them.

* `image.resize_nd` — ONNX's Resize: nearest / linear / cubic, six coordinate mappings,
  antialiasing, crop-and-resize, one interpolation matrix per axis;
* `image.grid_sample_nd` — ONNX's GridSample in 2-D and 3-D, with cubic sampling;
* `image.roi_align` — RoiAlign (average or max of bilinear samples per bin);
* `image.non_max_suppression` — NonMaxSuppression (a data-dependent number of boxes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from dlc.ops.nn import float_tensor
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor

# -- resize with ONNX's coordinate rules -----------------------------------------------------

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


def _keys_cubic(t: np.ndarray, a: float) -> np.ndarray:
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
        w = _keys_cubic(distance, cubic_a)
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


# -- grid sampling in any number of dimensions -----------------------------------------------


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
                              else _keys_cubic(o - t, -0.75)) for o in offsets])
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


# -- non-maximum suppression -----------------------------------------------------------------


def _corners(boxes: np.ndarray, center_point_box: bool) -> np.ndarray:
    """Boxes as [x_min, y_min, x_max, y_max]."""
    if center_point_box:
        xc, yc, w, h = (boxes[..., i] for i in range(4))
        return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=-1)
    y1, x1, y2, x2 = (boxes[..., i] for i in range(4))
    return np.stack([np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2),
                     np.maximum(y1, y2)], axis=-1)


@register_op
class NonMaxSuppression(OpDef):
    """Greedy non-maximum suppression per batch and class (ONNX NonMaxSuppression):
    boxes `[B, N, 4]`, scores `[B, C, N]` -> selected `[batch, class, box]` triples,
    i64 `[n, 3]` with `n` a new size symbol. A box is kept if its score exceeds
    `score_threshold` (when given) and its IoU with every kept box of its class is at
    most `iou_threshold`; at most `max_per_class` per class, best scores first."""

    name = "image.non_max_suppression"
    inputs = ("boxes", "scores")
    attrs = {"max_per_class": Attr("int", 0), "iou_threshold": Attr("float", 0.0),
             "score_threshold": Attr("float", None, optional=True),
             "center_point_box": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, boxes: Any, scores: Any, **_: Any) -> TensorType:
        from dlc.ops.indexing import fresh_size

        boxes, scores = float_tensor(self, boxes), float_tensor(self, scores)
        if boxes.rank != 3 or scores.rank != 3 or boxes.shape[-1] != 4:
            raise self.error(f"expects boxes [B, N, 4] and scores [B, C, N], got {boxes} "
                             f"and {scores}")
        return TensorType((fresh_size("selected"), 3), DType.i64)

    def reference(self, boxes: np.ndarray, scores: np.ndarray, *, max_per_class: int,
                  iou_threshold: float, score_threshold: float | None,
                  center_point_box: bool) -> np.ndarray:
        corners = _corners(boxes.astype(np.float64), center_point_box)
        area = (corners[..., 2] - corners[..., 0]) * (corners[..., 3] - corners[..., 1])
        out = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c].astype(np.float64)
                # Best score first; ties keep the lower index first.
                order = [int(i) for i in np.lexsort((np.arange(len(s)), -s))
                         if score_threshold is None or s[i] > score_threshold]
                kept: list[int] = []
                for i in order:
                    if len(kept) >= max_per_class:
                        break
                    if all(not self._overlaps(corners[b], area[b], i, j, iou_threshold)
                           for j in kept):
                        kept.append(i)
                        out.append((b, c, i))
        return np.array(out, dtype=np.int64).reshape(-1, 3)

    @staticmethod
    def _overlaps(box: np.ndarray, area: np.ndarray, i: int, j: int, threshold: float
                  ) -> bool:
        w = min(box[i, 2], box[j, 2]) - max(box[i, 0], box[j, 0])
        h = min(box[i, 3], box[j, 3]) - max(box[i, 1], box[j, 1])
        if w <= 0 or h <= 0 or area[i] <= 0 or area[j] <= 0:
            return False
        inter = w * h
        return inter / (area[i] + area[j] - inter) > threshold


# -- region-of-interest pooling ----------------------------------------------------------------


def _roi_samples(start: float, size: float, bins: int, grid: int, limit: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps of the `bins * grid` sample points along one axis of a region:
    (low index, high index, low weight, high weight), each `[bins, grid]`; points more
    than one pixel outside the image get zero weights."""
    b = np.arange(bins)[:, None]
    g = np.arange(grid)[None, :]
    p = start + b * (size / bins) + (g + 0.5) * (size / bins) / grid
    outside = (p < -1.0) | (p > limit)
    p = np.maximum(p, 0.0)
    low = np.floor(p).astype(np.int64)
    at_end = low >= limit - 1
    low = np.where(at_end, limit - 1, low)
    high = np.where(at_end, limit - 1, low + 1)
    p = np.where(at_end, low, p)
    frac = p - low
    w_low, w_high = np.where(outside, 0.0, 1 - frac), np.where(outside, 0.0, frac)
    return low, high, w_low, w_high


@register_op
class RoiAlign(OpDef):
    """Pool each region `rois[r] = [x1, y1, x2, y2]` of image `batch_indices[r]` of
    `x: [N, C, H, W]` into `[out_h, out_w]` bins by averaging (or taking the max of)
    bilinear samples (ONNX RoiAlign, Mask R-CNN's operator) -> `[R, C, out_h, out_w]`."""

    name = "image.roi_align"
    inputs = ("x", "rois", "batch_indices")
    attrs = {"output_height": Attr("int", 1), "output_width": Attr("int", 1),
             "sampling_ratio": Attr("int", 0), "spatial_scale": Attr("float", 1.0),
             "mode": Attr("str", "avg", choices=("avg", "max")),
             "half_pixel": Attr("bool", True)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, rois: Any, batch_indices: Any, *, output_height: int,
                   output_width: int, **_: Any) -> TensorType:
        x, rois = float_tensor(self, x), float_tensor(self, rois)
        if x.rank != 4 or rois.rank != 2 or rois.shape[1] != 4:
            raise self.error(f"expects x [N, C, H, W] and rois [R, 4], got {x} and {rois}")
        return x.with_shape((rois.shape[0], x.shape[1], output_height, output_width))

    def reference(self, x: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, *,
                  output_height: int, output_width: int, sampling_ratio: int,
                  spatial_scale: float, mode: str, half_pixel: bool) -> np.ndarray:
        h, w = x.shape[2:]
        out = np.zeros((rois.shape[0], x.shape[1], output_height, output_width))
        offset = 0.5 if half_pixel else 0.0
        for r, (roi, n) in enumerate(zip(rois.astype(np.float64), batch_indices)):
            x1, y1, x2, y2 = roi * spatial_scale - offset
            rw, rh = x2 - x1, y2 - y1
            if not half_pixel:
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            gh = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rh / output_height))
            gw = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rw / output_width))
            ylo, yhi, wyl, wyh = _roi_samples(y1, rh, output_height, gh, h)
            xlo, xhi, wxl, wxh = _roi_samples(x1, rw, output_width, gw, w)
            img = x[int(n)].astype(np.float64)  # [C, H, W]
            # Corner values and weights, [C, out_h, gh, out_w, gw] each.
            corners = []
            for yi, wy in ((ylo, wyl), (yhi, wyh)):
                for xi, wx in ((xlo, wxl), (xhi, wxh)):
                    v = img[:, yi[:, :, None, None], xi[None, None, :, :]]
                    corners.append(v * (wy[:, :, None, None] * wx[None, None, :, :]))
            if mode == "avg":
                out[r] = sum(corners).sum(axis=(2, 4)) / max(gh * gw, 1)
            else:
                out[r] = np.max(np.stack(corners), axis=0).max(axis=(2, 4))
        return out.astype(x.dtype)


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
        from dlc.ops.indexing import fresh_size

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
