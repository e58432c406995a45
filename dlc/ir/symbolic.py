"""Symbolic sizes: a tensor dimension is an int or a SymPy expression over named symbols.

A dimension that is not known at compile time (a batch size `N`, a KV-cache length `S`, a
sparse tensor's `nnz`) is a SymPy symbol; shapes derived from it are expressions (`S + 1`,
`2*H`, `floor(H/2)`). Integers stay Python ints so that static shapes cost nothing.
Symbols are positive integers, which lets SymPy decide `S + 1 > 0` and simplify `floor`.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from dlc.errors import IRError

SizeExpr = sympy.Expr
Dim = int | sympy.Expr

_SYMBOLS: dict[str, sympy.Symbol] = {}


def symbol(name: str) -> sympy.Symbol:
    """The size symbol called `name` (the same object for the same name)."""
    if not name.isidentifier():
        raise IRError(f"size symbol {name!r} is not an identifier")
    if name not in _SYMBOLS:
        _SYMBOLS[name] = sympy.Symbol(name, integer=True, positive=True)
    return _SYMBOLS[name]


def dim(value: int | sympy.Expr | str) -> Dim:
    """Normalize a dimension: integer-valued expressions become ints, strings are parsed."""
    if isinstance(value, bool):
        raise IRError(f"a dimension cannot be a bool ({value!r})")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_dim(value)
    if hasattr(value, "__index__") and not isinstance(value, sympy.Basic):
        return int(value)
    expr = sympy.sympify(value)
    if expr.is_Integer:
        return int(expr)
    if not expr.free_symbols:
        raise IRError(f"dimension {value!r} is not an integer")
    return expr


def is_static(d: Dim) -> bool:
    """True when the dimension is a known integer."""
    return isinstance(d, int)


def dim_str(d: Dim) -> str:
    """Text of a dimension as the printer writes it (`S + 1`, `2*H`, `floor(H/2)`)."""
    return str(d)


_PARSE_LOCALS = {"floor": sympy.floor, "ceiling": sympy.ceiling, "Max": sympy.Max,
                 "Min": sympy.Min, "Mod": sympy.Mod}


def parse_dim(text: str) -> Dim:
    """Parse the printed form of a dimension back into an int or expression."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    names = {t for t in _identifiers(text) if t not in _PARSE_LOCALS}
    local = dict(_PARSE_LOCALS)
    local.update({n: symbol(n) for n in names})
    try:
        expr = sympy.parse_expr(text, local_dict=local, evaluate=True)
    except (SyntaxError, TypeError, sympy.SympifyError) as err:
        raise IRError(f"cannot parse dimension {text!r}: {err}") from None
    return dim(expr)


def _identifiers(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text + " ":
        if ch.isalnum() or ch == "_":
            cur += ch
        else:
            if cur and not cur[0].isdigit():
                out.append(cur)
            cur = ""
    return out


def free_symbols(d: Dim) -> set[str]:
    """Names of the symbols a dimension depends on."""
    if isinstance(d, int):
        return set()
    return {s.name for s in d.free_symbols}


def evaluate(d: Dim, bindings: Mapping[str, int]) -> int:
    """The integer value of a dimension under `bindings` (symbol name -> size)."""
    if isinstance(d, int):
        return d
    missing = free_symbols(d) - set(bindings)
    if missing:
        raise IRError(f"dimension {d} needs a value for {', '.join(sorted(missing))}")
    value = d.subs({symbol(k): v for k, v in bindings.items() if k in free_symbols(d)})
    return int(value)


def dims_equal(a: Dim, b: Dim) -> bool:
    """Structural equality of two dimensions (after SymPy's canonical simplification)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def floordiv(a: Dim, b: Dim) -> Dim:
    """`a // b` for dimensions (exact on ints, `floor(a/b)` on expressions)."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return dim(sympy.floor(sympy.sympify(a) / sympy.sympify(b)))


def ceildiv(a: Dim, b: Dim) -> Dim:
    """`ceil(a / b)` for dimensions."""
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    return dim(sympy.ceiling(sympy.sympify(a) / sympy.sympify(b)))


def product(dims: tuple[Dim, ...] | list[Dim]) -> Dim:
    """The product of dimensions (the element count of a shape)."""
    out: Dim = 1
    for d in dims:
        out = dim(out * d) if not (isinstance(out, int) and isinstance(d, int)) else out * d
    return out


def max_dim(a: Dim, b: Dim) -> Dim:
    """The larger of two dimensions (for broadcasting a symbol against 1)."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return dim(sympy.Max(a, b))
