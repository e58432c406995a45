"""The textual IR parser: hand-written texts round-trip, and errors point at the culprit."""

from __future__ import annotations

import math
import textwrap

import ml_dtypes
import numpy as np
import pytest
import sympy

from dlc.errors import ParseError
from dlc.ir import GraphBuilder, Location, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.equality import same_array, structurally_equal
from dlc.ir.graph import Constant, Graph
from dlc.ir.parser import TokenKind, parse_graph, tokenize
from dlc.ir.printer import constant_table, print_graph
from dlc.ir.types import SparseTensorType
from dlc.ir.verifier import verify_graph


def canonical(text: str) -> str:
    """Hand-written IR in the exact form the printer writes."""
    return textwrap.dedent(text).strip("\n") + "\n"


def round_trip(text: str, constants: dict | None = None) -> Graph:
    """Parse, verify, then check print -> parse -> print is stable and structurally equal."""
    graph = parse_graph(text, constants)
    verify_graph(graph)
    printed = print_graph(graph)
    again = parse_graph(printed, constant_table(graph))
    assert print_graph(again) == printed
    assert structurally_equal(graph, again)
    return graph


def assert_canonical(text: str, constants: dict | None = None) -> Graph:
    """`text` is already printer output: parsing and printing gives it back exactly."""
    graph = round_trip(text, constants)
    assert print_graph(graph) == canonical(text)
    return graph


# -- round trips ---------------------------------------------------------------------------


def test_simple_graph_prints_back_exactly() -> None:
    g = assert_canonical("""
        graph @mlp(%x: f32[2, 3], %y: f32[3]) -> (i32[2, 3], f32[2, 3]) {
          %0 = ew.add(%x, %y) : f32[2, 3]
          %1 = ew.mul(%0, const(0.5) : f32[]) : f32[2, 3]
          %2 = ew.cast(%1, dtype=i32) : i32[2, 3]
          %3 = ew.exp(%1) : f32[2, 3]
          return %2, %3
        }
    """)
    assert g.name == "mlp"
    assert [v.name for v in g.inputs] == ["x", "y"]
    assert g.ops_used() == ["ew.add", "ew.cast", "ew.exp", "ew.mul"]
    assert g.nodes[2].attrs["dtype"] is DType.i32


def test_symbolic_shapes() -> None:
    g = assert_canonical("""
        graph @f(%x: f32[N, S + 1, 2*H], %b: f32[S + 1, 1], %c: f32[floor(H/2), Max(N, S)]) -> (f32[N, S + 1, 2*H]) {
          %0 = ew.add(%x, %b) : f32[N, S + 1, 2*H]
          %1 = ew.relu(%0) : f32[N, S + 1, 2*H]
          return %1
        }
    """)  # noqa: E501
    N, S, H = symbol("N"), symbol("S"), symbol("H")
    assert g.inputs[0].type.shape == (N, S + 1, 2 * H)
    assert g.symbols == {"N", "S", "H"}


def test_sparse_input_types() -> None:
    g = assert_canonical("""
        graph @gcn(%adj: csr<f32>[N, N, nnz=E], %a2: coo<bf16>[4, 8, nnz=12], %h: f32[N, 16]) -> (f32[N, 16]) {
          %0 = ew.relu(%h) : f32[N, 16]
          return %0
        }
    """)  # noqa: E501
    adj, a2 = g.inputs[0].type, g.inputs[1].type
    assert adj == SparseTensorType("csr", (symbol("N"), symbol("N")), DType.f32, symbol("E"))
    assert a2 == SparseTensorType("coo", (4, 8), DType.bf16, 12)


def test_a_symbol_called_nnz_in_a_sparse_shape() -> None:
    assert_canonical("""
        graph @f(%a: coo<f32>[nnz, 3, nnz=nnz]) -> (coo<f32>[nnz, 3, nnz=nnz]) {
          return %a
        }
    """)


def test_node_with_several_outputs(toy_ops: None) -> None:
    g = assert_canonical("""
        graph @f(%x: f32[N, 8]) -> (f32[N, 4], f32[N, 4]) {
          %0, %1 = toy.split2(%x) : f32[N, 4], f32[N, 4]
          %2 = ew.add(%0, %1) : f32[N, 4]
          return %2, %1
        }
    """)
    split = g.nodes[0]
    assert len(split.outputs) == 2
    assert g.nodes[1].inputs == split.outputs
    assert g.outputs[1] is split.outputs[1]


def test_symbolic_halving_prints_as_floor(toy_ops: None) -> None:
    assert_canonical("""
        graph @f(%x: f32[H]) -> (f32[floor(H/2)]) {
          %0, %1 = toy.split2(%x) : f32[floor(H/2)], f32[floor(H/2)]
          return %0
        }
    """)


@pytest.mark.parametrize("loc", [
    'loc("encoder.conv1" model.py:42)',
    'loc("only.a.name")',
    "loc(model.py:7)",
    "loc(/abs/path/to/file.py)",
    "loc(<eval_with_key>.3:12)",
    "loc()",
    r'loc("quotes \"and\" back\\slashes\nnewline" x.py:1)',
    'loc("" "my model (copy).py":3)',
    'loc("n" "a.py:5")',
    'loc("" "":9)',
])
def test_locations_round_trip(loc: str) -> None:
    g = assert_canonical(f"""
        graph @f(%x: f32[2]) -> (f32[2]) {{
          %0 = ew.relu(%x) : f32[2] {loc}
          return %0
        }}
    """)
    assert g.nodes[0].loc is not None


def test_location_fields() -> None:
    text = r'''
        graph @f(%x: f32[2]) -> (f32[2]) {
          %0 = ew.relu(%x) : f32[2] loc("enc.\"q\"\\x" model.py:12)
          %1 = ew.relu(%0) : f32[2] loc("" "dir with space/m.py":3)
          %2 = ew.relu(%1) : f32[2] loc(C:\models\m.py:8)
          return %2
        }'''
    g = round_trip(text)
    assert g.nodes[0].loc == Location('enc."q"\\x', "model.py", 12)
    assert g.nodes[1].loc == Location("", "dir with space/m.py", 3)
    assert g.nodes[2].loc == Location("", "C:\\models\\m.py", 8)


@pytest.mark.parametrize("location", [
    Location("a\nb", "f.py", 1), Location("", "f.py:3", 0), Location("x", "", 4),
    Location(")", "(", 0), Location('"', '"', -2), Location("#//", "#//", 1),
])
def test_any_location_round_trips(location: Location) -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2,), DType.f32))
    graph = b.build([b.op("ew.relu", x, loc=location)])
    again = parse_graph(print_graph(graph))
    assert again.nodes[0].loc == location


# One literal per dtype with the awkward values: extremes, negative zero, nan and inf.
DTYPE_VALUES = {
    DType.f64: [1.0, -0.0, 1e-300, 1.7976931348623157e308, math.nan, math.inf, -math.inf, 0.1],
    DType.f32: [0.1, -2.5, 3.4028234663852886e38, 1e-45, math.nan, -math.inf, 1e20],
    DType.f16: [0.1, 65504.0, -6e-08, math.nan, math.inf],
    DType.bf16: [0.1, -3.0, 1e38, math.nan, -math.inf, 1.5e-20],
    DType.i64: [-(2**63), 2**63 - 1, 0, -7],
    DType.i32: [-(2**31), 2**31 - 1, 5],
    DType.i16: [-(2**15), 2**15 - 1],
    DType.i8: [-128, 127, -1],
    DType.u64: [0, 2**64 - 1],
    DType.u32: [0, 2**32 - 1],
    DType.u16: [0, 65535],
    DType.u8: [0, 255, 7],
    DType.bool: [True, False, True],
}


@pytest.mark.parametrize("dtype", list(DTYPE_VALUES), ids=str)
def test_inline_constants_of_every_dtype(dtype: DType) -> None:
    data = np.array(DTYPE_VALUES[dtype], dtype=dtype.numpy)
    b = GraphBuilder("consts")
    scalar = b.const(data[:1].reshape(()))
    vector = b.const(data)
    matrix = b.const(np.stack([data, data[::-1]]))
    outs = [b.op("ew.cast", c, dtype=dtype) for c in (scalar, vector, matrix)]
    graph = b.build([*outs, vector])
    text = print_graph(graph)
    assert "@" not in text.split("\n", 1)[1]  # all inline
    again = round_trip(text)
    for original, parsed in zip(graph.nodes, again.nodes):
        got, want = parsed.inputs[0], original.inputs[0]
        assert isinstance(got, Constant) and got.type == want.type
        assert same_array(got.data, want.data)
    assert print_graph(again) == text


def test_bf16_constants_print_exactly() -> None:
    data = np.array([0.1, 1 / 3, 300.7], dtype=ml_dtypes.bfloat16)
    b = GraphBuilder("f")
    graph = b.build([b.op("ew.cast", b.const(data), dtype=DType.f32)])
    again = round_trip(print_graph(graph))
    assert again.nodes[0].inputs[0].data.tobytes() == data.tobytes()


def test_hand_written_literals() -> None:
    g = round_trip("""
        graph @f() -> (f32[2, 3], i64[3], bool[2], f64[0], f32[2, 0], f32[0, 3]) {
          return const([[1, -2.5e-3, 1E5], [nan, inf, -inf]]) : f32[2, 3], const([-1, 0, 1]) : i64[3], const([true, false]) : bool[2], const([]) : f64[0], const([[], []]) : f32[2, 0], const([]) : f32[0, 3]
        }""")  # noqa: E501
    first = g.outputs[0].data
    assert first.dtype == np.float32 and first[0, 1] == np.float32(-2.5e-3)
    assert np.isnan(first[1, 0]) and first[1, 2] == -np.inf
    assert g.outputs[5].data.shape == (0, 3)


def test_large_constant_goes_through_the_table() -> None:
    w = np.arange(40, dtype=np.float32).reshape(10, 4)
    b = GraphBuilder("f")
    x = b.input("x", TensorType((10, 4), DType.f32))
    weight = b.const(w, "fc1.weight")
    y = b.op("ew.add", x, weight)
    graph = b.build([b.op("ew.mul", y, weight)])
    text = print_graph(graph)
    assert "ew.add(%x, @fc1.weight)" in text
    table = constant_table(graph)
    assert list(table) == ["fc1.weight"] and table["fc1.weight"] is w
    again = round_trip(text, table)
    first, second = again.nodes[0].inputs[1], again.nodes[1].inputs[1]
    assert first is second and first.data is w  # one Constant per name, data not copied


def test_constants_table_from_hand_written_text() -> None:
    g = round_trip("""
        graph @f(%x: i64[3, 8]) -> (i64[3, 8]) {
          %0 = ew.add(%x, @w) : i64[3, 8]
          return %0
        }""", {"w": np.ones((3, 8), np.int64)})
    assert g.nodes[0].inputs[1].type == TensorType((3, 8), DType.i64)


def test_comments_blank_lines_and_free_layout() -> None:
    g = round_trip("""
        # a golden test writes comments
        graph @f(%a: f32[4, 8],   // and C++ ones
                 %b: f32[8]) -> f32[4, 8] {

          %0 = ew.add(%a,
                      %b) : f32[4, 8]    # torch: fc1 (linear)
          %1 = ew.relu(%0) : f32[4, 8] loc("act" m.py:3)  # after a loc(...)
          return %1
        }  # trailing comment
        """)
    assert len(g.nodes) == 2 and g.nodes[1].loc == Location("act", "m.py", 3)


def test_hand_written_names_are_renumbered() -> None:
    g = round_trip("""
        graph @f(%x: f32[2]) -> (f32[2]) {
          %hidden = ew.relu(%x) : f32[2]
          %out = ew.exp(%hidden) : f32[2]
          return %out
        }""")
    assert g.nodes[0].outputs[0].name == "hidden"
    assert "%0 = ew.relu(%x)" in print_graph(g)


def test_attributes_of_every_kind(toy_ops: None) -> None:
    g = assert_canonical("""
        graph @f(%x: f32[N, 4], %y: f32[], %s: f32[S]) -> (f32[N, 4]) {
          %0 = toy.attrs(%x, %y, i=-3, f=nan, flag=true, mode="valid", label="a \\"b\\"\\nc", dt=bf16, ints=[1, -2], floats=[1.5, -inf, 1e-07], dims=[N, S + 1, Max(2, N), -1], extra=[1, [2.5, "s"], f32, true, none], maybe=none) : f32[N, 4]
          %1 = toy.attrs(%0, i=0, f=1.0, flag=false, mode="same", label="", dt=f32, ints=[], floats=[], dims=[], extra=none, maybe=7) : f32[N, 4]
          return %1
        }
    """)  # noqa: E501
    attrs = g.nodes[0].attrs
    assert attrs["i"] == -3 and math.isnan(attrs["f"]) and attrs["flag"] is True
    assert attrs["label"] == 'a "b"\nc' and attrs["dt"] is DType.bf16
    assert attrs["floats"] == (1.5, -math.inf, 1e-07)
    N, S = symbol("N"), symbol("S")
    assert attrs["dims"] == (N, S + 1, sympy.Max(2, N), -1)
    assert attrs["extra"] == (1, (2.5, "s"), DType.f32, True, None)
    assert g.nodes[1].attrs["maybe"] == 7


def test_defaults_are_filled_and_printed(toy_ops: None) -> None:
    g = round_trip("""
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = toy.attrs(%x, i=2) : f32[4]
          return %0
        }""")
    assert g.nodes[0].attrs["mode"] == "same"
    assert 'i=2, f=1.0, flag=false, mode="same"' in print_graph(g)


def test_dims_attribute_with_expressions(toy_ops: None) -> None:
    g = assert_canonical("""
        graph @f(%x: f32[1, H], %n: f32[N]) -> (f32[N, H]) {
          %0 = toy.broadcast_to(%x, shape=[N, H]) : f32[N, H]
          return %0
        }
    """)
    assert g.nodes[0].attrs["shape"] == (symbol("N"), symbol("H"))


def test_data_dependent_size_takes_the_written_symbol(toy_ops: None) -> None:
    g = assert_canonical("""
        graph @f(%x: f32[N, 3]) -> (i64[K, 2], i64[K2, 2]) {
          %0 = toy.nonzero(%x) : i64[K, 2]
          %1 = toy.nonzero(%x) : i64[K2, 2]
          return %0, %1
        }
    """)
    assert g.nodes[0].outputs[0].type.shape == (symbol("K"), 2)


def test_variadic_operands(toy_ops: None) -> None:
    assert_canonical("""
        graph @f(%a: f32[N, 2], %b: f32[3, 2]) -> (f32[N + 6, 2]) {
          %0 = toy.cat(%a, %b, %b) : f32[N + 6, 2]
          return %0
        }
    """)


def test_graph_may_return_inputs_and_constants() -> None:
    g = assert_canonical("""
        graph @f(%x: f32[2]) -> (f32[2], f32[], i8[2]) {
          return %x, const(2.0) : f32[], const([1, -1]) : i8[2]
        }
    """)
    assert g.outputs[0] is g.inputs[0] and isinstance(g.outputs[1], Constant)


def test_empty_graph() -> None:
    g = round_trip("""
        graph @nothing() -> () {
          return
        }
    """)
    assert g.inputs == g.nodes == g.outputs == ()


def test_tokens_carry_positions() -> None:
    tokens = tokenize('%x = ew.add(@w, 1.5e-3) loc("a" b.py:2)')
    kinds = [t.kind for t in tokens]
    assert kinds == [TokenKind.VALUE, TokenKind.PUNCT, TokenKind.IDENT, TokenKind.PUNCT,
                     TokenKind.CONST, TokenKind.PUNCT, TokenKind.FLOAT, TokenKind.PUNCT,
                     TokenKind.LOC, TokenKind.EOF]
    assert tokens[6].pos == 16 and tokens[8].value == Location("a", "b.py", 2)


# -- errors ------------------------------------------------------------------------------


def parse_error(text: str, constants: dict | None = None) -> str:
    with pytest.raises(ParseError) as info:
        parse_graph(text, constants)
    return str(info.value)


GRAPH = """graph @f(%x: f32[4], %i: i32[4]) -> (f32[4]) {{
  {line}
  return %0
}}"""


def test_unknown_op_lists_close_names() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.ad(%x, %x) : f32[4]"))
    assert "unknown op 'ew.ad'" in msg and "ew.add" in msg
    assert "(line 2, column 8)" in msg


def test_bad_token_caret_points_at_the_column() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x, %x) : f32[4] $"))
    assert msg.splitlines() == [
        "unexpected character '$' (line 2, column 32)",
        "    %0 = ew.add(%x, %x) : f32[4] $",
        "                                 ^",
    ]


def test_unexpected_token() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x %x) : f32[4]"))
    assert "expected ',' between arguments, found '%x' (line 2, column 18)" in msg


def test_written_type_disagrees_with_the_type_rule() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x, %x) : f32[5]"))
    assert "ew.add: the written result type f32[5] differs from the type rule's f32[4]" in msg
    assert "(line 2, column 25)" in msg


def test_type_rule_rejects_operands() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x, %i) : f32[4]"))
    assert "ew.add: operand dtypes differ: f32, i32" in msg and "line 2" in msg


def test_undefined_value_suggests_defined_names() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x, %xx) : f32[4]"))
    assert "undefined value %xx (did you mean %x?)" in msg and "column 19" in msg


def test_value_used_before_its_definition() -> None:
    msg = parse_error("""graph @f(%x: f32[4]) -> (f32[4]) {
  %0 = ew.add(%x, %1) : f32[4]
  %1 = ew.relu(%x) : f32[4]
  return %0
}""")
    assert "undefined value %1" in msg and "line 2" in msg


def test_redefinition_is_an_error() -> None:
    msg = parse_error("""graph @f(%x: f32[4]) -> (f32[4]) {
  %x = ew.relu(%x) : f32[4]
  return %x
}""")
    assert "%x is defined twice" in msg and "line 2, column 3" in msg


def test_missing_constants_are_all_listed() -> None:
    text = """graph @f(%x: f32[4]) -> (f32[4]) {
  %0 = ew.add(%x, @w) : f32[4]
  %1 = ew.add(%0, @b) : f32[4]
  %2 = ew.add(%1, @w) : f32[4]
  return %2
}"""
    msg = parse_error(text, {"bias": np.zeros(4, np.float32)})
    assert "constant(s) @w, @b not in the constant table (it has @bias)" in msg
    assert "line 2, column 19" in msg


def test_constant_of_the_wrong_shape_is_a_type_error() -> None:
    msg = parse_error(GRAPH.format(line="%0 = ew.add(%x, @w) : f32[4]"),
                      {"w": np.zeros(5, np.float32)})
    assert "do not broadcast" in msg


@pytest.mark.parametrize(("line", "expected"), [
    ("%0 = ew.cast(%x, dtype=f33) : f32[4]", "expected a dtype"),
    ("%0 = ew.cast(%x, dtyp=f32) : f32[4]", "has no attribute 'dtyp' (its schema has: dtype)"),
    ("%0 = ew.cast(%x) : f32[4]", "ew.cast: missing required attribute 'dtype'"),
    ("%0 = ew.cast(%x, dtype=f32, dtype=f32) : f32[4]", "attribute 'dtype' is given twice"),
    ("%0 = ew.cast(dtype=f32, %x) : f32[4]", "operands come first"),
    ("%0 = ew.add(%x, const(1.5) : i32[]) : f32[4]", "1.5 is not a valid i32 value"),
    ("%0 = ew.add(%x, const(300) : u8[]) : f32[4]", "cannot make a u8[] constant"),
    ("%0 = ew.add(%x, const([1.0, 2.0]) : f32[4]) : f32[4]", "has shape [2] but its type"),
    ("%0 = ew.add(%x, const(1) : f32[N]) : f32[4]", "needs a static dense type"),
    ("%0 = ew.add(%x, const(oops) : f32[]) : f32[4]", "expected a literal"),
    ("%0 = ew.add(%x, %x) : f32[4, (N]", "unexpected ']' in a dimension"),
    ("%0 = ew.add(%x, %x) : f32[4 N]", "cannot parse dimension '4 N'"),
    ("%0 = ew.add(%x, %x) : f32[4, N)]", "unbalanced ')'"),
    ("%0 = ew.add(%x, %x) : f32[4, N +]", "cannot parse dimension 'N +'"),
    ("%0 = ew.add(%x, %x) : f32[4] loc(\"a\" b.py:3", "unterminated loc"),
    ('%0 = ew.add(%x, %x) : f32[4] loc("a\\q")', "unknown escape \\q"),
    ("%0, %1 = ew.add(%x, %x) : f32[4]", "2 result name(s) but 1 result type(s)"),
])  # fmt: skip
def test_error_messages(line: str, expected: str) -> None:
    msg = parse_error(GRAPH.format(line=line))
    assert expected in msg and "(line 2, column" in msg


def test_bad_attribute_value_points_at_the_value(toy_ops: None) -> None:
    msg = parse_error(GRAPH.format(line='%0 = toy.attrs(%x, mode="full") : f32[4]'))
    assert "toy.attrs: attribute 'mode' must be one of ('same', 'valid')" in msg
    assert "column 27" in msg
    msg = parse_error(GRAPH.format(line="%0 = toy.attrs(%x, i=1.5) : f32[4]"))
    assert "attribute 'i' expects int, got 1.5" in msg


def test_header_result_type_must_match_the_returned_value() -> None:
    msg = parse_error("""graph @f(%x: f32[4]) -> (f32[5]) {
  return %x
}""")
    assert "declares result type f32[5] but the returned value has type f32[4]" in msg
    assert parse_error("graph @f(%x: f32[4]) -> () {\n  return %x\n}").startswith(
        "the graph returns 1 value(s) but its header declares 0")


def test_text_after_the_graph() -> None:
    msg = parse_error("graph @f() -> () {\n  return\n}\ngraph")
    assert "unexpected 'graph' after the graph (line 4, column 1)" in msg


def test_missing_graph_keyword() -> None:
    assert "expected 'graph' at the start of a graph" in parse_error("  %0 = ew.add()")


def test_unterminated_string() -> None:
    msg = parse_error('graph @f(%x: f32[4]) -> (f32[4]) {\n  %0 = ew.relu(%x, label="ab) : f32[4]')
    assert "unexpected character '\"'" in msg


def test_package_level_helpers() -> None:
    import dlc.ir

    text = "graph @f(%x: f32[2]) -> (f32[2]) {\n  %0 = ew.relu(%x) : f32[2]\n  return %0\n}\n"
    graph = dlc.ir.parse(text)
    dlc.ir.verify(graph)
    assert str(graph) == text
