"""ONNX converters for convolutions and pools (`nn.conv*`, `nn.*_pool*`, `nn.lrn`).

ONNX pads each spatial axis at its begin and end separately (`pads = [b1, .., bk, e1, ..,
ek]`) or derives pads from `auto_pad`. A convolution with equal begin and end pads maps
to the registry's symmetric `padding`; otherwise the input is zero-padded first. Pools
with symmetric pads on two spatial axes map to torch-shaped `nn.max_pool2d` /
`nn.avg_pool2d`; every other pool uses the N-d forms, which take ONNX's pads as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.errors import FrontendError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.symbolic import Dim

B = OnnxGraphBuilder

_CONV = {1: "nn.conv1d", 2: "nn.conv2d", 3: "nn.conv3d"}
_CONV_T = {1: "nn.conv_transpose1d", 2: "nn.conv_transpose2d", 3: "nn.conv_transpose3d"}


def auto_pads(node: OnnxNode, sizes: Sequence[Dim], kernel: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int]) -> list[int]:
    """Explicit pads `[begins..., ends...]` from `auto_pad` (or the `pads` attribute)."""
    k = len(kernel)
    mode = node.attr("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = node.attr("pads") or [0] * (2 * k)
        return list(pads)
    if mode == "VALID":
        return [0] * (2 * k)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise FrontendError(f"{node.describe()}: unknown auto_pad {mode!r}")
    begins, ends = [], []
    for size, kk, s, d in zip(sizes, kernel, strides, dilations):
        if not isinstance(size, int):
            raise FrontendError(f"{node.describe()}: auto_pad={mode} needs static spatial "
                                f"sizes, got {list(sizes)}")
        out = -(-size // s)
        total = max((out - 1) * s + (kk - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def _spatial_attrs(node: OnnxNode, k: int) -> tuple[list[int], list[int]]:
    strides = list(node.attr("strides") or [1] * k)
    dilations = list(node.attr("dilations") or [1] * k)
    return strides, dilations


def _check_rank(b: B, node: OnnxNode, x: Value, table: dict[int, str]) -> int:
    k = b.rank_of(x) - 2
    if k not in table:
        raise b.unsupported(node, f"with {k} spatial axes (dlc has 1-D to 3-D)")
    return k


@onnx_op("Conv")
def _conv(b: B, node: OnnxNode) -> Value:
    x, w, bias = node.inputs[0], node.inputs[1], node.input(2)
    k = _check_rank(b, node, x, _CONV)
    kernel = list(node.attr("kernel_shape") or b.shape_of(w)[2:])
    strides, dilations = _spatial_attrs(node, k)
    pads = auto_pads(node, b.shape_of(x)[2:], kernel, strides, dilations)
    begins, ends = pads[:k], pads[k:]
    if begins != ends:
        x = b.op("shape.pad", x, pads=(0, 0, *begins, 0, 0, *ends))
        begins = [0] * k
    operands = [x, w] + ([bias] if bias is not None else [])
    return b.op(_CONV[k], *operands, stride=strides, padding=begins, dilation=dilations,
                groups=node.attr("group", 1))


@onnx_op("ConvTranspose")
def _conv_transpose(b: B, node: OnnxNode) -> Value:
    x, w, bias = node.inputs[0], node.inputs[1], node.input(2)
    k = _check_rank(b, node, x, _CONV_T)
    kernel = list(node.attr("kernel_shape") or b.shape_of(w)[2:])
    strides, dilations = _spatial_attrs(node, k)
    out_pad = list(node.attr("output_padding") or [0] * k)
    sizes = b.shape_of(x)[2:]
    if not all(isinstance(s, int) for s in sizes):
        raise FrontendError(f"{node.describe()}: needs static spatial sizes, got {list(sizes)}")
    full = [(s - 1) * st + (kk - 1) * d + 1 for s, st, kk, d in zip(sizes, strides, kernel,
                                                                   dilations)]
    output_shape = node.attr("output_shape")
    mode = node.attr("auto_pad", "NOTSET")
    if output_shape or mode in ("SAME_UPPER", "SAME_LOWER"):
        target = list(output_shape)[-k:] if output_shape else [s * st for s, st in
                                                               zip(sizes, strides)]
        total = [f + op - t for f, op, t in zip(full, out_pad, target)]
        if mode == "SAME_UPPER":
            begins = [t // 2 for t in total]
        else:
            begins = [t - t // 2 for t in total]
        ends = [t - bg for t, bg in zip(total, begins)]
    elif mode == "VALID":
        begins, ends = [0] * k, [0] * k
    else:
        pads = list(node.attr("pads") or [0] * (2 * k))
        begins, ends = pads[:k], pads[k:]
    groups = node.attr("group", 1)
    symmetric = begins == ends and all(bg >= 0 for bg in begins) and all(
        op < max(st, d) for op, st, d in zip(out_pad, strides, dilations))
    if symmetric:
        operands = [x, w] + ([bias] if bias is not None else [])
        return b.op(_CONV_T[k], *operands, stride=strides, padding=begins,
                    output_padding=out_pad, dilation=dilations, groups=groups)
    # The full result, then crop (negative pads) or extend (output padding) each end.
    y = b.op(_CONV_T[k], x, w, stride=strides, padding=[0] * k, output_padding=[0] * k,
             dilation=dilations, groups=groups)
    pads = [0, 0, *(-bg for bg in begins), 0, 0, *(op - e for op, e in zip(out_pad, ends))]
    y = b.op("shape.pad", y, pads=tuple(pads))
    if bias is not None:
        shaped = b.op("shape.reshape", bias, shape=(b.shape_of(bias)[0], *([1] * k)))
        y = b.op("ew.add", y, shaped)
    return y


# -- pools -------------------------------------------------------------------------------


def _pool_params(b: B, node: OnnxNode, x: Value) -> tuple[list[int], list[int], list[int],
                                                          list[int], bool]:
    k = b.rank_of(x) - 2
    kernel = list(node.attr("kernel_shape"))
    if len(kernel) != k:
        raise FrontendError(f"{node.describe()}: kernel_shape {kernel} does not fit {k} "
                            f"spatial axes of {x.type}")
    strides, dilations = _spatial_attrs(node, k)
    pads = auto_pads(node, b.shape_of(x)[2:], kernel, strides, dilations)
    return kernel, strides, dilations, pads, bool(node.attr("ceil_mode", 0))


def _symmetric_2d(kernel: list[int], dilations: list[int], pads: list[int]) -> bool:
    return (len(kernel) == 2 and pads[:2] == pads[2:] and
            all(2 * p <= kk for p, kk in zip(pads[:2], kernel)))


@onnx_op("MaxPool")
def _max_pool(b: B, node: OnnxNode) -> Value | tuple[Value, Value]:
    x = node.inputs[0]
    kernel, strides, dilations, pads, ceil = _pool_params(b, node, x)
    if node.has_output(1):
        return b.op("nn.max_pool_nd", x, kernel=kernel, strides=strides, pads=pads,
                    dilations=dilations, ceil_mode=ceil, indices=True,
                    storage_order=node.attr("storage_order", 0))
    if _symmetric_2d(kernel, dilations, pads):
        return b.op("nn.max_pool2d", x, kernel=kernel, stride=strides, padding=pads[:2],
                    dilation=dilations, ceil_mode=ceil)
    return b.op("nn.max_pool_nd", x, kernel=kernel, strides=strides, pads=pads,
                dilations=dilations, ceil_mode=ceil)


@onnx_op("AveragePool")
def _avg_pool(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    kernel, strides, dilations, pads, ceil = _pool_params(b, node, x)
    include = bool(node.attr("count_include_pad", 0))
    if _symmetric_2d(kernel, dilations, pads) and dilations == [1, 1]:
        return b.op("nn.avg_pool2d", x, kernel=kernel, stride=strides, padding=pads[:2],
                    ceil_mode=ceil, count_include_pad=include)
    return b.op("nn.avg_pool_nd", x, kernel=kernel, strides=strides, pads=pads,
                dilations=dilations, ceil_mode=ceil, count_include_pad=include)


@onnx_op("LpPool")
def _lp_pool(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    kernel, strides, dilations, pads, ceil = _pool_params(b, node, x)
    return b.op("nn.lp_pool_nd", x, kernel=kernel, strides=strides, pads=pads,
                dilations=dilations, ceil_mode=ceil, p=float(node.attr("p", 2)))


def _spatial_axes(b: B, x: Value) -> tuple[int, ...]:
    return tuple(range(2, b.rank_of(x)))


@onnx_op("GlobalAveragePool")
def _global_avg_pool(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    return b.op("reduce.mean", x, axes=_spatial_axes(b, x), keepdims=True)


@onnx_op("GlobalMaxPool")
def _global_max_pool(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    return b.op("reduce.max", x, axes=_spatial_axes(b, x), keepdims=True)


@onnx_op("GlobalLpPool")
def _global_lp_pool(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    return b.op("reduce.norm", x, axes=_spatial_axes(b, x), keepdims=True,
                ord=float(node.attr("p", 2)))


@onnx_op("LRN")
def _lrn(b: B, node: OnnxNode) -> Value:
    return b.op("nn.lrn", node.inputs[0], size=node.attr("size"),
                alpha=node.attr("alpha", 1e-4), beta=node.attr("beta", 0.75),
                bias=node.attr("bias", 1.0))


@onnx_op("MaxUnpool")
def _max_unpool(b: B, node: OnnxNode) -> Value:
    """Zeros with each pooled value put back at its flat index (MaxPool's indices)."""
    x, indices = node.inputs[0], node.inputs[1]
    shape = b.shape_of(x)
    k = len(shape) - 2
    kernel = list(node.attr("kernel_shape"))
    strides = list(node.attr("strides") or [1] * k)
    pads = list(node.attr("pads") or [0] * (2 * k))
    out = [*shape[:2], *((s - 1) * st - pads[i] - pads[i + k] + kk
                         for i, (s, st, kk) in enumerate(zip(shape[2:], strides, kernel)))]
    total = 1
    for d in out:
        total *= d
    flat = b.op("create.full", shape=(total,), value=0.0, dtype=x.dtype)
    where = b.op("shape.reshape", b.cast(indices, DType.i64), shape=(-1, 1))
    values = b.op("shape.reshape", x, shape=(-1,))
    filled = b.op("index.scatter_nd", flat, where, values, reduction="none")
    y = b.op("shape.reshape", filled, shape=tuple(out))
    if node.input(2) is not None:  # indices address the default shape; pad or crop its end
        want = list(b.static_ints(node, 2, "output_shape"))
        if want != out:
            ends = [w - o for w, o in zip(want, out)]
            y = b.op("shape.pad", y, pads=(0,) * len(out) + tuple(ends))
    return y


@onnx_op("Col2Im")
def _col2im(b: B, node: OnnxNode) -> Value:
    image = b.static_ints(node, 1, "image_shape")
    block = b.static_ints(node, 2, "block_shape")
    k = len(image)
    return b.op("nn.col2im", node.inputs[0], image_shape=image, block_shape=block,
                strides=list(node.attr("strides") or [1] * k),
                pads=list(node.attr("pads") or [0] * (2 * k)),
                dilations=list(node.attr("dilations") or [1] * k))


@onnx_op("DeformConv")
def _deform_conv(b: B, node: OnnxNode) -> Value:
    x, w, offset, bias, mask = (node.inputs[0], node.inputs[1], node.inputs[2], node.input(3),
                                node.input(4))
    if b.rank_of(x) != 4:
        raise b.unsupported(node, f"on {x.type} (dlc has the 2-D form)")
    kh, kw = b.shape_of(w)[2:]
    groups = node.attr("offset_group", 1)
    if mask is None:
        n, _, oh, ow = b.shape_of(offset)
        mask = b.op("create.full", shape=(n, groups * kh * kw, oh, ow), value=1.0,
                    dtype=x.dtype)
    return b.op("nn.deform_conv2d", x, w, offset, mask, *([bias] if bias is not None else []),
                stride=list(node.attr("strides") or [1, 1]),
                pads=list(node.attr("pads") or [0, 0, 0, 0]),
                dilation=list(node.attr("dilations") or [1, 1]), groups=node.attr("group", 1),
                offset_groups=groups)
