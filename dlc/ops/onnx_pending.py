"""Ops the ONNX frontend needs that are waiting to move to their family module.

Each op keeps its family's name prefix (`ew.`, `nn.`, `image.`, `linalg.`), so moving it
into `elementwise.py`, `nn.py`, ... changes no name anywhere else.

* `ew.shift_left`, `ew.shift_right`, `ew.bitcast` — integer bit operations;
* `nn.conv3d`, `nn.conv_transpose3d` — the 3-D forms of the convolutions;
* `nn.max_pool_nd`, `nn.avg_pool_nd`, `nn.lp_pool_nd` — ONNX's pools: any number of
  spatial axes, begin/end pads that may differ, dilations, ceil mode (and max-pool
  indices); torch-shaped models keep using `nn.max_pool2d` / `nn.avg_pool2d`;
* `nn.lrn` — local response normalization across channels (AlexNet, Inception v1);
* `nn.col2im`, `nn.deform_conv2d`, `nn.linear_attention` — ONNX's Col2Im, DeformConv and
  LinearAttention;
* `linalg.det` — determinants of the trailing square matrices;
* the image ops (`image.resize_nd`, `image.grid_sample_nd`, `image.roi_align`,
  `image.non_max_suppression`) live in `onnx_pending_image.py`, imported from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, ceildiv, dim, floordiv
from dlc.ir.types import TensorType
from dlc.ops.elementwise import binary, opmath
from dlc.ops.nn import _Conv, _conv_attrs, check_len, float_tensor, upcast
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor

# -- elementwise bit operations ------------------------------------------------------------


def _shift_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits = a.dtype.itemsize * 8
    out = np.left_shift(a, np.minimum(b, bits - 1).astype(a.dtype))
    return np.where(b >= bits, np.zeros((), a.dtype), out)  # every bit shifted out


def _shift_right(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits = a.dtype.itemsize * 8
    out = np.right_shift(a, np.minimum(b, bits - 1).astype(a.dtype))
    if a.dtype.kind == "i":
        return out  # arithmetic: a shift by the width or more leaves the sign (0 or -1)
    return np.where(b >= bits, np.zeros((), a.dtype), out)


binary("ew.shift_left", _shift_left, "a << b on integers (0 once b >= the width).",
       int_only=True)
binary("ew.shift_right", _shift_right,
       "a >> b on integers: arithmetic for signed types (the sign fills in once b >= the "
       "width), logical for unsigned (0 once b >= the width).", int_only=True)


@register_op
class Bitcast(OpDef):
    """Reinterpret the bits of each element as `dtype` (of the same width)."""

    name = "ew.bitcast"
    inputs = ("x",)
    attrs = {"dtype": Attr("dtype")}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, dtype: DType) -> TensorType:
        x = tensor(x, self.name)
        if x.dtype.itemsize != dtype.itemsize:
            raise self.error(f"cannot reinterpret {x.dtype} as {dtype}: widths differ")
        return x.with_dtype(dtype)

    def reference(self, x: np.ndarray, *, dtype: DType) -> np.ndarray:
        out = x.copy().view(dtype.numpy)
        return out if dtype != DType.bool else out != 0


# -- 3-D convolutions ------------------------------------------------------------------------


@register_op
class Conv3d(_Conv):
    """3-D convolution of `x: [N, C, D, H, W]` with `w: [O, C/groups, kD, kH, kW]`."""

    name = "nn.conv3d"
    attrs = _conv_attrs(3, ("NCDHW",), transposed=False)
    spatial = 3


@register_op
class ConvTranspose3d(_Conv):
    """3-D transposed convolution, `w: [C, O/groups, kD, kH, kW]`."""

    name = "nn.conv_transpose3d"
    attrs = _conv_attrs(3, ("NCDHW",), transposed=True)
    spatial = 3
    transposed = True


# -- N-d pools with ONNX's padding rules -----------------------------------------------------


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


# -- local response normalization ------------------------------------------------------------


@register_op
class Lrn(OpDef):
    """`x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ^ beta`,
    the window centred on each channel (`floor((size-1)/2)` before, `ceil` after)."""

    name = "nn.lrn"
    inputs = ("x",)
    attrs = {"size": Attr("int"), "alpha": Attr("float", 1e-4), "beta": Attr("float", 0.75),
             "bias": Attr("float", 1.0)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, *, size: int, alpha: float, beta: float,
                   bias: float) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 3 or size < 1:
            raise self.error(f"expects [N, C, ...] and size >= 1, got {x}, size={size}")
        return x

    def reference(self, x: np.ndarray, *, size: int, alpha: float, beta: float,
                  bias: float) -> np.ndarray:
        xf = upcast(x)
        sq = xf * xf
        before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
        padded = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
        # A running sum over the channel axis: prefix sums, then differences.
        prefix = np.concatenate([np.zeros_like(padded[:, :1]), np.cumsum(padded, axis=1)],
                                axis=1)
        c = x.shape[1]
        window = prefix[:, size:size + c] - prefix[:, :c]
        t = xf.dtype.type
        y = xf / (t(bias) + t(alpha) / t(size) * window) ** t(beta)
        return y.astype(x.dtype, copy=False)


# -- determinants ----------------------------------------------------------------------------


@register_op
class Det(OpDef):
    """The determinant of each trailing square matrix of `x: [..., M, M]`."""

    name = "linalg.det"
    inputs = ("x",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 2:
            raise self.error(f"expects [..., M, M], got {x}")
        return x.with_shape(x.shape[:-2])

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.det(opmath(x))).astype(x.dtype)


# -- col2im ----------------------------------------------------------------------------------


@register_op
class Col2Im(OpDef):
    """Sum sliding blocks back into an image (the adjoint of im2col; ONNX Col2Im):
    `x: [N, C * prod(block), L]` with L blocks -> `[N, C, *image_shape]`."""

    name = "nn.col2im"
    inputs = ("x",)
    attrs = {"image_shape": Attr("ints"), "block_shape": Attr("ints"), "strides": Attr("ints"),
             "pads": Attr("ints", doc="begins, then ends"), "dilations": Attr("ints")}
    fusion_kind = FusionKind.OPAQUE

    def _blocks(self, image: Sequence[int], block: Sequence[int], strides: Sequence[int],
                pads: Sequence[int], dilations: Sequence[int]) -> list[int]:
        k = len(image)
        return [(image[i] + pads[i] + pads[i + k] - dilations[i] * (block[i] - 1) - 1)
                // strides[i] + 1 for i in range(k)]

    def infer_type(self, x: Any, *, image_shape: tuple[int, ...], block_shape: tuple[int, ...],
                   strides: tuple[int, ...], pads: tuple[int, ...],
                   dilations: tuple[int, ...]) -> TensorType:
        x = tensor(x, self.name)
        per_block = int(np.prod(block_shape))
        if x.rank != 3 or (isinstance(x.shape[1], int) and x.shape[1] % per_block):
            raise self.error(f"expects [N, C * {per_block}, L], got {x}")
        counts = self._blocks(image_shape, block_shape, strides, pads, dilations)
        if isinstance(x.shape[2], int) and int(np.prod(counts)) != x.shape[2]:
            raise self.error(f"{x} holds {x.shape[2]} blocks; the image has {counts}")
        return x.with_shape((x.shape[0], floordiv(x.shape[1], per_block), *image_shape))

    def reference(self, x: np.ndarray, *, image_shape: tuple[int, ...],
                  block_shape: tuple[int, ...], strides: tuple[int, ...],
                  pads: tuple[int, ...], dilations: tuple[int, ...]) -> np.ndarray:
        k = len(image_shape)
        n = x.shape[0]
        c = x.shape[1] // int(np.prod(block_shape))
        counts = self._blocks(image_shape, block_shape, strides, pads, dilations)
        cols = upcast(x).reshape(n, c, *block_shape, *counts)
        padded = [image_shape[i] + pads[i] + pads[i + k] for i in range(k)]
        out = np.zeros((n, c, *padded), dtype=cols.dtype)
        for tap in np.ndindex(*block_shape):
            dst = tuple(slice(t * d, t * d + (m - 1) * s + 1, s)
                        for t, d, m, s in zip(tap, dilations, counts, strides))
            out[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *tap)]
        crop = tuple(slice(pads[i], pads[i] + image_shape[i]) for i in range(k))
        return out[(slice(None), slice(None), *crop)].astype(x.dtype)


# -- linear attention (a recurrence over time) ---------------------------------------------------


@register_op
class LinearAttention(OpDef):
    """Linear attention with a recurrent state (ONNX LinearAttention): per key/value head,
    `S_t = a_t * S_{t-1} + k_t (x) u_t` and `o_t = scale * q_t^T S_t`, where for the
    update rules `linear` a=1, u=v; `gated` a=exp(g); `delta` a=1, u=beta*(v - S^T k);
    `gated_delta` a=exp(g), u=beta*(v - a*S^T k). Packed `[B, T, heads * dim]` operands,
    grouped query heads, state `[B, H_kv, d_k, d_v]`; returns (output, final state)."""

    name = "nn.linear_attention"
    inputs = ("q", "k", "v", "state", "decay", "beta")
    attrs = {"q_num_heads": Attr("int"), "kv_num_heads": Attr("int"),
             "update_rule": Attr("str", "gated_delta",
                                 choices=("linear", "gated", "delta", "gated_delta")),
             "scale": Attr("float", None, optional=True, doc="none: 1/sqrt(d_k)")}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, q: Any, k: Any, v: Any, state: Any, decay: Any, beta: Any, *,
                   q_num_heads: int, kv_num_heads: int, **_: Any
                   ) -> tuple[TensorType, TensorType]:
        q, k, v, state = (float_tensor(self, t) for t in (q, k, v, state))
        if q.rank != 3 or q_num_heads % kv_num_heads:
            raise self.error(f"expects [B, T, heads * d] operands and q heads a multiple of "
                             f"kv heads, got {q}, {q_num_heads} and {kv_num_heads}")
        dv = floordiv(v.shape[2], kv_num_heads)
        return (q.with_shape((q.shape[0], q.shape[1], dim(dv * q_num_heads))),
                state.with_dtype(q.dtype))

    def reference(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, state: np.ndarray,
                  decay: np.ndarray, beta: np.ndarray, *, q_num_heads: int,
                  kv_num_heads: int, update_rule: str, scale: float | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        b, t = q.shape[:2]
        hk = kv_num_heads
        dk = k.shape[2] // hk
        dv = v.shape[2] // hk
        qf = upcast(q).reshape(b, t, q_num_heads, dk)
        kf = upcast(k).reshape(b, t, hk, dk)
        vf = upcast(v).reshape(b, t, hk, dv)
        s = upcast(state).astype(qf.dtype).copy()  # [B, Hkv, dk, dv]
        gate = np.exp(upcast(decay))
        gate = gate.reshape(b, t, hk, -1)  # [.., 1] per head or [.., dk] per key dimension
        rate = np.broadcast_to(upcast(beta).reshape(b, t, -1), (b, t, hk))
        if scale is None or scale == 0:
            scale = 1 / np.sqrt(dk)
        group = q_num_heads // hk
        out = np.zeros((b, t, q_num_heads, dv), dtype=qf.dtype)
        for i in range(t):
            kt, vt = kf[:, i], vf[:, i]  # [B, Hkv, d]
            if update_rule in ("gated", "gated_delta"):
                s = s * gate[:, i][..., None]  # decays rows (key dimensions) of S
            if update_rule in ("delta", "gated_delta"):
                predicted = np.einsum("bhkv,bhk->bhv", s, kt)
                vt = rate[:, i][..., None] * (vt - predicted)
            s = s + kt[..., :, None] * vt[..., None, :]
            heads = np.repeat(s, group, axis=1)  # each kv head serves `group` q heads
            out[:, i] = scale * np.einsum("bhk,bhkv->bhv", qf[:, i], heads)
        return (out.reshape(b, t, -1).astype(q.dtype), s.astype(q.dtype))


# -- deformable convolution ----------------------------------------------------------------------


def _bilinear_zeros(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`img: [C, H, W]` sampled at real coordinates `y, x` (same shape S) -> `[C, *S]`,
    bilinear, with zeros outside the image."""
    h, w = img.shape[1:]
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    out = np.zeros((img.shape[0], *y.shape))
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            wgt = (1 - np.abs(y - yi)) * (1 - np.abs(x - xi))
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            vals = img[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out += np.where(inside, wgt, 0.0) * vals
    return out


@register_op
class DeformConv2d(OpDef):
    """Deformable convolution (ONNX DeformConv, 2-D): each kernel tap of each output
    position reads `x` bilinearly at its regular place plus a learned `offset`
    (`[N, offset_groups * kH * kW * 2, oH, oW]`, (dy, dx) pairs), scaled by `mask`
    (`[N, offset_groups * kH * kW, oH, oW]`), then the taps contract with `w` as a
    grouped convolution."""

    name = "nn.deform_conv2d"
    inputs = ("x", "w", "offset", "mask", "bias?")
    attrs = {"stride": Attr("ints", (1, 1)), "pads": Attr("ints", (0, 0, 0, 0)),
             "dilation": Attr("ints", (1, 1)), "groups": Attr("int", 1),
             "offset_groups": Attr("int", 1)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, w: Any, offset: Any, mask: Any, bias: Any = None,
                   **_: Any) -> TensorType:
        x, w, offset = (float_tensor(self, t) for t in (x, w, offset))
        if x.rank != 4 or w.rank != 4 or offset.rank != 4:
            raise self.error(f"expects rank-4 x, w and offset, got {x}, {w}, {offset}")
        return x.with_shape((x.shape[0], w.shape[0], *offset.shape[2:]))

    def reference(self, x: np.ndarray, w: np.ndarray, offset: np.ndarray, mask: np.ndarray,
                  bias: np.ndarray | None = None, *, stride: tuple[int, ...],
                  pads: tuple[int, ...], dilation: tuple[int, ...], groups: int,
                  offset_groups: int) -> np.ndarray:
        n, c = x.shape[:2]
        o, cg, kh, kw = w.shape
        oh, ow = offset.shape[2:]
        off = offset.astype(np.float64).reshape(n, offset_groups, kh, kw, 2, oh, ow)
        msk = mask.astype(np.float64).reshape(n, offset_groups, kh, kw, oh, ow)
        base_y = (np.arange(oh) * stride[0] - pads[0])[:, None]
        base_x = (np.arange(ow) * stride[1] - pads[1])[None, :]
        per_group = c // offset_groups
        cols = np.zeros((n, c, kh, kw, oh, ow))
        for b in range(n):
            for g in range(offset_groups):
                img = x[b, g * per_group:(g + 1) * per_group].astype(np.float64)
                for i in range(kh):
                    for j in range(kw):
                        y = base_y + i * dilation[0] + off[b, g, i, j, 0]
                        xx = base_x + j * dilation[1] + off[b, g, i, j, 1]
                        cols[b, g * per_group:(g + 1) * per_group, i, j] = \
                            _bilinear_zeros(img, y, xx) * msk[b, g, i, j]
        cols = cols.reshape(n, groups, cg * kh * kw, oh * ow)
        wm = w.astype(np.float64).reshape(groups, o // groups, cg * kh * kw)
        y = np.einsum("gok,ngkp->ngop", wm, cols).reshape(n, o, oh, ow)
        if bias is not None:
            y = y + bias.astype(np.float64).reshape(1, o, 1, 1)
        return y.astype(x.dtype)


# The image family's staged ops register on import.
from dlc.ops import onnx_pending_image  # noqa: E402, F401

# -- shape-determining operands known only at run time ----------------------------------------
# These ops take what usually is an attribute (axes, pads, a range's bounds) as an operand.
# The result sizes that depend on it are new size symbols, bound when the op runs.


def _fresh(prefix: str) -> Dim:
    from dlc.ops.indexing import fresh_size

    return fresh_size(prefix)


_REDUCE_KINDS = ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum",
                 "log_sum_exp")


def _reduce_kind(x: np.ndarray, kind: str, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    with np.errstate(all="ignore"):
        if kind == "l1":
            return np.sum(np.abs(x), axis=axes, keepdims=keepdims)
        if kind == "l2":
            return np.sqrt(np.sum(np.square(x.astype(np.float64)), axis=axes, keepdims=keepdims))
        if kind == "sum_square":
            return np.sum(np.square(x), axis=axes, keepdims=keepdims)
        if kind == "log_sum":
            return np.log(np.sum(x, axis=axes, keepdims=keepdims))
        if kind == "log_sum_exp":
            xf = x.astype(np.float64)
            return np.log(np.sum(np.exp(xf), axis=axes, keepdims=keepdims))
        empty = any(x.shape[a] == 0 for a in axes)
        if empty and kind in ("max", "min"):
            shape = [1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or
                     i not in axes]
            info = np.finfo(x.dtype) if x.dtype.kind == "f" else None
            if x.dtype == np.bool_:
                return np.full(shape, kind == "min")
            if info is not None:
                return np.full(shape, -np.inf if kind == "max" else np.inf)
            limits = np.iinfo(x.dtype)
            return np.full(shape, limits.min if kind == "max" else limits.max)
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}[kind]
        return fn(x, axis=axes, keepdims=keepdims)


@register_op
class ReduceDynamicAxes(OpDef):
    """An ONNX Reduce* (`kind`: sum, mean, max, min, prod, l1, l2, sum_square, log_sum,
    log_sum_exp) over axes given by the i64 operand `axes` at run time. An empty `axes`
    reduces everything, or nothing with `noop_with_empty_axes`. Every result size is a
    new symbol (which axes shrink is known only when the op runs)."""

    name = "reduce.dynamic_axes"
    inputs = ("x", "axes")
    attrs = {"kind": Attr("str", choices=_REDUCE_KINDS), "keepdims": Attr("bool", True),
             "noop_with_empty_axes": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, axes: Any, *, kind: str, keepdims: bool,
                   noop_with_empty_axes: bool) -> TensorType:
        x, axes = tensor(x, self.name), tensor(axes, self.name)
        if axes.rank != 1 or not isinstance(axes.shape[0], int):
            raise self.error(f"axes must be a 1-D tensor of static length, got {axes}")
        n = axes.shape[0]
        if keepdims or (n == 0 and noop_with_empty_axes):
            rank = x.rank
        else:
            rank = 0 if n == 0 else x.rank - n
        return TensorType(tuple(_fresh("reduced") for _ in range(rank)), x.dtype)

    def reference(self, x: np.ndarray, axes: np.ndarray, *, kind: str, keepdims: bool,
                  noop_with_empty_axes: bool) -> np.ndarray:
        if axes.size == 0 and noop_with_empty_axes:
            return _reduce_kind(x, kind, (), True).astype(x.dtype) if kind in (
                "l1", "l2", "sum_square", "log_sum") else x.copy()
        chosen = tuple(range(x.ndim)) if axes.size == 0 else tuple(
            sorted({int(a) % x.ndim for a in axes.reshape(-1)}))
        out = _reduce_kind(x, kind, chosen, keepdims)
        return np.asarray(out).astype(x.dtype)


@register_op
class ScanDynamicAxis(OpDef):
    """ONNX CumSum / CumProd (`kind` sum or prod) along the axis given by a 0-d or
    1-element operand at run time, with ONNX's `exclusive` and `reverse`."""

    name = "reduce.scan_dynamic_axis"
    inputs = ("x", "axis")
    attrs = {"kind": Attr("str", choices=("sum", "prod")), "exclusive": Attr("bool", False),
             "reverse": Attr("bool", False)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, axis: Any, **_: Any) -> TensorType:
        return tensor(x, self.name)

    def reference(self, x: np.ndarray, axis: np.ndarray, *, kind: str, exclusive: bool,
                  reverse: bool) -> np.ndarray:
        a = int(np.asarray(axis).reshape(-1)[0]) % x.ndim
        y = np.flip(x, a) if reverse else x
        fn = np.cumsum if kind == "sum" else np.cumprod
        with np.errstate(all="ignore"):
            out = fn(y, axis=a, dtype=x.dtype)
        if exclusive:
            fill = np.zeros_like if kind == "sum" else np.ones_like
            out = np.concatenate([fill(np.take(out, [0], axis=a)),
                                  np.delete(out, -1, axis=a)], axis=a)
        return np.ascontiguousarray(np.flip(out, a) if reverse else out)


@register_op
class PadDynamic(OpDef):
    """ONNX Pad with `pads` (begins, then ends; negative crops) and the constant `value`
    as run-time operands; every result size is a new symbol."""

    name = "shape.pad_dynamic"
    inputs = ("x", "pads", "value")
    attrs = {"mode": Attr("str", "constant", choices=("constant", "reflect", "edge", "wrap"))}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, pads: Any, value: Any, *, mode: str) -> TensorType:
        x = tensor(x, self.name)
        return x.with_shape(tuple(_fresh("padded") for _ in range(x.rank)))

    def reference(self, x: np.ndarray, pads: np.ndarray, value: np.ndarray, *,
                  mode: str) -> np.ndarray:
        p = [int(v) for v in pads.reshape(-1)]
        r = x.ndim
        widths = [(max(p[i], 0), max(p[i + r], 0)) for i in range(r)]
        if mode == "constant":
            out = np.pad(x, widths, constant_values=np.asarray(value).reshape(-1)[0])
        else:
            out = np.pad(x, widths, mode=mode)
        crop = tuple(slice(-min(p[i], 0), out.shape[i] + min(p[i + r], 0)) for i in range(r))
        return np.ascontiguousarray(out[crop])


@register_op
class Range(OpDef):
    """`start + i * delta` while short of `limit` (ONNX Range), the bounds 0-d operands
    known at run time; the length is a new size symbol."""

    name = "create.range"
    inputs = ("start", "limit", "delta")
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, start: Any, limit: Any, delta: Any) -> TensorType:
        start = tensor(start, self.name)
        return TensorType((_fresh("length"),), start.dtype)

    def reference(self, start: np.ndarray, limit: np.ndarray, delta: np.ndarray
                  ) -> np.ndarray:
        t = start.dtype.type
        s, lim, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
        count = int(max(np.ceil((lim - s) / d), 0)) if start.dtype.kind == "f" else \
            max(-(-(int(lim) - int(s)) // int(d)), 0)
        return (s + np.arange(count).astype(start.dtype) * t(d)).astype(start.dtype)


def _dynamic_shape_op(name: str, inputs: tuple[str, ...], rank: Any, fn: Any, doc: str,
                      attrs: dict[str, Attr] | None = None, dtype: Any = None,
                      outputs: Any = None) -> type[OpDef]:
    """Declare an op whose result sizes come from operand values: every result size is a
    new symbol. `rank(x_type, *operand types, **attrs)` gives the result rank (static,
    from operand lengths), `fn(x, *operands, **attrs)` computes the result; `outputs`
    (a function of the same arguments as `rank`) gives the number of results if not 1,
    `dtype` their dtype (one, or one per result; default the first operand's)."""

    class DynamicShape(OpDef):
        __doc__ = doc
        fusion_kind = FusionKind.OPAQUE

        def infer_type(self, *types: Any, **kw: Any) -> Any:
            types = tuple(tensor(t, self.name) for t in types)
            for t in types[1:]:
                if t.rank > 1 or (t.rank == 1 and not isinstance(t.shape[0], int)):
                    raise self.error(f"shape operands must be scalars or static-length "
                                     f"vectors, got {t}")
            r = rank(*types, **kw)
            count = outputs(*types, **kw) if outputs else 1
            dtypes = dtype(*types, **kw) if dtype else types[0].dtype
            if not isinstance(dtypes, tuple):
                dtypes = (dtypes,) * count
            made = tuple(TensorType(tuple(_fresh("size") for _ in range(r)), d)
                         for d in dtypes)
            return made if outputs else made[0]

        def reference(self, *arrays: np.ndarray, **kw: Any) -> Any:
            return fn(*arrays, **kw)

    DynamicShape.name = name
    DynamicShape.inputs = inputs
    DynamicShape.attrs = attrs or {}
    DynamicShape.__name__ = DynamicShape.__qualname__ = "".join(
        p.title() for p in name.split(".")[1].split("_"))
    return register_op(DynamicShape)


def _ints(a: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _reshape_to(x: np.ndarray, shape: np.ndarray, *, allowzero: bool) -> np.ndarray:
    target = _ints(shape)
    if not allowzero:
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return x.reshape(target)


def _slice_to(x: np.ndarray, starts: np.ndarray, ends: np.ndarray, axes: np.ndarray,
              steps: np.ndarray) -> np.ndarray:
    index = [slice(None)] * x.ndim
    lo, hi = _ints(starts), _ints(ends)
    ax = _ints(axes) if axes.size else list(range(len(lo)))
    st = _ints(steps) if steps.size else [1] * len(lo)
    for a, s, e, k in zip(ax, lo, hi, st):
        index[a % x.ndim] = slice(s, e, k)
    return x[tuple(index)].copy()


def _unsqueeze_at(x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    rank = x.ndim + axes.size
    out = x
    for a in sorted(v % rank for v in _ints(axes)):
        out = np.expand_dims(out, a)
    return out


def _split_at(x: np.ndarray, sizes: np.ndarray, *, axis: int) -> tuple[np.ndarray, ...]:
    return tuple(np.split(x, np.cumsum(_ints(sizes))[:-1], axis=axis))


def _topk_at(x: np.ndarray, k: np.ndarray, *, axis: int, largest: bool, sorted: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    from dlc.ops.registry import get_op

    return get_op("reduce.topk").reference(x, k=int(np.asarray(k).reshape(-1)[0]), axis=axis,
                                           largest=largest, sorted=sorted)


_dynamic_shape_op(
    "shape.reshape_dynamic", ("x", "shape"), lambda x, s, **_: s.shape[0], _reshape_to,
    "ONNX Reshape to a shape known at run time (0 copies the input's size unless "
    "`allowzero`, -1 is inferred).", {"allowzero": Attr("bool", False)})
_dynamic_shape_op(
    "shape.expand_dynamic", ("x", "shape"), lambda x, s: max(x.rank, s.shape[0]),
    lambda x, s: np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(s)))).copy(),
    "ONNX Expand to a shape known at run time (broadcasting both ways).")
_dynamic_shape_op(
    "shape.tile_dynamic", ("x", "repeats"), lambda x, r: x.rank,
    lambda x, r: np.tile(x, _ints(r)), "ONNX Tile with repeats known at run time.")
_dynamic_shape_op(
    "shape.slice_dynamic", ("x", "starts", "ends", "axes", "steps"), lambda x, *_: x.rank,
    _slice_to, "ONNX Slice with bounds known at run time (empty axes or steps: defaults).")
_dynamic_shape_op(
    "shape.unsqueeze_dynamic", ("x", "axes"), lambda x, a: x.rank + a.shape[0], _unsqueeze_at,
    "ONNX Unsqueeze with axes known at run time.")
_dynamic_shape_op(
    "shape.squeeze_dynamic", ("x", "axes"), lambda x, a: x.rank - a.shape[0],
    lambda x, a: np.squeeze(x, tuple(v % x.ndim for v in _ints(a))),
    "ONNX Squeeze with axes known at run time.")
_dynamic_shape_op(
    "shape.split_dynamic", ("x", "sizes"), lambda x, s, **_: x.rank, _split_at,
    "ONNX Split into pieces whose sizes are known at run time.", {"axis": Attr("int", 0)},
    outputs=lambda x, s, **_: s.shape[0])
_dynamic_shape_op(
    "create.full_dynamic", ("shape",), lambda s, **_: s.shape[0] if s.rank else 0,
    lambda s, *, value, dtype: np.full(_ints(s), value, dtype=dtype.numpy),
    "ONNX ConstantOfShape with the shape known at run time.",
    {"value": Attr("float", 0.0), "dtype": Attr("dtype")},
    dtype=lambda s, *, value, dtype: dtype)
_dynamic_shape_op(
    "reduce.topk_dynamic", ("x", "k"), lambda x, k, **_: x.rank, _topk_at,
    "ONNX TopK with k known at run time: (values, i64 indices).",
    {"axis": Attr("int", -1), "largest": Attr("bool", True), "sorted": Attr("bool", True)},
    dtype=lambda x, k, **_: (x.dtype, DType.i64), outputs=lambda *_, **__: 2)
