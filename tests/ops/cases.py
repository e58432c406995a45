"""Op test cases against PyTorch: a module, its inputs, and the registry ops it must use.

Each family's test file lists `CASES`; one parametrized test per file imports each case
through the torch frontend, checks the graph contains the declared `ops`, round-trips it
through the printer and parser, runs the reference interpreter and compares with eager
PyTorch. `tests/ops/test_coverage.py` checks that the declared ops of all cases cover
every registered op, so no op escapes an interpreter test against PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlc.testing import assert_close, to_numpy


@dataclass
class TorchCase:
    """One op test: `module()` applied to `inputs()` must match its dlc import."""

    id: str
    module: Callable[[], Any]  # returns a torch.nn.Module
    inputs: Callable[[], tuple[Any, ...]]
    ops: tuple[str, ...]  # registry ops the imported graph must contain
    rtol: float = 1e-5
    exact: bool = False  # integer / boolean results: bitwise equal
    dynamic_shapes: Any = None
    marks: list[Any] = field(default_factory=list)


def run_torch_case(case: TorchCase) -> Any:
    """Import, check ops, round-trip the text, interpret, compare with eager torch."""
    import torch

    from dlc.frontends.torch import import_module
    from dlc.interpreter import run_graph

    module = case.module()
    inputs = case.inputs()
    graph = import_module(module, inputs, dynamic_shapes=case.dynamic_shapes)
    used = set(graph.ops_used())
    missing = [op for op in case.ops if op not in used]
    assert not missing, f"{case.id}: graph lacks {missing}; it uses {sorted(used)}"
    graph = _round_trip(graph)
    with torch.no_grad():
        want = module(*inputs)
    args = [_runtime_arg(x) for x in inputs]
    got = run_graph(graph, *args)
    want_t = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    assert_close(tuple(got), tuple(to_numpy(w) for w in want_t), case.rtol, case.exact,
                 what=case.id)
    check_llvm(graph, args, got, case)
    return graph


def check_llvm(graph: Any, args: list[Any], want: list[Any], case: Any) -> None:
    """The LLVM backend must agree with the interpreter, or refuse the graph up front.

    The graph is compiled twice, debug bounds checks on: one kernel per node, and all
    nodes in one fused kernel (which exercises inlining and epilogues). A graph with an
    op that has no compute definition must raise UnsupportedOpError naming that op.
    Sparse inputs are passed as they are (the executable splits a SparseMatrix into its
    component buffers); a sparse result is compared array by array (indptr, indices,
    values), so the kernels must produce the reference's entry order too.
    """
    from dlc.backends.llvm.executable import build
    from dlc.errors import UnsupportedOpError

    if not graph.nodes:
        return
    missing = sorted({n.op.name for n in graph.nodes if not n.op.lowerable})
    if missing:
        import pytest

        with pytest.raises(UnsupportedOpError) as info:
            build(graph)
        assert set(missing) <= set(info.value.ops)
        return
    rtol = max(case.rtol, 1e-5)
    for groups in ([[n] for n in graph.nodes], [list(graph.nodes)]):
        got = build(graph, groups=groups, debug=True)(*args)
        assert_close(_sparse_arrays(got), _sparse_arrays(want), rtol, case.exact,
                     what=f"{case.id} (llvm, {len(groups)} kernels)")


def _sparse_arrays(values: list[Any]) -> tuple[Any, ...]:
    """Results with each SparseMatrix replaced by its arrays (format checked by name)."""
    from dlc.sparse import SparseMatrix

    out: list[Any] = []
    for v in values:
        if isinstance(v, SparseMatrix):
            out += [np.array(v.format), np.array(v.shape)]
            out += [a for a in (v.indptr, v.indices) if a is not None] + [v.values]
        else:
            out.append(v)
    return tuple(out)


def _round_trip(graph: Any) -> Any:
    """print -> parse -> print must be stable (skipped until the parser exists)."""
    try:
        from dlc.ir.parser import parse_graph
    except ImportError:
        return graph
    from dlc.ir.printer import constant_table, print_graph

    text = print_graph(graph)
    again = parse_graph(text, constant_table(graph))
    assert print_graph(again) == text, "printing the parsed graph changed the text"
    return again


def _runtime_arg(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor) and x.layout == torch.sparse_coo:
        from dlc.sparse import SparseMatrix

        return SparseMatrix.coo(x._indices().numpy(), x._values().numpy(), tuple(x.shape))
    return to_numpy(x)


def seeded(seed: int = 0) -> np.random.Generator:
    """A NumPy generator for test inputs."""
    return np.random.default_rng(seed)


@dataclass
class DirectCase:
    """An op test for an op with no ATen spelling the frontend emits (e.g. a CSR spmm):
    `graph(inputs)` builds the dlc graph, `torch_fn(*tensors)` computes the expectation."""

    id: str
    graph: Callable[..., Any]  # (numpy inputs...) -> Graph
    inputs: Callable[[], tuple[Any, ...]]
    torch_fn: Callable[..., Any]
    ops: tuple[str, ...]
    rtol: float = 1e-5
    exact: bool = False
    marks: list[Any] = field(default_factory=list)


def run_direct_case(case: DirectCase) -> Any:
    """Build, check ops, round-trip, interpret, compare with the torch function."""
    import torch

    from dlc.interpreter import run_graph

    inputs = case.inputs()
    graph = case.graph(*inputs)
    used = set(graph.ops_used())
    missing = [op for op in case.ops if op not in used]
    assert not missing, f"{case.id}: graph lacks {missing}; it uses {sorted(used)}"
    graph = _round_trip(graph)
    got = run_graph(graph, *inputs)
    with torch.no_grad():
        want = case.torch_fn(*[_to_torch(x) for x in inputs])
    want_t = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    assert_close(tuple(got), tuple(to_numpy(w) for w in want_t), case.rtol, case.exact,
                 what=case.id)
    check_llvm(graph, list(inputs), got, case)
    return graph


def _to_torch(x: Any) -> Any:
    import torch

    from dlc.sparse import SparseMatrix

    if isinstance(x, SparseMatrix):
        if x.format == "csr":
            return torch.sparse_csr_tensor(torch.from_numpy(x.indptr), torch.from_numpy(x.indices),
                                           torch.from_numpy(x.values), x.shape)
        return torch.sparse_coo_tensor(torch.from_numpy(x.indices), torch.from_numpy(x.values),
                                       x.shape)
    return torch.from_numpy(np.asarray(x))


def case_params(cases: list[Any]) -> list[Any]:
    """pytest.param objects with ids and marks, for `@pytest.mark.parametrize`."""
    import pytest

    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


def run_case(case: Any) -> Any:
    """Run a TorchCase or a DirectCase."""
    return run_torch_case(case) if isinstance(case, TorchCase) else run_direct_case(case)
