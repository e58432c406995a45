"""The LLVM backend on ONNX's N-d pools (`nn.max_pool_nd`, `nn.avg_pool_nd`).

Each graph is compiled with debug bounds checks, one kernel per node and all nodes in one
kernel, and compared with the op's NumPy reference: asymmetric begin/end pads, ceil mode,
dilations, count_include_pad both ways, 1-D to 3-D, max-pool indices in both storage
orders, integer and f64 inputs, and a relu fused into the pool's epilogue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlc.backends.llvm.executable import build
from dlc.ir import GraphBuilder, TensorType
from dlc.ir.dtypes import DType
from dlc.ops.registry import get_op
from dlc.testing import assert_close

# (input shape, kernel, strides, pads, dilations, ceil_mode)
SHAPES = [
    pytest.param((2, 3, 9), (3,), (2,), (0, 2), (1,), False, id="1d-asym"),
    pytest.param((1, 2, 10), (3,), (3,), (1, 0), (2,), True, id="1d-ceil-dil"),
    pytest.param((2, 3, 8, 7), (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), False, id="2d-end-pad"),
    pytest.param((1, 2, 9, 8), (3, 2), (2, 3), (1, 0, 2, 1), (1, 1), True, id="2d-ceil"),
    pytest.param((1, 3, 11, 10), (3, 3), (2, 1), (2, 1, 0, 2), (2, 3), True, id="2d-dil"),
    pytest.param((1, 2, 5, 6, 7), (2, 3, 2), (2, 2, 1), (0, 1, 1, 1, 0, 1), (1, 1, 2), True,
                 id="3d-ceil-dil"),
    pytest.param((2, 2, 4, 5, 6), (3, 2, 2), (1, 2, 2), (1, 0, 0, 2, 1, 0), (1, 1, 1), False,
                 id="3d-asym"),
]


def one_op(op: str, x: np.ndarray, **attrs: Any) -> Any:
    b = GraphBuilder(op.replace(".", "_"))
    v = b.input("x", TensorType(x.shape, DType.from_numpy(x.dtype)))
    out = b.op(op, v, **attrs)
    return b.build(list(out) if isinstance(out, tuple) else [out])


def check(graph: Any, x: np.ndarray, want: Any, rtol: float = 1e-5,
          exact: bool = False) -> None:
    want = tuple(want) if isinstance(want, tuple) else (want,)
    for groups in ([[n] for n in graph.nodes], [list(graph.nodes)]):
        got = build(graph, groups=groups, debug=True)(x)
        assert_close(tuple(got), want, rtol, exact, what=f"{len(groups)} kernels")


def data(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-50, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def nd_attrs(kernel: tuple, strides: tuple, pads: tuple, dilations: tuple,
             ceil_mode: bool) -> dict[str, Any]:
    return dict(kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                ceil_mode=ceil_mode)


@pytest.mark.parametrize("shape, kernel, strides, pads, dilations, ceil_mode", SHAPES)
def test_max_pool_nd(shape, kernel, strides, pads, dilations, ceil_mode) -> None:
    x = data(*shape)
    attrs = nd_attrs(kernel, strides, pads, dilations, ceil_mode)
    want = get_op("nn.max_pool_nd").reference(x, indices=False, storage_order=0, **attrs)
    check(one_op("nn.max_pool_nd", x, **attrs), x, want, exact=True)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape, kernel, strides, pads, dilations, ceil_mode", SHAPES)
def test_max_pool_nd_indices(shape, kernel, strides, pads, dilations, ceil_mode,
                             storage_order) -> None:
    x = data(*shape)
    attrs = nd_attrs(kernel, strides, pads, dilations, ceil_mode)
    want = get_op("nn.max_pool_nd").reference(x, indices=True, storage_order=storage_order,
                                              **attrs)
    graph = one_op("nn.max_pool_nd", x, indices=True, storage_order=storage_order, **attrs)
    check(graph, x, want, exact=True)


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("shape, kernel, strides, pads, dilations, ceil_mode", SHAPES)
def test_avg_pool_nd(shape, kernel, strides, pads, dilations, ceil_mode,
                     count_include_pad) -> None:
    x = data(*shape)
    attrs = nd_attrs(kernel, strides, pads, dilations, ceil_mode)
    want = get_op("nn.avg_pool_nd").reference(x, count_include_pad=count_include_pad, **attrs)
    graph = one_op("nn.avg_pool_nd", x, count_include_pad=count_include_pad, **attrs)
    check(graph, x, want)


def test_avg_pool_nd_pads_wider_than_the_kernel() -> None:
    """Windows entirely in the padding average to 0 (the divisor is at least 1)."""
    x = data(1, 2, 5, 4)
    for include in (False, True):
        attrs = dict(nd_attrs((2, 2), (3, 3), (4, 0, 3, 3), (1, 1), True),
                     count_include_pad=include)
        want = get_op("nn.avg_pool_nd").reference(x, **attrs)
        check(one_op("nn.avg_pool_nd", x, **attrs), x, want)


def test_max_pool_nd_integer_and_avg_f64() -> None:
    attrs = nd_attrs((3, 2), (2, 2), (1, 0, 1, 1), (1, 2), True)
    xi = data(2, 3, 7, 8, dtype=np.int32)
    want = get_op("nn.max_pool_nd").reference(xi, indices=True, storage_order=0, **attrs)
    check(one_op("nn.max_pool_nd", xi, indices=True, **attrs), xi, want, exact=True)
    xd = data(2, 3, 7, 8, dtype=np.float64)
    want = get_op("nn.avg_pool_nd").reference(xd, count_include_pad=True, **attrs)
    check(one_op("nn.avg_pool_nd", xd, count_include_pad=True, **attrs), xd, want,
          rtol=1e-12)


def test_pool_nd_relu_epilogue() -> None:
    x = data(2, 3, 9, 8)
    attrs = dict(nd_attrs((3, 3), (2, 2), (0, 1, 1, 0), (1, 1), True), count_include_pad=False)
    b = GraphBuilder("g")
    v = b.input("x", TensorType(x.shape, DType.f32))
    graph = b.build([b.op("ew.relu", b.op("nn.avg_pool_nd", v, **attrs))])
    want = np.maximum(get_op("nn.avg_pool_nd").reference(x, **attrs), 0)
    check(graph, x, want)
