"""ATen converters for image sampling (`image.resize`, `image.grid_sample`,
`image.affine_grid`).

`F.interpolate` reaches these as `upsample_*.vec` overloads (the 1-D and nearest-exact
ones, and `affine_grid_generator`, are kept whole by `decompositions.PRESERVED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlc.errors import FrontendError
from dlc.frontends.torch.convert_nn import checked
from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value
from dlc.ir.symbolic import is_static

_GRID_MODES = {0: "bilinear", 1: "nearest"}
_PADDING_MODES = {0: "zeros", 1: "border", 2: "reflection"}


def _resize(b: Any, node: Any, x: Value, k: int, mode: str, output_size: Sequence[Any] | None,
            scale_factors: Sequence[float] | None, align_corners: bool = False) -> Value:
    """One image.resize of the trailing `k` axes, with torch's sizes and scales."""
    out_shape = b.meta_type(node).shape[-k:]
    size = tuple(output_size) if output_size is not None else None
    scales = tuple(float(s) for s in scale_factors) if scale_factors is not None else None
    if scales is not None and all(is_static(d) for d in out_shape):
        size = tuple(out_shape)  # torch's floor(in * scale), so both agree by construction
        if mode == "nearest" and k == 2:
            # torch's 2-D nearest kernel copies an axis whose size is unchanged and halves
            # indices of an axis that doubles, whatever the scale factor: say so with the
            # scale that gives those indices.
            scales = tuple(
                float(o) / i if isinstance(i, int) and o in (i, 2 * i) else s
                for s, i, o in zip(scales, x.shape[-k:], out_shape))
    out = b.op("image.resize", x, size=size, scales=scales, mode=mode,
               align_corners=align_corners)
    return checked(b, node, out)


@torch_op("aten.upsample_nearest2d.vec")
def _nearest2d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
               scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 2, "nearest", output_size, scale_factors)


@torch_op("aten.upsample_nearest1d.vec")
def _nearest1d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
               scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 1, "nearest", output_size, scale_factors)


@torch_op("aten._upsample_nearest_exact2d.vec")
def _nearest_exact2d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
                     scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 2, "nearest_exact", output_size, scale_factors)


@torch_op("aten._upsample_nearest_exact1d.vec")
def _nearest_exact1d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
                     scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 1, "nearest_exact", output_size, scale_factors)


@torch_op("aten.upsample_bilinear2d.vec")
def _bilinear2d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
                align_corners: bool, scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 2, "linear", output_size, scale_factors, align_corners)


@torch_op("aten.upsample_linear1d.vec")
def _linear1d(b: Any, node: Any, x: Value, output_size: Sequence[Any] | None,
              align_corners: bool, scale_factors: Sequence[float] | None) -> Value:
    return _resize(b, node, x, 1, "linear", output_size, scale_factors, align_corners)


@torch_op("aten.grid_sampler_2d.default")
def _grid_sampler_2d(b: Any, node: Any, x: Value, grid: Value, interpolation_mode: int,
                     padding_mode: int, align_corners: bool) -> Value:
    if interpolation_mode not in _GRID_MODES:
        raise FrontendError("grid_sample mode='bicubic' is not supported by "
                            "image.grid_sample; use 'bilinear' or 'nearest'")
    dtype = b.out_dtype(node)
    x, grid = b.promote(dtype, x, grid)
    out = b.op("image.grid_sample", x, grid, mode=_GRID_MODES[interpolation_mode],
               padding_mode=_PADDING_MODES[padding_mode], align_corners=align_corners)
    return checked(b, node, out)


@torch_op("aten.affine_grid_generator.default")
def _affine_grid(b: Any, node: Any, theta: Value, size: Sequence[Any],
                 align_corners: bool) -> Value:
    if len(size) != 4:
        raise FrontendError(f"affine_grid of size {list(size)}: only 2-D grids "
                            "([N, C, H, W]) are supported by image.affine_grid")
    h, w = size[2:]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise FrontendError(f"affine_grid needs a static image size, got H={h}, W={w}")
    out = b.op("image.affine_grid", theta, size=(h, w), align_corners=align_corners)
    return checked(b, node, out)
