"""The LLVM backend on linalg, shape and creation ops, beyond the torch case sweep.

Each graph is compiled with debug bounds checks, one kernel per node and all nodes in one
kernel, and compared with the reference interpreter: negative-step slices, symbolic sizes
the exporters do not produce, low-precision contractions, and the epilogue fusion of a
linear's bias.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from dlc.backends.llvm.executable import build, lower_model
from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.tensor.stmt import Allocate, walk
from dlc.testing import assert_close

N, S = symbol("N"), symbol("S")


def graph_of(inputs: list[tuple[str, tuple, DType]], body: Any) -> Any:
    """A graph over `inputs` (name, shape, dtype); `body(b, *values)` returns its outputs."""
    b = GraphBuilder("g")
    xs = [b.input(name, TensorType(shape, dtype)) for name, shape, dtype in inputs]
    out = body(b, *xs)
    return b.build(list(out) if isinstance(out, (tuple, list)) else [out])


def check(graph: Any, *arrays: np.ndarray, rtol: float = 1e-5) -> None:
    """LLVM (per node, then fused) against the interpreter, bitwise for non-floats."""
    want = run_graph(graph, *arrays)
    exact = all(not DType.from_numpy(w.dtype).is_float for w in want)
    for groups in ([[n] for n in graph.nodes], [list(graph.nodes)]):
        got = build(graph, groups=groups, debug=True)(*arrays)
        assert_close(tuple(got), tuple(want), rtol, exact, what=f"{len(groups)} kernels")


def data(*shape: int, dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


F32 = DType.f32


# -- shape ops ---------------------------------------------------------------------------


@pytest.mark.parametrize("starts,ends,steps", [
    ([5, -1], [-100, 0], [-2, -1]),
    ([-1, 4], [-(2**63), 2**63 - 1], [-3, 2]),
    ([100, 1], [2, 2], [-1, 1]),  # start past the end, clamped
])
def test_slice_negative_steps(starts, ends, steps):
    g = graph_of([("x", (7, 6), F32)], lambda b, x: b.op(
        "shape.slice", x, axes=[0, 1], starts=starts, ends=ends, steps=steps))
    check(g, data(7, 6))


@pytest.mark.parametrize("start,end", [(S - 2, 2**63 - 1), (-3, -1), (1, S), (-S, 2)])
def test_slice_symbolic_bounds(start, end):
    g = graph_of([("x", (S, 4), F32)], lambda b, x: b.op(
        "shape.slice", x, axes=[0], starts=[start], ends=[end], steps=[1]))
    for s in (3, 6):
        check(g, data(s, 4))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes_with_a_symbolic_size(mode):
    g = graph_of([("x", (2, N), F32)], lambda b, x: b.op(
        "shape.pad", x, pads=[1, 2, 0, 3], mode=mode))
    for n in (4, 7):
        check(g, data(2, n))


def test_pad_constant_crops_and_pads_every_side():
    g = graph_of([("x", (3, 5, 4), DType.i32)], lambda b, x: b.op(
        "shape.pad", x, pads=[1, -2, 2, -1, 1, 0], value=-3.0))
    check(g, data(3, 5, 4, dtype=np.int32))


def test_concat_of_computed_symbolic_inputs_stays_in_bounds():
    def body(b, x, y):
        flipped = b.op("shape.flip", x, axes=[1])  # inlined into the concat when fused
        return b.op("shape.concat", flipped, y, x, axis=1)

    g = graph_of([("x", (2, N), F32), ("y", (2, S), F32)], body)
    check(g, data(2, 3), data(2, 5, seed=1))
    check(g, data(2, 1), data(2, 1, seed=1))


def test_split_with_a_symbolic_piece():
    def body(b, x):
        return b.node("shape.split", [x], {"sizes": [2, S - 3, 1], "axis": 1}).outputs

    g = graph_of([("x", (3, S), F32)], body)
    check(g, data(3, 7))


@pytest.mark.parametrize("shape,target", [
    ((N, 6), [3, -1, 2]),
    ((2, 3, N), [6, N]),
    ((N, 4, 1), [N, 2, 2]),
    ((N, 2, S), [S, N * 2]),
])
def test_reshape_symbolic(shape, target):
    g = graph_of([("x", shape, F32)], lambda b, x: b.op("shape.reshape", x, shape=target))
    concrete = [3 if d is N else 5 if d is S else d for d in shape]
    check(g, data(*concrete))


def test_layout_transform_blocked_with_a_symbolic_batch():
    def body(b, x):
        y = b.op("shape.layout_transform", x, src_layout="NCHW", dst_layout="NCHW16c")
        return b.op("shape.layout_transform", y, src_layout="NCHW16c", dst_layout="NHWC")

    g = graph_of([("x", (N, 32, 3, 2), F32)], body)
    check(g, data(2, 32, 3, 2))


def test_views_chain_fuses_into_one_kernel():
    def body(b, x):
        y = b.op("shape.unsqueeze", x, axes=[0, -1])
        y = b.op("shape.expand", y, shape=[3, -1, -1, 2])
        y = b.op("shape.permute", y, perm=[1, 3, 0, 2])
        y = b.op("shape.flatten", y, start=1, end=2)
        y = b.op("shape.repeat", y, repeats=[2, 1, 3])
        y = b.op("shape.flip", y, axes=[0, 2])
        return b.op("shape.stack", y, y, axis=1)

    g = graph_of([("x", (N, 4), F32)], body)
    check(g, data(3, 4))


def test_squeeze_symbolic():
    g = graph_of([("x", (1, N, 1), DType.bool)], lambda b, x: b.op(
        "shape.squeeze", x, axes=[0, 2]))
    check(g, data(1, 5, 1) > 0)


# -- linalg ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [DType.f16, DType.bf16])
@pytest.mark.parametrize("sa,sb", [((3, 16), (16, 5)), ((16,), (16,)), ((2, 1, 3, 16), (16,)),
                                   ((16,), (2, 16, 3))])
def test_matmul_low_precision_accumulates_in_f32(dtype, sa, sb):
    g = graph_of([("a", sa, dtype), ("b", sb, dtype)], lambda b, x, y: b.op(
        "linalg.matmul", x, y))
    check(g, data(*sa, dtype=dtype.numpy), data(*sb, dtype=dtype.numpy, seed=1), rtol=1e-2)


def test_matmul_symbolic_batch_broadcast():
    g = graph_of([("a", (N, 1, S, 8), F32), ("b", (4, 8, 6), F32)], lambda b, x, y: b.op(
        "linalg.matmul", x, y))
    check(g, data(2, 1, 3, 8), data(4, 8, 6, seed=1))


@pytest.mark.parametrize("dtype", [DType.f32, DType.bf16, DType.i64])
def test_linear_bias_is_fused_into_the_accumulator_write(dtype):
    g = graph_of([("x", (N, 8), dtype), ("w", (5, 8), dtype), ("bias", (5,), dtype)],
                 lambda b, x, w, bias: b.op("linalg.linear", x, w, bias))
    (func,) = lower_model(g, [list(g.nodes)]).funcs
    scratch = [s.buffer.name for s in walk(func.body) if isinstance(s, Allocate)
               and s.buffer.scope != "local"]
    assert scratch == [], f"the reduction was materialized: {scratch}\n{func}"
    np_type = dtype.numpy
    check(g, data(3, 8, dtype=np_type), data(5, 8, dtype=np_type, seed=1),
          data(5, dtype=np_type, seed=2), rtol=1e-2)


@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("...i,...i->...", [(2, 1, 4), (3, 4)]),
    ("ii->i", [(4, 4)]),
    ("bij->", [(2, 3, 4)]),
])
def test_einsum_forms(equation, shapes):
    g = graph_of([(f"x{k}", s, DType.f16) for k, s in enumerate(shapes)],
                 lambda b, *xs: b.op("linalg.einsum", *xs, equation=equation))
    check(g, *[data(*s, dtype=np.float16, seed=k) for k, s in enumerate(shapes)], rtol=1e-2)


# -- creation ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,value", [(DType.f16, 0.1), (DType.bf16, 0.1), (DType.u8, 300.0),
                                         (DType.i32, -2.5), (DType.bool, 2.0),
                                         (DType.i64, float(2**63))])
def test_full_converts_like_the_reference(dtype, value):
    def body(b, x):
        return (b.op("create.full", shape=[N, 2], value=value, dtype=dtype),
                b.op("create.full_like", x, value=value, dtype=dtype))

    g = graph_of([("x", (N,), F32)], body)
    check(g, data(3))


@pytest.mark.parametrize("dtype", [DType.f16, DType.bf16, DType.f64, DType.i32, DType.u8])
def test_arange_dtypes(dtype):
    step = 0.3 if dtype.is_float else 3.0
    g = graph_of([("x", (S,), F32)], lambda b, x: b.op(
        "create.arange", shape=[S], start=-2.0, step=step, dtype=dtype))
    check(g, data(7))


def test_bf16_pad_fill_rounds_like_the_reference():
    g = graph_of([("x", (3,), DType.bf16)], lambda b, x: b.op(
        "shape.pad", x, pads=[2, 1], value=0.1))
    check(g, data(3, dtype=ml_dtypes.bfloat16))


# -- the loop-nest interpreter agrees too --------------------------------------------------


@pytest.mark.parametrize("name", ["concat", "reflect", "blocked", "matmul_bf16"])
def test_loop_nest_interpreter_agrees(name):
    from dlc.interpreter import bind_symbols
    from dlc.ir.tensor.interpreter import run_func

    graphs = {
        "concat": ([("x", (2, N), F32), ("y", (2, 3), F32)],
                   lambda b, x, y: b.op("shape.concat", y, b.op("shape.flip", x, axes=[1]),
                                        axis=-1), (data(2, 4), data(2, 3, seed=1))),
        "reflect": ([("x", (N, 3), F32)],
                    lambda b, x: b.op("shape.pad", x, pads=[2, 1, 3, 2], mode="reflect"),
                    (data(4, 3),)),
        "blocked": ([("x", (1, 4, 2, 3, 4), F32)],
                    lambda b, x: b.op("shape.layout_transform", x, src_layout="NCHW4c",
                                      dst_layout="NHWC"), (data(1, 4, 2, 3, 4),)),
        "matmul_bf16": ([("a", (2, 3, 8), DType.bf16), ("b", (8, 5), DType.bf16)],
                        lambda b, x, y: b.op("linalg.matmul", x, y),
                        (data(2, 3, 8, dtype=ml_dtypes.bfloat16),
                         data(8, 5, dtype=ml_dtypes.bfloat16, seed=1))),
    }
    inputs, body, arrays = graphs[name]
    g = graph_of(inputs, body)
    model = lower_model(g, [list(g.nodes)])
    (group,) = model.groups
    want = run_graph(g, *arrays)
    bindings = bind_symbols(g, arrays)
    buffers = {model.names[v]: a for v, a in zip(g.inputs, arrays)}
    outs = [np.zeros_like(w) for w in want]
    buffers |= {model.names[v]: o for v, o in zip(group.outputs, outs)}
    run_func(group.func, buffers, bindings)
    assert_close(tuple(outs), tuple(want), rtol=1e-2)
