"""Structural equality, and `assert_ir_equal`'s failure report."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.ir import GraphBuilder, Location, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.equality import assert_ir_equal, first_difference, same_array, structurally_equal
from dlc.ir.graph import Graph
from dlc.ir.parser import parse_graph

f32 = DType.f32
TEXT = """
    graph @f(%x: f32[N, 4], %y: f32[4]) -> (f32[N, 4]) {
      %0 = ew.add(%x, %y) : f32[N, 4] loc("fc" m.py:3)
      %1 = ew.mul(%0, const(2.0) : f32[]) : f32[N, 4]
      %2 = ew.relu(%1) : f32[N, 4]
      return %2
    }"""


FC = Location("fc", "m.py", 3)


def build(scale: float = 2.0, swap: bool = False, loc: Location | None = FC,
          names: tuple[str, str] = ("x", "y"), last: str = "ew.relu") -> Graph:
    b = GraphBuilder("f")
    x = b.input(names[0], TensorType((symbol("N"), 4), f32))
    y = b.input(names[1], TensorType((4,), f32))
    s = b.op("ew.add", *((y, x) if swap else (x, y)), loc=loc)
    s = b.op("ew.mul", s, b.const(np.float32(scale)))
    return b.build([b.op(last, s)])


def test_equal_to_itself_and_to_its_text() -> None:
    g = build()
    assert structurally_equal(g, g)
    assert structurally_equal(g, parse_graph(TEXT))
    assert_ir_equal(g, TEXT)


def test_value_names_do_not_matter() -> None:
    assert structurally_equal(build(names=("a", "b")), build())


@pytest.mark.parametrize(("other", "expected"), [
    (build(scale=3.0), "node 1 differs (operand 1: constants with the same type but "
                       "different data)"),
    (build(swap=True), "node 0 differs (operand 0: refers to a different value)"),
    (build(loc=None), "node 0 differs (locations differ"),
    (build(last="ew.exp"), "node 2 differs (op ew.relu vs ew.exp)"),
])
def test_first_difference_names_the_node(other: Graph, expected: str) -> None:
    found = first_difference(build(), other)
    assert found is not None and found.startswith(expected)
    assert not structurally_equal(build(), other)


def test_locations_can_be_ignored() -> None:
    assert structurally_equal(build(), build(loc=None), check_locations=False)


def test_attributes_types_and_outputs_are_compared() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    to_i32 = b.build([b.op("ew.cast", x, dtype=DType.i32)])
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    to_i64 = b.build([b.op("ew.cast", x, dtype=DType.i64)])
    assert "attribute(s) dtype differ" in first_difference(to_i32, to_i64)
    returns_input = Graph("f", to_i32.inputs, to_i32.nodes, (to_i32.inputs[0],))
    assert first_difference(to_i32, returns_input) == \
        "returned value 0: refers to a different value"
    other_input = Graph("f", (x,), (), (x,))
    assert first_difference(other_input, Graph("f", (), (), ())) == "1 inputs vs 0"
    assert "graph names differ" in first_difference(to_i32, Graph("g", to_i32.inputs,
                                                                  to_i32.nodes, to_i32.outputs))


def test_types_compare_up_to_simplification() -> None:
    n = symbol("N")
    a = Graph("f", (GraphBuilder().input("x", TensorType((n + n, 4), f32)),), (), ())
    b = Graph("f", (GraphBuilder().input("x", TensorType((2 * n, 2 + 2), f32)),), (), ())
    assert structurally_equal(a, b)


def test_same_array() -> None:
    nan = np.array([np.nan, 1.0], np.float32)
    assert same_array(nan, nan.copy())
    assert not same_array(np.array([0.0]), np.array([-0.0]))  # they print differently
    assert not same_array(np.array([1], np.int32), np.array([1], np.int64))
    assert not same_array(np.zeros((2, 1)), np.zeros((1, 2)))
    assert same_array(np.array([True, False]), np.array([True, False]))


def test_assert_ir_equal_shows_a_diff_and_the_first_mismatch() -> None:
    with pytest.raises(AssertionError) as info:
        assert_ir_equal(build(swap=True), TEXT)
    msg = str(info.value)
    assert msg.splitlines()[:4] == [
        "graphs differ: node 0 differs (operand 0: refers to a different value):",
        '  got:      %0 = ew.add(%y, %x) : f32[N, 4] loc("fc" m.py:3)',
        '  expected: %0 = ew.add(%x, %y) : f32[N, 4] loc("fc" m.py:3)',
        " " * 25 + "^",  # under the first differing character
    ]
    assert "--- expected\n+++ got\n" in msg
    assert '-  %0 = ew.add(%x, %y) : f32[N, 4] loc("fc" m.py:3)' in msg
    assert '+  %0 = ew.add(%y, %x) : f32[N, 4] loc("fc" m.py:3)' in msg


def test_assert_ir_equal_uses_the_graphs_constant_table() -> None:
    w = np.arange(20, dtype=np.float32)
    b = GraphBuilder("f")
    x = b.input("x", TensorType((20,), f32))
    g = b.build([b.op("ew.add", x, b.const(w, "w"))])
    assert_ir_equal(g, """
        graph @f(%x: f32[20]) -> (f32[20]) {
          %0 = ew.add(%x, @w) : f32[20]
          return %0
        }""")
    with pytest.raises(AssertionError, match="the difference is in constant data"):
        assert_ir_equal(g, """
            graph @f(%x: f32[20]) -> (f32[20]) {
              %0 = ew.add(%x, @w) : f32[20]
              return %0
            }""", constants={"w": w + 1})
