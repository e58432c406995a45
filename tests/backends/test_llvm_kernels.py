"""The LLVM backend on single kernels: against the loop-nest interpreter and NumPy."""

from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llvmlite import ir

from dlc.backends.llvm.codegen import emit_kernel
from dlc.backends.llvm.jit import jit, optimize, prepare
from dlc.ir.dtypes import DType, bf16, f32, i64
from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
from dlc.ir.tensor.expr import call, cast, compare, const, floordiv, max_, min_, mod, select, var
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import For, PrimFunc, Store
from dlc.testing import assert_close


def run_jit(func: PrimFunc, arrays: list[np.ndarray], sizes: tuple[int, ...] = (),
            debug: bool = False) -> int:
    module = prepare(ir.Module("test"))
    emit_kernel(module, func, debug)
    compiled = jit(optimize(str(module)))
    fn = compiled.function(func.name, [ctypes.c_void_p] * len(arrays) + [ctypes.c_int64] *
                           len(sizes))
    return fn(*[a.ctypes.data for a in arrays], *sizes)


def test_matmul_epilogue_matches_numpy() -> None:
    a, b = placeholder((33, 17), f32, "A"), placeholder((17, 9), f32, "B")
    k = reduce_axis(17, "k")
    c = compute((33, 9), lambda i, j: reduce("sum", a[i, k] * b[k, j], [k]), "C")
    out = compute((33, 9), lambda i, j: call("tanh", max_(c[i, j], const(0.0))), "Out")
    func = lower_tensors("mm", [a, b], [out])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((33, 17), np.float32), rng.standard_normal((17, 9), np.float32)
    got = np.zeros((33, 9), np.float32)
    assert run_jit(func, [x, y, got]) == 0
    assert_close(got, np.tanh(np.maximum(x @ y, 0)), rtol=1e-5)


def test_integer_division_rounds_toward_negative_infinity() -> None:
    x = placeholder((8,), i64, "X")
    out = compute((8, 2), lambda i, j: select(compare("eq", j, const(0)), floordiv(x[i], 3),
                                              mod(x[i], 3)), "Out")
    func = lower_tensors("divmod", [x], [out])
    data = np.array([-7, -6, -1, 0, 1, 5, 6, 7], np.int64)
    got = np.zeros((8, 2), np.int64)
    run_jit(func, [data, got])
    assert got[:, 0].tolist() == (data // 3).tolist()
    assert got[:, 1].tolist() == (data % 3).tolist()


def test_bf16_loads_and_rounding_stores() -> None:
    x = placeholder((16,), bf16, "X")
    out = compute((16,), lambda i: x[i] * const(3.0, bf16), "Out")
    func = lower_tensors("bf16_scale", [x], [out])
    data = np.linspace(-2, 2, 16).astype(ml_dtypes.bfloat16)
    got = np.zeros(16, ml_dtypes.bfloat16)
    run_jit(func, [data, got])
    want = (data.astype(np.float32) * 3).astype(ml_dtypes.bfloat16)
    assert (got == want).all()


def test_symbolic_extent_is_a_kernel_parameter() -> None:
    n = var("N")
    x = placeholder((n, 4), f32, "X")
    out = compute((n, 4), lambda i, j: x[i, j] * 2.0 + 1.0, "Out")
    func = lower_tensors("scale", [x], [out])
    assert [s.name for s in func.sizes] == ["N"]
    data = np.arange(20, dtype=np.float32).reshape(5, 4)
    got = np.zeros((5, 4), np.float32)
    run_jit(func, [data, got], sizes=(5,))
    assert_close(got, data * 2 + 1)


def test_debug_mode_turns_an_out_of_bounds_store_into_a_status() -> None:
    out = placeholder((4,), f32, "Out")
    i = var("i")
    bad = PrimFunc("overrun", (out.buffer,), For(i, const(5), Store(out.buffer, (i,),
                                                                  const(1.0))))
    got = np.zeros(8, np.float32)  # room for the overrun, so only the check can catch it
    assert run_jit(bad, [got], debug=True) == 1
    assert run_jit(bad, [got], debug=False) == 0


UNARY = ["exp", "tanh", "sqrt", "abs", "floor", "sigmoid", "erf", "log1p", "round"]


@given(ops=st.lists(st.sampled_from(UNARY), min_size=1, max_size=3),
       scale=st.floats(0.1, 3.0), shift=st.floats(-2.0, 2.0))
def test_random_expressions_match_the_interpreter(ops: list[str], scale: float,
                                                  shift: float) -> None:
    x = placeholder((7, 3), f32, "X")

    def body(i, j):
        e = x[i, j] * const(scale) + const(shift)
        for name in ops:
            e = call(name, call("abs", e) if name in ("sqrt", "log1p") else e)
        return min_(e, const(1e6))

    func = lower_tensors("random_expr", [x], [compute((7, 3), body, "Out")])
    data = np.random.default_rng(3).standard_normal((7, 3)).astype(np.float32)
    want = np.zeros((7, 3), np.float32)
    run_func(func, {"X": data, "Out": want})
    got = np.zeros((7, 3), np.float32)
    run_jit(func, [data, got])
    assert_close(got, want, rtol=1e-5)


@pytest.mark.parametrize("dst", [DType.i32, DType.u8, DType.bool, DType.f64, DType.f16])
def test_casts_follow_c_semantics(dst: DType) -> None:
    x = placeholder((6,), f32, "X")
    out = compute((6,), lambda i: cast(x[i], dst), "Out")
    func = lower_tensors("cast", [x], [out])
    data = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 200.2], np.float32)
    if dst == DType.u8:
        data = np.abs(data)
    got = np.zeros(6, dst.numpy)
    run_jit(func, [data, got])
    assert_close(got, data.astype(dst.numpy), exact=dst != DType.f16)
