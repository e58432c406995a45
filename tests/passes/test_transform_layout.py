"""transform-layout: convs and pools channels-last, with transforms only at the edges."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.errors import DLCError
from dlc.ir import DType, GraphBuilder, TensorType
from dlc.passes import PassContext, make_pass
from tests.passes.helpers import assert_same_results

RNG = np.random.default_rng(11)


def arr(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def resnet_stem():  # type: ignore[no-untyped-def]
    b = GraphBuilder("stem")
    x = b.input("x", TensorType((1, 3, 8, 8), DType.f32))
    y = b.op("nn.conv2d", x, b.const(arr(4, 3, 3, 3)), b.const(arr(4)), padding=[1, 1])
    y = b.op("nn.batch_norm", y, b.const(arr(4)), b.const(arr(4)), b.const(arr(4)),
             b.const(np.abs(arr(4)) + 0.5))
    y = b.op("ew.relu", y)
    y = b.op("nn.max_pool2d", y, kernel=[2, 2], stride=[2, 2])
    z = b.op("nn.conv2d", y, b.const(arr(4, 4, 3, 3)), padding=[1, 1])
    z = b.op("ew.add", z, b.const(arr(1, 4, 1, 1)))
    z = b.op("ew.add", z, y)
    z = b.op("ew.relu", z)
    z = b.op("nn.adaptive_avg_pool2d", z, output_size=[1, 1])
    z = b.op("shape.flatten", z, start=1)
    return b.build([z])


def test_a_stem_runs_channels_last_with_two_transforms() -> None:
    graph = resnet_stem()
    ctx = PassContext()
    out = make_pass("transform-layout", layout="NHWC").run(graph, ctx)
    assert_same_results(graph, out)
    ops = [n.op.name for n in out.nodes]
    assert ops.count("shape.layout_transform") == 2
    assert ops[0] == "shape.layout_transform" and ops[-2] == "shape.layout_transform"
    layouts = {n.attrs["layout"] for n in out.nodes if "layout" in n.attrs}
    assert layouts == {"NHWC"}
    bn = next(n for n in out.nodes if n.op.name == "nn.batch_norm")
    assert bn.attrs["axis"] == 3


def test_back_to_nchw_and_idempotent() -> None:
    graph = resnet_stem()
    nhwc = make_pass("transform-layout", layout="NHWC")(graph)
    again = make_pass("transform-layout", layout="NHWC")(nhwc)
    assert str(again) == str(nhwc)
    nchw = make_pass("transform-layout", layout="NCHW")(nhwc)
    assert_same_results(graph, nchw)
    assert {n.attrs["layout"] for n in nchw.nodes if "layout" in n.attrs} == {"NCHW"}
    assert not any(n.op.name == "shape.layout_transform" for n in nchw.nodes)


def test_an_unknown_layout_is_an_error() -> None:
    with pytest.raises(DLCError, match="layout must be NHWC or NCHW"):
        make_pass("transform-layout", layout="NCHW16c")(resnet_stem())


def test_a_model_where_transforms_would_stay_inside_keeps_its_layout() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((1, 4, 6, 6), DType.f32))
    y = b.op("nn.conv2d", x, b.const(arr(4, 4, 3, 3)), padding=[1, 1])
    y = b.op("nn.group_norm", y, num_groups=2)  # a reduction: transforms stop here
    y = b.op("nn.conv2d", y, b.const(arr(4, 4, 3, 3)), padding=[1, 1])
    graph = b.build([y])
    ctx = PassContext()
    assert make_pass("transform-layout", layout="NHWC").run(graph, ctx) is graph
    assert "kept the graph's layouts" in str(ctx.notes()[0]) and not ctx.rule_firings()
    out = make_pass("transform-layout", layout="NHWC", max_inner_transforms=2)(graph)
    assert [n.op.name for n in out.nodes].count("shape.layout_transform") == 4
    assert_same_results(graph, out)
