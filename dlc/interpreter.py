"""The reference interpreter: runs a graph with each op's NumPy `reference`.

It is the oracle every other stage is tested against, so it is deliberately simple:
no fusion, no memory reuse, one op at a time in topological order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlc.errors import DLCError, InputError
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.symbolic import evaluate, free_symbols
from dlc.ir.types import SparseTensorType, TensorType
from dlc.sparse import SparseMatrix


class InterpreterError(DLCError):
    """An op's reference implementation failed or returned the wrong type."""


def bind_symbols(graph: Graph, args: Sequence[Any]) -> dict[str, int]:
    """Check run-time inputs against the graph's input types and bind size symbols.

    Raises InputError naming the input and the expected type before anything runs.
    """
    if len(args) != len(graph.inputs):
        names = ", ".join(f"%{v.name}" for v in graph.inputs)
        raise InputError(f"@{graph.name} takes {len(graph.inputs)} inputs ({names}), "
                         f"got {len(args)}")
    bindings: dict[str, int] = {}
    for value, arg in zip(graph.inputs, args):
        want = value.type
        if isinstance(want, SparseTensorType):
            if not isinstance(arg, SparseMatrix) or arg.format != want.format:
                raise InputError(f"input %{value.name} expects {want}, got {type(arg).__name__}")
            dims = [*zip(want.shape, arg.shape), (want.nnz, arg.nnz)]
            got_dtype = arg.dtype
        else:
            if not isinstance(arg, np.ndarray):
                raise InputError(f"input %{value.name} expects an array of type {want}, "
                                 f"got {type(arg).__name__}")
            if arg.ndim != want.rank:
                raise InputError(f"input %{value.name} expects {want} (rank {want.rank}), "
                                 f"got shape {list(arg.shape)} (rank {arg.ndim})")
            dims = list(zip(want.shape, arg.shape))
            got_dtype = arg.dtype
        if np.dtype(got_dtype if not hasattr(got_dtype, "numpy") else got_dtype.numpy) != \
                want.dtype.numpy:
            raise InputError(f"input %{value.name} expects dtype {want.dtype}, got "
                             f"{np.dtype(getattr(got_dtype, 'numpy', got_dtype))}")
        for d, actual in dims:
            if isinstance(d, int):
                if d != actual:
                    raise InputError(f"input %{value.name} expects {want}, got shape "
                                     f"{list(getattr(arg, 'shape', ()))}")
            elif d.is_Symbol:
                if bindings.setdefault(d.name, int(actual)) != actual:
                    raise InputError(f"input %{value.name}: size {d.name} is {actual} here but "
                                     f"{bindings[d.name]} in an earlier input")
    # Derived dimensions (S + 1) are checked once every symbol is bound.
    for value, arg in zip(graph.inputs, args):
        for d, actual in zip(value.type.shape, getattr(arg, "shape", ())):
            if not isinstance(d, int) and free_symbols(d) <= bindings.keys():
                if evaluate(d, bindings) != actual:
                    raise InputError(f"input %{value.name}: dimension {d} should be "
                                     f"{evaluate(d, bindings)}, got {actual}")
    return bindings


def run_graph(graph: Graph, *args: Any) -> list[Any]:
    """Run `graph` on NumPy arrays (or SparseMatrix values); returns the outputs as a list."""
    bindings = bind_symbols(graph, args)
    env: dict[Value, Any] = dict(zip(graph.inputs, args))
    for node in graph.nodes:
        results = run_node(node, [_lookup(env, v) for v in node.inputs], bindings)
        env.update(zip(node.outputs, results))
    return [_lookup(env, v) for v in graph.outputs]


def run_node(node: Node, args: Sequence[Any], bindings: dict[str, int] | None = None
             ) -> tuple[Any, ...]:
    """Evaluate one node with its op's reference implementation.

    The results are checked against the node's inferred types: dtype always, and the shape
    under `bindings` (a data-dependent symbol seen for the first time is bound here).
    """
    try:
        out = node.op.reference(*args, **bind_attrs(node, bindings))
    except DLCError:
        raise
    except Exception as err:  # a reference bug must name the node, not vanish in a traceback
        where = f" at {node.loc.describe()}" if node.loc else ""
        raise InterpreterError(f"{node.op.name}{where} failed in its reference: "
                               f"{type(err).__name__}: {err}") from err
    results = out if isinstance(out, tuple) else (out,)
    if len(results) != len(node.outputs):
        raise InterpreterError(f"{node.op.name} returned {len(results)} results, "
                               f"its type rule says {len(node.outputs)}")
    checked = []
    for value, result in zip(node.outputs, results):
        if isinstance(value.type, TensorType):
            result = np.asarray(result)
            want = value.type.dtype.numpy
            if result.dtype != want:
                raise InterpreterError(f"{node.op.name} returned {result.dtype}, "
                                       f"its type rule says {value.type.dtype}")
            if bindings is not None:
                _check_shape(node, value.type, result.shape, bindings)
        checked.append(result)
    return tuple(checked)


def bind_attrs(node: Node, bindings: Mapping[str, int] | None) -> Mapping[str, Any]:
    """The node's attributes with symbolic `dims` entries evaluated under `bindings`.

    References see concrete sizes only: `create.full(shape=[N, 1])` runs with `[3, 1]` when
    the call binds N = 3. Entries whose symbols are not bound yet are left symbolic.
    """
    if not bindings:
        return node.attrs
    attrs = dict(node.attrs)
    for key, spec in node.op.attrs.items():
        value = attrs.get(key)
        if spec.kind == "dims" and value is not None:
            attrs[key] = tuple(
                evaluate(d, bindings) if free_symbols(d) <= bindings.keys() else d
                for d in value)
    return attrs


def _lookup(env: Mapping[Value, Any], v: Value) -> Any:
    if isinstance(v, Constant):
        return v.data
    return env[v]


def _check_shape(node: Node, want: TensorType, got: tuple[int, ...],
                 bindings: dict[str, int]) -> None:
    ok = len(got) == want.rank
    for d, actual in zip(want.shape, got):
        if not ok:
            break
        if isinstance(d, int):
            ok = d == actual
        elif d.is_Symbol and d.name not in bindings:
            bindings[d.name] = int(actual)  # a data-dependent size, bound on first sight
        elif free_symbols(d) <= bindings.keys():
            ok = evaluate(d, bindings) == actual
    if not ok:
        raise InterpreterError(f"{node.op.name} returned shape {list(got)}, "
                               f"its type rule says {want}")
