"""Properties of random graphs: the text round-trips, the verifier accepts what the builder
builds, and type inference agrees with the shapes the interpreter actually produces."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlc.errors import DLCError
from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, Location, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.equality import first_difference, same_array
from dlc.ir.graph import Constant
from dlc.ir.parser import parse_graph
from dlc.ir.printer import constant_table, print_graph
from dlc.ir.verifier import verify_graph
from dlc.ops import OpDef
from tests.ir.strategies import (
    GraphCase,
    candidate_ops,
    evaluate_node,
    random_graphs,
    shape_mismatch,
    type_rule_calls,
)

N = symbol("N")


def test_the_generator_has_ops_to_draw_from() -> None:
    names = {op.name for op in candidate_ops()}
    assert {"ew.add", "ew.mul", "ew.relu", "ew.cast"} <= names


@given(case=random_graphs())
def test_print_parse_print_round_trip(case: GraphCase) -> None:
    graph = case.graph
    text = print_graph(graph)
    again = parse_graph(text, constant_table(graph))
    assert print_graph(again) == text
    difference = first_difference(graph, again)
    assert difference is None, difference


@given(case=random_graphs())
def test_verifier_accepts_built_graphs(case: GraphCase) -> None:
    verify_graph(case.graph)


@given(case=random_graphs())
def test_type_inference_agrees_with_the_interpreter(case: GraphCase) -> None:
    graph = case.graph
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        run_graph(graph, *case.args)  # checks every node's dtype and shape itself
        # ... and directly: each node's results against its types under the bindings.
        env = dict(zip(graph.inputs, case.args))
        bindings = dict(case.bindings)
        for node in graph.nodes:
            args = [v.data if isinstance(v, Constant) else env[v] for v in node.inputs]
            results = evaluate_node(node, args, bindings)
            problem = shape_mismatch(node, results, bindings)
            assert problem is None, problem
            env.update(zip(node.outputs, results))


# -- type rules refuse bad calls with a DLCError --------------------------------------------


@pytest.mark.parametrize("op", candidate_ops(), ids=lambda op: op.name)
@settings(max_examples=15)
@given(data=st.data())
def test_type_rules_reject_bad_operands_with_dlc_errors(op: OpDef, data: st.DataObject) -> None:
    """A type rule may refuse any call, but with a DLCError that names the op, never with a
    Python error from inside the rule."""
    operands, attrs = data.draw(type_rule_calls(op))
    check_refusal(op, [v.type for v in operands], attrs)


SIMPLE_ATTRS = {"int": 0, "float": 1.0, "bool": False, "dtype": DType.f32, "ints": [0],
                "floats": [1.0], "dims": [1]}


def simple_attrs(op: OpDef) -> dict | None:
    """Values for an op's required attributes, or None when one has no simple value
    (an `any` or `str` kind without choices: the hypothesis test above covers those)."""
    attrs = {k: spec.choices[0] if spec.choices else SIMPLE_ATTRS.get(spec.kind)
             for k, spec in op.attrs.items() if spec.required}
    return None if None in attrs.values() else attrs


@pytest.mark.parametrize("op", [op for op in candidate_ops() if simple_attrs(op) is not None],
                         ids=lambda op: op.name)
@pytest.mark.parametrize("shape", [(), (1,), (N, 2)], ids=str)
def test_type_rules_on_edge_shapes(op: OpDef, shape: tuple) -> None:
    """Scalars, size-1 and symbolic operands, deterministically."""
    attrs = simple_attrs(op)
    assert attrs is not None
    count = max(op.arity()[0], 1) if op.inputs else 0
    check_refusal(op, [TensorType(shape, DType.f32)] * count, attrs)


def check_refusal(op: OpDef, types: list, attrs: dict) -> None:
    try:
        op.output_types(types, op.check_attrs(attrs))
    except DLCError:
        pass
    except Exception as err:
        raise AssertionError(f"{op.name}({', '.join(map(str, types))}, {attrs}) raised "
                             f"{type(err).__name__}: {err}; type rules must raise "
                             "TypeInferenceError (op.error(...))") from err


# -- literals, locations and dimensions in isolation ----------------------------------------


@st.composite
def constants(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([*DType]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype is DType.bf16:  # hypothesis has no bf16: draw float32 and round
        data = draw(hnp.arrays(np.float32, shape))
        return data.astype(dtype.numpy)
    return draw(hnp.arrays(dtype.numpy, shape))


@given(data=constants())
def test_constants_of_every_dtype_round_trip(data: np.ndarray) -> None:
    b = GraphBuilder("f")
    c = b.const(data, "c")
    dtype = DType.from_numpy(data.dtype)
    graph = b.build([b.op("ew.cast", c, dtype=dtype), c])
    text = print_graph(graph)
    again = parse_graph(text, constant_table(graph))
    assert print_graph(again) == text
    got = again.nodes[0].inputs[0]
    assert isinstance(got, Constant) and same_array(got.data, data)
    assert first_difference(graph, again) is None


@given(name=st.text(max_size=12), file=st.text(max_size=12), line=st.integers(-3, 10**6))
def test_any_location_round_trips(name: str, file: str, line: int) -> None:
    b = GraphBuilder("f")
    x = b.input("x", TensorType((2,), DType.f32))
    location = Location(name, file, line)
    graph = b.build([b.op("ew.relu", x, loc=location)])
    again = parse_graph(print_graph(graph))
    assert again.nodes[0].loc == location


SYMBOLS = [symbol(s) for s in ("N", "S", "H", "E", "nnz", "floor_x")]


@st.composite
def size_expressions(draw: st.DrawFn, depth: int = 3) -> sympy.Expr:
    leaf = st.one_of(st.sampled_from(SYMBOLS), st.integers(1, 9).map(sympy.Integer))
    if depth == 0:
        return draw(leaf)
    sub = size_expressions(depth - 1)
    a, b = draw(sub), draw(sub)
    form = draw(st.sampled_from(["leaf", "+", "*", "-", "floor", "ceiling", "max", "min",
                                 "mod", "pow"]))
    if form == "leaf":
        return draw(leaf)
    k = draw(st.integers(2, 5))
    return {"+": lambda: a + b, "*": lambda: a * b, "-": lambda: a - b + 20,
            "floor": lambda: sympy.floor(a / k), "ceiling": lambda: sympy.ceiling(a / k),
            "max": lambda: sympy.Max(a, b), "min": lambda: sympy.Min(a, b),
            "mod": lambda: sympy.Mod(a, k), "pow": lambda: a**2}[form]()


@given(dims=st.lists(size_expressions(), min_size=1, max_size=3))
def test_symbolic_dimensions_round_trip(dims: list) -> None:
    dims = [d for d in dims if d.free_symbols]  # constant sizes are plain ints elsewhere
    type_ = TensorType(tuple(dims), DType.f32)
    b = GraphBuilder("f")
    graph = b.build([b.input("x", type_)])
    text = print_graph(graph)
    again = parse_graph(text)
    assert again.inputs[0].type.same_as(type_)
    assert print_graph(again) == text
