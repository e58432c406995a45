"""ONNX converters for image sampling (`image.*`): Resize, Upsample, GridSample, AffineGrid,
RoiAlign and NonMaxSuppression.

ONNX's Resize has six coordinate mappings, four nearest-rounding rules, cubic
interpolation, antialiasing and crop-and-resize; `image.resize_nd` implements all of them.
The two mappings torch models use (nearest with `asymmetric` + `floor`, and linear with
`half_pixel` or `align_corners` on the trailing axes) map to `image.resize`, which the
backends know.
"""

from __future__ import annotations

import math

import numpy as np

from dlc.errors import FrontendError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ops.registry import normalize_axis

B = OnnxGraphBuilder


def _optional_floats(b: B, node: OnnxNode, index: int, what: str) -> list[float]:
    if node.input(index) is None:
        return []
    return [float(v) for v in np.asarray(b.static(node, index, what)).reshape(-1)]


def _resize(b: B, node: OnnxNode, x: Value, *, scales: list[float], sizes: list[int],
            roi: list[float], axes: list[int], mode: str, coordinate_mode: str,
            nearest_mode: str) -> Value:
    shape = b.shape_of(x)
    rank = len(shape)
    axes = [normalize_axis(a, rank, node.op_type) for a in axes] or list(range(rank))
    if len(roi) == 2 * rank and len(axes) != rank:
        roi = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
    if not sizes and not roi:  # axes scaled by 1 stay as they are, even symbolic ones
        moved = [i for i, s in enumerate(scales) if not math.isclose(s, 1.0)]
        axes, scales = [axes[i] for i in moved], [scales[i] for i in moved]
        if not axes:
            return x
    sizes_in = [shape[a] for a in axes]
    if not all(isinstance(s, int) for s in sizes_in):
        raise FrontendError(f"{node.describe()}: resizing needs static sizes on the resized "
                            f"axes, got {x.type}")
    if sizes:
        scales = [out / size for out, size in zip(sizes, sizes_in)]
        policy = node.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            scale = min(scales) if policy == "not_larger" else max(scales)
            scales = [scale] * len(axes)
            sizes = [int(scale * s + 0.5) for s in sizes_in]
    else:
        sizes = [int(s * size) for s, size in zip(scales, sizes_in)]
    k = len(axes)
    keep = [i for i in range(k) if not (
        math.isclose(scales[i], 1.0) and sizes[i] == sizes_in[i] and
        (not roi or (math.isclose(roi[i], 0.0) and math.isclose(roi[i + k], 1.0))))]
    if not keep:
        return x
    antialias = bool(node.attr("antialias", 0))
    exclude = bool(node.attr("exclude_outside", 0))
    kept_axes = [axes[i] for i in keep]
    trailing = kept_axes == list(range(rank - len(keep), rank))
    torch_like = (trailing and x.dtype.is_float and not antialias and not exclude and (
        (mode == "nearest" and coordinate_mode == "asymmetric" and nearest_mode == "floor") or
        (mode == "linear" and coordinate_mode == "half_pixel") or
        (mode == "linear" and coordinate_mode == "align_corners" and  # ONNX uses scale * in
         all(scales[i] * sizes_in[i] == sizes[i] for i in keep)) or
        (mode == "linear" and coordinate_mode == "pytorch_half_pixel" and
         all(sizes[i] > 1 for i in keep))))
    if torch_like:
        return b.op("image.resize", x, size=[sizes[i] for i in keep],
                    scales=[scales[i] for i in keep], mode=mode,
                    align_corners=coordinate_mode == "align_corners")
    return b.op("image.resize_nd", x, axes=kept_axes, sizes=[sizes[i] for i in keep],
                scales=[scales[i] for i in keep],
                roi=[roi[i] for i in keep] + [roi[i + k] for i in keep] if roi else [],
                mode=mode, coordinate_mode=coordinate_mode, nearest_mode=nearest_mode,
                cubic_coeff_a=node.attr("cubic_coeff_a", -0.75), exclude_outside=exclude,
                extrapolation_value=node.attr("extrapolation_value", 0.0),
                antialias=antialias)


def _mode(b: B, node: OnnxNode) -> str:
    mode = node.attr("mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear", "cubic"):
        raise b.unsupported(node, f"with mode={mode!r}")
    return mode


@onnx_op("Resize", since=10)
def _resize_10(b: B, node: OnnxNode) -> Value:
    scales = _optional_floats(b, node, 1, "scales")
    return _resize(b, node, node.inputs[0], scales=scales, sizes=[], roi=[], axes=[],
                   mode=_mode(b, node), coordinate_mode="asymmetric", nearest_mode="floor")


def _resize_at_run_time(b: B, node: OnnxNode) -> Value:
    """Resize whose roi, scales or sizes are computed at run time (`image.resize_dynamic`)."""
    x = node.inputs[0]
    empty = b.const(np.zeros(0, np.float32))

    def operand(i: int, dtype: DType) -> Value:
        v = node.input(i)
        return b.const(np.zeros(0, dtype.numpy)) if v is None else b.cast(v, dtype)

    coordinate_mode = node.attr("coordinate_transformation_mode", "half_pixel")
    roi = operand(1, DType.f32) if coordinate_mode == "tf_crop_and_resize" else empty
    axes = [normalize_axis(a, b.rank_of(x), node.op_type) for a in node.attr("axes") or []]
    return b.op("image.resize_dynamic", x, roi, operand(2, DType.f32), operand(3, DType.i64),
                axes=axes or list(range(b.rank_of(x))), mode=_mode(b, node),
                coordinate_mode=coordinate_mode,
                nearest_mode=node.attr("nearest_mode", "round_prefer_floor"),
                cubic_coeff_a=node.attr("cubic_coeff_a", -0.75),
                exclude_outside=bool(node.attr("exclude_outside", 0)),
                extrapolation_value=node.attr("extrapolation_value", 0.0),
                antialias=bool(node.attr("antialias", 0)),
                keep_aspect_ratio_policy=node.attr("keep_aspect_ratio_policy", "stretch"))


@onnx_op("Resize", since=11)
def _resize_11(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    if any(v is not None and not isinstance(v, Constant) for v in node.inputs[1:4]):
        return _resize_at_run_time(b, node)
    roi = _optional_floats(b, node, 1, "roi")
    scales = _optional_floats(b, node, 2, "scales")
    sizes = [] if node.input(3) is None else list(b.static_ints(node, 3, "sizes"))
    coordinate_mode = node.attr("coordinate_transformation_mode", "half_pixel")
    if coordinate_mode != "tf_crop_and_resize":
        roi = []
    return _resize(b, node, x, scales=scales, sizes=sizes, roi=roi,
                   axes=list(node.attr("axes") or []), mode=_mode(b, node),
                   coordinate_mode=coordinate_mode,
                   nearest_mode=node.attr("nearest_mode", "round_prefer_floor"))


@onnx_op("Upsample", since=7)
def _upsample(b: B, node: OnnxNode) -> Value:
    scales = (list(node.attr("scales")) if node.opset < 9
              else _optional_floats(b, node, 1, "scales"))
    return _resize(b, node, node.inputs[0], scales=scales, sizes=[], roi=[], axes=[],
                   mode=_mode(b, node), coordinate_mode="asymmetric", nearest_mode="floor")


@onnx_op("GridSample")
def _grid_sample(b: B, node: OnnxNode) -> Value:
    x, grid = node.inputs[0], node.inputs[1]
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(node.attr("mode", "linear"),
                                                          node.attr("mode", "linear"))
    if node.opset < 20 and node.attr("mode") is None:
        mode = "linear"
    padding = node.attr("padding_mode", "zeros")
    align = bool(node.attr("align_corners", 0))
    return b.op("image.grid_sample_nd", x, b.cast(grid, x.dtype) if x.dtype.is_float else grid,
                mode=mode, padding_mode=padding, align_corners=align)


@onnx_op("NonMaxSuppression")
def _nms(b: B, node: OnnxNode) -> Value:
    boxes, scores = node.inputs[0], node.inputs[1]
    max_per_class = 0 if node.input(2) is None else int(
        b.static_scalar(node, 2, "max_output_boxes_per_class"))
    iou = 0.0 if node.input(3) is None else float(b.static_scalar(node, 3, "iou_threshold"))
    score = None if node.input(4) is None else float(
        b.static_scalar(node, 4, "score_threshold"))
    return b.op("image.non_max_suppression", boxes, scores, max_per_class=max(max_per_class, 0),
                iou_threshold=iou, score_threshold=score,
                center_point_box=bool(node.attr("center_point_box", 0)))


@onnx_op("RoiAlign")
def _roi_align(b: B, node: OnnxNode) -> Value:
    x, rois, indices = node.inputs[0], node.inputs[1], node.inputs[2]
    mode = node.attr("coordinate_transformation_mode", "half_pixel" if node.opset >= 16
                     else "output_half_pixel")
    return b.op("image.roi_align", x, b.cast(rois, x.dtype), indices,
                output_height=node.attr("output_height", 1),
                output_width=node.attr("output_width", 1),
                sampling_ratio=node.attr("sampling_ratio", 0),
                spatial_scale=node.attr("spatial_scale", 1.0),
                mode=node.attr("mode", "avg"), half_pixel=mode == "half_pixel")
