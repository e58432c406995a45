"""Normalization and softmax ops (`nn.batch_norm`, `nn.layer_norm`, `nn.softmax`, `nn.lrn`,
...).

Fusion kinds: every op here that computes statistics of its input (layer, group,
instance and RMS norms, softmax, log-softmax) is a REDUCTION. `nn.batch_norm` is the
inference form, whose statistics are operands (running mean and variance): it is
`x * a + b` with per-channel `a` and `b`, an elementwise op with broadcast operands, so
it is BROADCAST and fuses like `ew.mul` (and a fold-batchnorm pass can fold it into a
preceding convolution).

References compute in f32 for f16/bf16 inputs (torch's CPU opmath type) and with the
two-pass mean/variance, then round once to the input dtype.

Lowering mirrors them: the statistics are reductions over each group (materialized once
per group: a sum, then a sum of squared deviations; softmax's row max, then its exp-sum),
and the output is one elementwise compute reading them:

    sum[i] = sum_k x[i, k]      var_sum[i] = sum_k (x[i, k] - sum[i]/K)^2
    out[i, k] = (x[i, k] - sum[i]/K) / sqrt(var_sum[i]/K + eps) * weight[k] + bias[k]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.ir.symbolic import dims_equal
from dlc.ir.tensor.compute import Tensor, compute, reduce, reduce_axis
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, call, cast, compare, const, logical, max_, select
from dlc.ir.tensor.index import clamp_index
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath_dtype, reduce_then, upcast, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    float_tensor,
    normalize_axes,
    normalize_axis,
    register_op,
    same_dtype,
)


def _check_param(op: OpDef, name: str, p: Any, shape: tuple[Any, ...]) -> None:
    """An affine parameter (weight, bias, statistics) must have exactly `shape`."""
    if p is None:
        return
    p = float_tensor(op, p)
    if p.rank != len(shape) or not all(dims_equal(a, b) for a, b in zip(p.shape, shape)):
        want = ", ".join(str(d) for d in shape)
        raise op.error(f"{name} must be [{want}], got {p}")


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """`(x - mean) / sqrt(var + eps)` over `axes` (biased variance, as torch)."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    return centered / np.sqrt(var + x.dtype.type(eps))


def _affine(y: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
            shape: tuple[int, ...]) -> np.ndarray:
    """`y * weight + bias`, each parameter reshaped to broadcast as `shape`."""
    if weight is not None:
        y = y * upcast(weight).reshape(shape)
    if bias is not None:
        y = y + upcast(bias).reshape(shape)
    return y


# -- lowering: statistics as materialized reductions, then an elementwise normalize ------

Stat = Callable[..., Expr]  # a statistic at a group index (the output's leading axes)


def _moments(ctx: LowerContext, shape: Sequence[Expr], element: Callable[..., Expr],
             extents: Sequence[Expr]) -> tuple[Stat, Stat]:
    """Mean and biased variance of each group of elements, two passes as the references:

        sum[g] = sum_r x(g, r)                  var_sum[g] = sum_r (x(g, r) - mean[g])^2
        mean[g] = sum[g] / n                    var[g] = var_sum[g] / n

    `element(*g, *r)` is the (widened) element at group index `g` and reduce index `r`.
    Both sums are reductions, so they are materialized once per group; the divisions are
    inlined where they are read.
    """
    red = [reduce_axis(e, ctx.name(f"r{k}")) for k, e in enumerate(extents)]
    at = [r.var for r in red]
    names = ctx.axis_names(len(shape))
    total = compute(shape, lambda *g: reduce("sum", element(*g, *at), red), ctx.name("sum"),
                    axis_names=names)
    count = const(1)
    for e in extents:
        count = count * e
    n = cast(count, total.dtype)

    def mean(*g: Expr) -> Expr:
        return total[g] / n

    def deviation(*g: Expr) -> Any:
        d = element(*g, *at) - mean(*g)
        return reduce("sum", d * d, red)

    spread = compute(shape, deviation, ctx.name("var_sum"), axis_names=names)
    return mean, lambda *g: spread[g] / n


def _normalized(ctx: LowerContext, x: Tensor, mean: Stat, var: Stat, eps: float,
                group: Callable[..., tuple[Expr, ...]], param: Callable[..., Expr],
                weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """The output: `(x - mean) / sqrt(var + eps) * weight + bias`, where `group(*out)` is
    the statistics' index of an output position and `param(*out)` the parameters'."""
    shape, dtype = ctx.out_shape(), ctx.out_dtype()

    def body(*out: Expr) -> Expr:
        g = group(*out)
        v = widen(x[out])
        # one reciprocal per group (hoisted out of the row), a multiply per element
        y = (v - mean(*g)) * call("rsqrt", var(*g) + const(eps, v.dtype))
        if weight is not None:
            y = y * widen(weight[param(*out)])
        if bias is not None:
            y = y + widen(bias[param(*out)])
        return cast(y, dtype)

    return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


def _softmax_parts(ctx: LowerContext, x: Tensor, axis: int
                   ) -> tuple[Callable[..., Expr], Callable[..., Expr]]:
    """`shifted(*out) = x - max` and `total(*out) = sum(exp(shifted))` along `axis`, the max
    and the sum materialized once per row. A rank-0 input is its own one-element row."""
    if x.ndim == 0:
        return (lambda: widen(x[()]) - widen(x[()]),
                lambda: call("exp", widen(x[()]) - widen(x[()])))
    axis %= x.ndim
    row_shape = [d for k, d in enumerate(x.shape) if k != axis]
    names = ctx.axis_names(len(row_shape))
    r = reduce_axis(x.shape[axis], ctx.name("r"))

    def along(row: Sequence[Expr], i: Expr) -> tuple[Expr, ...]:
        return (*row[:axis], i, *row[axis:])

    top = compute(row_shape, lambda *row: reduce("max", widen(x[along(row, r.var)]), [r]),
                  ctx.name("max"), axis_names=names)
    total = compute(row_shape, lambda *row: reduce(
        "sum", exp_flushed(widen(x[along(row, r.var)]) - top[row]), [r]), ctx.name("sum"),
        axis_names=names)

    def row_of(out: Sequence[Expr]) -> tuple[Expr, ...]:
        return (*out[:axis], *out[axis + 1:])

    return (lambda *out: widen(x[out]) - top[row_of(out)],
            lambda *out: total[row_of(out)])


def exp_flushed(d: Expr) -> Expr:
    """`exp(d)` for `d <= 0` (a softmax's shifted input), with results below the smallest
    normal float flushed to 0. A masked entry (-inf, or -1e9) would otherwise make the
    exp compute a subnormal, and arithmetic on subnormals takes a microcode assist of
    ~100 cycles per instruction on x86: a causal mask made softmax six times slower.
    The terms dropped are below 1.2e-38 next to the row's largest term, 1."""
    floor = const(-87.33 if d.dtype.itemsize <= 4 else -708.3, d.dtype)  # ln(min normal)
    # the lanes flushed still compute an exp (a vector select evaluates both arms): of
    # the floor, a normal number
    return select(compare("lt", d, floor), const(0.0, d.dtype), call("exp", max_(d, floor)))


def _trailing_axes(op: OpDef, x: TensorType, axes: tuple[int, ...]) -> tuple[int, ...]:
    """Validate that `axes` are the last len(axes) axes of `x`; return them normalized."""
    norm = normalize_axes(axes, x.rank, op.name)
    if not norm or norm != tuple(range(x.rank - len(norm), x.rank)):
        raise op.error(f"axes={list(axes)} must be the trailing axes of {x}")
    return norm


@register_op
class BatchNorm(OpDef):
    """Inference batch norm: `(x - mean) / sqrt(var + eps) * scale + bias` per channel.

    Every parameter is `[C]` with `C = x.shape[axis]` (1 for NCHW; a layout pass may move
    channels last and set `axis=-1`).
    """

    name = "nn.batch_norm"
    inputs = ("x", "scale", "bias", "mean", "var")
    attrs = {"eps": Attr("float", 1e-5), "axis": Attr("int", 1, doc="the channel axis")}
    fusion_kind = FusionKind.BROADCAST

    def infer_type(self, x: Any, scale: Any, bias: Any, mean: Any, var: Any, *, eps: float,
                   axis: int) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 2:
            raise self.error(f"expects an input of rank >= 2 (batch and channels), got {x}")
        c = x.shape[normalize_axis(axis, x.rank, self.name)]
        for name, p in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
            _check_param(self, name, p, (c,))
        same_dtype(self.name, x, scale, bias, mean, var)
        return x

    def reference(self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray,
                  var: np.ndarray, *, eps: float, axis: int) -> np.ndarray:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        xf = upcast(x)
        inv = 1 / np.sqrt(upcast(var) + xf.dtype.type(eps))
        y = (xf - upcast(mean).reshape(shape)) * inv.reshape(shape)
        return _affine(y, scale, bias, tuple(shape)).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor,
                var: Tensor, *, eps: float, axis: int) -> Tensor:
        """Elementwise: `(x - mean[c]) * (1 / sqrt(var[c] + eps)) * scale[c] + bias[c]`."""
        axis %= x.ndim
        shape, dtype = ctx.out_shape(), ctx.out_dtype()

        def body(*out: Expr) -> Expr:
            c = out[axis]
            v = widen(x[out])
            inv = const(1.0, v.dtype) / call("sqrt", widen(var[c]) + const(eps, v.dtype))
            y = (v - widen(mean[c])) * inv
            return cast(y * widen(scale[c]) + widen(bias[c]), dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class LayerNorm(OpDef):
    """Normalize over the trailing `axes`, then `* weight + bias` (both of those axes'
    shape, both optional)."""

    name = "nn.layer_norm"
    inputs = ("x", "weight?", "bias?")
    attrs = {"axes": Attr("ints", (-1,), doc="the trailing axes normalized over"),
             "eps": Attr("float", 1e-5)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, weight: Any = None, bias: Any = None, *,
                   axes: tuple[int, ...], eps: float) -> TensorType:
        x = float_tensor(self, x)
        norm = _trailing_axes(self, x, axes)
        shape = tuple(x.shape[a] for a in norm)
        _check_param(self, "weight", weight, shape)
        _check_param(self, "bias", bias, shape)
        same_dtype(self.name, x, *(p for p in (weight, bias) if p is not None))
        return x

    def reference(self, x: np.ndarray, weight: np.ndarray | None = None,
                  bias: np.ndarray | None = None, *, axes: tuple[int, ...],
                  eps: float) -> np.ndarray:
        norm = tuple(sorted(a % x.ndim for a in axes))
        y = _normalize(upcast(x), norm, eps)
        shape = tuple(x.shape[a] for a in norm)
        return _affine(y, weight, bias, shape).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, weight: Tensor | None = None,
                bias: Tensor | None = None, *, axes: tuple[int, ...], eps: float) -> Tensor:
        """Statistics over the trailing axes, one group per leading index."""
        lead = x.ndim - len({a % x.ndim for a in axes})
        mean, var = _moments(ctx, x.shape[:lead], lambda *i: widen(x[i]), x.shape[lead:])
        return _normalized(ctx, x, mean, var, eps, lambda *o: o[:lead], lambda *o: o[lead:],
                           weight, bias)


@register_op
class RmsNorm(OpDef):
    """`x / sqrt(mean(x**2 over axes) + eps) * weight` over the trailing `axes`.

    `eps=none` is torch's default: the machine epsilon of the compute type (f32 for
    f16/bf16/f32 inputs, f64 for f64).
    """

    name = "nn.rms_norm"
    inputs = ("x", "weight?")
    attrs = {"axes": Attr("ints", (-1,), doc="the trailing axes normalized over"),
             "eps": Attr("float", None, optional=True)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, weight: Any = None, *, axes: tuple[int, ...],
                   eps: float | None) -> TensorType:
        x = float_tensor(self, x)
        norm = _trailing_axes(self, x, axes)
        _check_param(self, "weight", weight, tuple(x.shape[a] for a in norm))
        same_dtype(self.name, x, *(p for p in (weight,) if p is not None))
        return x

    def reference(self, x: np.ndarray, weight: np.ndarray | None = None, *,
                  axes: tuple[int, ...], eps: float | None) -> np.ndarray:
        norm = tuple(sorted(a % x.ndim for a in axes))
        xf = upcast(x)
        if eps is None:
            eps = float(np.finfo(xf.dtype).eps)
        ms = (xf * xf).mean(axis=norm, keepdims=True)
        y = xf / np.sqrt(ms + xf.dtype.type(eps))
        return _affine(y, weight, None, tuple(x.shape[a] for a in norm)).astype(
            x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, weight: Tensor | None = None, *,
                axes: tuple[int, ...], eps: float | None) -> Tensor:
        """A sum of squares per leading index (materialized), then
        `x / sqrt(sum / n + eps) * weight`."""
        lead = x.ndim - len({a % x.ndim for a in axes})
        wide = opmath_dtype(x.dtype)
        if eps is None:
            eps = float(np.finfo(wide.numpy).eps)
        red = [reduce_axis(d, ctx.name(f"r{k}")) for k, d in enumerate(x.shape[lead:])]
        at = tuple(r.var for r in red)

        def squares(*g: Expr) -> Any:
            v = widen(x[(*g, *at)])
            return reduce("sum", v * v, red)

        total = compute(x.shape[:lead], squares, ctx.name("sum"),
                        axis_names=ctx.axis_names(lead))
        count = const(1)
        for d in x.shape[lead:]:
            count = count * d
        shape, dtype = ctx.out_shape(), ctx.out_dtype()

        def body(*out: Expr) -> Expr:
            mean_square = total[out[:lead]] / cast(count, wide)
            y = widen(x[out]) / call("sqrt", mean_square + const(eps, wide))
            if weight is not None:
                y = y * widen(weight[out[lead:]])
            return cast(y, dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class GroupNorm(OpDef):
    """Split the channels of `x: [N, C, *]` into `num_groups` groups, normalize each
    group over its channels and spatial positions, then `* weight + bias` per channel."""

    name = "nn.group_norm"
    inputs = ("x", "weight?", "bias?")
    attrs = {"num_groups": Attr("int"), "eps": Attr("float", 1e-5)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, weight: Any = None, bias: Any = None, *, num_groups: int,
                   eps: float) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 2:
            raise self.error(f"expects an [N, C, ...] input, got {x}")
        c = x.shape[1]
        if num_groups < 1 or (isinstance(c, int) and c % num_groups):
            raise self.error(f"{c} channels do not split into num_groups={num_groups}")
        _check_param(self, "weight", weight, (c,))
        _check_param(self, "bias", bias, (c,))
        same_dtype(self.name, x, *(p for p in (weight, bias) if p is not None))
        return x

    def reference(self, x: np.ndarray, weight: np.ndarray | None = None,
                  bias: np.ndarray | None = None, *, num_groups: int,
                  eps: float) -> np.ndarray:
        n = x.shape[0]
        grouped = upcast(x).reshape(n, num_groups, -1)
        y = _normalize(grouped, (2,), eps).reshape(x.shape)
        shape = (-1,) + (1,) * (x.ndim - 2)
        return _affine(y, weight, bias, shape).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, weight: Tensor | None = None,
                bias: Tensor | None = None, *, num_groups: int, eps: float) -> Tensor:
        """Statistics per (sample, group) over the group's channels and positions."""
        cg = x.shape[1] // num_groups

        def element(n: Expr, g: Expr, c: Expr, *pos: Expr) -> Expr:
            return widen(x[(n, g * cg + c, *pos)])

        mean, var = _moments(ctx, (x.shape[0], const(num_groups)), element,
                             (cg, *x.shape[2:]))
        return _normalized(ctx, x, mean, var, eps, lambda *o: (o[0], o[1] // cg),
                           lambda *o: (o[1],), weight, bias)


@register_op
class InstanceNorm(OpDef):
    """Normalize each (sample, channel) of `x: [N, C, *]` over its spatial positions,
    then `* weight + bias` per channel."""

    name = "nn.instance_norm"
    inputs = ("x", "weight?", "bias?")
    attrs = {"eps": Attr("float", 1e-5)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, weight: Any = None, bias: Any = None, *,
                   eps: float) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 3:
            raise self.error(f"expects an [N, C, spatial...] input, got {x}")
        _check_param(self, "weight", weight, (x.shape[1],))
        _check_param(self, "bias", bias, (x.shape[1],))
        same_dtype(self.name, x, *(p for p in (weight, bias) if p is not None))
        return x

    def reference(self, x: np.ndarray, weight: np.ndarray | None = None,
                  bias: np.ndarray | None = None, *, eps: float) -> np.ndarray:
        y = _normalize(upcast(x), tuple(range(2, x.ndim)), eps)
        shape = (-1,) + (1,) * (x.ndim - 2)
        return _affine(y, weight, bias, shape).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, weight: Tensor | None = None,
                bias: Tensor | None = None, *, eps: float) -> Tensor:
        """Statistics per (sample, channel) over the spatial positions."""
        mean, var = _moments(ctx, x.shape[:2], lambda *i: widen(x[i]), x.shape[2:])
        return _normalized(ctx, x, mean, var, eps, lambda *o: o[:2], lambda *o: (o[1],),
                           weight, bias)


class _Softmax(OpDef):
    inputs = ("x",)
    attrs = {"axis": Attr("int", -1)}
    fusion_kind = FusionKind.REDUCTION

    def infer_type(self, x: Any, *, axis: int) -> TensorType:
        x = float_tensor(self, x)
        normalize_axis(axis, x.rank, self.name)
        return x


@register_op
class Softmax(_Softmax):
    """`exp(x - max) / sum(exp(x - max))` along `axis`."""

    name = "nn.softmax"

    def reference(self, x: np.ndarray, *, axis: int) -> np.ndarray:
        xf = upcast(x)
        axis = axis if x.ndim else None  # a scalar is its own (one-element) axis
        e = np.exp(xf - xf.max(axis=axis, keepdims=True))
        return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, axis: int) -> Tensor:
        """`exp(x - max[row]) / sum[row]`: the row max and exp-sum are materialized."""
        shifted, total = _softmax_parts(ctx, x, axis)
        shape, dtype = ctx.out_shape(), ctx.out_dtype()
        def body(*o: Expr) -> Expr:
            t = total(*o)  # one reciprocal per row (hoisted out of it), a multiply each
            return cast(exp_flushed(shifted(*o)) * (const(1.0, t.dtype) / t), dtype)

        return compute(shape, body, ctx.name(), axis_names=ctx.axis_names(len(shape)))


@register_op
class LogSoftmax(_Softmax):
    """`x - max - log(sum(exp(x - max)))` along `axis`."""

    name = "nn.log_softmax"

    def reference(self, x: np.ndarray, *, axis: int) -> np.ndarray:
        xf = upcast(x)
        axis = axis if x.ndim else None
        shifted = xf - xf.max(axis=axis, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return (shifted - lse).astype(x.dtype, copy=False)

    def compute(self, ctx: LowerContext, x: Tensor, *, axis: int) -> Tensor:
        """`(x - max[row]) - log(sum[row])`."""
        shifted, total = _softmax_parts(ctx, x, axis)
        shape, dtype = ctx.out_shape(), ctx.out_dtype()
        return compute(shape, lambda *o: cast(shifted(*o) - call("log", total(*o)), dtype),
                       ctx.name(), axis_names=ctx.axis_names(len(shape)))


# -- local response normalization --------------------------------------------------------


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

    def compute(self, ctx: LowerContext, x: Tensor, *, size: int, alpha: float, beta: float,
                bias: float) -> Tensor:
        """A sum of squares over the channel window (zero outside the channels), then
        `x / (bias + alpha/size * sum) ** beta` at the accumulator's write."""
        channels = x.shape[1]
        before = (size - 1) // 2
        r = reduce_axis(size, ctx.name("rwin"))

        def square(n: Expr, c: Expr, *rest: Expr) -> Expr:
            pos = c - before + r.var
            inside = logical("and", compare("ge", pos, const(0)),
                             compare("lt", pos, channels))
            v = widen(x[(n, clamp_index(pos, channels), *rest)])
            return select(inside, v * v, const(0.0, v.dtype))

        def finish(total: Expr, n: Expr, c: Expr, *rest: Expr) -> Expr:
            v = widen(x[(n, c, *rest)])
            t = v.dtype
            scale = const(bias, t) + const(alpha / size, t) * total
            return v / call("pow", scale, const(beta, t))

        return reduce_then(ctx, "sum", square, [r], finish)
