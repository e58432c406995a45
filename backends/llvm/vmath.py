"""Inline f32 math: exp, exp2, expm1, log, log1p, tanh and erf as straight-line LLVM IR.

LLVM has no vector libm here: `llvm.exp.v16f32` is scalarized into 16 calls of `expf`, and
`erff` or `tanhf` run one lane at a time, which made softmax ~10x slower than PyTorch.
Each function below is range reduction, a polynomial and a rescale, emitted with llvmlite
on a `float` or a `<L x float>` alike: the same code serves dlc's vectorized loops and
scalar loops, which LLVM's loop vectorizer then widens (as it cannot widen a libm call).
This is what TVM's `fast_exp` and XLA's f32 approximations do, kept to a few ulp.

    exp(x):  %n = roundeven(x * log2(e))                 ; x = n ln2 + r, |r| <= ln2 / 2
             %r = fma(n, -ln2_hi, x); r = fma(n, -ln2_lo, r)          ; Cody-Waite: exact
             %p = fma(r * r, P(r), r) + 1                 ; Cephes' degree-5 minimax P
             %y = ldexp(p, n)                             ; one vscalefps with AVX-512

Without AVX-512 (where `llvm.ldexp` is a libm call per lane) 2^n is built in the exponent
bits in two steps, p * 2^(n >> 1) * 2^(n - (n >> 1)), each factor finite. Either way
overflow gives +inf and underflow goes through the subnormals to 0 with one rounding.
Inputs are clamped with `select`s (NaN -> a constant, so no `fptosi` sees NaN) and NaN
lanes get `x` back at the end. The other functions are built on the same pieces:

    expm1(x) = 2 * fma(2^(n-1), em1(r), 2^(n-1) - 0.5)         em1(r) = fma(r * r, P(r), r)
    log(x)   = e ln2 + log(m), m in [sqrt(1/2), sqrt(2))       Cephes' degree-8 polynomial
    log1p(x) = log(u) + (x - (u - 1)) / u,  u = 1 + x          the rounding of u, corrected
    tanh(x)  = copysign(em1(2|x|) / (em1(2|x|) + 2), x)        |x| clamped to 10 (tanh = 1)
    erf(x)   = copysign(|x| < 1 ? |x| P(x^2) : 1 - exp(Q(|x|)), x)   Q(a) ~ log(erfc(a))

Largest error against float64 over all of float32, measured on normal results (the test
budgets, tests/backends/test_llvm_vmath.py, in brackets): exp 1.0 ulp (1.5), exp2 1.0
(1.5), expm1 1.4 (2), log 0.8 (1.5), log1p 1.4 (2), tanh 2.4 (3), erf 2.5 (3; 1.4e-7
absolute), and codegen's sigmoid 1 / (1 + exp(-x)) 2.5 (3). Nothing is emitted with
fast-math flags: reassociation would undo the Cody-Waite split and the log1p correction.
f64 (and f16) keep LLVM's intrinsics and libm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from dlc.backends.llvm.jit import host_cpu
from dlc.backends.llvm.types import I32
from dlc.backends.llvm.vector import shaped, splat, type_suffix

F32 = ir.FloatType()
LOG2E = 1.4426950408889634
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4  # LN2_HI has 9 bits: n * LN2_HI is exact

# Cephes expf: exp(r) = 1 + r + r^2 P(r) on [-ln2/2, ln2/2] (highest degree first).
EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
         1.6666665459e-1, 5.0000001201e-1)
# Cephes logf: log(1 + f) = f - f^2/2 + f^3 P(f) on [sqrt(1/2) - 1, sqrt(2) - 1].
LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
         1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
         3.3333331174e-1)
# erf(a) = a P(a^2) on [0, 1] (the relative minimax fit XLA uses too).
ERF_SMALL = (7.854411524e-5, -8.010372985e-4, 5.188350100e-3, -2.685382590e-2,
             1.128358543e-1, -3.761262596e-1, 1.128379107)
# log(erfc(a)) = Q(a) on [1, 4], fitted near-minimax against mpmath (abs error 1.2e-8).
ERF_LOG_ERFC = (1.59986962e-6, -4.52991371e-5, 5.90212469e-4, -4.72773379e-3,
                2.63276584e-2, -1.09909981e-1, -6.32013142e-1, -1.13011992, 2.91072502e-4)
ERF_CAP = 4.0  # erfc(4) = 1.5e-8 < half an ulp of 1: erf rounds to +-1 from here
TANH_CAP = 10.0  # 1 - tanh(10) = 4e-9: tanh rounds to +-1
TINY = 2.0 ** -24  # below this expm1(x) and log1p(x) round to x


@functools.cache
def host_has_avx512() -> bool:
    """Whether `llvm.ldexp` is one instruction (`vscalefps`) on the host; elsewhere LLVM
    makes it a libm call per lane, so exp builds 2^n in the exponent bits instead."""
    return "+avx512f" in host_cpu()


class F32Math:
    """Lane-polymorphic f32 helpers: constants take the shape of `like` (scalar or vector)."""

    def __init__(self, b: ir.IRBuilder, like: ir.Value, scalef: bool | None = None) -> None:
        self.b = b
        self.ty = like.type
        self.ity = shaped(I32, like)
        self.scalef = host_has_avx512() if scalef is None else scalef

    def c(self, value: float) -> ir.Constant:
        return splat(self.ty, value)

    def i(self, value: int) -> ir.Constant:
        return splat(self.ity, value)

    def call(self, name: str, *args: ir.Value, result: str = "") -> ir.Value:
        """`llvm.<name>` overloaded on the operand type, e.g. `llvm.fmuladd.v16f32`."""
        full = f"llvm.{name}.{type_suffix(self.ty)}"
        module = self.b.module
        fn = module.globals.get(full)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(self.ty, [self.ty] * len(args)), full)
        return self.b.call(fn, list(args), name=result)

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value, name: str = "") -> ir.Value:
        return self.call("fmuladd", a, b, c, result=name)

    def poly(self, t: ir.Value, coeffs: Sequence[float], name: str) -> ir.Value:
        """Horner's rule, highest degree first, one fused multiply-add a step."""
        acc: ir.Value = self.c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.fma(acc, t, self.c(k), name)
        return acc

    def add(self, a: ir.Value, b: ir.Value, name: str = "") -> ir.Value:
        return self.b.fadd(a, b, name=name)

    def sub(self, a: ir.Value, b: ir.Value, name: str = "") -> ir.Value:
        return self.b.fsub(a, b, name=name)

    def mul(self, a: ir.Value, b: ir.Value, name: str = "") -> ir.Value:
        return self.b.fmul(a, b, name=name)

    def div(self, a: ir.Value, b: ir.Value, name: str = "") -> ir.Value:
        return self.b.fdiv(a, b, name=name)

    def cmp(self, op: str, a: ir.Value, b: ir.Value) -> ir.Value:
        """Ordered comparison (false on NaN)."""
        return self.b.fcmp_ordered(op, a, b)

    def where(self, cond: ir.Value, a: ir.Value, b: ir.Value, name: str = "") -> ir.Value:
        return self.b.select(cond, a, b, name=name)

    def is_nan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def clamp(self, x: ir.Value, lo: float | None, hi: float, name: str) -> ir.Value:
        """`x` limited to [lo, hi]; NaN becomes `hi`, so later integer conversions never see
        it (callers put NaN back with `nan_passthrough`)."""
        if lo is not None:
            x = self.where(self.cmp("<", x, self.c(lo)), self.c(lo), x)
        return self.where(self.b.fcmp_unordered(">", x, self.c(hi)), self.c(hi), x, name)

    def nan_passthrough(self, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
        return self.where(self.is_nan(x), x, y, name)

    def pow2(self, n: ir.Value, bias: int = 127) -> ir.Value:
        """2^(n + bias - 127) for an integer n, built in the exponent bits."""
        bits = self.b.shl(self.b.add(n, self.i(bias)), self.i(23))
        return self.b.bitcast(bits, self.ty)

    def reduce_ln2(self, x: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(n, r) with x = n ln2 + r, n integral (as float), |r| <= ln2/2 (Cody-Waite)."""
        n = self.call("roundeven", self.mul(x, self.c(LOG2E)), result="n")
        r = self.fma(n, self.c(-LN2_HI), x)
        return n, self.fma(n, self.c(-LN2_LO), r, "r")

    def em1_reduced(self, r: ir.Value) -> ir.Value:
        """exp(r) - 1 for |r| <= ln2/2, relative to itself (no cancellation near 0)."""
        p = self.poly(r, EXP_P, "exp.p")
        return self.fma(self.mul(r, r), p, r, "em1")

    def exp_reduced(self, n: ir.Value, r: ir.Value) -> ir.Value:
        """2^n exp(r) for integral n in [-252, 254]: one `vscalefps` with AVX-512, else 2^n
        applied in two steps so that each factor stays finite."""
        p = self.add(self.em1_reduced(r), self.c(1.0), "exp.r")
        ni = self.b.fptosi(n, self.ity)
        if self.scalef:
            name = f"llvm.ldexp.{type_suffix(self.ty)}.{type_suffix(self.ity)}"
            fn = self.b.module.globals.get(name)
            if fn is None:
                fn = ir.Function(self.b.module, ir.FunctionType(self.ty, [self.ty, self.ity]),
                                 name)
            return self.b.call(fn, [p, ni], name="exp")
        half = self.b.ashr(ni, self.i(1))
        rest = self.b.sub(ni, half)
        return self.mul(self.mul(p, self.pow2(half)), self.pow2(rest), "exp")


# -- the functions ------------------------------------------------------------------------

def exp(m: F32Math, x: ir.Value) -> ir.Value:
    """e^x. exp(x) overflows above 88.73 and is 0 below -103.98: clamping there changes
    nothing, and keeps n within what two scale steps can reach."""
    n, r = m.reduce_ln2(m.clamp(x, -104.0, 89.0, "exp.x"))
    return m.nan_passthrough(x, m.exp_reduced(n, r), "exp")


def exp2(m: F32Math, x: ir.Value) -> ir.Value:
    """2^x = 2^n exp((x - n) ln2); x - n is exact, so 2^k is exact for integral k."""
    xc = m.clamp(x, -151.0, 129.0, "exp2.x")
    n = m.call("roundeven", xc, result="n")
    r = m.mul(m.sub(xc, n), m.c(math.log(2.0)), "r")
    return m.nan_passthrough(x, m.exp_reduced(n, r), "exp2")


def _expm1_clamped(m: F32Math, x: ir.Value) -> ir.Value:
    """e^x - 1 for x in [-30, 89] (finite, no NaN): with s = 2^(n-1),
    2^n (em1 + 1) - 1 = 2 (s em1 + (s - 1/2)); s - 1/2 is exact for the n where it matters."""
    n, r = m.reduce_ln2(x)
    s = m.pow2(m.b.fptosi(n, m.ity), bias=126)
    y = m.fma(s, m.em1_reduced(r), m.sub(s, m.c(0.5)))
    return m.mul(y, m.c(2.0), "expm1")


def expm1(m: F32Math, x: ir.Value) -> ir.Value:
    """e^x - 1; below -30 it is -1, and tiny |x| (subnormals, -0) give x itself."""
    y = _expm1_clamped(m, m.clamp(x, -30.0, 89.0, "expm1.x"))
    tiny = m.cmp("<", m.call("fabs", x), m.c(TINY))
    return m.nan_passthrough(x, m.where(tiny, x, y), "expm1")


def _log_finite(m: F32Math, x: ir.Value) -> ir.Value:
    """log(x) for positive finite x (subnormals too); other inputs give garbage."""
    b = m.b
    sub = m.cmp("<", x, m.c(2.0 ** -126))
    x = m.where(sub, m.mul(x, m.c(2.0 ** 23)), x)  # subnormal: normalize, fix e below
    # m in [sqrt(1/2), sqrt(2)): offset the bits by sqrt(1/2)'s so e and m split there
    bits = b.sub(b.bitcast(x, m.ity), m.i(0x3F3504F3))
    e = b.sitofp(b.ashr(bits, m.i(23)), m.ty)
    e = m.where(sub, m.sub(e, m.c(23.0)), e, "log.e")
    mant = b.bitcast(b.add(b.and_(bits, m.i(0x7FFFFF)), m.i(0x3F3504F3)), m.ty)
    f = m.sub(mant, m.c(1.0), "log.f")  # exact (Sterbenz)
    z = m.mul(f, f)
    y = m.mul(m.mul(f, z), m.poly(f, LOG_P, "log.p"))
    y = m.fma(e, m.c(LN2_LO), y)
    y = m.fma(z, m.c(-0.5), y)
    return m.fma(e, m.c(LN2_HI), m.add(f, y), "log")


def _log_specials(m: F32Math, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    """log's answers where `_log_finite` has none: 0 -> -inf, < 0 -> NaN, +inf, NaN."""
    y = m.where(m.cmp("==", x, m.c(0.0)), m.c(-math.inf), y)
    y = m.where(m.cmp("<", x, m.c(0.0)), m.c(math.nan), y)
    y = m.where(m.cmp("==", x, m.c(math.inf)), x, y)
    return m.nan_passthrough(x, y, name)


def log(m: F32Math, x: ir.Value) -> ir.Value:
    """Natural logarithm."""
    return _log_specials(m, x, _log_finite(m, x), "log")


def log1p(m: F32Math, x: ir.Value) -> ir.Value:
    """log(1 + x) = log(u) + (x - (u - 1)) / u: the second term is the rounding error of
    u = 1 + x, divided by u (Goldberg's correction)."""
    u = m.add(x, m.c(1.0), "log1p.u")
    fix = m.div(m.sub(x, m.sub(u, m.c(1.0))), u)
    y = m.add(_log_finite(m, u), fix)
    tiny = m.cmp("<", m.call("fabs", x), m.c(TINY))
    return _log_specials(m, u, m.where(tiny, x, y), "log1p")


def tanh(m: F32Math, x: ir.Value) -> ir.Value:
    """tanh(|x|) = em1(2|x|) / (em1(2|x|) + 2), sign copied back; exactly +-1 past 10."""
    a = m.clamp(m.call("fabs", x), None, TANH_CAP, "tanh.a")
    em = _expm1_clamped(m, m.add(a, a))
    y = m.div(em, m.add(em, m.c(2.0)))
    return m.nan_passthrough(x, m.call("copysign", y, x), "tanh")


def erf(m: F32Math, x: ir.Value) -> ir.Value:
    """The error function: a P(a^2) below a = |x| = 1, 1 - exp(Q(a)) from 1 to 4, +-1 past."""
    a = m.clamp(m.call("fabs", x), None, ERF_CAP, "erf.a")
    small = m.mul(a, m.poly(m.mul(a, a), ERF_SMALL, "erf.p"))
    n, r = m.reduce_ln2(m.poly(a, ERF_LOG_ERFC, "erf.q"))  # in [-17.4, -1.8]: no clamp
    large = m.sub(m.c(1.0), m.exp_reduced(n, r))
    y = m.where(m.cmp("<", a, m.c(1.0)), small, large)
    return m.nan_passthrough(x, m.call("copysign", y, x), "erf")


FUNCTIONS: dict[str, Callable[[F32Math, ir.Value], ir.Value]] = {
    "exp": exp, "exp2": exp2, "expm1": expm1, "log": log, "log1p": log1p, "tanh": tanh,
    "erf": erf,
}


def emit(b: ir.IRBuilder, name: str, args: Sequence[ir.Value]) -> ir.Value | None:
    """The inline f32 (scalar or vector) version of math function `name` applied to `args`,
    or None when there is none (another function, or another element type)."""
    fn = FUNCTIONS.get(name)
    if fn is None or len(args) != 1 or shaped(F32, args[0]) != args[0].type:
        return None
    return fn(F32Math(b, args[0]), args[0])

