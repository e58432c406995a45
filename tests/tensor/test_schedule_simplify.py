"""`simplify` on index expressions: each rewrite checked against plain evaluation.

Floor division and modulo round toward -inf, so the whole part of a dividend comes out
for every sign: `(c*q + r) // c == q + r // c` and `(c*q + r) % c == r % c`.
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from dlc.ir.tensor.expr import Expr, floordiv, mod, var
from dlc.ir.tensor.interpreter import _eval
from dlc.ir.tensor.printer import expr_str
from dlc.passes.tensor.schedule_analysis import simplify

Q, R = var("q"), var("r")


def value(e: Expr, **at: int) -> int:
    return int(_eval(e, {}, at))


def test_the_whole_part_comes_out_of_a_phase_split() -> None:
    """`l = l_o*2 + l_i` (a split by the stride): the phase of `l + 1` depends on `l_i`
    only, and its quotient moves with `l_o` one to one."""
    lo, li = var("l_o"), var("l_i")
    ranges = {"l_o": 32, "l_i": 2}
    assert expr_str(simplify(floordiv(lo * 2 + li + 1, 2), ranges)) == "l_o + (l_i + 1) // 2"
    assert expr_str(simplify(mod(lo * 2 + li + 1, 2), ranges)) == "(l_i + 1) % 2"


def test_a_provably_small_remainder_still_folds_away() -> None:
    ranges = {"q": 5, "r": 3}
    assert simplify(floordiv(Q * 3 + R, 3), ranges) is Q
    assert simplify(mod(Q * 3 + R, 3), ranges) is R


def test_nothing_to_pull_out_leaves_the_expression_alone() -> None:
    e = floordiv(Q + R * 3 + 1, 2)
    assert simplify(e, {}) is e


def test_exhaustively_on_small_ranges() -> None:
    """Every divisor 1..4, coefficients -5..5, constants -6..6, q and r in -7..7."""
    for c, a, b, k in itertools.product(range(1, 5), range(-5, 6), range(-5, 6), range(-6, 7)):
        x = Q * a + R * b + k
        for op in (floordiv, mod):
            e, s = op(x, c), simplify(op(x, c), {})
            for q, r in itertools.product(range(-7, 8, 3), range(-7, 8, 2)):
                assert value(s, q=q, r=r) == value(e, q=q, r=r), (expr_str(e), expr_str(s))


@given(st.integers(1, 9), st.integers(-20, 20), st.integers(-20, 20), st.integers(-50, 50),
       st.integers(0, 30), st.integers(0, 30), st.integers(1, 31), st.integers(1, 31))
def test_with_loop_ranges(c: int, a: int, b: int, k: int, q: int, r: int, nq: int,
                          nr: int) -> None:
    """With loop extents (the first fold may fire too), at values inside them."""
    q, r = q % nq, r % nr
    for op in (floordiv, mod):
        e = op(Q * a + R * b + k, c)
        s = simplify(e, {"q": nq, "r": nr})
        assert value(s, q=q, r=r) == value(e, q=q, r=r), (expr_str(e), expr_str(s))
