"""The verifier: well-formed graphs pass; each broken invariant is reported by node."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.errors import VerificationError
from dlc.ir import GraphBuilder, Location, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.parser import parse_graph
from dlc.ir.verifier import verify_graph
from dlc.ops import get_op

f32 = DType.f32
N = symbol("N")


def two_node_graph() -> Graph:
    """%0 = relu(%x) at "act"; %1 = add(%0, %x) at "fc" (model.py:7)."""
    b = GraphBuilder("f")
    x = b.input("x", TensorType((N, 4), f32))
    h = b.op("ew.relu", x, loc=Location("act"))
    y = b.op("ew.add", h, x, loc=Location("fc", "model.py", 7))
    return b.build([y])


def errors_of(graph: Graph) -> str:
    with pytest.raises(VerificationError) as info:
        verify_graph(graph)
    return str(info.value)


def replace_node(graph: Graph, index: int, **changes) -> Graph:
    old = graph.nodes[index]
    fields = {"op": old.op, "inputs": old.inputs, "attrs": old.attrs, "outputs": old.outputs,
              "loc": old.loc, **changes}
    nodes = list(graph.nodes)
    nodes[index] = Node(**fields)
    outputs = tuple(fields["outputs"][0] if v is old.outputs[0] else v for v in graph.outputs)
    return Graph(graph.name, graph.inputs, tuple(nodes), outputs)


def test_well_formed_graphs_pass(toy_ops: None) -> None:
    verify_graph(two_node_graph())
    verify_graph(parse_graph("""
        graph @f(%adj: csr<f32>[N, N, nnz=E], %x: f32[N, 8], %s: f32[S]) -> (f32[N, 4], i64[K, 2]) {
          %0, %1 = toy.split2(%x) : f32[N, 4], f32[N, 4]
          %2 = toy.nonzero(%0) : i64[K, 2]
          %3 = toy.broadcast_to(%1, shape=[K, N, 4]) : f32[K, N, 4]
          %4 = ew.add(%0, const(1.0) : f32[]) : f32[N, 4]
          %5 = toy.broadcast_to(%s, shape=[S + 1, S]) : f32[S + 1, S]
          return %4, %2
        }"""))  # noqa: E501


def test_use_before_definition() -> None:
    g = two_node_graph()
    swapped = g.with_nodes([g.nodes[1], g.nodes[0]])
    msg = errors_of(swapped)
    assert msg.startswith("node %0 = ew.add at fc (model.py:7): operand 0 (%1) is used before "
                          "it is defined (by node 1)")


def test_operand_from_another_graph() -> None:
    g = two_node_graph()
    stranger = Value(TensorType((N, 4), f32), "stranger")
    msg = errors_of(replace_node(g, 1, inputs=(g.nodes[0].outputs[0], stranger)))
    assert "operand 1 (%stranger (not in this graph)) is not defined in this graph" in msg


def test_wrong_written_type() -> None:
    g = two_node_graph()
    wrong = Value(TensorType((N, 5), f32))
    msg = errors_of(replace_node(g, 1, outputs=(wrong,)))
    assert msg == ("node %1 = ew.add at fc (model.py:7): result types f32[N, 5] differ from "
                   "the type rule's f32[N, 4]")


def test_types_equal_up_to_simplification() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((N + 1, 4), f32))
    g = b.build([b.op("ew.relu", x)])
    same = Value(TensorType((1 + N, 2 * 2), f32))
    verify_graph(replace_node(g, 0, outputs=(same,)))


def test_wrong_number_of_results() -> None:
    g = two_node_graph()
    extra = Value(TensorType((N, 4), f32))
    msg = errors_of(replace_node(g, 0, outputs=(g.nodes[0].outputs[0], extra)))
    assert "node %0, %1 = ew.relu at act: has 2 result(s); the type rule gives 1" in msg


def test_type_rule_rejects_operands() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    i = b.input("i", TensorType((4,), DType.i32))
    g = b.build([b.op("ew.add", x, x)])
    msg = errors_of(replace_node(g, 0, inputs=(x, i)))
    assert "the type rule rejects the operands: ew.add: operand dtypes differ" in msg


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"dtype": DType.i32, "axis": 0}, "bad attribute: ew.cast: unknown attribute(s) axis"),
    ({"dtype": 3}, "bad attribute: ew.cast: attribute 'dtype' expects dtype, got 3"),
    ({}, "bad attribute: ew.cast: missing required attribute 'dtype'"),
    ({"dtype": "i32"}, "are not normalized"),
])
def test_bad_attributes(attrs: dict, expected: str) -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    g = b.build([b.op("ew.cast", x, dtype=DType.i32)])
    msg = errors_of(replace_node(g, 0, attrs=attrs))
    assert msg.startswith("node %0 = ew.cast: ") and expected in msg


def test_defaults_must_be_filled(toy_ops: None) -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    g = b.build([b.op("toy.attrs", x, i=2)])
    assert "are not normalized" in errors_of(replace_node(g, 0, attrs={"i": 2}))


def test_value_defined_twice() -> None:
    g = two_node_graph()
    first = g.nodes[0]
    again = Node(first.op, first.inputs, first.attrs, first.outputs, None)
    msg = errors_of(g.with_nodes([first, again, g.nodes[1]]))
    assert "node %0 = ew.relu: result 0 (%0) is already defined; each value is defined once" \
        in msg


def test_node_listed_twice() -> None:
    g = two_node_graph()
    msg = errors_of(g.with_nodes([g.nodes[0], g.nodes[0], g.nodes[1]]))
    assert "this node object appears twice" in msg


def test_input_listed_twice() -> None:
    g = two_node_graph()
    twice = Graph(g.name, (g.inputs[0], g.inputs[0]), g.nodes, g.outputs)
    assert "input 1 (%x) is listed twice" in errors_of(twice)


def test_undefined_graph_output() -> None:
    g = two_node_graph()
    loose = Value(TensorType((N, 4), f32), "loose")
    msg = errors_of(Graph(g.name, g.inputs, g.nodes, (loose,)))
    assert msg == "@f: returned value 0 (%loose (not in this graph)) is not defined in the graph"


def test_constant_whose_type_disagrees_with_its_data() -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((4,), f32))
    g = b.build([b.op("ew.add", x, b.const(np.float32(1.0)))])
    liar = Constant(TensorType((4,), f32), "c", np.zeros((), np.float32))
    msg = errors_of(replace_node(g, 0, inputs=(x, liar)))
    assert "constant operand 1 has type f32[4] but its data is f32[]" in msg


def test_attribute_symbols_must_be_defined(toy_ops: None) -> None:
    msg = errors_of(parse_graph("""
        graph @f(%x: f32[4]) -> (f32[K, 4]) {
          %0 = toy.broadcast_to(%x, shape=[K, 4]) : f32[K, 4]
          return %0
        }"""))
    assert msg.startswith("node %0 = toy.broadcast_to: attributes use size symbol(s) K that no "
                          "input or earlier op defines")


def test_data_dependent_size_must_be_a_new_symbol(toy_ops: None) -> None:
    text = """
        graph @f(%x: f32[N, 3]) -> (i64[{0}, 2], i64[{1}, 2]) {{
          %0 = toy.nonzero(%x) : i64[{0}, 2]
          %1 = toy.nonzero(%x) : i64[{1}, 2]
          return %0, %1
        }}"""
    verify_graph(parse_graph(text.format("K", "L")))
    msg = errors_of(parse_graph(text.format("K", "K")))
    assert msg.startswith("node %1 = toy.nonzero: the data-dependent size K reuses a symbol")
    msg = errors_of(parse_graph(text.format("N", "L")))
    assert msg.startswith("node %0 = toy.nonzero: the data-dependent size N reuses a symbol")
    msg = errors_of(parse_graph(text.format("2*K", "L")))
    assert "a data-dependent size is written as 2*K; it must be a new symbol" in msg


def test_fresh_symbols_from_the_builder_verify(toy_ops: None) -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((N, 3), f32))
    idx = b.op("toy.nonzero", x)
    out = b.op("ew.add", idx, idx)
    verify_graph(b.build([out, b.op("toy.nonzero", x)]))


def test_unregistered_op_objects_are_verified_by_their_declaration() -> None:
    relu = get_op("ew.relu")
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2,), f32))
    verify_graph(b.build([b.op(relu, x)]))
