"""Creation ops: the interpreter against PyTorch, including the factories that diffusion
timestep embeddings and rotary position embeddings export to."""

from __future__ import annotations

import math

import pytest
import torch
from torch.export import Dim

from dlc.errors import IRError
from dlc.ir import GraphBuilder
from dlc.ir.dtypes import DType
from tests.ops.cases import TorchCase, case_params, run_case
from tests.ops.test_shape import Fn, N, bools, ints, randn


class TimestepEmbedding(torch.nn.Module):
    """The sinusoidal timestep embedding of diffusion models (DDPM / Stable Diffusion)."""

    def __init__(self, dim: int = 16, max_period: float = 10000.0):
        super().__init__()
        self.dim, self.max_period = dim, max_period

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.max_period)
                          * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Rotary(torch.nn.Module):
    """Rotary position embedding (RoPE) applied to x [B, S, D], positions from arange(S)."""

    def forward(self, x):
        s, d = x.shape[1], x.shape[2]
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        t = torch.arange(s, device=x.device).type_as(inv)
        freqs = torch.outer(t, inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()


def _causal_mask(x):
    n = x.shape[0]
    mask = torch.full((n, n), float("-inf")).triu(1)
    return x[:, :1] + mask


T = TorchCase
CASES = [
    # arange
    T("arange_int64", lambda: Fn(lambda x: torch.arange(2, 11, 3) + x), lambda: (ints(3),),
      ops=("create.arange",), exact=True),
    T("arange_float", lambda: Fn(lambda x: torch.arange(0, 1, 0.125) * x),
      lambda: (randn(8),), ops=("create.arange",)),
    T("arange_negative_step", lambda: Fn(lambda x: torch.arange(5, -4, -2.5) + x),
      lambda: (randn(4),), ops=("create.arange",)),
    T("arange_dtype", lambda: Fn(lambda x: torch.arange(6, dtype=torch.int32) + x),
      lambda: (torch.ones(6, dtype=torch.int32),), ops=("create.arange",), exact=True),
    T("arange_dynamic", lambda: Fn(lambda x: torch.arange(x.shape[0])),
      lambda: (randn(5, 2),), ops=("create.arange",), exact=True,
      dynamic_shapes=({0: N},)),
    T("arange_symbolic_start", lambda: Fn(lambda x, y: torch.arange(x.shape[0],
                                                                    x.shape[0] + y.shape[0])),
      lambda: (randn(4), randn(3)), ops=("create.arange", "shape.slice"), exact=True,
      dynamic_shapes=({0: Dim("P")}, {0: Dim("S")})),
    # full and its spellings
    T("full", lambda: Fn(lambda x: torch.full((2, 3), 1.5) + x), lambda: (randn(2, 3),),
      ops=("create.full",)),
    T("full_bool", lambda: Fn(lambda x: torch.full((2, 3), True) & x),
      lambda: (bools(2, 3),), ops=("create.full",), exact=True),
    T("zeros_ones_int64", lambda: Fn(lambda x: torch.ones(3, dtype=torch.int64) * 5
                                     + torch.zeros(1, dtype=torch.int64) + x),
      lambda: (ints(3),), ops=("create.full",), exact=True),
    T("full_int64_max", lambda: Fn(lambda x: torch.full((2,), torch.iinfo(torch.int64).max)
                                   - x * 0),
      lambda: (ints(2),), ops=("create.full",), exact=True),
    T("empty_then_fill", lambda: Fn(lambda x: torch.empty(3).fill_(2.0) * x),
      lambda: (randn(3),), ops=("create.full", "create.full_like")),
    T("new_zeros_ones", lambda: Fn(lambda x: x.new_zeros(2, 3) + x.new_ones(3) + x),
      lambda: (randn(2, 3),), ops=("create.full",)),
    T("full_dynamic", lambda: Fn(lambda x: torch.ones(x.shape[0], 1) + x),
      lambda: (randn(4, 3),), ops=("create.full",), dynamic_shapes=({0: N},),
),
    T("causal_mask_dynamic", lambda: Fn(_causal_mask), lambda: (randn(5, 3),),
      ops=("create.full",), dynamic_shapes=({0: N},)),
    # *_like
    T("zeros_like_dynamic", lambda: Fn(lambda x: torch.zeros_like(x) + x * 2),
      lambda: (randn(4, 3),), ops=("create.full_like",), dynamic_shapes=({0: N},)),
    T("ones_like_bool", lambda: Fn(lambda x: torch.ones_like(x, dtype=torch.bool)),
      lambda: (randn(4, 3),), ops=("create.full_like",), exact=True),
    T("full_like_int64", lambda: Fn(lambda x: torch.full_like(x, 7, dtype=torch.int64)),
      lambda: (randn(2, 5),), ops=("create.full_like",), exact=True),
    # what embeddings export to
    T("timestep_embedding", TimestepEmbedding, lambda: (torch.tensor([1.0, 10.0, 250.0]),),
      ops=("create.arange", "shape.concat", "shape.unsqueeze"), rtol=1e-4),
    T("timestep_embedding_dynamic", TimestepEmbedding,
      lambda: (torch.tensor([0, 10, 500, 999]),),
      ops=("create.arange", "shape.concat", "shape.unsqueeze"), rtol=1e-4,
      dynamic_shapes=({0: N},)),
    T("rotary", Rotary, lambda: (randn(2, 5, 8),),
      ops=("create.arange", "shape.concat", "shape.slice"), rtol=1e-4),
    T("rotary_dynamic", Rotary, lambda: (randn(2, 5, 8),),
      ops=("create.arange", "shape.concat", "shape.slice", "shape.reshape"), rtol=1e-4,
      dynamic_shapes=({1: Dim("S")},)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_arange_rejects_bool_and_fractional_int_steps():
    b = GraphBuilder("g")
    with pytest.raises(IRError):
        b.op("create.arange", shape=[4], start=0.0, step=1.0, dtype=DType.bool)
    with pytest.raises(IRError):
        b.op("create.arange", shape=[4], start=0.0, step=0.5, dtype=DType.i64)
