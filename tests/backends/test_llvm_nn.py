"""The LLVM backend on the nn, normalization, attention and image ops, beyond the case sweep.

Each graph is compiled with debug bounds checks, one kernel per node and all nodes in one
kernel, and compared with the reference interpreter: channels-last layouts, symbolic
sizes the exporters do not produce, f16 and f64 inputs, integer pools, fully masked
attention rows, and the epilogue fusion of a convolution's bias and a following relu.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlc.backends.llvm.executable import build, lower_model
from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.tensor.stmt import Allocate, walk
from dlc.testing import assert_close

N, H, W, L, S = (symbol(s) for s in ("N", "H", "W", "L", "S"))
F16, F32, F64 = DType.f16, DType.f32, DType.f64


def graph_of(inputs: list[tuple[str, tuple, DType]], body: Any) -> Any:
    """A graph over `inputs` (name, shape, dtype); `body(b, *values)` returns its outputs."""
    b = GraphBuilder("g")
    xs = [b.input(name, TensorType(shape, dtype)) for name, shape, dtype in inputs]
    out = body(b, *xs)
    return b.build(list(out) if isinstance(out, (tuple, list)) else [out])


def check(graph: Any, *arrays: np.ndarray, rtol: float = 1e-5, exact: bool = False) -> None:
    """LLVM (per node, then fused) against the interpreter."""
    want = run_graph(graph, *arrays)
    exact = exact or all(not DType.from_numpy(w.dtype).is_float for w in want)
    for groups in ([[n] for n in graph.nodes], [list(graph.nodes)]):
        got = build(graph, groups=groups, debug=True)(*arrays)
        assert_close(tuple(got), tuple(want), rtol, exact, what=f"{len(groups)} kernels")


def data(*shape: int, dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-50, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def scratch_buffers(graph: Any) -> list[str]:
    """Global temporaries of the graph lowered as one kernel."""
    (func,) = lower_model(graph, [list(graph.nodes)]).funcs
    return [s.buffer.name for s in walk(func.body)
            if isinstance(s, Allocate) and s.buffer.scope != "local"]


# -- convolution -------------------------------------------------------------------------


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv2d_layouts_with_symbolic_sizes(layout, transposed):
    op = "nn.conv_transpose2d" if transposed else "nn.conv2d"
    w_shape = (4, 3, 3, 2) if transposed else (6, 2, 3, 2)
    x_shape = (N, 4, H, W) if layout == "NCHW" else (N, H, W, 4)
    attrs = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2, layout=layout)
    if transposed:
        attrs["output_padding"] = (1, 0)
    g = graph_of([("x", x_shape, F32), ("w", w_shape, F32), ("b", (6,), F32)],
                 lambda b, x, w, bias: b.op(op, x, w, bias, **attrs))
    x = data(2, 4, 7, 6) if layout == "NCHW" else data(2, 7, 6, 4)
    check(g, x, data(*w_shape, seed=1), data(6, seed=2))


@pytest.mark.parametrize("transposed", [False, True])
def test_conv1d_channels_last(transposed):
    op = "nn.conv_transpose1d" if transposed else "nn.conv1d"
    w_shape = (3, 5, 4) if transposed else (5, 3, 4)
    attrs = dict(stride=(3,), padding=(2,), dilation=(1,), groups=1, layout="NWC")
    if transposed:
        attrs["output_padding"] = (2,)
    g = graph_of([("x", (2, 11, 3), F32), ("w", w_shape, F32)],
                 lambda b, x, w: b.op(op, x, w, **attrs))
    check(g, data(2, 11, 3), data(*w_shape, seed=1))


def test_conv_bias_relu_run_at_the_accumulator_write():
    g = graph_of([("x", (2, 3, 8, 8), F32), ("w", (4, 3, 3, 3), F32), ("b", (4,), F32)],
                 lambda b, x, w, bias: b.op("ew.relu", b.op(
                     "nn.conv2d", x, w, bias, padding=(1, 1))))
    assert scratch_buffers(g) == [], "the convolution's sum was stored before the epilogue"
    check(g, data(2, 3, 8, 8), data(4, 3, 3, 3, seed=1), data(4, seed=2))


def test_conv_f16_accumulates_in_f32():
    g = graph_of([("x", (1, 4, 6, 6), F16), ("w", (2, 4, 3, 3), F16)],
                 lambda b, x, w: b.op("nn.conv2d", x, w))
    check(g, data(1, 4, 6, 6, dtype=np.float16), data(2, 4, 3, 3, dtype=np.float16, seed=1),
          rtol=1e-2)


# -- pooling -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [F32, DType.i32])
def test_max_pool_ceil_mode(layout, dtype):
    shape = (2, 3, 10, 9) if layout == "NCHW" else (2, 10, 9, 3)
    g = graph_of([("x", shape, dtype)], lambda b, x: b.op(
        "nn.max_pool2d", x, kernel=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(1, 2),
        ceil_mode=True, layout=layout))
    check(g, data(*shape, dtype=dtype.numpy))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("include,divisor", [(True, None), (False, None), (False, 5)])
def test_avg_pool_divisors(layout, include, divisor):
    shape = (3, 10, 9) if layout == "NCHW" else (10, 9, 3)
    g = graph_of([("x", shape, F32)], lambda b, x: b.op(
        "nn.avg_pool2d", x, kernel=(3, 3), stride=(2, 3), padding=(1, 1), ceil_mode=True,
        count_include_pad=include, divisor_override=divisor, layout=layout))
    check(g, data(*shape))


@pytest.mark.parametrize("op", ["nn.adaptive_avg_pool2d", "nn.adaptive_max_pool2d"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_adaptive_pools_with_symbolic_sizes(op, layout):
    shape = (N, 3, H, W) if layout == "NCHW" else (N, H, W, 3)
    g = graph_of([("x", shape, F32)], lambda b, x: b.op(op, x, output_size=(3, 4),
                                                       layout=layout))
    for h, w in [(7, 9), (3, 4), (2, 13)]:
        check(g, data(2, 3, h, w) if layout == "NCHW" else data(2, h, w, 3))


def test_pool_with_symbolic_image_size():
    g = graph_of([("x", (N, 2, H, W), F32)], lambda b, x: b.op(
        "nn.avg_pool2d", b.op("nn.max_pool2d", x, kernel=(3, 3), stride=(2, 2),
                              padding=(1, 1), ceil_mode=False),
        kernel=(2, 2), stride=(2, 2), padding=(1, 1), ceil_mode=False,
        count_include_pad=False))
    check(g, data(2, 2, 11, 13))


# -- normalization -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F16, F64])
def test_norms_in_low_and_double_precision(dtype):
    def body(b, x, w, bias):
        ln = b.op("nn.layer_norm", x, w, bias, axes=(-1,))
        gn = b.op("nn.group_norm", x, w, bias, num_groups=2)
        inn = b.op("nn.instance_norm", x, eps=1e-3)
        rms = b.op("nn.rms_norm", x, w, axes=(-1,))
        return ln, gn, inn, rms

    g = graph_of([("x", (2, 4, 4), dtype), ("w", (4,), dtype), ("b", (4,), dtype)], body)
    np_type = dtype.numpy
    check(g, data(2, 4, 4, dtype=np_type), data(4, dtype=np_type, seed=1),
          data(4, dtype=np_type, seed=2), rtol=1e-2 if dtype == F16 else 1e-12)


def test_norms_with_symbolic_sizes():
    def body(b, x, w):
        return (b.op("nn.group_norm", x, w, w, num_groups=3),
                b.op("nn.batch_norm", x, w, w, w, b.op("ew.abs", w), axis=1),
                b.op("nn.layer_norm", x, axes=(-2, -1)))

    g = graph_of([("x", (N, 6, H), F32), ("w", (6,), F32)], body)
    check(g, data(3, 6, 5), data(6, seed=1))


def test_batch_norm_channels_last():
    g = graph_of([("x", (2, 3, 3, 4), F32), ("p", (4,), F32)], lambda b, x, p: b.op(
        "nn.batch_norm", x, p, p, p, b.op("ew.abs", p), axis=-1))
    check(g, data(2, 3, 3, 4), data(4, seed=1))


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the reference's -inf row
@pytest.mark.parametrize("op", ["nn.softmax", "nn.log_softmax"])
def test_softmax_rows_stats_are_stored_once(op):
    g = graph_of([("x", (N, 5, 3), F32)], lambda b, x: b.op(op, x, axis=1))
    assert len(scratch_buffers(g)) == 2  # the row max and the exp-sum
    x = data(2, 5, 3) * 30
    x[0, :, 0] = -np.inf  # a row of -inf gives NaN, as the reference
    check(g, x)


def test_softmax_of_a_scalar():
    g = graph_of([("x", (), F32)], lambda b, x: (b.op("nn.softmax", x), b.op(
        "nn.log_softmax", x)))
    check(g, np.array(3.0, np.float32))


# -- attention ---------------------------------------------------------------------------


def test_sdpa_broadcast_mask_causal_and_masked_rows():
    def body(b, q, k, v, m):
        return b.op("nn.sdpa", q, k, v, m, is_causal=True)

    g = graph_of([("q", (2, 1, L, 4), F32), ("k", (3, S, 4), F32), ("v", (1, S, 5), F32),
                  ("m", (L, S), DType.bool)], body)
    mask = np.ones((4, 6), bool)
    mask[1] = False  # a fully masked row
    mask[2, :2] = False  # masked by the mask below the diagonal, by causality above it
    check(g, data(2, 1, 4, 4), data(3, 6, 4, seed=1), data(1, 6, 5, seed=2), mask)


def test_sdpa_float_mask_f16_and_symbolic_embedding():
    g = graph_of([("q", (2, L, 8), F16), ("k", (2, S, 8), F16), ("v", (2, S, 3), F16),
                  ("m", (1, S), F16)], lambda b, q, k, v, m: b.op("nn.sdpa", q, k, v, m))
    f16 = np.float16
    check(g, data(2, 3, 8, dtype=f16), data(2, 5, 8, dtype=f16, seed=1),
          data(2, 5, 3, dtype=f16, seed=2), data(1, 5, dtype=f16, seed=3), rtol=1e-2)
    e = symbol("E")
    g = graph_of([("q", (L, e), F32), ("k", (S, e), F32), ("v", (S, 2), F32)],
                 lambda b, q, k, v: b.op("nn.sdpa", q, k, v))
    check(g, data(3, 6), data(4, 6, seed=1), data(4, 2, seed=2))


# -- image -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["nearest", "nearest_exact", "linear"])
def test_resize_symbolic_input_with_scales(mode):
    g = graph_of([("x", (2, H, W), F32)], lambda b, x: b.op(
        "image.resize", x, scales=(1.7, 0.6), mode=mode))
    # (sizes whose scaled size is not within rounding of an integer: the type rule's exact
    # rational `floor(6/10 * W)` and torch's double `floor(W * 0.6)` differ at W = 5)
    for h, w in [(5, 7), (9, 4), (3, 9)]:
        check(g, data(2, h, w), exact=mode != "linear")


@pytest.mark.parametrize("size", [(1, 11), (4, 5), (9, 1)])
def test_resize_linear_aligned_edge_sizes(size):
    g = graph_of([("x", (1, 2, 4, 5), F32)], lambda b, x: b.op(
        "image.resize", x, size=size, mode="linear", align_corners=True))
    check(g, data(1, 2, 4, 5))


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_nearest_is_exact_on_pixel_halves(padding_mode, align):
    """Grid points at (and one ulp around) pixel halves, where an FMA or a reassociated
    `(g + 1) * W/2 - 0.5` rounds to the other neighbour. Static sizes: the optimizer
    folds constants into the arithmetic; a symbolic size is fine too."""
    grid = np.empty((1, 24, 40, 2), np.float32)
    for r in range(24):  # row r: k/(n-1) * 2 - 1 for n = r + 2, and their f32 neighbours
        points = np.linspace(-1, 1, r + 2).astype(np.float32)
        points = np.concatenate([points, np.nextafter(points, np.float32(-2)),
                                 np.nextafter(points, np.float32(2))])
        grid[0, r, :, 0] = np.resize(points, 40)
        grid[0, r, :, 1] = np.resize(points[::-1] * np.float32(1.1), 40)
    for h, w in [(5, 6), (3, 8), (7, 11), (H, W)]:
        g = graph_of([("x", (1, 2, h, w), F32), ("grid", (1, 24, 40, 2), F32)],
                     lambda b, x, gr: b.op("image.grid_sample", x, gr, mode="nearest",
                                           padding_mode=padding_mode, align_corners=align))
        check(g, data(1, 2, 5, 6) if h is H else data(1, 2, h, w), grid)


def test_grid_sample_f64_and_affine_grid_f64():
    g = graph_of([("x", (2, 3, 5, 4), F64), ("t", (2, 2, 3), F64)], lambda b, x, t: b.op(
        "image.grid_sample", x, b.op("image.affine_grid", t, size=(6, 3), align_corners=True),
        mode="bilinear", padding_mode="reflection", align_corners=True))
    check(g, data(2, 3, 5, 4, dtype=np.float64), data(2, 2, 3, dtype=np.float64, seed=1),
          rtol=1e-12)


# -- the loop-nest interpreter agrees too --------------------------------------------------


@pytest.mark.parametrize("name", ["conv_transpose", "sdpa", "grid_sample"])
def test_loop_nest_interpreter_agrees(name):
    from dlc.interpreter import bind_symbols
    from dlc.ir.tensor.interpreter import run_func

    graphs = {
        "conv_transpose": ([("x", (1, 2, 3, 3), F32), ("w", (2, 1, 2, 3), F32)],
                           lambda b, x, w: b.op("nn.conv_transpose2d", x, w, stride=(2, 1),
                                                padding=(1, 0), output_padding=(1, 0)),
                           (data(1, 2, 3, 3), data(2, 1, 2, 3, seed=1))),
        "sdpa": ([("q", (L, 2), F32), ("k", (3, 2), F32), ("v", (3, 2), F32)],
                 lambda b, q, k, v: b.op("nn.sdpa", q, k, v, is_causal=True),
                 (data(2, 2), data(3, 2, seed=1), data(3, 2, seed=2))),
        "grid_sample": ([("x", (1, 1, 3, 4), F32), ("g", (1, 2, 3, 2), F32)],
                        lambda b, x, gr: b.op("image.grid_sample", x, gr,
                                              padding_mode="reflection"),
                        (data(1, 1, 3, 4), data(1, 2, 3, 2, seed=1))),
    }
    inputs, body, arrays = graphs[name]
    g = graph_of(inputs, body)
    model = lower_model(g, [list(g.nodes)])
    (group,) = model.groups
    want = run_graph(g, *arrays)
    buffers = {model.names[v]: a for v, a in zip(g.inputs, arrays)}
    outs = [np.zeros_like(w) for w in want]
    buffers |= {model.names[v]: o for v, o in zip(group.outputs, outs)}
    run_func(group.func, buffers, bind_symbols(g, arrays))
    assert_close(tuple(outs), tuple(want), rtol=1e-5)
