"""Vectorized loops in the LLVM backend: lanes as LLVM vectors, checked before -O3 runs.

LLVM's own loop vectorizer turns scalar loops into `<16 x float>` code at -O3 on this
CPU, so the IR checks read dlc's emitted text, before `optimize`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

from dlc.backends.llvm.codegen import CodegenError
from dlc.ir.dtypes import DType, bf16, f32, i32, i64
from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
from dlc.ir.tensor.expr import (
    Expr,
    call,
    cast,
    compare,
    const,
    floordiv,
    max_,
    min_,
    mod,
    ramp,
    select,
    var,
)
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import (
    Allocate,
    Buffer,
    For,
    IfThenElse,
    LoopKind,
    PrimFunc,
    Store,
    seq,
)
from dlc.testing import assert_close
from tests.backends.test_llvm_parallel import emit_text, run_text, with_kinds

V = LoopKind.VECTORIZED


def rows_kernel(name: str, inputs: list[Buffer], out: Buffer,
                value: Callable[[Expr, Expr], Expr], lanes: int = 16) -> PrimFunc:
    """for i in 0..rows { for j in 0..lanes vectorized { Out[i, j] = value(i, j) } }"""
    i, j = var("i"), var("j")
    body = For(i, out.shape[0], For(j, const(lanes), Store(out, (i, j), value(i, j)), V))
    return PrimFunc(name, (*inputs, out), body)


def check(func: PrimFunc, arrays: dict[str, np.ndarray], rtol: float = 1e-6,
          debug: bool = False) -> str:
    """Run `func` JIT-ed and in the interpreter; return dlc's IR text."""
    text = emit_text(func, debug)
    want = {k: v.copy() for k, v in arrays.items()}
    run_func(func, want)
    got = {k: v.copy() for k, v in arrays.items()}
    assert run_text(text, func, [got[b.name] for b in func.params]) == 0
    for b in func.outputs or func.params[-1:]:
        if b.dtype.is_float:
            assert_close(got[b.name].astype(np.float32), want[b.name].astype(np.float32),
                         rtol=rtol)
        else:
            assert got[b.name].tolist() == want[b.name].tolist()
    return text


def rng_array(shape: tuple[int, ...], dtype: object = np.float32, seed: int = 0
              ) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_vectorized_gemm_emits_vector_fma_before_llvm_optimizes() -> None:
    a, b, c = Buffer("A", (8, 16), f32), Buffer("B", (16, 32), f32), Buffer("C", (8, 32), f32)
    i, jo, ji, k = var("i"), var("jo"), var("ji"), var("k")
    j = jo * 16 + ji
    update = Store(c, (i, j), c[i, j] + a[i, k] * b[k, j])
    body = For(i, const(8), For(jo, const(2), For(k, const(16), For(ji, const(16), update, V))),
               LoopKind.PARALLEL)
    func = PrimFunc("gemm", (a, b, c), body)
    arrays = {"A": rng_array((8, 16)), "B": rng_array((16, 32), seed=1),
              "C": np.zeros((8, 32), np.float32)}
    text = check(func, arrays, rtol=1e-5)
    assert "<16 x float>" in text
    assert re.search(r'call .*<16 x float> @"?llvm\.fmuladd\.v16f32"?\(', text)
    assert re.search(r'load <16 x float>, ptr %"?B\.ptr"?, align 4', text)  # B[k, j]
    assert re.search(r'store <16 x float> %"?fma"?', text)
    assert 'shufflevector <16 x float>' in text  # A[i, k] is splat
    assert "llvm.masked.gather" not in text


def test_contiguous_broadcast_and_strided_loads() -> None:
    x, s, t = Buffer("X", (3, 16), f32), Buffer("S", (3,), f32), Buffer("T", (16, 3), f32)
    out = Buffer("Out", (3, 16), f32)
    func = rows_kernel("mix", [x, s, t], out, lambda i, j: x[i, j] * s[i] - t[j, i])
    text = check(func, {"X": rng_array((3, 16)), "S": rng_array((3,), seed=1),
                        "T": rng_array((16, 3), seed=2), "Out": np.zeros((3, 16), np.float32)})
    assert re.search(r'load <16 x float>, ptr %"?X\.ptr"?', text)  # contiguous
    assert re.search(r'load float, ptr %"?S\.ptr"?', text)  # invariant: scalar + splat
    assert re.search(r'@"?llvm\.masked\.gather\.v16f32\.v16p0"?\(<16 x ptr> align 4', text)


def test_strided_store_becomes_a_scatter() -> None:
    x, out = Buffer("X", (4, 8), f32), Buffer("Out", (8, 4), f32)
    i, j = var("i"), var("j")
    func = PrimFunc("transpose", (x, out),
                    For(i, const(4), For(j, const(8), Store(out, (j, i), x[i, j]), V)))
    text = check(func, {"X": rng_array((4, 8)), "Out": np.zeros((8, 4), np.float32)})
    assert "llvm.masked.scatter.v8f32.v8p0" in text


def test_selects_comparisons_casts_and_min_max() -> None:
    x, out = Buffer("X", (2, 16), f32), Buffer("Out", (2, 16), f32)
    flags = Buffer("Flags", (2, 16), DType.bool)

    def value(i: Expr, j: Expr) -> Expr:
        v = x[i, j]
        as_int = cast(v * 4.0, i32)  # truncates toward zero
        back = cast(as_int, f32) + cast(j, f32)
        return select(compare("gt", v, 0.0), max_(back, v), min_(call("abs", v), 0.5))

    func = rows_kernel("sel", [x], out, value)
    text = check(func, {"X": rng_array((2, 16)), "Out": np.zeros((2, 16), np.float32)})
    assert "fcmp ogt <16 x float>" in text
    assert re.search(r"select\s+<16 x i1>", text)
    assert "fptosi <16 x float>" in text and "sitofp <16 x i64>" in text
    assert "llvm.maximum.v16f32" in text and "llvm.fabs.v16f32" in text
    mask = rows_kernel("flags", [x], flags, lambda i, j: compare("lt", x[i, j], 0.0))
    data = rng_array((2, 16))
    check(mask, {"X": data, "Flags": np.zeros((2, 16), np.bool_)})


def test_math_intrinsics_vector_and_per_lane() -> None:
    x, out = Buffer("X", (2, 16), f32), Buffer("Out", (2, 16), f32)

    def value(i: Expr, j: Expr) -> Expr:
        v = x[i, j]
        return (call("exp", v) + call("erf", v) * call("sigmoid", v) +
                call("atan2", v, 1.5) - call("rsqrt", call("abs", v) + 1.0))

    func = rows_kernel("math", [x], out, value)
    text = check(func, {"X": rng_array((2, 16)), "Out": np.zeros((2, 16), np.float32)},
                 rtol=1e-5)
    assert "llvm.sqrt.v16f32" in text and "llvm.exp" not in text  # exp, erf: vmath.py
    assert text.count("call float @\"atan2f\"") == 16  # libm: one call per lane
    assert "extractelement <16 x float>" in text


def test_integer_ops_pow_floordiv_and_mod() -> None:
    x, out = Buffer("X", (2, 8), i64), Buffer("Out", (2, 8), i64)

    def value(i: Expr, j: Expr) -> Expr:
        v = x[i, j]
        return floordiv(v, 3) + mod(v, const(-4)) * 100 + call("pow", v, j % 3) * 10000

    func = rows_kernel("ints", [x], out, value, lanes=8)
    data = np.arange(-8, 8, dtype=np.int64).reshape(2, 8)
    text = check(func, {"X": data, "Out": np.zeros((2, 8), np.int64)})
    assert "sdiv <8 x i64>" in text


def test_bf16_vector_loads_and_rounding_stores() -> None:
    x, out = Buffer("X", (1, 16), bf16), Buffer("Out", (1, 16), bf16)
    func = rows_kernel("bf", [x], out, lambda i, j: x[i, j] * const(3.0, bf16))
    data = np.linspace(-2, 2, 16).astype(ml_dtypes.bfloat16).reshape(1, 16)
    got = np.zeros((1, 16), ml_dtypes.bfloat16)
    text = emit_text(func)
    assert run_text(text, func, [data, got]) == 0
    want = (data.astype(np.float32) * 3).astype(ml_dtypes.bfloat16)
    assert (got == want).all()
    assert "load <16 x i16>" in text and "store <16 x i16>" in text


def tail_kernel(n: Expr, debug_shift: int = 0) -> PrimFunc:
    """for jo in 0..ceil(N/16) { for ji in 0..16 vectorized {
         if jo*16 + ji < N { Out[j] = 1000 // D[j] + X[j + shift] * 2 } } }"""
    x, d, out = Buffer("X", (n,), f32), Buffer("D", (n,), i64), Buffer("Out", (n,), f32)
    jo, ji = var("jo"), var("ji")
    j = jo * 16 + ji
    value = cast(floordiv(const(1000), d[j]), f32) + x[j + debug_shift] * 2.0
    guarded = IfThenElse(compare("lt", j, n), Store(out, (j,), value))
    body = For(jo, floordiv(n + 15, 16), For(ji, const(16), guarded, V))
    return PrimFunc("tail", (x, d, out), body, sizes=(n,))


@pytest.mark.parametrize("debug", [False, True])
def test_a_per_lane_if_masks_loads_and_stores(debug: bool) -> None:
    n = 37
    func = tail_kernel(var("N"))
    text = emit_text(func, debug)
    assert "llvm.masked.load.v16f32.p0" in text and "llvm.masked.store.v16f32.p0" in text
    # masked lanes read 0 from D: the division must not trap on them
    x, d = rng_array((n,)), np.arange(1, n + 1, dtype=np.int64)
    got = np.full(n + 16, -7.0, np.float32)  # room past the end: must stay untouched
    assert run_text(text, func, [x, d, got], (n,)) == 0
    assert_close(got[:n], (1000 // d).astype(np.float32) + x * 2)
    assert (got[n:] == -7.0).all()


def test_debug_bounds_check_of_vector_lanes() -> None:
    func = tail_kernel(var("N"), debug_shift=1)  # X[j + 1] is outside in the last lane
    n = 32
    x, d = rng_array((n,)), np.ones(n, np.int64)
    text = emit_text(func, debug=True)
    assert "llvm.vector.reduce.and.v16i1" in text
    assert run_text(text, func, [x, d, np.zeros(n, np.float32)], (n,)) == 1


def test_ramp_indices_inside_a_vectorized_loop() -> None:
    x, out = Buffer("X", (32,), f32), Buffer("Out", (32,), f32)
    jo, ji = var("jo"), var("ji")
    lanes = ramp(jo * 16, 1, 16)
    body = For(jo, const(2), For(ji, const(16), Store(out, (lanes,), x[lanes] + 1.0), V))
    func = PrimFunc("ramps", (x, out), body)  # the interpreter has no lanes: NumPy
    text = emit_text(func)
    data, got = rng_array((32,)), np.zeros(32, np.float32)
    assert run_text(text, func, [data, got]) == 0
    assert_close(got, data + 1)
    assert "load <16 x float>" in text and "store <16 x float>" in text


def test_reduction_across_lanes_is_refused() -> None:
    a, b = placeholder((4, 16), f32, "A"), placeholder((16, 3), f32, "B")
    k = reduce_axis(16, "k")
    c = compute((4, 3), lambda i, j: reduce("sum", a[i, k] * b[k, j], [k]), "C",
                axis_names=["i", "j"])
    func = with_kinds(lower_tensors("mm", [a, b], [c]), {"k": V})
    with pytest.raises(CodegenError, match="reduction across lanes"):
        emit_text(func)


def test_vectorizing_a_spatial_loop_of_a_reduction() -> None:
    # j vectorized, the accumulator is per (i, j): a store at C[i, j] in every k step
    a, b, c = Buffer("A", (4, 16), f32), Buffer("B", (16, 16), f32), Buffer("C", (4, 16), f32)
    i, j, k = var("i"), var("j"), var("k")
    body = For(i, const(4), For(j, const(16), Store(c, (i, j), const(0.0)), V))
    acc = For(i, const(4), For(k, const(16), For(j, const(16), Store(
        c, (i, j), c[i, j] + a[i, k] * b[k, j]), V)))
    func = PrimFunc("mm", (a, b, c), seq(body, acc))
    check(func, {"A": rng_array((4, 16)), "B": rng_array((16, 16), seed=3),
                 "C": np.full((4, 16), 5.0, np.float32)}, rtol=1e-5)


def test_symbolic_extent_stays_a_loop_with_a_vectorize_hint() -> None:
    n = var("N")
    x, out, j = Buffer("X", (n,), f32), Buffer("Out", (n,), f32), var("j")
    func = PrimFunc("sym", (x, out), For(j, n, Store(out, (j,), x[j] * 3.0), V), sizes=(n,))
    text = emit_text(func)
    assert '!"llvm.loop.vectorize.enable"' in text and "<16 x float>" not in text
    data = rng_array((21,))
    got = np.zeros(21, np.float32)
    assert run_text(text, func, [data, got], (21,)) == 0
    assert_close(got, data * 3)


def test_lowered_elementwise_kernel_with_vectorized_inner_axis() -> None:
    x = placeholder((5, 16), f32, "X")
    b = placeholder((16,), f32, "Bias")
    out = compute((5, 16), lambda i, j: call("tanh", x[i, j] + b[j]) * cast(i, f32), "Out",
                  axis_names=["i", "j"])
    func = with_kinds(lower_tensors("ew", [x, b], [out]),
                      {"i": LoopKind.PARALLEL, "j": V})
    text = check(func, {"X": rng_array((5, 16)), "Bias": rng_array((16,), seed=4),
                        "Out": np.zeros((5, 16), np.float32)}, rtol=1e-5)
    assert "llvm.fmuladd.v16f32" in text and "llvm.tanh" not in text  # inline (vmath.py)
    assert "GOMP_parallel" in text


def test_lanes_of_i32_and_narrow_vectors() -> None:
    x, out = Buffer("X", (3, 4), i32), Buffer("Out", (3, 4), f32)
    func = rows_kernel("narrow", [x], out, lambda i, j: cast(x[i, j] * 3, f32) / 2.0, lanes=4)
    data = np.arange(12, dtype=np.int32).reshape(3, 4)
    text = check(func, {"X": data, "Out": np.zeros((3, 4), np.float32)})
    assert "load <4 x i32>" in text


def test_vector_accesses_to_a_local_register_tile() -> None:
    # the cache_write pattern: a stack tile, zeroed, accumulated and written back in lanes
    a, b, c = Buffer("A", (4, 8), f32), Buffer("B", (8, 16), f32), Buffer("C", (4, 16), f32)
    tile = Buffer("T", (16,), f32, "local")
    i, j, k = var("i"), var("j"), var("k")
    body = seq(For(j, const(16), Store(tile, (j,), const(0.0)), V),
               For(k, const(8), For(j, const(16), Store(tile, (j,), tile[j] + a[i, k] * b[k, j]),
                                    V)),
               For(j, const(16), Store(c, (i, j), tile[j]), V))
    func = PrimFunc("tile", (a, b, c), For(i, const(4), Allocate(tile, body)))
    text = check(func, {"A": rng_array((4, 8)), "B": rng_array((8, 16), seed=5),
                        "C": np.zeros((4, 16), np.float32)}, rtol=1e-5)
    assert re.search(r'store <16 x float> %"?fma"?, ptr %"?T\.ptr', text)
