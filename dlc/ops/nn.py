"""Convolution and pooling ops (`nn.conv*`, `nn.*_pool2d`).

Layouts: convolutions and pools read channels-first tensors (`NCHW`, `NCW`) unless their
`layout` attribute says channels-last (`NHWC`, `NWC`), which a later layout pass may
choose. Weights always stay `[out, in / groups, *kernel]` (`[in, out / groups, *kernel]`
for transposed convolutions), as torch stores them.

Output sizes follow torch's formulas and are built with `dlc.ir.symbolic` helpers, so a
symbolic batch or image size flows through (`floor((H - 1)/2) + 1`).

References are vectorized NumPy: a convolution gathers its windows with
`sliding_window_view` (im2col without a copy until the matmul) and contracts them with
one batched `matmul`; a transposed convolution does the matmul first and scatters one
kernel tap at a time (a loop over the kernel, never over pixels).

Lowering (`compute`): every op here is a reduction over a window, computed in the opmath
type and finished at the accumulator's write (`reduce_then`): a convolution sums over
(input channels of its group, kernel taps), its bias added at the write; a transposed
convolution gathers the input pixels that reach each output (a tap counts when the stride
divides its offset); pools take the max or the sum over their window, avg dividing at the
write. Padding, ceil_mode overhang and adaptive bins narrower than the widest are
`select`s around clamped loads (`guarded_load`), so no access leaves its buffer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, ceildiv, dim, dims_equal, floordiv
from dlc.ir.tensor.compute import Reduce, ReduceAxis, Tensor, compute, identity, reduce, reduce_axis
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import (
    Expr,
    as_expr,
    cast,
    compare,
    const,
    logical,
    max_,
    min_,
    select,
    var,
)
from dlc.ir.types import TensorType
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, same_dtype, tensor

# -- helpers shared by the nn families (normalization, attention, image import them) ----


def float_tensor(op: OpDef, t: Any) -> TensorType:
    """A dense floating-point operand, or a type error naming the op."""
    t = tensor(t, op.name)
    if not t.dtype.is_float:
        raise op.error(f"expects a floating-point operand, got {t.dtype}")
    return t


def upcast(x: np.ndarray) -> np.ndarray:
    """`x` in a dtype fit to accumulate in: f16 and bf16 compute in f32, as torch's CPU
    kernels do (their opmath type), so references round once at the end."""
    return x.astype(np.float32) if x.dtype.itemsize < 4 else x


def check_len(op: OpDef, name: str, values: Sequence[Any], n: int) -> None:
    """Per-spatial-axis attributes (stride, padding...) must have one entry per axis."""
    if len(values) != n:
        raise op.error(f"{name}={list(values)} needs {n} entries, one per spatial axis")


def _channels_last(layout: str) -> bool:
    return layout in ("NHWC", "NWC")


def floordiv_nested(a: Dim, s: int) -> Dim:
    """`floor(a / s)`, folding `floor(floor(u) / s)` into `floor(u / s)` (exact for a positive
    integer `s`), as torch's FloorDiv simplification does: a pool after a stride-2 conv
    then reads `floor((H - 1)/4) + 1` in both, and the converters' type checks match."""
    if isinstance(a, int):
        return a // s
    if isinstance(a, sympy.floor):
        return dim(sympy.floor(a.args[0] / s))
    return floordiv(a, s)


# -- lowering helpers: the tensor-IR side of the same families --------------------------


def opmath_dtype(dtype: DType) -> DType:
    """The dtype kernels compute in: f32 for f16/bf16, as `upcast` in the references."""
    return DType.f32 if dtype in (DType.f16, DType.bf16) else dtype


def widen(e: Expr) -> Expr:
    """A tensor-IR element in its opmath dtype (`upcast` for one element)."""
    return cast(e, opmath_dtype(e.dtype))


def inside(i: Expr, n: Any) -> Expr:
    """`0 <= i < n`."""
    return logical("and", compare("ge", i, 0), compare("lt", i, n))


def clamp_index(i: Expr, n: Any) -> Expr:
    """`i` clamped into `[0, n)`: a guarded load reads there, so it is always in bounds."""
    return min_(max_(i, 0), as_expr(n) - 1)


def guarded_load(x: Tensor, index: Sequence[Expr], checked: Sequence[int], fill: Any,
                 ok: Expr | None = None) -> Expr:
    """`x[index]`, or `fill` where an index of the `checked` axes falls outside `x` (or
    where `ok` is false). Padding is a select around a clamped load, never a branch or an
    out-of-bounds read:  `select(0 <= h < H, x[min(max(h, 0), H - 1)], 0)`."""
    keep = const(True) if ok is None else ok
    idx = list(index)
    for a in checked:
        keep = logical("and", keep, inside(idx[a], x.shape[a]))
        idx[a] = clamp_index(idx[a], x.shape[a])
    return select(keep, x[tuple(idx)], fill)


def reduce_then(ctx: LowerContext, combiner: str, body: Callable[..., Expr],
                axes: Sequence[ReduceAxis], finish: Callable[..., Expr] | None = None
                ) -> Tensor:
    """The node's output: `combiner` of `body(*out)` over `axes`, then `finish(acc, *out)`,
    cast to the output dtype.

    The reduction runs in the body's dtype (opmath). A finish, or a cast, is a second
    tensor reading the accumulator at its own position, so the lowering applies it as the
    accumulator is written, and a following elementwise op along with it:

        acc[n, o, h, w] = sum_{c, kh, kw} x[n, c, h + kh, w + kw] * w[o, c, kh, kw]
        out[n, o, h, w] = acc[n, o, h, w] + bias[o]         # epilogue: acc is never stored
    """
    shape, dtype = ctx.out_shape(), ctx.out_dtype()
    names = ctx.axis_names(len(shape))

    def reduced(*out: Expr) -> Reduce:
        return reduce(combiner, body(*out), axes)

    probe = body(*map(var, names))  # the index variables compute() will pass
    if finish is None and probe.dtype == dtype:
        return compute(shape, reduced, ctx.name(), axis_names=names)
    acc = compute(shape, reduced, ctx.name("acc"), axis_names=names)
    then = finish or (lambda value, *out: value)
    return compute(shape, lambda *out: cast(then(acc[out], *out), dtype), ctx.name(),
                   axis_names=names)


# -- convolution -------------------------------------------------------------------------


def conv_out_size(size: Dim, kernel: Dim, stride: int, pad: int, dilation: int) -> Dim:
    """`floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1`, symbolic-safe."""
    return dim(floordiv_nested(dim(size + 2 * pad - dilation * (kernel - 1) - 1), stride) + 1)


def conv_transpose_out_size(size: Dim, kernel: Dim, stride: int, pad: int, dilation: int,
                            output_padding: int) -> Dim:
    """`(size - 1)*stride - 2*pad + dilation*(kernel-1) + output_padding + 1`."""
    return dim((size - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1)


def _windows(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """A strided view `[..., *out, *kernel]` of the windows of the trailing axes of `xp`
    (already padded so every window lies inside it); no data is copied."""
    k = len(kernel)
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(kernel, dilation))
    axes = tuple(range(xp.ndim - k, xp.ndim))
    view = sliding_window_view(xp, span, axis=axes)
    lead = (slice(None),) * (xp.ndim - k)
    positions = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[lead + positions + taps]


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
    cols = _windows(xp, kernel, stride, dilation, out)  # [N, C, *out, *kernel]
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
        if _channels_last(layout):
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
        shape = (n, *out, out_c) if _channels_last(layout) else (n, out_c, *out)
        return TensorType(shape, dtype)

    def reference(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
                  stride: tuple[int, ...], padding: tuple[int, ...],
                  dilation: tuple[int, ...], groups: int, layout: str,
                  output_padding: tuple[int, ...] = ()) -> np.ndarray:
        dtype = x.dtype
        last = _channels_last(layout)
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
        """
        last = _channels_last(layout)
        c_axis = x.ndim - 1 if last else 1
        space = list(range(1, x.ndim - 1)) if last else list(range(2, x.ndim))
        taps = [reduce_axis(kk, ctx.name(f"rk{a}")) for a, kk in enumerate(w.shape[2:])]
        cg = x.shape[c_axis] // groups if self.transposed else w.shape[1]
        og = w.shape[1] if self.transposed else w.shape[0] // groups
        rc = reduce_axis(cg, ctx.name("rc"))

        def product(*out: Expr) -> Expr:
            n, o = out[0], (out[-1] if last else out[1])
            pos = out[1:-1] if last else out[2:]
            c = rc.var if groups == 1 else o // og * cg + rc.var
            index = [n] * x.ndim
            index[c_axis] = c
            ok, checked = const(True), []
            for a, p, r, s, pad, d in zip(space, pos, taps, stride, padding, dilation):
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
            taps_at = tuple(r.var for r in taps)
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


# -- pooling -----------------------------------------------------------------------------
# Pools act on the two spatial axes of an `[N, C, H, W]` or unbatched `[C, H, W]` input
# (torch routes 1-D pools through these with an unsqueezed axis). Their fusion kind is
# OUT_FUSABLE, as in TVM: each output reads a window, so they are not injective, but an
# elementwise consumer can run in their epilogue.


def pool_out_size(size: Dim, kernel: int, stride: int, pad: int, dilation: int,
                  ceil_mode: bool) -> Dim:
    """torch's pooling output size; with `ceil_mode` the last window must start inside the
    input or its left padding, which is `min(ceil(L/s) + 1, ceil((size + pad)/s))`."""
    span = dim(size + 2 * pad - dilation * (kernel - 1) - 1)
    if not ceil_mode:
        return dim(floordiv_nested(span, stride) + 1)
    if isinstance(size, int):
        out = -(-span // stride) + 1
        return out - 1 if (out - 1) * stride >= size + pad else out
    return dim(sympy.Min(ceildiv(span, stride) + 1, ceildiv(dim(size + pad), stride)))


def _pool_attrs(with_dilation: bool) -> dict[str, Attr]:
    attrs = {
        "kernel": Attr("ints"),
        "stride": Attr("ints", doc="defaults to the kernel size in torch; always explicit here"),
        "padding": Attr("ints", (0, 0)),
    }
    if with_dilation:
        attrs["dilation"] = Attr("ints", (1, 1))
    attrs["ceil_mode"] = Attr("bool", False)
    return attrs


def _spatial_axes(op: OpDef, x: TensorType, layout: str) -> tuple[int, int]:
    if x.rank not in (3, 4):
        raise op.error(f"expects an [N, C, H, W] or [C, H, W] input, got {x}")
    return _pool_axes(x.rank, layout)


def _pool_axes(rank: int, layout: str) -> tuple[int, int]:
    return (rank - 3, rank - 2) if _channels_last(layout) else (rank - 2, rank - 1)


def _window_body(x: Tensor, taps: Sequence[ReduceAxis], kernel: Sequence[int],
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                 ceil_mode: bool, layout: str, fill: Any) -> Callable[..., Expr]:
    """The element of output position `out`'s window at the taps' loop variables:
    `x[.., o*s - pad + k*d, ..]`, or `fill` where the window hangs over the input (its
    padding, and with ceil_mode the last window's overhang on the high side)."""
    axes = _pool_axes(x.ndim, layout)
    checked = [a for a, p in zip(axes, padding) if p > 0 or ceil_mode]

    def element(*out: Expr) -> Expr:
        index = list(out)
        for a, r, s, p, d in zip(axes, taps, stride, padding, dilation):
            index[a] = out[a] * s - p + r.var * d
        return guarded_load(x, index, checked, fill)

    return element


def _with_spatial(x: TensorType, axes: tuple[int, int], sizes: Sequence[Dim]) -> TensorType:
    shape = list(x.shape)
    for a, s in zip(axes, sizes):
        shape[a] = s
    return x.with_shape(shape)


def _spatial_last(x: np.ndarray, layout: str) -> np.ndarray:
    """Move the spatial axes to the end (a view), so references pool over [..., H, W]."""
    return np.moveaxis(x, -1, -3) if _channels_last(layout) else x


def _spatial_back(y: np.ndarray, layout: str) -> np.ndarray:
    return np.moveaxis(y, -3, -1) if _channels_last(layout) else y


class _Pool(OpDef):
    """Shared type rule of the windowed pools."""

    inputs = ("x",)
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, x: Any, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                   padding: tuple[int, ...], ceil_mode: bool, layout: str,
                   dilation: tuple[int, ...] = (1, 1), **_: Any) -> TensorType:
        x = tensor(x, self.name)
        axes = _spatial_axes(self, x, layout)
        for name, values in (("kernel", kernel), ("stride", stride), ("padding", padding),
                             ("dilation", dilation)):
            check_len(self, name, values, 2)
        if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
            raise self.error("kernel, stride and dilation must be positive")
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise self.error(f"padding {list(padding)} exceeds half the kernel {list(kernel)}")
        out = [pool_out_size(x.shape[a], k, s, p, d, ceil_mode)
               for a, k, s, p, d in zip(axes, kernel, stride, padding, dilation)]
        if any(isinstance(o, int) and o < 1 for o in out):
            raise self.error(f"input {x} is too small for kernel {list(kernel)}")
        return _with_spatial(x, axes, out)


def _padded_windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
                    padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool,
                    fill: Any) -> np.ndarray:
    """Windows `[..., oH, oW, kH, kW]` of `x`'s last two axes, padded with `fill` (on the
    high side too when ceil_mode's last window runs past the input)."""
    out = [pool_out_size(s, k, st, p, d, ceil_mode)
           for s, k, st, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation)]
    need = [(o - 1) * st + d * (k - 1) + 1 for o, st, d, k in zip(out, stride, dilation, kernel)]
    pads = [(p, max(n - s - p, 0)) for p, n, s in zip(padding, need, x.shape[-2:])]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + pads, constant_values=fill)
    return _windows(xp, kernel, stride, dilation, out)


@register_op
class MaxPool2d(_Pool):
    """Max over `kernel` windows of the two spatial axes (padding never wins)."""

    name = "nn.max_pool2d"
    attrs = _pool_attrs(with_dilation=True) | {
        "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC"))}

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                  padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool,
                  layout: str) -> np.ndarray:
        xs = _spatial_last(x, layout)
        low = -np.inf if x.dtype.kind == "f" or x.dtype.kind == "V" else np.iinfo(x.dtype).min
        win = _padded_windows(xs, kernel, stride, padding, dilation, ceil_mode,
                              np.array(low).astype(x.dtype))
        return _spatial_back(win.max(axis=(-2, -1)), layout)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
                ceil_mode: bool, layout: str) -> Tensor:
        """out[.., oh, ow] = max_{kh, kw} x[.., oh*s - p + kh*d, ow*s - p + kw*d] (padding
        reads the dtype's lowest value, so it never wins)."""
        taps = [reduce_axis(k, ctx.name(f"rk{a}")) for a, k in enumerate(kernel)]
        element = _window_body(x, taps, kernel, stride, padding, dilation, ceil_mode, layout,
                               identity("max", x.dtype))
        return reduce_then(ctx, "max", element, taps)


@register_op
class AvgPool2d(_Pool):
    """Mean over `kernel` windows; the divisor counts padding if `count_include_pad`,
    and is `divisor_override` when set (torch's rules, window by window)."""

    name = "nn.avg_pool2d"
    attrs = _pool_attrs(with_dilation=False) | {
        "count_include_pad": Attr("bool", True),
        "divisor_override": Attr("int", None, optional=True),
        "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC")),
    }

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        out = super().infer_type(x, **attrs)
        if not out.dtype.is_float:
            raise self.error(f"expects a floating-point operand, got {out.dtype}")
        return out

    def reference(self, x: np.ndarray, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                  padding: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
                  divisor_override: int | None, layout: str) -> np.ndarray:
        xs = upcast(_spatial_last(x, layout))
        win = _padded_windows(xs, kernel, stride, padding, (1, 1), ceil_mode, 0)
        total = win.sum(axis=(-2, -1))
        if divisor_override is not None:
            y = total / xs.dtype.type(divisor_override)
        else:
            # Separable: a window's element count is the product of its per-axis extents.
            per_axis = []
            for size, k, s, p, o in zip(xs.shape[-2:], kernel, stride, padding,
                                        total.shape[-2:]):
                start = np.arange(o) * s - p
                end = np.minimum(start + k, size + p)
                if not count_include_pad:
                    start, end = np.maximum(start, 0), np.minimum(end, size)
                per_axis.append(end - start)
            count = np.multiply.outer(per_axis[0], per_axis[1])
            y = np.where(count > 0, total / np.maximum(count, 1).astype(xs.dtype), 0)
        return _spatial_back(y, layout).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, kernel: tuple[int, ...],
                stride: tuple[int, ...], padding: tuple[int, ...], ceil_mode: bool,
                count_include_pad: bool, divisor_override: int | None,
                layout: str) -> Tensor:
        """A windowed sum (padding reads 0), divided at the write by the window's divisor:
        `divisor_override`, or the product over both axes of `end - start` with
        `start = o*s - p`, `end = min(start + k, size + p)`, both clipped to the input
        unless `count_include_pad`."""
        taps = [reduce_axis(k, ctx.name(f"rk{a}")) for a, k in enumerate(kernel)]
        element = _window_body(x, taps, kernel, stride, padding, (1, 1), ceil_mode, layout, 0)
        axes = _pool_axes(x.ndim, layout)

        def divide(total: Expr, *out: Expr) -> Expr:
            if divisor_override is not None:
                return total / const(divisor_override, total.dtype)
            count: Expr = const(1)
            for a, k, s, p in zip(axes, kernel, stride, padding):
                start = out[a] * s - p
                end = min_(start + k, x.shape[a] + p)
                if not count_include_pad:
                    start, end = max_(start, 0), min_(end, x.shape[a])
                count = count * (end - start)
            quotient = total / cast(max_(count, 1), total.dtype)
            return select(compare("gt", count, 0), quotient, const(0, total.dtype))

        return reduce_then(ctx, "sum", lambda *out: widen(element(*out)), taps, divide)


def _adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive bins: `[floor(i*size/out), ceil((i+1)*size/out))`."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _adaptive_window(ctx: LowerContext, x: Tensor, output_size: Sequence[int], layout: str
                     ) -> tuple[list[ReduceAxis], Callable[..., tuple[Expr, Expr, Expr]]]:
    """Reduce axes spanning the widest adaptive bin of each spatial axis, and for an output
    position `(in_bin, index, count)`: whether the taps fall inside its bin
    `[floor(o*size/out), ceil((o+1)*size/out))`, the (clamped) input index they read, and
    the bin's element count. Bins differ in width by at most one; when they are all equal
    (size divisible by out, say) the predicate is dropped."""
    axes = _pool_axes(x.ndim, layout)
    taps, uniform = [], []
    for a, out in zip(axes, output_size):
        size = x.shape[a]
        if size.is_const:
            start, end = _adaptive_bins(size.value, out)
            widest = int((end - start).max())
            uniform.append(bool((end - start == widest).all()))
        else:  # a bin spans at most ceil(size/out) + 1 elements
            widest = (size + out - 1) // out + 1
            uniform.append(False)
        taps.append(reduce_axis(widest, ctx.name(f"rk{a}")))

    def window(*out: Expr) -> tuple[Expr, Expr, Expr]:
        ok, count, index = const(True), const(1), list(out)
        for a, n_out, r, same in zip(axes, output_size, taps, uniform):
            size = x.shape[a]
            start = out[a] * size // n_out
            end = ((out[a] + 1) * size + n_out - 1) // n_out
            count = count * (end - start)
            index[a] = start + r.var
            if not same:
                ok = logical("and", ok, compare("lt", r.var, end - start))
                index[a] = min_(index[a], size - 1)
        return ok, x[tuple(index)], count

    return taps, window


class _AdaptivePool(OpDef):
    """Shared type rule: the spatial axes become `output_size`."""

    inputs = ("x",)
    attrs = {"output_size": Attr("ints"),
             "layout": Attr("str", "NCHW", choices=("NCHW", "NHWC"))}
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, x: Any, *, output_size: tuple[int, ...], layout: str) -> TensorType:
        x = tensor(x, self.name)
        axes = _spatial_axes(self, x, layout)
        check_len(self, "output_size", output_size, 2)
        if min(output_size) < 1:
            raise self.error(f"output_size must be positive, got {list(output_size)}")
        return _with_spatial(x, axes, output_size)


@register_op
class AdaptiveAvgPool2d(_AdaptivePool):
    """Mean over torch's adaptive bins of the spatial axes, to a fixed `output_size`."""

    name = "nn.adaptive_avg_pool2d"

    def infer_type(self, x: Any, **attrs: Any) -> TensorType:
        return super().infer_type(float_tensor(self, x), **attrs)

    def reference(self, x: np.ndarray, *, output_size: tuple[int, ...],
                  layout: str) -> np.ndarray:
        xs = upcast(_spatial_last(x, layout))
        # Averaging over a rectangle is averaging rows then columns: one matrix per axis.
        mats = []
        for size, out in zip(xs.shape[-2:], output_size):
            start, end = _adaptive_bins(size, out)
            j = np.arange(size)
            inside = (j >= start[:, None]) & (j < end[:, None])
            mats.append(inside / (end - start)[:, None].astype(xs.dtype))
        y = np.einsum("...hw,oh,pw->...op", xs, mats[0].astype(xs.dtype),
                      mats[1].astype(xs.dtype), optimize=True)
        return _spatial_back(y, layout).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, output_size: tuple[int, ...],
                layout: str) -> Tensor:
        """A sum over the widest bin (taps past the bin read 0), divided by the bin's size."""
        taps, window = _adaptive_window(ctx, x, output_size, layout)

        def element(*out: Expr) -> Expr:
            ok, value, _ = window(*out)
            return select(ok, widen(value), 0)

        def divide(total: Expr, *out: Expr) -> Expr:
            return total / cast(window(*out)[2], total.dtype)

        return reduce_then(ctx, "sum", element, taps, divide)


@register_op
class AdaptiveMaxPool2d(_AdaptivePool):
    """Max over torch's adaptive bins of the spatial axes, to a fixed `output_size`."""

    name = "nn.adaptive_max_pool2d"

    def reference(self, x: np.ndarray, *, output_size: tuple[int, ...],
                  layout: str) -> np.ndarray:
        y = _spatial_last(x, layout)
        # A rectangle's max is the max of its rows' maxima: reduce one axis at a time,
        # looping over output bins (a handful), not pixels.
        for axis, out in ((-1, output_size[1]), (-2, output_size[0])):
            start, end = _adaptive_bins(y.shape[axis], out)
            parts = [np.take(y, np.arange(s, e), axis=axis).max(axis=axis, keepdims=True)
                     for s, e in zip(start, end)]
            y = np.concatenate(parts, axis=axis)
        return _spatial_back(y, layout)

    def compute(self, ctx: LowerContext, x: Tensor, *, output_size: tuple[int, ...],
                layout: str) -> Tensor:
        """A max over the widest bin; taps past the bin read the dtype's lowest value."""
        taps, window = _adaptive_window(ctx, x, output_size, layout)

        def element(*out: Expr) -> Expr:
            ok, value, _ = window(*out)
            return select(ok, value, identity("max", x.dtype))

        return reduce_then(ctx, "max", element, taps)
