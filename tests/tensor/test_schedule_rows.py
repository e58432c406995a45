"""Row reductions: rfactor, and the rules for norms, softmax and means (schedule_rows).

The scheduled kernels are checked on the trace the rules record, on the LLVM IR dlc emits
before LLVM optimizes it (so LLVM's own vectorizer cannot hide a missing vector loop), and
numerically against torch or the unscheduled kernel.
"""

from __future__ import annotations

import re

import pytest
import torch

import dlc
from dlc.ir.tensor.expr import var
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.testing import assert_close
from tests.tensor.test_schedule import body_text, row_sum, run, softmax, symbolic_2d
from tests.tensor.test_schedule_llvm import run_jit

# -- the primitive ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 16, 37, 300])
def test_rfactor_vectorized_rows_through_llvm(n: int) -> None:
    """Partials in vector lanes, a masked tail, then the combine: softmax's max and sum."""
    func = softmax(7, n)
    sch = Schedule(func)
    for loop in ("r", "r_1"):
        _, lane, _ = sch.rfactor(loop, 16)
        sch.vectorize(lane)
        sch.vectorize(f"{lane}_init")
    assert_close(run_jit(sch.func), run_jit(func), rtol=1e-5)


def test_rfactor_of_a_symbolic_row() -> None:
    from dlc.ir.dtypes import f32
    from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
    from dlc.ir.tensor.lower import lower_tensors

    n = var("N")
    x = placeholder((3, n), f32, "X")
    r = reduce_axis(n, "r")
    s = compute((3,), lambda i: reduce("sum", x[i, r], [r]), "S", axis_names=("i",))
    func = lower_tensors("row_sum_n", [x], [s])
    sch = Schedule(func)
    _, lane, _ = sch.rfactor("r", 8)
    sch.vectorize(lane)
    assert "if r_o * 8 + r_i < N {" in body_text(sch.func)
    for size in (1, 8, 13):
        assert_close(run_jit(sch.func, N=size), run_jit(func, N=size), rtol=1e-5)


@pytest.mark.parametrize("kernel, loop, reason", [
    (row_sum, "i", "not an innermost loop"),
    (symbolic_2d, "j", r"`B\[i, j\] = A\[i, j\] \* 3.0` is not an update `acc = acc op x`"),
    (row_sum, "r_x", "no loop named"),
])
def test_rfactor_refusals_say_why(kernel, loop: str, reason: str) -> None:
    sch = Schedule(kernel())
    with pytest.raises(ScheduleError, match=reason):
        sch.rfactor(loop, 4)
    assert len(sch.trace) == 0


def test_rfactor_refuses_an_accumulator_indexed_inside_the_reduction() -> None:
    from tests.tensor.test_schedule import matmul

    sch = Schedule(matmul(2, 4, 4))
    sch.cache_write("C", "i")  # C_local[j] += ... inside k: one accumulator per j
    sch.split("j", 2)
    with pytest.raises(ScheduleError, match="rfactor"):
        sch.rfactor("j_i", 2)


def test_rfactor_then_the_combine_keeps_max_semantics() -> None:
    func = softmax(3, 9)
    sch = Schedule(func)
    sch.rfactor("r", 4)
    text = body_text(sch.func)
    assert "Max_acc_rf[r_i_init] = -inf" in text
    assert "Max_acc[0] = max(Max_acc[0], Max_acc_rf[r_i_red])" in text
    assert_close(run(sch.func)["Out"], run(func)["Out"], rtol=1e-6)


# -- the rules on whole models ---------------------------------------------------------------


class Norms(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gn = torch.nn.GroupNorm(4, 16)
        self.ln = torch.nn.LayerNorm(40)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rms = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)
        return (torch.nn.functional.silu(self.gn(x)), self.ln(y), torch.softmax(y * 0.5, -1),
                rms, x.mean((2, 3)),
                torch.log_softmax(x, 1))  # over C of NCHW: rows are not contiguous


def compiled_norms(threads: int = 2) -> tuple[dlc.CompiledModel, tuple, tuple]:
    torch.manual_seed(0)
    model = Norms().eval()
    inputs = (torch.randn(2, 16, 12, 20), torch.randn(3, 50, 40))
    dlc.set_num_threads(threads)
    compiled = dlc.compile(model, inputs, target="llvm")
    with torch.no_grad():
        want = tuple(t.numpy() for t in model(*inputs))
    return compiled, inputs, want


def test_norm_softmax_and_mean_kernels_match_torch() -> None:
    compiled, inputs, want = compiled_norms()
    assert_close(compiled(*inputs), want, rtol=1e-5)


def test_norm_statistics_move_into_one_parallel_row_loop() -> None:
    compiled, _, _ = compiled_norms()
    tensor = compiled.show("tensor", schedule=True)
    kernels = tensor.split("# schedule:")
    group_norm = next(k for k in kernels if "nn.group_norm" in k)
    assert "ew.silu" in group_norm  # the activation is fused in as the epilogue
    # the channel loop is split by the group size, so a group's statistics are computed once
    assert re.search(r"split\(\w+, 4\) -> ", group_norm)
    assert group_norm.count("compute_at(") == 2 and group_norm.count("rfactor(") == 2
    assert group_norm.count("parallel for") == 1
    layer_norm = next(k for k in kernels if "nn.layer_norm" in k)
    assert layer_norm.count("compute_at(") == 2 and layer_norm.count("vectorized for") == 5
    softmax_kernel = next(k for k in kernels if "nn.softmax" in k)
    assert softmax_kernel.count("rfactor(") == 2
    # a softmax over C of NCHW: computing its statistics per (n, h, w) inside the loop
    # over c would repeat them for every c, so they keep their own nests
    over_c = next(k for k in kernels if "nn.log_softmax" in k)
    assert "compute_at(" not in over_c and "rfactor(" not in over_c


def test_row_reductions_are_vector_loops_in_dlc_ir() -> None:
    compiled, _, _ = compiled_norms()
    llvm = compiled.show("llvm")
    # the partial sums of a row: a vector add of a <N x float> accumulator
    assert re.search(r"fadd [a-z ]*<(16|32) x float>", llvm)
    assert "llvm.masked.load" in llvm  # rows of 40 and 50 end in a masked tail
