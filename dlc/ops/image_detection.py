"""Detection ops (`image.roi_align`, `image.non_max_suppression`), from ONNX.

* `image.roi_align` — RoiAlign, Mask R-CNN's operator: the average or max of bilinear
  samples per bin of each region of interest;
* `image.non_max_suppression` — NonMaxSuppression: greedy per batch and class, with a
  data-dependent number of selected boxes (a new size symbol).

Both are OPAQUE and have no lowering: the interpreter runs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from dlc.ops.registry import Attr, FusionKind, OpDef, float_tensor, register_op
from dlc.ops.shape_dynamic import fresh_size

# -- non-maximum suppression -------------------------------------------------------------


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


# -- region-of-interest pooling ----------------------------------------------------------


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
