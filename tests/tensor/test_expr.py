"""Tensor-IR expressions: interning, folding, printing, substitution."""

from __future__ import annotations

import sympy

from dlc.ir.dtypes import f32, i64
from dlc.ir.symbolic import symbol
from dlc.ir.tensor.expr import (
    cast,
    compare,
    const,
    floordiv,
    free_vars,
    from_sympy,
    max_,
    mod,
    select,
    substitute,
    var,
)
from dlc.ir.tensor.stmt import Buffer


def test_structurally_equal_expressions_are_one_object() -> None:
    i, j = var("i"), var("j")
    assert (i * 4 + j) is (i * 4 + j)
    a = Buffer("A", (4, 8), f32)
    assert a[i, j + 1] is a[i, j + 1]
    assert a[i, j] is not a[j, i]


def test_constructors_fold_identities() -> None:
    i = var("i")
    assert (i + 0) is i and (i * 1) is i and (i * 0) is const(0)
    assert str((i + 2) + 3) == "i + 5"
    assert floordiv(i * 8, 4) is i * 2
    assert mod(i * 8, 4) is const(0)
    assert str(const(7) // 2) == "3" and str(const(-7) // 2) == "-4"  # Python floor
    assert select(compare("lt", const(1), const(2)), i, var("j")) is i
    assert cast(const(2.7, f32), i64) is const(2)


def test_printer_uses_minimal_parentheses() -> None:
    i, j = var("i"), var("j")
    x = var("x", f32)
    assert str((i + j) * 2) == "(i + j) * 2"
    assert str(i - (j + 1)) == "i - (j + 1)"
    assert str(max_(x * 2.0, const(0.0))) == "max(x * 2.0, 0.0)"


def test_substitute_rebuilds_with_folding() -> None:
    i, j = var("i"), var("j")
    e = i * 4 + j
    assert substitute(e, {i: const(2), j: const(1)}) is const(9)
    assert free_vars(e) == {"i", "j"}


def test_symbolic_dimensions_lower_to_index_expressions() -> None:
    s, h = symbol("S"), symbol("H")
    assert str(from_sympy(s + 1)) == "S + 1"
    assert str(from_sympy(sympy.floor(h / 2))) == "H // 2"
