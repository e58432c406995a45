"""Inline f32 math (backends/llvm/vmath.py) through the real backend, against float64.

Each function runs in a `<16 x float>` vectorized loop and in a scalar loop (which LLVM's
loop vectorizer widens itself), with exp's 2^n built by `llvm.ldexp` (one `vscalefps` on
AVX-512) and by hand in the exponent bits. Errors are in ulps of the float32 result;
subnormal results are held to an absolute bound instead.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dlc
from dlc.backends.llvm import vmath
from dlc.backends.llvm.jit import JITModule, jit, optimize
from dlc.ir.dtypes import DType, f32
from dlc.ir.tensor.expr import call, const, var
from dlc.ir.tensor.stmt import Buffer, For, LoopKind, PrimFunc, Store
from tests.backends.test_llvm_parallel import emit_text

ROWS, LANES = 512, 16
N = ROWS * LANES  # elements per kernel call
TINY = float(np.finfo(np.float32).tiny)  # 2^-126, the smallest normal float32
_erf = np.vectorize(math.erf, otypes=[np.float64])

# name: (float64 reference, largest error in ulps, range where the function is not flat)
FUNCTIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float, tuple[float, float]]] = {
    "exp": (np.exp, 1.5, (-105.0, 90.0)),
    "exp2": (np.exp2, 1.5, (-152.0, 130.0)),
    "expm1": (np.expm1, 2.0, (-20.0, 90.0)),
    "log": (np.log, 1.5, (0.0, 20.0)),
    "log1p": (np.log1p, 2.0, (-1.0, 20.0)),
    "tanh": (np.tanh, 3.0, (-10.0, 10.0)),
    "erf": (_erf, 3.0, (-4.5, 4.5)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), 3.0, (-90.0, 20.0)),  # codegen's 1/(1+exp(-x))
}
PATHS = ["vector", "scalar"]


def kernel(name: str, vector: bool) -> PrimFunc:
    """for i in 0..ROWS { for j in 0..16 [vectorized] { Out[i, j] = name(X[i, j]) } }"""
    x, out = Buffer("X", (ROWS, LANES), f32), Buffer("Out", (ROWS, LANES), f32)
    i, j = var("i"), var("j")
    kind = LoopKind.VECTORIZED if vector else LoopKind.SERIAL
    inner = For(j, const(LANES), Store(out, (i, j), call(name, x[i, j])), kind)
    return PrimFunc(f"vm_{name}", (x, out), For(i, const(ROWS), inner))


@functools.cache
def compiled(name: str, vector: bool, scalef: bool) -> tuple[JITModule, Callable[..., int]]:
    """The kernel JIT-ed once per (function, path, scaling); the module owns the code."""
    before = vmath.host_has_avx512
    vmath.host_has_avx512 = lambda: scalef  # type: ignore[assignment]
    try:
        text = emit_text(kernel(name, vector))
    finally:
        vmath.host_has_avx512 = before  # type: ignore[method-assign]
    module = jit(optimize(text))
    return module, module.function(f"vm_{name}", [ctypes.c_void_p] * 2)


def run(name: str, x: np.ndarray, path: str = "vector", scalef: bool = True) -> np.ndarray:
    """`name` applied to float32 `x` (any length) by the compiled kernel."""
    _, fn = compiled(name, path == "vector", scalef)
    out = np.empty(0, np.float32)
    for start in range(0, max(x.size, 1), N):
        chunk = np.zeros(N, np.float32)
        part = x[start:start + N]
        chunk[:part.size] = part
        got = np.zeros(N, np.float32)
        assert fn(chunk.ctypes.data, got.ctypes.data) == 0
        out = np.concatenate([out, got[:part.size]])
    return out


def check_accuracy(name: str, x: np.ndarray, got: np.ndarray) -> None:
    """NaN and infinities where float64 rounded to float32 has them; elsewhere at most the
    function's ulp budget, or 2^-149 absolute on subnormal results (sigmoid flushes
    results below 2^-126 to 0, as torch and the op reference do)."""
    reference, ulps, _ = FUNCTIONS[name]
    with np.errstate(all="ignore"):
        want = reference(x.astype(np.float64))
        want32 = want.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want32), err_msg=f"{name}: NaNs")
    inf = np.isinf(want32)
    np.testing.assert_array_equal(got[inf], want32[inf], err_msg=f"{name}: infinities")
    normal = np.isfinite(want32) & (np.abs(want32) >= TINY)
    err = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want32[normal]))
    if err.size:
        k = int(np.argmax(err))
        assert err[k] <= ulps, (f"{name}({x[normal][k]!r}) = {got[normal][k]!r}, "
                                f"want {want[normal][k]!r}: {err[k]:.2f} ulp > {ulps}")
    sub = np.isfinite(want32) & ~normal
    bound = TINY if name == "sigmoid" else 2.0 ** -149
    assert np.all(np.abs(got[sub] - want[sub]) <= bound), f"{name}: subnormal results"


def wide_inputs(name: str, seed: int = 0) -> np.ndarray:
    """Random bit patterns (every float32 class, NaN and infinities included), uniform
    points where the function varies, and small magnitudes down to 1e-30."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2 ** 32, 3 * N, dtype=np.uint64).astype(np.uint32).view(np.float32)
    lo, hi = FUNCTIONS[name][2]
    dense = rng.uniform(lo, hi, 3 * N).astype(np.float32)
    small = (rng.uniform(-1, 1, N) * 10.0 ** rng.integers(-30, 1, N)).astype(np.float32)
    return np.concatenate([bits, dense, small])


# -- accuracy ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_matches_float64_over_the_whole_float_range(name: str, path: str) -> None:
    x = wide_inputs(name)
    check_accuracy(name, x, run(name, x, path))


@pytest.mark.parametrize("name", ["exp", "erf", "sigmoid"])
def test_exponent_bits_scaling_matches_scalef(name: str) -> None:
    """Without AVX-512, 2^n is built by hand in two steps: same accuracy, same specials."""
    x = wide_inputs(name, seed=1)
    got = run(name, x, scalef=False)
    check_accuracy(name, x, got)
    np.testing.assert_array_equal(got, run(name, x, scalef=True))


def test_exp_goes_through_the_subnormals_to_zero() -> None:
    """2^n is applied with one rounding, so subnormal results stay within 1 ulp (2^-149)
    instead of flushing to 0 below 2^-126."""
    x = np.linspace(-104.0, -87.0, 3 * N, dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    for scalef in (True, False):
        err = np.abs(run("exp", x, scalef=scalef) - want).max()
        assert err <= 2.0 ** -149, f"scalef={scalef}: {err / 2.0 ** -149:.2f} ulp"


def test_erf_absolute_error_is_below_2e_7() -> None:
    x = np.linspace(-6.0, 6.0, 6 * N, dtype=np.float32)
    assert np.abs(run("erf", x) - _erf(x.astype(np.float64))).max() < 2e-7


@given(st.lists(st.floats(width=32), min_size=1, max_size=2 * LANES),
       st.sampled_from(sorted(FUNCTIONS)))
def test_any_float32_vector_and_scalar_paths_agree_bitwise(values: list[float], name: str
                                                           ) -> None:
    """One code path serves both: the scalar loop vectorized by LLVM computes the same
    bits as dlc's vector loop, and both are within budget."""
    x = np.array(values, np.float32)
    got = run(name, x)
    check_accuracy(name, x, got)
    np.testing.assert_array_equal(got.view(np.uint32), run(name, x, "scalar").view(np.uint32))


# -- special values -----------------------------------------------------------------------

INF, NAN = math.inf, math.nan
SPECIAL = {  # name: [(x, exactly this, signed zeros included)]
    "exp": [(-INF, 0.0), (INF, INF), (0.0, 1.0), (-0.0, 1.0), (88.7229, INF), (1000.0, INF),
            (-103.98, 0.0), (-1000.0, 0.0)],
    "exp2": [(-INF, 0.0), (INF, INF), (10.0, 1024.0), (-149.0, 2.0 ** -149), (-126.0, TINY),
             (127.0, 2.0 ** 127), (128.0, INF), (-151.0, 0.0), (0.5, math.sqrt(2))],
    "expm1": [(-INF, -1.0), (INF, INF), (0.0, 0.0), (-0.0, -0.0), (1e-30, 1e-30),
              (-1e-45, -1e-45), (-30.0, -1.0), (100.0, INF)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (1.0, 0.0),
            (1e-45, math.log(2.0 ** -149)), (TINY, math.log(TINY)), (math.e, 1.0)],
    "log1p": [(-1.0, -INF), (-2.0, NAN), (INF, INF), (0.0, 0.0), (-0.0, -0.0),
              (1e-30, 1e-30), (3.4e38, math.log1p(3.4e38))],
    "tanh": [(INF, 1.0), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0), (10.0, 1.0), (-9.1, -1.0),
             (1e30, 1.0), (1e-40, 1e-40), (-1e-30, -1e-30)],
    "erf": [(INF, 1.0), (-INF, -1.0), (0.0, 0.0), (-0.0, -0.0), (4.0, 1.0), (-3.95, -1.0),
            (1e30, 1.0), (1e-30, 1e-30 * 2 / math.sqrt(math.pi))],
    "sigmoid": [(INF, 1.0), (-INF, 0.0), (0.0, 0.5), (-200.0, 0.0), (30.0, 1.0)],
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", SPECIAL)
def test_special_values(name: str, path: str) -> None:
    x = np.array([v for v, _ in SPECIAL[name]] + [NAN, -NAN], np.float32)
    want = np.array([w for _, w in SPECIAL[name]] + [NAN, NAN], np.float32)
    got = run(name, x, path)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | np.isnan(got) & np.isnan(want)
    assert same.all(), f"{name}{tuple(x[~same])} = {tuple(got[~same])}, want {tuple(want[~same])}"


# -- what gets emitted -------------------------------------------------------------------

def test_vector_loop_has_no_libm_calls_and_f64_keeps_them() -> None:
    text = emit_text(kernel("erf", vector=True)) + emit_text(kernel("tanh", vector=True))
    assert "erff" not in text and "llvm.tanh" not in text
    assert "llvm.fmuladd.v16f32" in text and "llvm.roundeven.v16f32" in text
    x, out, i = Buffer("X", (8,), DType.f64), Buffer("Out", (8,), DType.f64), var("i")
    f64 = emit_text(PrimFunc("f64", (x, out), For(i, const(8), Store(
        out, (i,), call("exp", x[i]) + call("erf", x[i])))))
    assert "llvm.exp.f64" in f64 and '@"erf"' in f64


def test_softmax_and_silu_compile_without_expf() -> None:
    """The row sum's scalar loop is widened by LLVM: no per-lane `expf` is left."""
    x = torch.randn(4, 64)
    for fn in (lambda a: torch.softmax(a, -1), torch.nn.functional.silu):
        module = dlc.compile(_Fn(fn), [x], target="llvm")
        opt = module.show("llvm-opt")
        assert "expf" not in opt and "llvm.exp." not in opt
        np.testing.assert_allclose(module(x.numpy()), fn(x).numpy(), rtol=1e-6, atol=1e-7)


class _Fn(torch.nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
