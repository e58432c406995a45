"""Normalization and softmax ops: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from tests.ops.cases import TorchCase, case_params, run_case
from tests.ops.test_nn import Lambda, randn, seeded


def batch_norm(cls, c, **kw):
    """A BatchNorm with non-trivial running statistics and affine parameters."""

    def build():
        bn = cls(c, **kw)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(c))
            bn.running_var.copy_(torch.rand(c) + 0.5)
            if bn.affine:
                bn.weight.copy_(torch.randn(c))
                bn.bias.copy_(torch.randn(c))
        return bn

    return lambda: seeded(build)


def affine(module):
    """A norm module whose weight and bias are random rather than ones and zeros."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape))
    return module


def norm_case(id, factory, shape, ops, **kw):
    """A case applying a seeded module to one random input of `shape`."""
    return TorchCase(id, lambda: seeded(factory), lambda: (randn(*shape),), ops=ops, **kw)


BN, LN, GN = ("nn.batch_norm",), ("nn.layer_norm",), ("nn.group_norm",)
IN, RMS = ("nn.instance_norm",), ("nn.rms_norm",)

CASES = [
    TorchCase("batch_norm2d", batch_norm(nn.BatchNorm2d, 4), lambda: (randn(2, 4, 5, 6),),
              ops=BN),
    TorchCase("batch_norm2d_no_affine", batch_norm(nn.BatchNorm2d, 3, affine=False),
              lambda: (randn(2, 3, 5, 5),), ops=BN),
    TorchCase("batch_norm1d_3d", batch_norm(nn.BatchNorm1d, 4, eps=1e-3),
              lambda: (randn(2, 4, 7),), ops=BN),
    TorchCase("batch_norm1d_2d", batch_norm(nn.BatchNorm1d, 5), lambda: (randn(3, 5),),
              ops=BN),
    norm_case("layer_norm", lambda: affine(nn.LayerNorm(16)), (2, 5, 16), LN),
    norm_case("layer_norm_2axes", lambda: affine(nn.LayerNorm((5, 6), eps=1e-3)),
              (2, 3, 5, 6), LN),
    norm_case("layer_norm_no_affine", lambda: nn.LayerNorm(8, elementwise_affine=False),
              (4, 8), LN),
    norm_case("layer_norm_no_bias", lambda: affine(nn.LayerNorm(8, bias=False)), (3, 8), LN),
    TorchCase("layer_norm_bias_only", lambda: Lambda(lambda x: F.layer_norm(
        x, (8,), bias=torch.linspace(-1, 1, 8))), lambda: (randn(3, 8),), ops=LN),
    norm_case("layer_norm_dynamic_batch", lambda: affine(nn.LayerNorm(16)), (3, 16), LN,
              dynamic_shapes=({0: Dim("N")},)),
    norm_case("group_norm", lambda: affine(nn.GroupNorm(2, 6)), (2, 6, 4, 5), GN),
    norm_case("group_norm_one_group", lambda: affine(nn.GroupNorm(1, 4, eps=1e-3)),
              (2, 4, 7), GN),
    norm_case("group_norm_no_affine", lambda: nn.GroupNorm(3, 6, affine=False), (2, 6, 3, 3),
              GN),
    norm_case("instance_norm2d", lambda: affine(nn.InstanceNorm2d(3, affine=True)),
              (2, 3, 6, 7), IN),
    norm_case("instance_norm1d_no_affine", lambda: nn.InstanceNorm1d(4), (2, 4, 9), IN),
    TorchCase("instance_norm_running_stats",
              batch_norm(nn.InstanceNorm2d, 3, track_running_stats=True, affine=True),
              lambda: (randn(2, 3, 4, 4),), ops=BN),
    norm_case("rms_norm", lambda: affine(nn.RMSNorm(16)), (2, 5, 16), RMS),
    norm_case("rms_norm_2axes_eps", lambda: affine(nn.RMSNorm((4, 8), eps=1e-3)),
              (2, 4, 8), RMS),
    TorchCase("rms_norm_no_weight", lambda: Lambda(lambda x: F.rms_norm(x, (8,))),
              lambda: (randn(3, 8),), ops=RMS),
    TorchCase("softmax", lambda: Lambda(lambda x: F.softmax(x, dim=-1)),
              lambda: (randn(2, 3, 7) * 4,), ops=("nn.softmax",)),
    TorchCase("softmax_axis1", lambda: Lambda(lambda x: torch.softmax(x, 1)),
              lambda: (randn(2, 5, 3),), ops=("nn.softmax",)),
    TorchCase("softmax_f16_to_f32", lambda: Lambda(lambda x: F.softmax(x, -1,
                                                                       dtype=torch.float32)),
              lambda: (randn(3, 8, dtype=torch.float16),), ops=("nn.softmax",)),
    TorchCase("log_softmax", lambda: Lambda(lambda x: F.log_softmax(x, dim=-1)),
              lambda: (randn(2, 3, 7) * 4,), ops=("nn.log_softmax",)),
    TorchCase("log_softmax_axis0", lambda: Lambda(lambda x: F.log_softmax(x, dim=0)),
              lambda: (randn(6, 3),), ops=("nn.log_softmax",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_layer_norm_keeps_symbolic_batch():
    """A dynamic batch stays the symbol N through layer_norm."""
    from dlc.frontends.torch import import_module

    graph = import_module(seeded(lambda: nn.LayerNorm(8)), (randn(3, 8),),
                          dynamic_shapes=({0: Dim("N")},))
    assert str(graph.outputs[0].type) == "f32[N, 8]"
