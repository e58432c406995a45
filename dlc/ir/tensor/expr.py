"""Tensor-IR expressions: immutable, hash-consed, simplified on construction.

Structurally equal expressions are the same object (tinygrad's UOp idea), so equality is
identity, dictionaries keyed on expressions are cheap, and CSE is free. Constructors fold
constants and apply the obvious identities (`x + 0`, `x * 1`, `x * 0` on integers,
`(x + 2) + 3`), which keeps index arithmetic readable after splits and fusion.

Kinds (`Expr.op`):
  var, const                      leaves (a var is a loop index or a size symbol)
  add sub mul div floordiv mod    arithmetic (`div` is true division for floats;
  min max                         floordiv/mod round toward -inf, like Python)
  lt le eq ne gt ge and or not    predicates (dtype bool)
  select cast call load           `call` is an intrinsic (exp, log, sqrt, ..., bitwise_and;
                                  `pow` of integers is exact, wrapping, by squaring)
  ramp broadcast                  vector lanes (produced by vectorization)
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from typing import Any

from dlc.ir.dtypes import DType

_INTERN: weakref.WeakValueDictionary[tuple, Expr] = weakref.WeakValueDictionary()

INTRINSICS = ("exp", "log", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "abs", "floor",
              "ceil", "round", "pow", "sigmoid", "log1p", "expm1", "isnan", "isinf", "sign",
              "trunc", "exp2", "log2", "log10", "tan", "asin", "acos", "atan", "atan2", "sinh",
              "cosh", "asinh", "acosh", "atanh", "signbit", "bitwise_and", "bitwise_or",
              "bitwise_xor")
PREDICATES = ("isnan", "isinf", "signbit")  # intrinsics whose result is bool

ARITH = ("add", "sub", "mul", "div", "floordiv", "mod", "min", "max")
COMPARE = ("lt", "le", "eq", "ne", "gt", "ge")
LOGIC = ("and", "or", "not")


class Expr:
    """A node of the expression DAG; build with the helper functions, not directly."""

    __slots__ = ("op", "args", "dtype", "lanes", "__weakref__")

    op: str
    args: tuple[Any, ...]
    dtype: DType
    lanes: int

    def __new__(cls, op: str, args: tuple[Any, ...], dtype: DType, lanes: int = 1) -> Expr:
        key = (op, args, dtype, lanes)
        found = _INTERN.get(key)
        if found is not None:
            return found
        e = object.__new__(cls)
        object.__setattr__(e, "op", op)
        object.__setattr__(e, "args", args)
        object.__setattr__(e, "dtype", dtype)
        object.__setattr__(e, "lanes", lanes)
        _INTERN[key] = e
        return e

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("tensor-IR expressions are immutable")

    def __reduce__(self) -> tuple:
        return (Expr, (self.op, self.args, self.dtype, self.lanes))

    # identity is structural equality thanks to interning
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    # -- operator sugar ----------------------------------------------------------------
    def __add__(self, o: Any) -> Expr:
        return add(self, o)

    def __radd__(self, o: Any) -> Expr:
        return add(o, self)

    def __sub__(self, o: Any) -> Expr:
        return sub(self, o)

    def __rsub__(self, o: Any) -> Expr:
        return sub(o, self)

    def __mul__(self, o: Any) -> Expr:
        return mul(self, o)

    def __rmul__(self, o: Any) -> Expr:
        return mul(o, self)

    def __truediv__(self, o: Any) -> Expr:
        return div(self, o)

    def __floordiv__(self, o: Any) -> Expr:
        return floordiv(self, o)

    def __mod__(self, o: Any) -> Expr:
        return mod(self, o)

    def __neg__(self) -> Expr:
        return sub(const(0, self.dtype), self)

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def value(self) -> Any:
        assert self.op == "const", f"{self} is not a constant"
        return self.args[0]

    @property
    def name(self) -> str:
        assert self.op == "var", f"{self} is not a variable"
        return self.args[0]

    def __repr__(self) -> str:
        from dlc.ir.tensor.printer import expr_str

        return expr_str(self)


# -- leaves ------------------------------------------------------------------------------


def var(name: str, dtype: DType = DType.i64) -> Expr:
    """A named variable (loop index or size symbol). Same name and dtype: same object."""
    return Expr("var", (name,), dtype)


def const(value: Any, dtype: DType | None = None) -> Expr:
    """A constant; int defaults to i64, float to f32, bool to bool."""
    if isinstance(value, Expr):
        return value
    if dtype is None:
        dtype = (DType.bool if isinstance(value, bool) else
                 DType.i64 if isinstance(value, int) else DType.f32)
    if dtype == DType.bool:
        value = bool(value)
    elif dtype.is_float:
        value = float(value)
    else:
        value = int(value)
    return Expr("const", (value,), dtype)


def as_expr(x: Any, like: Expr | None = None) -> Expr:
    """Wrap Python numbers as constants (of `like`'s dtype when given)."""
    if isinstance(x, Expr):
        return x
    if isinstance(getattr(x, "var", None), Expr):  # a ReduceAxis used as an index
        return x.var
    if hasattr(x, "free_symbols"):  # a sympy dimension
        return from_sympy(x)
    return const(x, like.dtype if like is not None and not isinstance(x, bool) else None)


def from_sympy(e: Any) -> Expr:
    """A tensor-IR index expression from a symbolic (sympy) graph-IR dimension."""
    import sympy

    if isinstance(e, int) or getattr(e, "is_Integer", False):
        return const(int(e))
    if e.is_Symbol:
        return var(e.name)
    if isinstance(e, sympy.Add):
        out = from_sympy(e.args[0])
        for a in e.args[1:]:
            out = add(out, from_sympy(a))
        return out
    if isinstance(e, sympy.Mul):
        out = from_sympy(e.args[0])
        for a in e.args[1:]:
            out = mul(out, from_sympy(a))
        return out
    if isinstance(e, sympy.floor):
        num, den = e.args[0].as_numer_denom()
        return floordiv(from_sympy(num), from_sympy(den))
    if isinstance(e, sympy.ceiling):
        num, den = e.args[0].as_numer_denom()
        n, d = from_sympy(num), from_sympy(den)
        return floordiv(add(n, sub(d, 1)), d)
    if isinstance(e, sympy.Max):
        return max_(from_sympy(e.args[0]), from_sympy(e.args[1]))
    if isinstance(e, sympy.Min):
        return min_(from_sympy(e.args[0]), from_sympy(e.args[1]))
    raise ValueError(f"cannot lower dimension {e} to an index expression")


# -- arithmetic with folding ---------------------------------------------------------------


def _binary(op: str, a: Any, b: Any) -> tuple[Expr, Expr]:
    a = as_expr(a, b if isinstance(b, Expr) else None)
    b = as_expr(b, a)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operand dtypes differ ({a.dtype} vs {b.dtype}); cast first")
    return a, b


def _fold(op: str, x: Any, y: Any, dtype: DType) -> Any:
    if op == "add":
        return x + y
    if op == "sub":
        return x - y
    if op == "mul":
        return x * y
    if op == "div":
        return x / y if dtype.is_float else None
    if op == "floordiv":
        return x // y if y != 0 else None
    if op == "mod":
        return x % y if y != 0 else None
    if op == "min":
        return min(x, y)
    if op == "max":
        return max(x, y)
    return None


def _arith(op: str, a: Any, b: Any) -> Expr:
    a, b = _binary(op, a, b)
    lanes = max(a.lanes, b.lanes)
    if a.is_const and b.is_const and lanes == 1:
        folded = _fold(op, a.value, b.value, a.dtype)
        if folded is not None:
            return const(folded, a.dtype)
    return Expr(op, (a, b), a.dtype, lanes)


def add(a: Any, b: Any) -> Expr:
    """a + b, folding constants and `+ 0`, and reassociating `(x + c1) + c2`."""
    a, b = _binary("add", a, b)
    if a.is_const and not b.is_const:
        a, b = b, a  # constants go right: x + 3
    if b.is_const and b.value == 0 and b.lanes == 1:
        return a
    if b.is_const and a.op == "add" and a.args[1].is_const:
        return add(a.args[0], a.args[1].value + b.value)
    if b.is_const and a.op == "sub" and a.args[1].is_const:
        return add(a.args[0], b.value - a.args[1].value)
    return _arith("add", a, b)


def sub(a: Any, b: Any) -> Expr:
    """a - b, folding constants, `- 0` and `x - x` (integers)."""
    a, b = _binary("sub", a, b)
    if b.is_const and b.value == 0:
        return a
    if a is b and not a.dtype.is_float:
        return const(0, a.dtype)
    if b.is_const and not a.dtype.is_float:
        return add(a, -b.value)
    return _arith("sub", a, b)


def mul(a: Any, b: Any) -> Expr:
    """a * b, folding constants, `* 1`, and `* 0` on integers."""
    a, b = _binary("mul", a, b)
    if a.is_const and not b.is_const:
        a, b = b, a
    if b.is_const and b.value == 1:
        return a
    if b.is_const and b.value == 0 and not a.dtype.is_float:
        return b
    if b.is_const and a.op == "mul" and a.args[1].is_const:
        return mul(a.args[0], a.args[1].value * b.value)
    return _arith("mul", a, b)


def div(a: Any, b: Any) -> Expr:
    """True division (floats)."""
    a, b = _binary("div", a, b)
    if b.is_const and b.value == 1:
        return a
    return _arith("div", a, b)


def floordiv(a: Any, b: Any) -> Expr:
    """Integer division rounding toward -inf; `(x * c) // c -> x`, `x // 1 -> x`."""
    a, b = _binary("floordiv", a, b)
    if b.is_const and b.value == 1:
        return a
    if b.is_const and a.op == "mul" and a.args[1].is_const and a.args[1].value % b.value == 0:
        return mul(a.args[0], a.args[1].value // b.value)
    return _arith("floordiv", a, b)


def mod(a: Any, b: Any) -> Expr:
    """Integer remainder with the sign of the divisor (Python's %)."""
    a, b = _binary("mod", a, b)
    if b.is_const and b.value == 1:
        return const(0, a.dtype)
    if b.is_const and a.op == "mul" and a.args[1].is_const and a.args[1].value % b.value == 0:
        return const(0, a.dtype)
    return _arith("mod", a, b)


def min_(a: Any, b: Any) -> Expr:
    """min(a, b)."""
    a, b = _binary("min", a, b)
    return a if a is b else _arith("min", a, b)


def max_(a: Any, b: Any) -> Expr:
    """max(a, b)."""
    a, b = _binary("max", a, b)
    return a if a is b else _arith("max", a, b)


def compare(op: str, a: Any, b: Any) -> Expr:
    """A comparison (`lt`, `le`, `eq`, `ne`, `gt`, `ge`) giving bool."""
    assert op in COMPARE
    a, b = _binary(op, a, b)
    if a.is_const and b.is_const:
        x, y = a.value, b.value
        return const({"lt": x < y, "le": x <= y, "eq": x == y, "ne": x != y,
                      "gt": x > y, "ge": x >= y}[op], DType.bool)
    return Expr(op, (a, b), DType.bool, max(a.lanes, b.lanes))


def logical(op: str, *xs: Expr) -> Expr:
    """and / or / not on bool expressions, with constant short-cuts."""
    assert op in LOGIC
    if op == "not":
        (x,) = xs
        return const(not x.value, DType.bool) if x.is_const else Expr("not", (x,), DType.bool,
                                                                       x.lanes)
    a, b = xs
    for p, q in ((a, b), (b, a)):
        if p.is_const:
            if op == "and":
                return q if p.value else const(False, DType.bool)
            return const(True, DType.bool) if p.value else q
    return Expr(op, (a, b), DType.bool, max(a.lanes, b.lanes))


def select(cond: Expr, a: Any, b: Any) -> Expr:
    """cond ? a : b."""
    a, b = _binary("select", a, b)
    if cond.is_const:
        return a if cond.value else b
    if a is b:
        return a
    return Expr("select", (cond, a, b), a.dtype, max(cond.lanes, a.lanes, b.lanes))


def cast(x: Any, dtype: DType) -> Expr:
    """Convert to `dtype` (floats to ints truncate toward zero, as in C)."""
    x = as_expr(x)
    if x.dtype == dtype:
        return x
    if x.is_const:
        v = x.value
        if dtype == DType.bool:
            return const(bool(v), dtype)
        if dtype.is_float:
            return const(float(v), dtype)
        if isinstance(v, float) and not math.isfinite(v):
            return Expr("cast", (x,), dtype, x.lanes)
        return const(int(v), dtype)
    return Expr("cast", (x,), dtype, x.lanes)


def call(name: str, *args: Any) -> Expr:
    """A math intrinsic, e.g. `call("exp", x)`; the result has the first operand's dtype."""
    if name not in INTRINSICS:
        raise ValueError(f"unknown intrinsic {name!r}; known: {', '.join(INTRINSICS)}")
    xs = tuple(as_expr(a) for a in args)
    dtype = DType.bool if name in PREDICATES else xs[0].dtype
    return Expr("call", (name, *xs), dtype, max(x.lanes for x in xs))


def load(buffer: Any, indices: tuple[Any, ...]) -> Expr:
    """Read `buffer[indices]` (one index expression per dimension)."""
    idx = tuple(as_expr(i) for i in indices)
    if len(idx) != len(buffer.shape):
        raise IndexError(f"load of {buffer.name} with {len(idx)} indices; it has rank "
                         f"{len(buffer.shape)}")
    return Expr("load", (buffer, *idx), buffer.dtype, max((i.lanes for i in idx), default=1))


def ramp(base: Expr, stride: int, lanes: int) -> Expr:
    """The vector `[base, base + stride, ..., base + (lanes-1)*stride]`."""
    return Expr("ramp", (base, stride), base.dtype, lanes)


def broadcast(value: Expr, lanes: int) -> Expr:
    """The vector of `lanes` copies of a scalar."""
    return value if lanes == 1 else Expr("broadcast", (value,), value.dtype, lanes)


# -- traversal ---------------------------------------------------------------------------


def children(e: Expr) -> tuple[Expr, ...]:
    """The sub-expressions of `e` (skipping names, buffers and numbers)."""
    return tuple(a for a in e.args if isinstance(a, Expr))


def substitute(e: Expr, mapping: dict[Expr, Expr], _memo: dict | None = None) -> Expr:
    """Replace sub-expressions (usually variables) by others, rebuilding with folding."""
    memo = {} if _memo is None else _memo
    if e in mapping:
        return mapping[e]
    if e in memo:
        return memo[e]
    if not children(e):
        return e
    args = tuple(substitute(a, mapping, memo) if isinstance(a, Expr) else a for a in e.args)
    out = rebuild(e, args)
    memo[e] = out
    return out


def rebuild(e: Expr, args: tuple[Any, ...]) -> Expr:
    """`e` with new arguments, through the folding constructors."""
    if args == e.args:
        return e
    op = e.op
    if op in ("add", "sub", "mul", "div", "floordiv", "mod"):
        return {"add": add, "sub": sub, "mul": mul, "div": div, "floordiv": floordiv,
                "mod": mod}[op](*args)
    if op == "min":
        return min_(*args)
    if op == "max":
        return max_(*args)
    if op in COMPARE:
        return compare(op, *args)
    if op in LOGIC:
        return logical(op, *args)
    if op == "select":
        return select(*args)
    if op == "cast":
        return cast(args[0], e.dtype)
    if op == "call":
        return call(*args)
    if op == "load":
        return load(args[0], args[1:])
    return Expr(op, args, e.dtype, e.lanes)


def subexprs(e: Expr) -> Iterator[Expr]:
    """Every distinct sub-expression of `e` (itself included), each once."""
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack.extend(children(x))


def free_vars(e: Expr) -> set[str]:
    """Names of the variables `e` reads."""
    return {x.name for x in subexprs(e) if x.op == "var"}


def loaded_buffers(e: Expr) -> list[Any]:
    """The buffers `e` loads from, in first-seen order."""
    return list(dict.fromkeys(x.args[0] for x in subexprs(e) if x.op == "load"))
