"""Shared helpers for the pass tests: parse IR text, compare printed IR, compare numerics."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from dlc.interpreter import run_graph
from dlc.ir.graph import Graph
from dlc.ir.parser import parse_graph
from dlc.ir.printer import print_graph
from dlc.ir.symbolic import evaluate
from dlc.ir.types import TensorType
from dlc.testing import assert_close


def ir(text: str, constants: dict[str, np.ndarray] | None = None) -> Graph:
    """Parse hand-written IR (indentation ignored)."""
    return parse_graph(textwrap.dedent(text), constants)


def assert_prints(graph: Graph | str, expected: str) -> None:
    """The printed text equals `expected` (dedented, surrounding blank lines ignored)."""
    got = graph if isinstance(graph, str) else print_graph(graph)
    want = textwrap.dedent(expected).strip("\n") + "\n"
    assert got == want, f"got:\n{got}\nexpected:\n{want}"


def random_inputs(graph: Graph, seed: int = 0, symbol_size: int = 3) -> list[Any]:
    """Random arguments for `graph` (every size symbol bound to `symbol_size`)."""
    rng = np.random.default_rng(seed)
    bindings = {s: symbol_size for s in graph.symbols}
    args = []
    for v in graph.inputs:
        t = v.type
        assert isinstance(t, TensorType), "random_inputs handles dense inputs only"
        shape = tuple(int(evaluate(d, bindings)) for d in t.shape)
        if t.dtype.is_float:
            args.append(rng.uniform(-2, 2, shape).astype(t.dtype.numpy))
        elif t.dtype.value == "bool":
            args.append(rng.random(shape) > 0.5)
        else:
            args.append(rng.integers(0, 5, shape).astype(t.dtype.numpy))
    return args


def assert_same_results(before: Graph, after: Graph, seed: int = 0, rtol: float = 1e-5) -> None:
    """`after` computes what `before` computes (interpreter outputs within `rtol`)."""
    args = random_inputs(before, seed)
    with np.errstate(all="ignore"):
        want = run_graph(before, *args)
        got = run_graph(after, *args)
    assert_close(got, want, rtol=rtol)
