"""Convolutions (`nn.conv*`, `nn.conv_transpose*`, `nn.col2im`, `nn.deform_conv2d`).

Layouts: convolutions read channels-first tensors (`NCHW`, `NCW`) unless their `layout`
attribute says channels-last (`NHWC`, `NWC`), which a later layout pass may choose.
Weights always stay `[out, in / groups, *kernel]` (`[in, out / groups, *kernel]` for
transposed convolutions), as torch stores them. The 3-D forms, Col2Im and DeformConv come
from ONNX and keep channels first.

Output sizes follow torch's formulas and are built with `dlc.ir.symbolic` helpers, so a
symbolic batch or image size flows through (`floor((H - 1)/2) + 1`).

References are vectorized NumPy: a convolution gathers its windows with
`sliding_window_view` (im2col without a copy until the matmul) and contracts them with
one batched `matmul`; a transposed convolution does the matmul first and scatters one
kernel tap at a time (a loop over the kernel, never over pixels).

Lowering (`compute`): a convolution is a reduction over (input channels of its group,
kernel taps), computed in the opmath type and finished at the accumulator's write
(`reduce_then`), its bias added there; a transposed convolution gathers the input pixels
that reach each output (a tap counts when the stride divides its offset). Padding is a
`select` around a clamped load (`guarded_load`), so no access leaves its buffer. Col2Im
and DeformConv have no lowering: the interpreter runs them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.ir.symbolic import Dim, dim, dims_equal, floordiv
from dlc.ir.tensor.compute import Reduce, Tensor, compute, reduce, reduce_axis
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, compare, const, logical, min_
from dlc.ir.tensor.index import guarded_load
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
    same_dtype,
    tensor,
)

# -- convolution -------------------------------------------------------------------------


def conv_out_size(size: Dim, kernel: Dim, stride: int, pad: int, dilation: int) -> Dim:
    """`floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1`, symbolic-safe."""
    return dim(floordiv_nested(dim(size + 2 * pad - dilation * (kernel - 1) - 1), stride) + 1)


def conv_transpose_out_size(size: Dim, kernel: Dim, stride: int, pad: int, dilation: int,
                            output_padding: int) -> Dim:
    """`(size - 1)*stride - 2*pad + dilation*(kernel-1) + output_padding + 1`."""
    return dim((size - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1)


def _conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Sequence[int],
                    padding: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    """Channels-first convolution: im2col windows times the weight matrix, per group."""
    k = w.ndim - 2
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    out = [conv_out_size(s, kk, st, p, d)
           for s, kk, st, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    cols = windows(xp, kernel, stride, dilation, out)  # [N, C, *out, *kernel]
    cols = cols.reshape(n, groups, cg, *out, *kernel)
    # -> [N, G, *out, Cg, *kernel] so each output position's patch is one contiguous row.
    perm = (0, 1, *range(3, 3 + k), 2, *range(3 + k, 3 + 2 * k))
    patches = cols.transpose(perm).reshape(n, groups, int(np.prod(out)), -1)
    wmat = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)  # [G, Cg*K, O/G]
    y = patches @ wmat  # [N, G, P, O/G]: one BLAS matmul per (n, g)
    y = y.transpose(0, 1, 3, 2).reshape(n, o, *out)
    if b is not None:
        y = y + b.reshape(o, *([1] * k))
    return y


def _conv_transpose_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                              stride: Sequence[int], padding: Sequence[int],
                              output_padding: Sequence[int], dilation: Sequence[int],
                              groups: int) -> np.ndarray:
    """Channels-first transposed convolution: each input pixel times the kernel, scattered
    into the output one kernel tap at a time (the adjoint of `_conv_reference`)."""
    k = w.ndim - 2
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    kernel = w.shape[2:]
    og = w.shape[1]
    cg = c // groups
    xm = x.reshape(n, groups, cg, -1).transpose(0, 1, 3, 2)  # [N, G, P, Cg]
    wm = w.reshape(groups, cg, -1)  # [G, Cg, Og*K]
    contrib = (xm @ wm).reshape(n, groups, *spatial, og, *kernel)
    # -> [N, G, Og, *kernel, *spatial]
    contrib = contrib.transpose(0, 1, 2 + k, *range(3 + k, 3 + 2 * k), *range(2, 2 + k))
    out = [conv_transpose_out_size(s, kk, st, p, d, op)
           for s, kk, st, p, d, op in zip(spatial, kernel, stride, padding, dilation,
                                          output_padding)]
    touched = [(s - 1) * st + d * (kk - 1) + 1
               for s, kk, st, d in zip(spatial, kernel, stride, dilation)]
    full_size = [max(t, p + o) for t, p, o in zip(touched, padding, out)]
    full = np.zeros((n, groups, og, *full_size), dtype=contrib.dtype)
    for tap in itertools.product(*(range(kk) for kk in kernel)):
        dst = tuple(slice(i * d, i * d + (s - 1) * st + 1, st)
                    for i, d, s, st in zip(tap, dilation, spatial, stride))
        full[(slice(None),) * 3 + dst] += contrib[(slice(None),) * 3 + tap]
    crop = tuple(slice(p, p + o) for p, o in zip(padding, out))
    y = full[(slice(None),) * 3 + crop].reshape(n, groups * og, *out)
    if b is not None:
        y = y + b.reshape(groups * og, *([1] * k))
    return y


class _Conv(OpDef):
    """Shared type rule and reference of the convolutions; subclasses fix the rank."""

    inputs = ("x", "w", "bias?")
    fusion_kind = FusionKind.OUT_FUSABLE  # absorbs an elementwise epilogue (bias, relu)
    spatial = 2
    transposed = False

    def _split(self, shape: tuple[Dim, ...], layout: str) -> tuple[Dim, Dim, tuple[Dim, ...]]:
        """(batch, channels, spatial sizes) of an input of this op's layout."""
        if channels_last(layout):
            return shape[0], shape[-1], tuple(shape[1:-1])
        return shape[0], shape[1], tuple(shape[2:])

    def infer_type(self, x: Any, w: Any, bias: Any = None, *, stride: tuple[int, ...],
                   padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
                   layout: str, output_padding: tuple[int, ...] = ()) -> TensorType:
        k = self.spatial
        x, w = float_tensor(self, x), float_tensor(self, w)
        operands = (x, w) if bias is None else (x, w, tensor(bias, self.name))
        dtype = same_dtype(self.name, *operands)
        if x.rank != k + 2 or w.rank != k + 2:
            raise self.error(f"expects a rank-{k + 2} input and weight, got {x} and {w}")
        for name, values in (("stride", stride), ("padding", padding), ("dilation", dilation)):
            check_len(self, name, values, k)
        if self.transposed:
            check_len(self, "output_padding", output_padding, k)
        if groups < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
            raise self.error("groups, stride and dilation must be positive, padding >= 0")
        n, c, sizes = self._split(x.shape, layout)
        w_in = w.shape[0] if self.transposed else dim(w.shape[1] * groups)
        if not dims_equal(c, w_in):
            raise self.error(f"input has {c} channels but the weight {w} with groups={groups} "
                             f"expects {w_in}")
        out_c = dim(w.shape[1] * groups) if self.transposed else w.shape[0]
        if isinstance(out_c, int) and out_c % groups:
            raise self.error(f"{out_c} output channels do not split into {groups} groups")
        if bias is not None and (bias.rank != 1 or not dims_equal(bias.shape[0], out_c)):
            raise self.error(f"bias must be [{out_c}], got {bias}")
        if self.transposed:
            out = tuple(conv_transpose_out_size(s, kk, st, p, d, op) for s, kk, st, p, d, op
                        in zip(sizes, w.shape[2:], stride, padding, dilation, output_padding))
        else:
            out = tuple(conv_out_size(s, kk, st, p, d)
                        for s, kk, st, p, d in zip(sizes, w.shape[2:], stride, padding, dilation))
        for o in out:
            if isinstance(o, int) and o < 1:
                raise self.error(f"input {x} is too small for kernel {list(w.shape[2:])}: "
                                 f"output size would be {list(out)}")
        shape = (n, *out, out_c) if channels_last(layout) else (n, out_c, *out)
        return TensorType(shape, dtype)

    def reference(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
                  stride: tuple[int, ...], padding: tuple[int, ...],
                  dilation: tuple[int, ...], groups: int, layout: str,
                  output_padding: tuple[int, ...] = ()) -> np.ndarray:
        dtype = x.dtype
        last = channels_last(layout)
        xc = upcast(np.moveaxis(x, -1, 1) if last else x)
        b = None if bias is None else upcast(bias)
        if self.transposed:
            y = _conv_transpose_reference(xc, upcast(w), b, stride, padding, output_padding,
                                          dilation, groups)
        else:
            y = _conv_reference(xc, upcast(w), b, stride, padding, dilation, groups)
        return (np.moveaxis(y, 1, -1) if last else y).astype(dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, w: Tensor, bias: Tensor | None = None, *,
                stride: tuple[int, ...], padding: tuple[int, ...],
                dilation: tuple[int, ...], groups: int, layout: str,
                output_padding: tuple[int, ...] = ()) -> Tensor:
        """A sum over (input channel of the group, kernel taps); the bias at the write.

        conv:       out[n, o, p] = sum_{c, k} x[n, g*Cg + c, p*s - pad + k*d] * w[o, c, k]
        transposed: out[n, o, p] = sum_{c, k} x[n, g*Cg + c, i] * w[g*Cg + c, o % Og, k]
                    where i*s = p + pad - k*d (a tap counts only if s divides it)
        with g = o // Og. Positions outside the input read zero through a guarded load.

        A strided transposed conv without dilation visits only the taps that count (the
        sub-pixel, or phase, decomposition): k = (p + pad) % s + s*j and i = (p + pad) // s
        - j for j < ceil(K / s) — a stride-2 4x4 kernel reads 2x2 taps per output, not 4x4
        of which three quarters would multiply zeros. Like a padded conv it reads a
        zero-padded copy of its input when the reduction is large (`_phase_pads` says how
        much each side needs), so that the scheduler can run each phase as a GEMM.
        """
        last = channels_last(layout)
        c_axis = x.ndim - 1 if last else 1
        space = list(range(1, x.ndim - 1)) if last else list(range(2, x.ndim))
        kernel = [kk.value if isinstance(kk, Expr) and kk.is_const else kk
                  for kk in w.shape[2:]]
        phase = self.transposed and all(d == 1 for d in dilation) and max(stride) > 1 \
            and all(isinstance(kk, int) for kk in kernel)
        taps = [reduce_axis(-(-kk // s) if phase else kk, ctx.name(f"rk{a}"))
                for a, (kk, s) in enumerate(zip(kernel, stride))]
        cg = x.shape[c_axis] // groups if self.transposed else w.shape[1]
        og = w.shape[1] if self.transposed else w.shape[0] // groups
        rc = reduce_axis(cg, ctx.name("rc"))
        if not self.transposed and _pads_first(cg, kernel, padding, groups):
            x = _padded(ctx, x, space, padding, padding)
            padding = (0,) * len(padding)
        shift = [0] * len(space)  # where the phase decomposition's input starts in x
        reads_past = [False] * len(space)  # ... and the axes it reads outside of
        if phase:
            lo, hi = _phase_pads(kernel, stride, padding, output_padding)
            per_phase = [-(-kk // s) for kk, s in zip(kernel, stride)]
            if _pads_first(cg, per_phase, [*lo, *hi], groups):
                x, shift = _padded(ctx, x, space, lo, hi), lo
            else:
                reads_past = [bool(b or a) for b, a in zip(lo, hi)]

        def product(*out: Expr) -> Expr:
            n, o = out[0], (out[-1] if last else out[1])
            pos = out[1:-1] if last else out[2:]
            c = rc.var if groups == 1 else o // og * cg + rc.var
            index = [n] * x.ndim
            index[c_axis] = c
            ok, checked = const(True), []
            taps_at = tuple(r.var for r in taps)
            if phase:
                taps_at = ()
                for a, p, r, s, pad, kk, sh, past in zip(space, pos, taps, stride, padding,
                                                         kernel, shift, reads_past):
                    k = (p + pad) % s + r.var * s
                    index[a] = (p + pad) // s - r.var + sh
                    if past:
                        checked.append(a)
                    if kk % s:  # the last phase has fewer taps: past the kernel reads 0
                        ok = logical("and", ok, compare("lt", k, kk))
                        k = min_(k, kk - 1)
                    taps_at += (k,)
            for a, p, r, s, pad, d in zip(space, pos, taps, stride, padding, dilation):
                if phase:
                    break
                if not self.transposed:
                    index[a] = p * s - pad + r.var * d
                    if pad > 0:  # without padding every window lies inside the input
                        checked.append(a)
                    continue
                num = p + pad - r.var * d
                if s > 1:
                    ok = logical("and", ok, compare("eq", num % s, 0))
                index[a] = num // s
                checked.append(a)
            xv = guarded_load(x, index, checked, 0, ok)
            if self.transposed:
                wv = w[(c, o if groups == 1 else o % og, *taps_at)]
            else:
                wv = w[(o, rc.var, *taps_at)]
            return widen(xv) * widen(wv)

        def add_bias(acc: Expr, *out: Expr) -> Expr:
            assert bias is not None
            return acc + widen(bias[out[-1] if last else out[1]])

        return reduce_then(ctx, "sum", product, [rc, *taps],
                           add_bias if bias is not None else None)


PAD_FIRST_MIN_REDUCTION = 64  # taps x input channels that amortize a padded copy


def _pads_first(cg: Any, kernel: Sequence[Any], padding: Sequence[int], groups: int) -> bool:
    """Whether a padded conv reads a zero-padded copy of its input instead of guarding
    each load: a select around every read of the GEMM's broadcast operand costs its
    micro-kernel about a third of its speed, and the copy reads each input once where
    the conv reads it `Cout * taps` times. Worth it for dense convs with a large
    reduction, not for depthwise or grouped ones (few FLOPs per input element)."""
    if groups != 1 or not any(padding):
        return False
    size = 1
    for n in (cg, *kernel):
        n = n.value if isinstance(n, Expr) and n.is_const else n
        if not isinstance(n, int):
            return False
        size *= n
    return size >= PAD_FIRST_MIN_REDUCTION


def _phase_pads(kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                output_padding: Sequence[int]) -> tuple[list[int], list[int]]:
    """The zeros before and after each spatial axis of the input that the phase
    decomposition reads past: output `p` reads input `(p + pad) // s - j` for the
    `ceil(K / s)` taps `j` of its phase, from `pad // s - (ceil(K / s) - 1)` at `p = 0`
    to `H - 1 + (K + output_padding - 1 - pad) // s` at the last output (whatever H)."""
    lo, hi = [], []
    for a, (kk, s, pad) in enumerate(zip(kernel, stride, padding)):
        op = output_padding[a] if a < len(output_padding) else 0
        lo.append(max(0, -(-kk // s) - 1 - pad // s))
        hi.append(max(0, (kk + op - 1 - pad) // s))
    return lo, hi


def _padded(ctx: LowerContext, x: Tensor, space: Sequence[int], before: Sequence[int],
            after: Sequence[int]) -> Tensor:
    """`x` with `before[a]` and `after[a]` zeros around each spatial axis `space[a]`, as a
    materialized tensor (a sum over one element is never inlined into its reader):

        xp[n, c, h, w] = select(0 <= h - ph < H && 0 <= w - pw < W, x[n, c, h - ph, w - pw], 0)
    """
    shape = list(x.shape)
    for a, lo, hi in zip(space, before, after):
        shape[a] = shape[a] + lo + hi
    one = reduce_axis(1, ctx.name("r1"))

    def fill(*at: Expr) -> Reduce:
        index = list(at)
        checked = [a for a, lo, hi in zip(space, before, after) if lo or hi]
        for a, pad in zip(space, before):
            index[a] = at[a] - pad
        return reduce("sum", guarded_load(x, index, checked, 0), [one])

    name = ctx.name("padded")
    return compute(shape, fill, name, axis_names=[f"{name}_{a}" for a in "ijklmnop"[:len(shape)]])


def _conv_attrs(k: int, layouts: tuple[str, ...], transposed: bool) -> dict[str, Attr]:
    attrs = {
        "stride": Attr("ints", (1,) * k),
        "padding": Attr("ints", (0,) * k, doc="zeros added on both sides of each axis"),
    }
    if transposed:
        attrs["output_padding"] = Attr("ints", (0,) * k, doc="extra size on the high side")
    attrs |= {
        "dilation": Attr("ints", (1,) * k),
        "groups": Attr("int", 1),
        "layout": Attr("str", layouts[0], choices=layouts),
    }
    return attrs


@register_op
class Conv1d(_Conv):
    """1-D convolution (cross-correlation) of `x: [N, C, W]` with `w: [O, C/groups, K]`."""

    name = "nn.conv1d"
    attrs = _conv_attrs(1, ("NCW", "NWC"), transposed=False)
    spatial = 1


@register_op
class Conv2d(_Conv):
    """2-D convolution of `x: [N, C, H, W]` with `w: [O, C/groups, kH, kW]` (+ bias [O])."""

    name = "nn.conv2d"
    attrs = _conv_attrs(2, ("NCHW", "NHWC"), transposed=False)
    spatial = 2


@register_op
class ConvTranspose1d(_Conv):
    """1-D transposed convolution of `x: [N, C, W]` with `w: [C, O/groups, K]`."""

    name = "nn.conv_transpose1d"
    attrs = _conv_attrs(1, ("NCW", "NWC"), transposed=True)
    spatial = 1
    transposed = True


@register_op
class ConvTranspose2d(_Conv):
    """2-D transposed convolution (the adjoint of conv2d), `w: [C, O/groups, kH, kW]`."""

    name = "nn.conv_transpose2d"
    attrs = _conv_attrs(2, ("NCHW", "NHWC"), transposed=True)
    spatial = 2
    transposed = True


# -- 3-D convolutions --------------------------------------------------------------------


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


# -- col2im ------------------------------------------------------------------------------


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


# -- deformable convolution --------------------------------------------------------------


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
