"""The `schedule` pass: default rules per nest shape, checked on dlc's own LLVM IR.

LLVM's -O3 auto-vectorizer would hide a missing `vectorize`, so these read the IR dlc
emits *before* LLVM optimizes it (the `llvm` stage).
"""

from __future__ import annotations

import re

import numpy as np
import torch

import dlc
from dlc.testing import assert_close


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(48, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def check(model: torch.nn.Module, x: torch.Tensor, **options) -> dlc.CompiledModel:
    compiled = dlc.compile(model, (x,), target="llvm", **options)
    with torch.no_grad():
        want = model(x).numpy()
    assert_close(compiled(x), want, rtol=1e-5)
    return compiled


def test_gemm_group_has_vector_fmas_and_a_parallel_loop() -> None:
    compiled = check(Linear(), torch.randn(40, 48))
    llvm = compiled.show("llvm")
    assert "<16 x float>" in llvm
    assert "llvm.fmuladd.v16f32" in llvm
    assert re.search(r'call void @"?GOMP_parallel', llvm)
    trace = compiled.show("tensor", schedule=True)
    assert "cache_write(" in trace and "vectorize(" in trace and "parallel(" in trace


def test_conv_group_has_vector_fmas_and_a_parallel_loop() -> None:
    compiled = check(Conv(), torch.randn(1, 8, 20, 20))
    llvm = compiled.show("llvm")
    assert "llvm.fmuladd.v16f32" in llvm
    assert re.search(r'call void @"?GOMP_parallel', llvm)


def test_disabling_schedule_leaves_naive_loops() -> None:
    compiled = check(Linear(), torch.randn(40, 48), disable=["schedule"])
    assert "GOMP_parallel" not in compiled.show("llvm")
    assert "<16 x float>" not in compiled.show("llvm")
    assert "(not scheduled)" in compiled.show("tensor", schedule=True)


def test_opt_level_zero_does_not_schedule() -> None:
    compiled = check(Conv(), torch.randn(1, 8, 10, 10), opt_level=0)
    assert "GOMP_parallel" not in compiled.show("llvm")


def test_thread_count_does_not_change_results() -> None:
    x = torch.randn(33, 48)
    compiled = check(Linear(), x)
    dlc.set_num_threads(1)
    one = compiled(x)
    dlc.set_num_threads(2)
    two = compiled(x)
    assert np.array_equal(one, two)
