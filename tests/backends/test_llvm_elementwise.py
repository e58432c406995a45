"""Lowered elementwise ops and reductions on the LLVM backend, on the inputs the torch
case sweep does not reach: every integer width, division by 0 and -1, INT_MIN, NaN and
signed zeros, f16/bf16/f64, ties. Each op is compared with its own NumPy reference."""

from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np
import pytest
from llvmlite import ir

from dlc.backends.llvm.codegen import emit_kernel
from dlc.backends.llvm.executable import build
from dlc.backends.llvm.jit import jit, optimize, prepare
from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import compute, placeholder
from dlc.ir.tensor.expr import call
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.types import TensorType
from dlc.ops.registry import get_op
from dlc.testing import assert_close

NAN = np.float32(np.nan)
NEG_NAN = np.copysign(NAN, np.float32(-1))
SPECIAL = np.array([0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, NAN, NEG_NAN, 0.5, 3.7, -3.7, 1e-30,
                    -1e30, 7.0, -0.3, 2.0], np.float32)


def run_op(op: str, *arrays: np.ndarray, **attrs: object) -> tuple[list, list]:
    """The op compiled alone (debug bounds checks on), and its reference, on `arrays`."""
    b = GraphBuilder(op.replace(".", "_"))
    xs = [b.input(f"x{k}", TensorType(a.shape, DType.from_numpy(a.dtype)))
          for k, a in enumerate(arrays)]
    out = b.op(op, *xs, **attrs)
    graph = b.build(list(out) if isinstance(out, tuple) else [out])
    got = build(graph, debug=True)(*arrays)
    want = get_op(op).reference(*arrays, **graph.nodes[0].attrs)
    return got, list(want) if isinstance(want, tuple) else [want]


def check(op: str, *arrays: np.ndarray, exact: bool = True, rtol: float = 1e-5,
          **attrs: object) -> None:
    got, want = run_op(op, *arrays, **attrs)
    assert_close(tuple(got), tuple(want), rtol, exact, what=op)


def grid(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every pairing of awkward integers, including the minimum, -1 and 0 divisors."""
    info = np.iinfo(dtype)
    values = [info.min, info.min + 1, -20, -7, -3, -1, 0, 1, 2, 3, 7, 20, info.max]
    a = np.array([v for v in values if info.min <= v <= info.max], dtype)
    return a[:, None], np.array([v for v in (-7, -3, -1, 0, 1, 3, 7) if v >= info.min], dtype)


# -- integer arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint32])
@pytest.mark.parametrize("op", ["ew.floor_div", "ew.trunc_div", "ew.remainder", "ew.fmod"])
def test_integer_division_by_zero_and_minus_one_matches_numpy(op: str, dtype: type) -> None:
    check(op, *grid(np.dtype(dtype)))


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16])
def test_integer_pow_wraps_like_numpy(dtype: type) -> None:
    base = np.arange(-5, 6).astype(dtype)[:, None]
    exponent = np.array([0, 1, 2, 3, 7, 13, 40, 70], dtype)
    check("ew.pow", base, exponent)


def test_integer_pow_to_a_negative_exponent_is_torchs() -> None:
    """NumPy refuses; torch gives 1 for base 1, +-1 for base -1 and 0 otherwise."""
    base, exponent = placeholder((6,), DType.i32, "B"), placeholder((6,), DType.i32, "E")
    out = compute((6,), lambda i: call("pow", base[i], exponent[i]), "Out")
    func = lower_tensors("ipow", [base, exponent], [out])
    b = np.array([1, -1, -1, 2, 0, -3], np.int32)
    e = np.array([-1, -1, -2, -1, -3, -2], np.int32)
    want, got = np.zeros(6, np.int32), np.zeros(6, np.int32)
    run_func(func, {"B": b, "E": e, "Out": want})
    module = prepare(ir.Module("test"))
    emit_kernel(module, func)
    compiled = jit(optimize(str(module)))
    compiled.function("ipow", [ctypes.c_void_p] * 3)(b.ctypes.data, e.ctypes.data,
                                                      got.ctypes.data)
    assert want.tolist() == got.tolist() == [1, -1, 1, 0, 0, 0]


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64])
@pytest.mark.parametrize("op", ["ew.bitwise_and", "ew.bitwise_or", "ew.bitwise_xor"])
def test_bitwise_ops(op: str, dtype: type) -> None:
    a, b = grid(np.dtype(dtype))
    check(op, a, b)


@pytest.mark.parametrize(("op", "dtype"), [
    (op, dtype)
    for dtype in (np.int8, np.uint8, np.int64, np.bool_)
    for op in ("ew.neg", "ew.abs", "ew.sign", "ew.relu", "ew.bitwise_not", "ew.signbit",
               "ew.floor", "ew.round")
    if not (op == "ew.neg" and dtype is np.bool_)])  # NumPy has no negative of a bool
def test_unary_ops_on_integers_and_bools(op: str, dtype: type) -> None:
    if dtype is np.bool_:
        x = np.array([True, False, True])
    else:
        x = grid(np.dtype(dtype))[0][:, 0]
    with np.errstate(over="ignore"):
        check(op, x)


def test_bool_arithmetic_is_logic() -> None:
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    for op in ("ew.add", "ew.mul", "ew.maximum", "ew.logical_xor", "ew.bitwise_xor",
               "ew.bitwise_and", "ew.lt"):
        check(op, a, b)


# -- floats: NaN, signed zeros, rounding -----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["ew.floor_div", "ew.remainder", "ew.fmod", "ew.trunc_div"])
def test_float_division_is_numpys_bit_for_bit(op: str, dtype: type) -> None:
    rng = np.random.default_rng(0)
    b = np.concatenate([SPECIAL, [0.1, 0.3, -0.7]]).astype(dtype)
    a = np.concatenate([SPECIAL, rng.standard_normal(8) * 10, b * 3]).astype(dtype)
    check(op, a[:, None], b)


@pytest.mark.parametrize("op", ["ew.maximum", "ew.minimum", "ew.eq", "ew.ne", "ew.lt", "ew.ge",
                                "ew.logical_and", "ew.logical_or", "ew.atan2"])
def test_binary_float_ops_on_special_values(op: str) -> None:
    check(op, SPECIAL[:, None], SPECIAL, exact=op != "ew.atan2")


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("op", ["ew.sign", "ew.signbit", "ew.isnan", "ew.isinf", "ew.relu",
                                "ew.logical_not", "ew.neg", "ew.abs", "ew.round", "ew.trunc"])
def test_unary_float_ops_on_special_values(op: str, dtype: type) -> None:
    with np.errstate(over="ignore"):  # -1e30 is -inf in f16
        x = SPECIAL.astype(dtype)
    check(op, x)


def test_round_to_negative_decimals_and_clamp_nan() -> None:
    x = np.array([125.0, 135.0, -1250.0, 44.9, NAN], np.float32)
    check("ew.round", x, decimals=-1)
    check("ew.clamp", SPECIAL, min=-1.0, max=2.0)
    check("ew.clamp", np.arange(-5, 5, dtype=np.int32), min=-2.5, max=3.5)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("op", ["ew.tan", "ew.asin", "ew.acos", "ew.atan", "ew.sinh", "ew.cosh",
                                "ew.asinh", "ew.acosh", "ew.atanh", "ew.exp2", "ew.log2",
                                "ew.log10", "ew.erf", "ew.gelu", "ew.expm1"])
def test_transcendentals_in_f16_and_f64(op: str, dtype: type) -> None:
    x = np.linspace(-0.95, 0.95, 16).astype(dtype)
    if op == "ew.acosh":
        x = np.linspace(1.0, 9.0, 16).astype(dtype)
    if op in ("ew.log2", "ew.log10"):
        x = np.linspace(0.01, 90.0, 16).astype(dtype)
    check(op, x, exact=False, rtol=1e-3 if dtype is np.float16 else 1e-12)


@pytest.mark.parametrize("dst", [DType.u8, DType.u16, DType.u32, DType.bool, DType.f16,
                                 DType.bf16, DType.i8])
def test_casts_from_float_follow_numpy(dst: DType) -> None:
    x = np.array([-2.7, -0.5, -0.0, 0.5, 2.7, 100.2, 65504.0, 1e-8], np.float32)
    check("ew.cast", x if dst != DType.bool else SPECIAL, dtype=dst)


# -- the new intrinsics, straight through the tensor IR -----------------------------------


@pytest.mark.parametrize("dtype", [DType.f16, DType.bf16, DType.f32, DType.f64])
@pytest.mark.parametrize("name", ["tan", "asin", "acos", "atan", "sinh", "cosh", "asinh",
                                  "atanh", "exp2", "log2", "log10", "signbit", "atan2"])
def test_intrinsics_match_the_loop_interpreter(name: str, dtype: DType) -> None:
    x = placeholder((8,), dtype, "X")
    args = (lambda i: (x[i], x[7 - i])) if name == "atan2" else (lambda i: (x[i],))
    func = lower_tensors(f"k_{name}", [x], [compute((8,), lambda i: call(name, *args(i)), "Out")])
    data = np.linspace(0.05, 0.9, 8).astype(dtype.numpy)
    if name == "signbit":
        data = SPECIAL[:8].astype(dtype.numpy)
    out_dtype = np.bool_ if name == "signbit" else dtype.numpy
    want, got = np.zeros(8, out_dtype), np.zeros(8, out_dtype)
    run_func(func, {"X": data, "Out": want})
    module = prepare(ir.Module("test"))
    emit_kernel(module, func, debug=True)
    compiled = jit(optimize(str(module)))  # keep the engine alive while the kernel runs
    kernel = compiled.function(func.name, [ctypes.c_void_p] * 2)
    assert kernel(data.ctypes.data, got.ctypes.data) == 0
    assert_close(got, want, rtol=1e-3 if dtype in (DType.f16, DType.bf16) else 1e-6,
                 exact=name == "signbit")


# -- reductions ------------------------------------------------------------------------------


def nan_rows() -> np.ndarray:
    return np.array([[1.0, NAN, 5.0, NAN], [-np.inf, -np.inf, -np.inf, -np.inf],
                     [2.0, 7.0, 7.0, -1.0]], np.float32)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False), (1, True)])
@pytest.mark.parametrize("op", ["reduce.argmax", "reduce.argmin"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int8, np.bool_])
def test_arg_reductions_pick_the_first_nan_then_the_first_extreme(op: str, dtype: type,
                                                                  axis: int | None,
                                                                  keepdims: bool) -> None:
    x = nan_rows()
    if dtype in (np.int8, np.bool_):
        x = np.nan_to_num(x, nan=3.0, posinf=9, neginf=-9)
        x = x > 2 if dtype is np.bool_ else x
    check(op, x.astype(dtype), axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("op,attrs", [
    ("reduce.sum", {}), ("reduce.prod", {}), ("reduce.max", {}), ("reduce.min", {}),
    ("reduce.any", {}), ("reduce.mean", {}), ("reduce.var", {"correction": 0.0}),
    ("reduce.var", {"correction": 4.0}), ("reduce.norm", {"ord": 3.0}),
    ("reduce.norm", {"ord": 0.5}), ("reduce.norm", {"ord": -np.inf}), ("reduce.norm", {"ord": 0.0}),
])
@pytest.mark.parametrize("axes,keepdims", [(None, False), ((0, 2), True), ((-1,), False),
                                           ((), False)])
@pytest.mark.filterwarnings("ignore:Degrees of freedom")  # var with correction > n is inf
def test_reductions_over_axes(op: str, attrs: dict, axes: tuple | None, keepdims: bool) -> None:
    x = np.random.default_rng(1).standard_normal((3, 4, 2)).astype(np.float32)
    check(op, x, axes=axes, keepdims=keepdims, exact=False, **attrs)


@pytest.mark.parametrize("op", ["reduce.sum", "reduce.prod", "reduce.max", "reduce.min",
                                "reduce.any"])
@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8])
def test_integer_and_bool_reductions_are_exact(op: str, dtype: type) -> None:
    x = np.random.default_rng(2).integers(0, 120, (4, 6)).astype(dtype)
    check(op, x, axes=(1,), keepdims=False)


def test_reductions_of_a_rank_0_operand() -> None:
    x = np.array(2.5, np.float32)
    for op in ("reduce.sum", "reduce.mean", "reduce.max"):
        check(op, x, axes=(0,), keepdims=False, exact=False)
    check("reduce.argmax", x, axis=None, keepdims=False)
    check("reduce.cumsum", x, axis=0)


@pytest.mark.parametrize("op", ["reduce.cumsum", "reduce.cumprod"])
@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.float16])
def test_scans(op: str, dtype: type) -> None:
    x = np.random.default_rng(3).integers(-3, 4, (3, 5, 4)).astype(dtype)
    check(op, x, axis=1, exact=dtype is not np.float16, rtol=1e-3)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_topk_orders_ties_by_index_and_nan_as_largest(largest: bool, dtype: type) -> None:
    x = np.array([[3, 1, 3, 0, 2, 0], [NAN, 2, NAN, 1, -np.inf, 2], [5, 5, 5, 5, 5, 5]],
                 np.float32)
    if dtype is not np.float32 and dtype is not np.float16:
        x = np.nan_to_num(x, nan=4.0, neginf=-1)
    x = x.astype(dtype) if dtype is not np.bool_ else x > 2
    for k, axis in ((3, -1), (6, 1), (2, 0), (0, 1)):
        check("reduce.topk", x, k=k, axis=axis, largest=largest)


def test_fused_integer_division_chain() -> None:
    """Several lowered ops in one kernel: the inlined expressions keep their semantics."""
    a, b = grid(np.dtype(np.int32))
    g = GraphBuilder("chain")
    x, y = g.input("x", TensorType(a.shape, DType.i32)), g.input("y", TensorType(b.shape,
                                                                                 DType.i32))
    q = g.op("ew.floor_div", x, y)
    r = g.op("ew.remainder", x, y)
    t = g.op("ew.fmod", g.op("ew.add", g.op("ew.mul", q, y), r), y)
    graph = g.build([t, q])
    fused = build(graph, groups=[list(graph.nodes)], debug=True)(a, b)
    per_node = build(graph, debug=True)(a, b)
    assert_close(tuple(fused), tuple(per_node), exact=True)
