"""Elementwise ops: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.ops.cases import TorchCase, case_params, run_case


class Lambda(torch.nn.Module):
    """A module wrapping a function, so each case is one line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


CASES = [
    TorchCase("add", lambda: Lambda(lambda x, y: x + y), lambda: (randn(3, 4), randn(4, seed=1)),
              ops=("ew.add",)),
    TorchCase("sub_scalar", lambda: Lambda(lambda x: x - 2.5), lambda: (randn(3, 4),),
              ops=("ew.sub",)),
    TorchCase("mul_int", lambda: Lambda(lambda x, y: x * y),
              lambda: (torch.arange(6).reshape(2, 3), torch.arange(3)), ops=("ew.mul",),
              exact=True),
    TorchCase("exp", lambda: Lambda(torch.exp), lambda: (randn(2, 5),), ops=("ew.exp",)),
    TorchCase("relu", lambda: Lambda(torch.relu), lambda: (randn(2, 5),), ops=("ew.relu",)),
    TorchCase("cast", lambda: Lambda(lambda x: x.to(torch.int32)), lambda: (randn(2, 5) * 4,),
              ops=("ew.cast",), exact=True),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)
