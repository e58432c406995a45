"""reparameterize: RepVGG / MobileOne branches become one conv."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.ir import DType, GraphBuilder, TensorType
from dlc.passes import PassContext, make_pass, run_pipeline
from tests.passes.helpers import assert_same_results

RNG = np.random.default_rng(5)


def arr(*shape: int, positive: bool = False) -> np.ndarray:
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def bn(b: GraphBuilder, x, c: int, axis: int = 1):  # type: ignore[no-untyped-def]
    params = [b.const(arr(c)), b.const(arr(c)), b.const(arr(c)), b.const(arr(c, positive=True))]
    return b.op("nn.batch_norm", x, *params, axis=axis)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_mobileone_block_becomes_one_conv(groups: int, layout: str) -> None:
    """3x3 conv + BN, 1x1 conv + BN and a BN skip, summed: one conv after O2's passes."""
    b = GraphBuilder("block")
    c = 4
    shape = (2, c, 6, 6) if layout == "NCHW" else (2, 6, 6, c)
    axis = 1 if layout == "NCHW" else -1
    x = b.input("x", TensorType(shape, DType.f32))
    k3 = b.op("nn.conv2d", x, b.const(arr(c, c // groups, 3, 3), "rbr_dense.weight"),
              padding=[1, 1], groups=groups, layout=layout)
    k1 = b.op("nn.conv2d", x, b.const(arr(c, c // groups, 1, 1), "rbr_1x1.weight"),
              groups=groups, layout=layout)
    s = b.op("ew.add", bn(b, k3, c, axis), bn(b, k1, c, axis))
    s = b.op("ew.add", s, bn(b, x, c, axis))
    graph = b.build([b.op("ew.relu", s)])
    ctx = PassContext()
    out = run_pipeline(graph, 2, disable=["fuse", "transform_layout"], ctx=ctx)
    assert [n.op.name for n in out.nodes] == ["nn.conv2d", "ew.relu"]
    assert out.nodes[0].inputs[1].name == "rbr_dense.weight_rep"
    assert_same_results(graph, out, rtol=1e-5)
    assert len(ctx.rule_firings("reparameterize")) == 2


def test_repvgg_identity_branch_and_bias() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((1, 3, 5, 5), DType.f32))
    k3 = b.op("nn.conv2d", x, b.const(arr(3, 3, 3, 3)), b.const(arr(3)), padding=[1, 1])
    y = b.op("ew.add", x, k3)
    graph = b.build([y])
    out = make_pass("reparameterize")(graph)
    assert [n.op.name for n in out.nodes] == ["nn.conv2d"]
    assert_same_results(graph, out)


def test_branches_that_do_not_line_up_stay() -> None:
    # Strided 3x3 (padding 1) and 2x2 (padding 0) convs give the same 3x3 output, but the
    # 2x2 window is not centred in the 3x3 one: no single kernel computes their sum.
    b = GraphBuilder("f")
    x = b.input("x", TensorType((1, 3, 6, 6), DType.f32))
    k3 = b.op("nn.conv2d", x, b.const(arr(4, 3, 3, 3)), padding=[1, 1], stride=[2, 2])
    k2 = b.op("nn.conv2d", x, b.const(arr(4, 3, 2, 2)), stride=[2, 2])
    # And a dilated pair is left alone.
    d3 = b.op("nn.conv2d", x, b.const(arr(4, 3, 3, 3)), padding=[2, 2], dilation=[2, 2])
    d1 = b.op("nn.conv2d", x, b.const(arr(4, 3, 1, 1)))
    graph = b.build([b.op("ew.add", k3, k2), b.op("ew.add", d3, d1)])
    ctx = PassContext()
    out = make_pass("reparameterize").run(graph, ctx)
    assert out is graph and not ctx.rule_firings()
    # With a centred 1x1 instead of the 2x2, the strided pair merges.
    b = GraphBuilder("f")
    x = b.input("x", TensorType((1, 3, 6, 6), DType.f32))
    k3 = b.op("nn.conv2d", x, b.const(arr(4, 3, 3, 3)), padding=[1, 1], stride=[2, 2])
    k1 = b.op("nn.conv2d", x, b.const(arr(4, 3, 1, 1)), stride=[2, 2])
    graph = b.build([b.op("ew.add", k1, k3)])
    out = make_pass("reparameterize")(graph)
    assert [n.op.name for n in out.nodes] == ["nn.conv2d"]
    assert_same_results(graph, out)


def test_a_branch_read_elsewhere_is_not_merged() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((1, 3, 5, 5), DType.f32))
    k3 = b.op("nn.conv2d", x, b.const(arr(3, 3, 3, 3)), padding=[1, 1])
    k1 = b.op("nn.conv2d", x, b.const(arr(3, 3, 1, 1)))
    graph = b.build([b.op("ew.add", k3, k1), k1])
    assert make_pass("reparameterize")(graph) is graph
