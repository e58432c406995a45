"""Elementwise ops: the interpreter against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from tests.ops.cases import DirectCase, TorchCase, case_params, run_case, run_torch_case


class Lambda(torch.nn.Module):
    """A module wrapping a function, so each case is one line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


class Lambda1(Lambda):
    """One named input (`x`), so `dynamic_shapes` can name its sizes."""

    def forward(self, x):
        return self.fn(x)


class Lambda2(Lambda):
    """Two named inputs (`x`, `y`), so `dynamic_shapes` can name their sizes."""

    def forward(self, x, y):
        return self.fn(x, y)


def randn(*shape, seed=0, dtype=torch.float32):
    """Seeded standard-normal samples."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def uniform(lo, hi, *shape, seed=0, dtype=torch.float32):
    """Seeded samples uniform in [lo, hi) (for functions with a restricted domain)."""
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(*shape, generator=g)).to(dtype)


def randint(lo, hi, *shape, seed=0, dtype=torch.int64):
    """Seeded integers in [lo, hi)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g).to(dtype)


def special():
    """Floats that trip up elementwise code: signed zeros, infinities, NaN, .5 ties."""
    return torch.tensor([[0.0, -0.0, 1.5, -2.5], [float("inf"), -float("inf"), float("nan"), 0.5],
                         [3.7, -3.7, 1e-30, -1e30]])


def fn(f):
    """A module factory for a function (keeps the case lines short)."""
    return lambda: Lambda(f)


def x34():
    """One f32[3, 4] input."""
    return (randn(3, 4),)


def fn1(f):
    """A module factory with one named input (for dynamic shapes)."""
    return lambda: Lambda1(f)


def fn2(f):
    """A module factory with two named inputs (for dynamic shapes)."""
    return lambda: Lambda2(f)


N = torch.export.Dim("N")
DYN0 = ({0: N},)  # the first input's axis 0 is the symbolic size N (Lambda1, Lambda2)


def unary_case(name, f, inputs=x34, ops=None, **kw):
    """A case for the one-input op `ew.<name>` (unless `ops` says otherwise)."""
    return TorchCase(name, fn(f), inputs, ops=ops or (f"ew.{name}",), **kw)


CASES = [
    # -- arithmetic --------------------------------------------------------------------
    TorchCase("add", fn(lambda x, y: x + y), lambda: (randn(3, 4), randn(4, seed=1)),
              ops=("ew.add",)),
    TorchCase("add_alpha", fn(lambda x, y: torch.add(x, y, alpha=2)),
              lambda: (randn(3, 4), randn(3, 4, seed=1)), ops=("ew.add", "ew.mul")),
    TorchCase("add_int_float_scalar", fn(lambda x: x + 1.5), lambda: (randint(-5, 5, 3, 4),),
              ops=("ew.add", "ew.cast")),
    TorchCase("add_float_bool", fn(lambda x, m: x + m), lambda: (randn(3, 4), randn(3, 4) > 0),
              ops=("ew.add", "ew.cast")),
    TorchCase("add_dynamic", fn2(lambda x, y: x + y), lambda: (randn(3, 4), randn(4, seed=1)),
              ops=("ew.add",), dynamic_shapes=(*DYN0, None)),
    TorchCase("add_f64", fn(lambda x, y: x + y),
              lambda: (randn(3, 4, dtype=torch.float64), randn(3, 1, dtype=torch.float64)),
              ops=("ew.add",), exact=True),
    TorchCase("add_f16", fn(lambda x, y: x + y * 0.5),
              lambda: (randn(3, 4, dtype=torch.float16), randn(3, 4, seed=1, dtype=torch.float16)),
              ops=("ew.add", "ew.mul"), rtol=1e-3),
    TorchCase("mul_bf16", fn(lambda x, y: x * y),
              lambda: (randn(3, 4, dtype=torch.bfloat16), randn(4, dtype=torch.bfloat16)),
              ops=("ew.mul",), exact=True),
    TorchCase("sub_scalar", fn(lambda x: x - 2.5), x34, ops=("ew.sub",)),
    TorchCase("rsub", fn(lambda x: 1 - x), x34, ops=("ew.sub",)),
    TorchCase("mul_int", fn(lambda x, y: x * y),
              lambda: (torch.arange(6).reshape(2, 3), torch.arange(3)), ops=("ew.mul",),
              exact=True),
    TorchCase("div", fn(lambda x, y: x / y), lambda: (randn(3, 4), randn(3, 4, seed=1)),
              ops=("ew.div",)),
    TorchCase("div_f64", fn(lambda x, y: x / y),
              lambda: (randn(3, 4, dtype=torch.float64), randn(4, seed=1, dtype=torch.float64)),
              ops=("ew.div",), exact=True),
    TorchCase("div_int_true", fn(lambda x, y: x / y),
              lambda: (randint(-9, 9, 3, 4), randint(1, 5, 3, 4, seed=1)),
              ops=("ew.div", "ew.cast")),
    TorchCase("floor_div_int", fn(lambda x, y: torch.div(x, y, rounding_mode="floor")),
              lambda: (randint(-20, 20, 4, 5), torch.tensor([3, -3, 7, -7, 1])),
              ops=("ew.floor_div",), exact=True),
    TorchCase("floor_div_float", fn(lambda x: x // 0.3), x34, ops=("ew.floor_div",)),
    TorchCase("trunc_div_int", fn(lambda x, y: torch.div(x, y, rounding_mode="trunc")),
              lambda: (randint(-20, 20, 4, 5), torch.tensor([3, -3, 7, -7, 1])),
              ops=("ew.trunc_div",), exact=True),
    TorchCase("trunc_div_float", fn(lambda x, y: torch.div(x, y, rounding_mode="trunc")),
              lambda: (randn(3, 4) * 5, randn(3, 4, seed=1)), ops=("ew.trunc_div",)),
    TorchCase("remainder_int", fn(lambda x, y: x % y),
              lambda: (randint(-20, 20, 4, 5), torch.tensor([3, -3, 7, -7, 1])),
              ops=("ew.remainder",), exact=True),
    TorchCase("remainder_float", fn(lambda x: torch.remainder(x, -1.5)), lambda: (randn(3, 4) * 4,),
              ops=("ew.remainder",)),
    TorchCase("fmod_float", fn(lambda x: torch.fmod(x, 1.5)), lambda: (randn(3, 4) * 4,),
              ops=("ew.fmod",)),
    TorchCase("fmod_int", fn(torch.fmod),
              lambda: (randint(-20, 20, 4, 5), torch.tensor([3, -3, 7, -7, 1])),
              ops=("ew.fmod",), exact=True),
    TorchCase("pow_scalar", fn(lambda x: x**2), x34, ops=("ew.pow",)),
    TorchCase("pow_fractional", fn(lambda x: x.abs() ** 2.5), x34, ops=("ew.pow",)),
    TorchCase("pow_tensor", fn(lambda x, y: x.abs() ** y), lambda: (randn(3, 4), randn(4)),
              ops=("ew.pow",)),
    TorchCase("pow_scalar_base", fn(lambda x: 2**x), x34, ops=("ew.pow",)),
    TorchCase("pow_int", fn(lambda x: x**3), lambda: (randint(-9, 9, 3, 4),), ops=("ew.pow",),
              exact=True),
    TorchCase("maximum", fn(torch.maximum), lambda: (special(), randn(3, 4)), ops=("ew.maximum",)),
    TorchCase("minimum", fn(torch.minimum), lambda: (special(), randn(4)), ops=("ew.minimum",)),
    TorchCase("maximum_int_float", fn(torch.maximum), lambda: (randint(-2, 2, 3, 4), randn(3, 4)),
              ops=("ew.maximum", "ew.cast")),
    TorchCase("atan2", fn(torch.atan2), lambda: (randn(3, 4), randn(3, 4, seed=1)),
              ops=("ew.atan2",)),
    unary_case("neg", torch.neg),
    unary_case("abs", torch.abs, inputs=lambda: (special(),)),
    TorchCase("abs_int", fn(torch.abs), lambda: (randint(-9, 9, 3, 4),), ops=("ew.abs",),
              exact=True),
    unary_case("sign", torch.sign, inputs=lambda: (special(),), exact=True),
    unary_case("reciprocal", torch.reciprocal),
    unary_case("floor", torch.floor, inputs=lambda: (special(),), exact=True),
    unary_case("ceil", torch.ceil, inputs=lambda: (special(),), exact=True),
    unary_case("trunc", torch.trunc, inputs=lambda: (special(),), exact=True),
    unary_case("round", torch.round, inputs=lambda: (special(),), exact=True),
    TorchCase("round_decimals", fn(lambda x: torch.round(x, decimals=2)),
              lambda: (randn(3, 4) * 10,), ops=("ew.round",)),
    TorchCase("floor_int", fn(torch.floor), lambda: (randint(-9, 9, 3, 4),), ops=("ew.floor",),
              exact=True),
    # -- exponentials, logarithms, powers ----------------------------------------------
    unary_case("exp", torch.exp),
    TorchCase("exp_int", fn(torch.exp), lambda: (randint(-3, 3, 3, 4),), ops=("ew.exp", "ew.cast")),
    TorchCase("exp_f64", fn(torch.exp), lambda: (randn(3, 4, dtype=torch.float64),),
              ops=("ew.exp",), rtol=1e-13),
    unary_case("exp2", torch.exp2),
    unary_case("expm1", torch.expm1, inputs=lambda: (randn(3, 4) * 1e-3,)),
    unary_case("log", torch.log, inputs=lambda: (special().abs(),)),
    unary_case("log2", torch.log2, inputs=lambda: (uniform(0.1, 10, 3, 4),)),
    unary_case("log10", torch.log10, inputs=lambda: (uniform(0.1, 10, 3, 4),)),
    unary_case("log1p", torch.log1p, inputs=lambda: (uniform(-0.5, 1, 3, 4) * 1e-3,)),
    unary_case("sqrt", torch.sqrt, inputs=lambda: (uniform(0, 10, 3, 4),)),
    TorchCase("sqrt_dynamic", fn1(torch.sqrt), lambda: (uniform(0, 10, 3, 4),), ops=("ew.sqrt",),
              dynamic_shapes=DYN0),
    unary_case("rsqrt", torch.rsqrt, inputs=lambda: (uniform(0.1, 10, 3, 4),)),
    unary_case("erf", torch.erf, inputs=lambda: (randn(3, 4) * 2,)),
    # -- trigonometric and hyperbolic --------------------------------------------------
    unary_case("sin", torch.sin),
    unary_case("cos", torch.cos),
    unary_case("tan", torch.tan),
    unary_case("asin", torch.asin, inputs=lambda: (uniform(-1, 1, 3, 4),)),
    unary_case("acos", torch.acos, inputs=lambda: (uniform(-1, 1, 3, 4),)),
    unary_case("atan", torch.atan),
    unary_case("sinh", torch.sinh),
    unary_case("cosh", torch.cosh),
    unary_case("tanh", torch.tanh),
    unary_case("asinh", torch.asinh),
    unary_case("acosh", torch.acosh, inputs=lambda: (uniform(1, 5, 3, 4),)),
    unary_case("atanh", torch.atanh, inputs=lambda: (uniform(-0.9, 0.9, 3, 4),)),
    # -- activations -------------------------------------------------------------------
    unary_case("relu", torch.relu),
    unary_case("sigmoid", torch.sigmoid, inputs=lambda: (randn(3, 4) * 30,)),
    TorchCase("gelu", fn(F.gelu), lambda: (randn(3, 4) * 3,), ops=("ew.gelu",)),
    TorchCase("gelu_tanh", fn(lambda x: F.gelu(x, approximate="tanh")), lambda: (randn(3, 4) * 3,),
              ops=("ew.gelu",)),
    TorchCase("gelu_f16", fn(F.gelu), lambda: (randn(3, 4, dtype=torch.float16),),
              ops=("ew.gelu",), rtol=1e-3),
    TorchCase("leaky_relu", fn(lambda x: F.leaky_relu(x, 0.2)), x34, ops=("ew.leaky_relu",)),
    TorchCase("elu", fn(F.elu), x34, ops=("ew.elu",)),
    TorchCase("selu", fn(F.selu), x34, ops=("ew.elu",)),
    # silu, hardswish, hardsigmoid and softplus are kept whole (PRESERVED)
    TorchCase("silu_module", fn(F.silu), x34, ops=("ew.silu",)),
    TorchCase("hardswish_module", fn(F.hardswish), lambda: (randn(3, 4) * 4,),
              ops=("ew.hardswish",)),
    TorchCase("softplus_module", fn(lambda x: F.softplus(x, 2.0, 5.0)),
              lambda: (randn(3, 4) * 4,), ops=("ew.softplus",)),
    TorchCase("sigmoid_times_x", fn(lambda x: torch.sigmoid(x) * x), x34,
              ops=("ew.sigmoid", "ew.mul")),
    TorchCase("clamp", fn(lambda x: x.clamp(-0.5, 0.5)), lambda: (special(),), ops=("ew.clamp",)),
    TorchCase("clamp_min", fn(lambda x: x.clamp(min=0.1)), x34, ops=("ew.clamp",)),
    TorchCase("clamp_int", fn(lambda x: x.clamp(2, 5)), lambda: (randint(-9, 9, 3, 4),),
              ops=("ew.clamp",), exact=True),
    TorchCase("clamp_int_float_bound", fn(lambda x: x.clamp(2.5)), lambda: (randint(-9, 9, 3, 4),),
              ops=("ew.clamp", "ew.cast")),
    TorchCase("clamp_tensor", fn(lambda x, lo: torch.clamp(x, lo, lo + 1)),
              lambda: (randn(3, 4), randn(4, seed=1)), ops=("ew.maximum", "ew.minimum")),
    TorchCase("relu6", fn(F.relu6), lambda: (randn(3, 4) * 5,), ops=("ew.clamp",)),
    # -- predicates, logic, bitwise ----------------------------------------------------
    unary_case("isnan", torch.isnan, inputs=lambda: (special(),), exact=True),
    unary_case("isinf", torch.isinf, inputs=lambda: (special(),), exact=True),
    unary_case("signbit", torch.signbit, inputs=lambda: (special(),), exact=True),
    TorchCase("isfinite", fn(torch.isfinite), lambda: (special(),), ops=("ew.abs", "ew.ne"),
              exact=True),
    TorchCase("logical_not", fn(torch.logical_not), lambda: (special(),), ops=("ew.logical_not",),
              exact=True),
    TorchCase("logical_and", fn(torch.logical_and), lambda: (special(), randn(3, 4) > 0),
              ops=("ew.logical_and",), exact=True),
    TorchCase("logical_or", fn(torch.logical_or), lambda: (randn(3, 4) > 1, randn(4) > 1),
              ops=("ew.logical_or",), exact=True),
    TorchCase("logical_xor", fn(torch.logical_xor), lambda: (randint(0, 3, 3, 4), randn(3, 4)),
              ops=("ew.logical_xor",), exact=True),
    TorchCase("bitwise_not", fn(lambda x: ~x), lambda: (randint(-9, 9, 3, 4),),
              ops=("ew.bitwise_not",), exact=True),
    TorchCase("bitwise_not_bool", fn(lambda x: ~x), lambda: (randn(3, 4) > 0,),
              ops=("ew.logical_not",), exact=True),
    TorchCase("bitwise_and", fn(lambda x: x & 6), lambda: (randint(-9, 9, 3, 4),),
              ops=("ew.bitwise_and",), exact=True),
    TorchCase("bitwise_or", fn(lambda x, y: x | y),
              lambda: (randint(0, 99, 3, 4, dtype=torch.int32), randint(0, 9, 4)),
              ops=("ew.bitwise_or", "ew.cast"), exact=True),
    TorchCase("bitwise_xor", fn(lambda x, y: x ^ y),
              lambda: (randint(0, 99, 3, 4, dtype=torch.uint8), randint(0, 99, 3, 4, seed=1,
                                                                       dtype=torch.uint8)),
              ops=("ew.bitwise_xor",), exact=True),
    TorchCase("bitwise_bool", fn(lambda x, y: (x & y) | (x ^ y)),
              lambda: (randn(3, 4) > 0, randn(3, 4, seed=1) > 0),
              ops=("ew.logical_and", "ew.logical_or", "ew.logical_xor"), exact=True),
    # -- comparisons and select --------------------------------------------------------
    TorchCase("eq", fn(lambda x, y: x == y), lambda: (special(), special().flip(0)),
              ops=("ew.eq",), exact=True),
    TorchCase("ne", fn(lambda x: x != 1), lambda: (randint(0, 3, 3, 4),), ops=("ew.ne",),
              exact=True),
    TorchCase("lt_int_float_scalar", fn(lambda x: x < 0.5), lambda: (randint(-2, 3, 3, 4),),
              ops=("ew.lt", "ew.cast"), exact=True),
    TorchCase("le", fn(lambda x, y: x <= y), lambda: (randn(3, 4), randn(4)), ops=("ew.le",),
              exact=True),
    TorchCase("gt_mixed", fn(lambda x, y: x > y), lambda: (randn(3, 4), randint(-1, 2, 3, 4)),
              ops=("ew.gt", "ew.cast"), exact=True),
    TorchCase("ge_dynamic", fn1(lambda x: x >= 0), x34, ops=("ew.ge",), exact=True,
              dynamic_shapes=DYN0),
    TorchCase("where", fn(lambda c, x, y: torch.where(c, x, y)),
              lambda: (randn(3, 4) > 0, randn(3, 4, seed=1), randn(4, seed=2)),
              ops=("ew.where",)),
    TorchCase("where_scalar", fn(lambda x: torch.where(x > 0, x, 0.0)), x34,
              ops=("ew.where", "ew.gt")),
    TorchCase("where_int_float", fn(lambda c, x: torch.where(c, x, 0.5)),
              lambda: (randn(3, 4) > 0, randint(-5, 5, 3, 4)), ops=("ew.where", "ew.cast")),
    TorchCase("masked_fill", fn(lambda x, m: x.masked_fill(m, -1e9)),
              lambda: (randn(3, 4), randn(4) > 0), ops=("ew.where",)),
    TorchCase("where_dynamic", fn2(lambda x, y: torch.where(x > y, x, y)),
              lambda: (randn(3, 4), randn(4)), ops=("ew.where", "ew.gt"),
              dynamic_shapes=(*DYN0, None)),
    # -- casts -------------------------------------------------------------------------
    TorchCase("cast", fn(lambda x: x.to(torch.int32)), lambda: (randn(2, 5) * 4,),
              ops=("ew.cast",), exact=True),
    TorchCase("cast_f16", fn(lambda x: x.half()), x34, ops=("ew.cast",), exact=True),
    TorchCase("cast_bf16", fn(lambda x: x.to(torch.bfloat16)), x34, ops=("ew.cast",), exact=True),
    TorchCase("cast_bool", fn(lambda x: x.bool().float()), lambda: (special(),), ops=("ew.cast",),
              exact=True),
    TorchCase("type_as", fn(lambda x, y: x.type_as(y)), lambda: (randn(3, 4) * 5, torch.arange(3)),
              ops=("ew.cast",), exact=True),
]


# Ops that torch.export's default decompositions break up (silu -> x * sigmoid(x)): their
# converters only run when the frontend preserves the ATen op, so each gets a DirectCase
# (for its reference) and a case in PRESERVED_CASES (for its converter).


def _unary_graph(op, **attrs):
    def build(x):
        b = GraphBuilder(op.replace(".", "_"))
        v = b.input("x", TensorType(x.shape, DType.from_numpy(x.dtype)))
        return b.build([b.op(op, v, **attrs)])

    return build


def _np_randn(*shape, scale=1.0):
    return lambda: ((np.random.default_rng(0).standard_normal(shape) * scale).astype(np.float32),)


CASES += [
    DirectCase("silu_direct", _unary_graph("ew.silu"), _np_randn(3, 4), F.silu, ops=("ew.silu",)),
    DirectCase("hardswish_direct", _unary_graph("ew.hardswish"), _np_randn(3, 4, scale=4),
               F.hardswish, ops=("ew.hardswish",)),
    DirectCase("hardsigmoid_direct", _unary_graph("ew.hardsigmoid"), _np_randn(3, 4, scale=4),
               F.hardsigmoid, ops=("ew.hardsigmoid",)),
    DirectCase("softplus_direct", _unary_graph("ew.softplus", beta=2.0, threshold=5.0),
               _np_randn(3, 4, scale=4), lambda x: F.softplus(x, 2.0, 5.0),
               ops=("ew.softplus",)),
]

PRESERVED_CASES = [
    (("aten.silu.default",), unary_case("silu", F.silu)),
    (("aten.hardswish.default",), unary_case("hardswish", F.hardswish,
                                             inputs=lambda: (randn(3, 4) * 4,))),
    (("aten.hardsigmoid.default",), unary_case("hardsigmoid", F.hardsigmoid,
                                               inputs=lambda: (randn(3, 4) * 4,))),
    (("aten.softplus.default",), unary_case("softplus", lambda x: F.softplus(x, 2.0, 5.0),
                                            inputs=lambda: (randn(3, 4) * 4,))),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


@pytest.mark.parametrize("preserved,case", [pytest.param(p, c, id=c.id)
                                            for p, c in PRESERVED_CASES])
def test_preserved_converter(preserved, case, monkeypatch):
    """The converter of an op that the frontend could keep whole (see decompositions.py)."""
    from dlc.frontends.torch import decompositions

    monkeypatch.setattr(decompositions, "PRESERVED", decompositions.PRESERVED + preserved)
    run_torch_case(case)


def test_to_dtype_without_decompositions():
    """`aten.to.dtype` appears in an exported program that was not decomposed."""
    from dlc.frontends.torch import import_exported_program
    from dlc.interpreter import run_graph

    x = randn(3, 4) * 4
    ep = torch.export.export(Lambda(lambda x: x.to(torch.int32)), (x,))
    assert "aten.to.dtype" in str(ep.graph)
    graph = import_exported_program(ep)
    (got,) = run_graph(graph, x.numpy())
    np.testing.assert_array_equal(got, x.to(torch.int32).numpy())


def test_symbolic_scalar_operand_is_refused_clearly():
    from dlc.errors import DLCError
    from dlc.frontends.torch import import_module

    with pytest.raises(DLCError, match="scalar computed from tensor sizes"):
        import_module(Lambda1(lambda x: x / x.shape[0]), (randn(3, 4),), dynamic_shapes=DYN0)
