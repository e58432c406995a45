"""fold-batchnorm: conv/linear + batch norm becomes one layer with new weights."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.ir import DType, GraphBuilder, TensorType
from dlc.ir.graph import Graph
from dlc.passes import PassContext, make_pass
from tests.passes.helpers import assert_same_results

RNG = np.random.default_rng(3)


def arr(*shape: int, positive: bool = False) -> np.ndarray:
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.1 if positive else a


def bn_consts(b: GraphBuilder, c: int) -> list:
    return [b.const(arr(c)), b.const(arr(c)), b.const(arr(c)), b.const(arr(c, positive=True))]


def fold(graph: Graph) -> tuple[Graph, PassContext]:
    ctx = PassContext()
    out = make_pass("fold-batchnorm").run(graph, ctx)
    assert_same_results(graph, out, rtol=1e-5)
    return out, ctx


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv2d_then_batch_norm(bias: bool, layout: str) -> None:
    b = GraphBuilder("f")
    shape = (2, 3, 6, 6) if layout == "NCHW" else (2, 6, 6, 3)
    x = b.input("x", TensorType(shape, DType.f32))
    operands = [x, b.const(arr(4, 3, 3, 3), "conv1.weight")]
    if bias:
        operands.append(b.const(arr(4), "conv1.bias"))
    y = b.op("nn.conv2d", *operands, padding=[1, 1], layout=layout)
    z = b.op("nn.batch_norm", y, *bn_consts(b, 4), eps=1e-3, axis=1 if layout == "NCHW" else -1)
    out, ctx = fold(b.build([b.op("ew.relu", z)]))
    assert [n.op.name for n in out.nodes] == ["nn.conv2d", "ew.relu"]
    assert out.nodes[0].inputs[1].name == "conv1.weight_bn"
    assert len(ctx.rule_firings()) == 1


def test_conv1d_and_linear() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2, 3, 10), DType.f32))
    y = b.op("nn.conv1d", x, b.const(arr(5, 3, 3)), b.const(arr(5)))
    y = b.op("nn.batch_norm", y, *bn_consts(b, 5))
    f = b.op("shape.flatten", y, start=1)
    h = b.op("linalg.linear", f, b.const(arr(7, 40)))
    h = b.op("nn.batch_norm", h, *bn_consts(b, 7))
    out, _ = fold(b.build([h]))
    assert [n.op.name for n in out.nodes] == ["nn.conv1d", "shape.flatten", "linalg.linear"]


def test_not_folded_when_the_layer_has_other_readers_or_the_axis_differs() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2, 3, 4, 4), DType.f32))
    y = b.op("nn.conv2d", x, b.const(arr(4, 3, 1, 1)))
    z = b.op("nn.batch_norm", y, *bn_consts(b, 4))
    shared = b.build([z, y])
    out, ctx = fold(shared)
    assert out is shared and not ctx.rule_firings()

    b = GraphBuilder("f")
    x = b.input("x", TensorType((2, 4, 4, 4), DType.f32))
    y = b.op("nn.conv2d", x, b.const(arr(4, 4, 1, 1)))  # NCHW: channels on axis 1
    z = b.op("nn.batch_norm", y, *bn_consts(b, 4), axis=3)
    other_axis = b.build([z])
    out, _ = fold(other_axis)
    assert out is other_axis


def test_not_folded_with_run_time_statistics() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2, 3, 4, 4), DType.f32))
    mean = b.input("mean", TensorType((4,), DType.f32))
    y = b.op("nn.conv2d", x, b.const(arr(4, 3, 1, 1)))
    c = bn_consts(b, 4)
    z = b.op("nn.batch_norm", y, c[0], c[1], mean, c[3])
    g = b.build([z])
    out, _ = fold(g)
    assert out is g
