"""A slow reference interpreter of the loop-nest IR, for tests on tiny shapes.

It executes statements one scalar at a time with Python semantics that match the code
generator: integer `floordiv`/`mod` round toward -inf, casts from float to int truncate,
float arithmetic is done in the buffer's NumPy dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlc.ir.tensor.expr import Expr
from dlc.ir.tensor.stmt import Allocate, Buffer, For, IfThenElse, PrimFunc, Seq, Stmt, Store

_MATH = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin,
    "cos": np.cos, "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "log1p": np.log1p, "expm1": np.expm1, "sign": np.sign, "trunc": np.trunc,
    "isnan": np.isnan, "isinf": np.isinf, "exp2": np.exp2, "log2": np.log2, "log10": np.log10,
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "signbit": np.signbit,
}
_MATH2 = {"atan2": np.arctan2, "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
          "bitwise_xor": np.bitwise_xor}


def run_func(func: PrimFunc, arrays: Mapping[str, np.ndarray],
             sizes: Mapping[str, int] | None = None) -> None:
    """Execute `func` in place on `arrays` (buffer name -> array; outputs are written)."""
    env: dict[Any, Any] = {b: arrays[b.name] for b in func.params}
    scalars: dict[str, Any] = dict(sizes or {})
    _exec(func.body, env, scalars)


def _exec(s: Stmt, env: dict[Any, Any], scalars: dict[str, Any]) -> None:
    if isinstance(s, Seq):
        for x in s.stmts:
            _exec(x, env, scalars)
    elif isinstance(s, For):
        extent = int(_eval(s.extent, env, scalars))
        name = s.var.name
        for i in range(extent):  # every loop kind has serial semantics here
            scalars[name] = i
            _exec(s.body, env, scalars)
        scalars.pop(name, None)
    elif isinstance(s, Store):
        idx = tuple(int(_eval(i, env, scalars)) for i in s.indices)
        _check_bounds(s.buffer, idx, env[s.buffer].shape)
        env[s.buffer][idx] = _eval(s.value, env, scalars)
    elif isinstance(s, IfThenElse):
        if _eval(s.cond, env, scalars):
            _exec(s.then, env, scalars)
        elif s.otherwise is not None:
            _exec(s.otherwise, env, scalars)
    elif isinstance(s, Allocate):
        shape = tuple(int(_eval(d, env, scalars)) for d in s.buffer.shape)
        env[s.buffer] = np.zeros(shape, dtype=s.buffer.dtype.numpy)
        _exec(s.body, env, scalars)
        del env[s.buffer]
    else:
        raise TypeError(f"unknown statement {type(s).__name__}")


def _check_bounds(buf: Buffer, idx: tuple[int, ...], shape: tuple[int, ...]) -> None:
    if any(not 0 <= i < n for i, n in zip(idx, shape)):
        raise IndexError(f"{buf.name}{list(idx)} is out of bounds for shape {list(shape)}")


def _eval(e: Expr, env: dict[Any, Any], scalars: dict[str, Any]) -> Any:
    op = e.op
    if op == "const":
        return e.dtype.numpy.type(e.value)
    if op == "var":
        return scalars[e.name]
    if op == "load":
        buf = e.args[0]
        idx = tuple(int(_eval(i, env, scalars)) for i in e.args[1:])
        _check_bounds(buf, idx, env[buf].shape)
        return env[buf][idx]
    args = [_eval(a, env, scalars) if isinstance(a, Expr) else a for a in e.args]
    np_type = e.dtype.numpy.type
    if op == "add":
        return np_type(args[0] + args[1])
    if op == "sub":
        return np_type(args[0] - args[1])
    if op == "mul":
        return np_type(args[0] * args[1])
    if op == "div":
        with np.errstate(all="ignore"):
            return np_type(np.true_divide(args[0], args[1]))
    if op == "floordiv":
        return np_type(int(args[0]) // int(args[1]))
    if op == "mod":
        if e.dtype.is_float:
            return np_type(math.fmod(args[0], args[1]))
        return np_type(int(args[0]) % int(args[1]))
    if op in ("min", "max"):
        a, b = args
        if e.dtype.is_float and (np.isnan(a) or np.isnan(b)):
            return np_type(np.nan)  # NaN propagates, as in torch
        return np_type(min(a, b) if op == "min" else max(a, b))
    if op in ("lt", "le", "eq", "ne", "gt", "ge"):
        a, b = args
        return bool({"lt": a < b, "le": a <= b, "eq": a == b, "ne": a != b, "gt": a > b,
                     "ge": a >= b}[op])
    if op == "and":
        return bool(args[0] and args[1])
    if op == "or":
        return bool(args[0] or args[1])
    if op == "not":
        return not args[0]
    if op == "select":
        return args[1] if args[0] else args[2]
    if op == "cast":
        with np.errstate(all="ignore"):
            return np.array(args[0]).astype(e.dtype.numpy).item() if e.dtype.is_float \
                else e.dtype.numpy.type(np.array(args[0]).astype(e.dtype.numpy))
    if op == "call":
        name, xs = args[0], args[1:]
        with np.errstate(all="ignore"):
            if name in _MATH:
                return np_type(_MATH[name](xs[0]))
            if name == "rsqrt":
                return np_type(1 / np.sqrt(xs[0]))
            if name == "sigmoid":
                return np_type(1 / (1 + np.exp(-xs[0])))
            if name in _MATH2:
                return np_type(_MATH2[name](xs[0], xs[1]))
            if name == "pow" and not e.dtype.is_float:
                return np_type(_int_pow(int(xs[0]), int(xs[1]), e.dtype.numpy))
            if name == "pow":
                return np_type(np.power(xs[0], xs[1]))
            if name == "erf":
                return np_type(math.erf(float(xs[0])))
    raise TypeError(f"cannot interpret {op}")


def _int_pow(base: int, exp: int, dtype: np.dtype) -> Any:
    """base ** exp wrapped to `dtype` as the generated squaring loop computes it.

    A negative exponent gives what torch gives: 1 for base 1, +-1 for base -1, else 0.
    """
    if exp < 0:
        if base == -1:
            return -1 if exp % 2 else 1
        return 1 if base == 1 else 0
    if dtype == np.bool_:
        return bool(base) or exp == 0
    bits = dtype.itemsize * 8
    wrapped = pow(base, exp, 1 << bits)
    if dtype.kind == "i" and wrapped >= 1 << (bits - 1):
        wrapped -= 1 << bits
    return wrapped
