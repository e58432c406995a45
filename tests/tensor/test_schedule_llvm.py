"""Scheduled kernels through the LLVM backend, against the unscheduled kernel.

(The code generator may run parallel and vectorized loops serially; what is checked here
is that every scheduled form — guards, local tiles, packed copies, fused indices — is
emitted correctly.)
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from dlc.backends.llvm.codegen import emit_kernel
from dlc.backends.llvm.jit import jit, optimize, prepare
from dlc.ir.tensor.stmt import PrimFunc
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.testing import assert_close
from tests.tensor.test_schedule import matmul, schedule, softmax, symbolic_2d
from tests.tensor.test_schedule_properties import _step, kernels


def run_jit(func: PrimFunc, seed: int = 0, **sizes: int) -> list[np.ndarray]:
    """Compile `func` with debug bounds checks and run it on random inputs."""
    module = prepare(ir.Module("test"))
    emit_kernel(module, func, debug=True)
    compiled = jit(optimize(str(module)))
    fn = compiled.function(func.name, [ctypes.c_void_p] * len(func.params) +
                           [ctypes.c_int64] * len(func.sizes))
    rng = np.random.default_rng(seed)
    arrays = []
    for b in func.params:
        shape = tuple(int(d.value) if d.is_const else sizes[d.name] for d in b.shape)
        arrays.append(rng.standard_normal(shape).astype(b.dtype.numpy))
    outs = [k for k, b in enumerate(func.params) if b in func.outputs]
    for k in outs:
        arrays[k][...] = 0
    assert fn(*[a.ctypes.data for a in arrays], *(sizes[v.name] for v in func.sizes)) == 0
    return [arrays[k] for k in outs]


GEMM = """\
tile(i, j, 4, 8) -> i_o, j_o, i_i, j_i
cache_write(Out, j_o) -> Out_local
pack(B, "1/8,0,1%8") -> B_packed
split(k, 4) -> k_o, k_i
vectorize(j_i)
unroll(i_i)
unroll(k_i)
vectorize(j_i_init)
vectorize(j_i_wb)
parallel(i_o)"""


def test_gemm_register_tile_with_packed_weights() -> None:
    func = matmul(33, 17, 21, relu=True)
    sch = schedule(func, GEMM)
    assert_close(run_jit(sch.func), run_jit(func), rtol=1e-5)


def test_softmax_rows_fused_by_compute_at() -> None:
    func = softmax(7, 19)
    sch = schedule(func, "compute_at(Sum, i_2)\ncompute_at(Max, i_2)\nparallel(i_2)\n"
                         "split(j, 8) -> j_o, j_i\nvectorize(j_i)")
    assert_close(run_jit(sch.func), run_jit(func), rtol=1e-5)


def test_symbolic_extent_split_and_fuse() -> None:
    func = symbolic_2d(6)
    sch = schedule(func, "split(i, 4) -> i_o, i_i\nfuse(i_i, j) -> i_i_j_fused\n"
                         "parallel(i_o)")
    for n in (1, 5, 8, 13):
        assert_close(run_jit(sch.func, N=n), run_jit(func, N=n))


@pytest.mark.parametrize("factor", [1, 3, 64])
def test_split_factors_including_larger_than_the_extent(factor: int) -> None:
    func = matmul(5, 3, 6)
    sch = Schedule(func)
    sch.split("j", factor)
    assert_close(run_jit(sch.func), run_jit(func), rtol=1e-6)


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_random_schedules_compile_and_match(data: st.DataObject) -> None:
    func, sizes = data.draw(kernels())
    sch = Schedule(func)
    for _ in range(data.draw(st.integers(1, 6))):
        prim, args = _step(data.draw, sch)
        try:
            getattr(sch, prim)(*args)
        except ScheduleError:
            pass
    assert_close(run_jit(sch.func, **sizes), run_jit(func, **sizes), rtol=1e-5,
                 what=str(sch.trace))


def test_conv2d_output_channel_tile_with_packed_weights() -> None:
    from dlc.backends.llvm.executable import lower_model
    from dlc.ir import GraphBuilder, TensorType
    from dlc.ir.dtypes import DType

    b = GraphBuilder("g")
    x = b.input("x", TensorType((1, 3, 7, 6), DType.f32))
    w = b.input("w", TensorType((10, 3, 3, 3), DType.f32))
    bias = b.input("b", TensorType((10,), DType.f32))
    y = b.op("nn.conv2d", x, w, bias, stride=(1, 1), padding=(1, 1), dilation=(1, 1),
             groups=1, layout="NCHW")
    g = b.build([b.op("ew.relu", y)])
    (func,) = lower_model(g, [list(g.nodes)]).funcs
    out = func.outputs[0].name
    sch = Schedule(func)
    n, c, h, wl = sch.loops(out)
    c_o, c_i = sch.split(c, 4)
    sch.reorder(h, wl, c_i)
    tile = sch.cache_write(out, wl)
    sch.vectorize(c_i)
    packed = sch.pack("w", "0/4,1,2,3,0%4")
    sch.parallel(c_o)
    text = str(sch.func)
    assert f"{tile}: f32[4] local" in text and f"{packed}: f32[3, 3, 3, 3, 4] global" in text
    assert f"{packed}[{c_o}, " in text and f", {c_i}]" in text  # unit stride in the lanes
    assert_close(run_jit(sch.func), run_jit(func), rtol=1e-5)
