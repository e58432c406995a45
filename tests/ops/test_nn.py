"""Convolution and pooling ops: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from tests.ops.cases import TorchCase, case_params, run_case


class Lambda(nn.Module):
    """A module wrapping a function, so each case is one line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def randn(*shape, seed=0, dtype=torch.float32):
    """A seeded standard-normal tensor."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def seeded(factory, seed=0):
    """A module built under a fixed seed, so its parameters are the same every run."""
    torch.manual_seed(seed)
    return factory()


def conv_case(id, factory, shape, ops, **kw):
    """A case applying a seeded module to one random input of `shape`."""
    return TorchCase(id, lambda: seeded(factory), lambda: (randn(*shape),), ops=ops, **kw)


C2, C1 = ("nn.conv2d",), ("nn.conv1d",)
CT2, CT1 = ("nn.conv_transpose2d",), ("nn.conv_transpose1d",)
MP, AP = ("nn.max_pool2d",), ("nn.avg_pool2d",)

CASES = [
    # -- convolution ---------------------------------------------------------------------
    conv_case("conv2d", lambda: nn.Conv2d(3, 8, 3), (2, 3, 10, 12), C2),
    conv_case("conv2d_stride_pad", lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1),
              (2, 3, 11, 12), C2),
    conv_case("conv2d_rect_kernel_mixed", lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1),
                                                             padding=(1, 0), dilation=(1, 2)),
              (1, 4, 9, 10), C2),
    conv_case("conv2d_dilation", lambda: nn.Conv2d(3, 4, 3, padding=2, dilation=2),
              (1, 3, 9, 9), C2),
    conv_case("conv2d_groups", lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1),
              (2, 4, 8, 8), C2),
    conv_case("conv2d_depthwise", lambda: nn.Conv2d(6, 6, 3, groups=6, padding=1, stride=2),
              (2, 6, 9, 9), C2),
    conv_case("conv2d_no_bias", lambda: nn.Conv2d(3, 5, 1, bias=False), (2, 3, 7, 7), C2),
    conv_case("conv2d_same_padding", lambda: nn.Conv2d(3, 4, 3, padding="same"),
              (1, 3, 8, 8), C2),
    conv_case("conv2d_dynamic_batch", lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1),
              (3, 3, 16, 16), C2, dynamic_shapes=({0: Dim("N")},)),
    conv_case("conv1d", lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
              (2, 4, 17), C1),
    conv_case("conv1d_no_bias", lambda: nn.Conv1d(3, 5, 5, bias=False), (2, 3, 12), C1),
    conv_case("conv_transpose2d", lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1,
                                                             output_padding=1),
              (2, 4, 5, 6), CT2),
    conv_case("conv_transpose2d_groups_dilation",
              lambda: nn.ConvTranspose2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 0),
                                         dilation=(2, 1), groups=2, bias=False),
              (1, 4, 6, 5), CT2),
    conv_case("conv_transpose2d_out_pad_exceeds_pad",
              lambda: nn.ConvTranspose2d(2, 2, 2, stride=3, output_padding=2),
              (1, 2, 4, 4), CT2),
    conv_case("conv_transpose1d", lambda: nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1),
              (2, 3, 9), CT1),
    # -- pooling -------------------------------------------------------------------------
    TorchCase("max_pool2d", lambda: Lambda(lambda x: F.max_pool2d(x, 2)),
              lambda: (randn(2, 3, 8, 10),), ops=MP),
    TorchCase("max_pool2d_stride_pad", lambda: Lambda(lambda x: F.max_pool2d(x, 3, 2, 1)),
              lambda: (randn(2, 3, 9, 10),), ops=MP),
    TorchCase("max_pool2d_dilation", lambda: Lambda(lambda x: F.max_pool2d(x, 3, 1, 1, 2)),
              lambda: (randn(1, 2, 9, 9),), ops=MP),
    TorchCase("max_pool2d_ceil_mode", lambda: Lambda(lambda x: F.max_pool2d(
        x, 3, 2, 1, ceil_mode=True)), lambda: (randn(1, 2, 10, 9),), ops=MP),
    TorchCase("max_pool2d_ceil_mode_window_dropped", lambda: Lambda(lambda x: F.max_pool2d(
        x, 2, 2, 1, ceil_mode=True)), lambda: (randn(1, 2, 6, 7),), ops=MP),
    TorchCase("max_pool2d_unbatched", lambda: Lambda(lambda x: F.max_pool2d(x, (2, 3))),
              lambda: (randn(3, 8, 9),), ops=MP),
    TorchCase("max_pool1d", lambda: Lambda(lambda x: F.max_pool1d(x, 3, 2, 1)),
              lambda: (randn(2, 3, 11),), ops=MP),
    TorchCase("avg_pool2d", lambda: Lambda(lambda x: F.avg_pool2d(x, 2)),
              lambda: (randn(2, 3, 8, 10),), ops=AP),
    TorchCase("avg_pool2d_pad_include", lambda: Lambda(lambda x: F.avg_pool2d(x, 3, 2, 1)),
              lambda: (randn(2, 3, 9, 10),), ops=AP),
    TorchCase("avg_pool2d_pad_exclude", lambda: Lambda(lambda x: F.avg_pool2d(
        x, 3, 2, 1, count_include_pad=False)), lambda: (randn(2, 3, 9, 10),), ops=AP),
    TorchCase("avg_pool2d_ceil_mode", lambda: Lambda(lambda x: F.avg_pool2d(
        x, 3, 2, 1, ceil_mode=True)), lambda: (randn(1, 2, 10, 9),), ops=AP),
    TorchCase("avg_pool2d_ceil_exclude", lambda: Lambda(lambda x: F.avg_pool2d(
        x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        lambda: (randn(1, 2, 10, 9),), ops=AP),
    TorchCase("avg_pool2d_divisor_override", lambda: Lambda(lambda x: F.avg_pool2d(
        x, 3, 2, 1, divisor_override=4)), lambda: (randn(1, 2, 9, 9),), ops=AP),
    TorchCase("avg_pool1d", lambda: Lambda(lambda x: F.avg_pool1d(x, 4, 3)),
              lambda: (randn(2, 3, 14),), ops=AP),
    TorchCase("adaptive_avg_pool2d", lambda: Lambda(lambda x: F.adaptive_avg_pool2d(x, (5, 3))),
              lambda: (randn(2, 3, 11, 8),), ops=("nn.adaptive_avg_pool2d",)),
    TorchCase("adaptive_avg_pool2d_upsample",
              lambda: Lambda(lambda x: F.adaptive_avg_pool2d(x, (7, 6))),
              lambda: (randn(2, 3, 4, 5),), ops=("nn.adaptive_avg_pool2d",)),
    TorchCase("adaptive_avg_pool2d_unbatched",
              lambda: Lambda(lambda x: F.adaptive_avg_pool2d(x, (3, 4))),
              lambda: (randn(3, 9, 10),), ops=("nn.adaptive_avg_pool2d",)),
    TorchCase("adaptive_avg_pool1d", lambda: Lambda(lambda x: F.adaptive_avg_pool1d(x, 5)),
              lambda: (randn(2, 3, 13),), ops=("nn.adaptive_avg_pool2d",)),
    TorchCase("adaptive_max_pool2d", lambda: Lambda(lambda x: F.adaptive_max_pool2d(x, (4, 3))),
              lambda: (randn(2, 3, 10, 7),), ops=("nn.adaptive_max_pool2d",)),
    TorchCase("adaptive_max_pool1d", lambda: Lambda(lambda x: F.adaptive_max_pool1d(x, 4)),
              lambda: (randn(2, 3, 9),), ops=("nn.adaptive_max_pool2d",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_conv_pool_keep_symbolic_sizes():
    """A symbolic batch and image size flow through conv and pools: the type rules agree
    with torch's (the converters check) and print as expressions."""
    from dlc.frontends.torch import import_module
    from dlc.interpreter import run_graph

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return F.avg_pool2d(F.max_pool2d(self.conv(x), 3, 2, 1), 2)

    net = seeded(Net).eval()
    x = randn(2, 3, 20, 20)
    dims = ({0: Dim("N"), 2: Dim("H", min=16), 3: Dim("W", min=16)},)
    graph = import_module(net, (x,), dynamic_shapes=dims)
    out_type = graph.outputs[0].type
    assert out_type.symbols == {"N", "H", "W"}, out_type
    for shape in [(3, 3, 17, 22), (1, 3, 16, 19)]:
        xs = randn(*shape, seed=1)
        got = run_graph(graph, xs.numpy())[0]
        with torch.no_grad():
            want = net(xs).numpy()
        assert got.shape == want.shape
        assert abs(got - want).max() <= 1e-5 * abs(want).max()


def test_conv_reference_handles_channels_last():
    """The layout attribute: an NHWC conv and pool equal the NCHW ones transposed."""
    import numpy as np

    from dlc.ops import get_op

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    conv = get_op("nn.conv2d")
    attrs = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 1), groups=2)
    nchw = conv.reference(x, w, layout="NCHW", **attrs)
    nhwc = conv.reference(x.transpose(0, 2, 3, 1), w, layout="NHWC", **attrs)
    np.testing.assert_allclose(nhwc.transpose(0, 3, 1, 2), nchw, rtol=1e-6)
    pool = get_op("nn.max_pool2d")
    pattrs = dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=True)
    np.testing.assert_array_equal(
        pool.reference(x.transpose(0, 2, 3, 1), layout="NHWC", **pattrs).transpose(0, 3, 1, 2),
        pool.reference(x, layout="NCHW", **pattrs))


def test_symbolic_pool_size_matches_integer_formula():
    """torch guards instead of exporting a symbolic ceil_mode size, so check the closed
    form `min(ceil(L/s) + 1, ceil((H + p)/s))` against the integer rule directly."""
    from dlc.ir.symbolic import evaluate, symbol
    from dlc.ops.nn_pool import pool_out_size

    h = symbol("H")
    for k, s, p, d in [(3, 2, 1, 1), (2, 2, 1, 1), (3, 3, 1, 2), (2, 1, 0, 1), (4, 3, 2, 1)]:
        expr = pool_out_size(h, k, s, p, d, ceil_mode=True)
        for size in range(d * (k - 1) + 1, 40):
            assert evaluate(expr, {"H": size}) == pool_out_size(size, k, s, p, d, True), \
                (k, s, p, d, size, expr)
