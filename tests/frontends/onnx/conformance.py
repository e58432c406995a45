"""Run ONNX's own test cases through the ONNX frontend and the reference interpreter.

    python -m tests.frontends.onnx.conformance            # summary + unexpected results
    python -m tests.frontends.onnx.conformance -v Resize  # details of matching cases

The node cases come from `onnx.backend.test.case.node.collect_testcases(None)`, generated
in memory (about 1,900 models, each with inputs and expected outputs). A case is run
without help first; if the importer says an operand that fixes a shape (shape, axes,
pads, k, scales) is a graph input, those inputs are bound as constants (a compiler
specializes on them) and the case runs again. The result records both outcomes, so the
pass rate is reported with and without binding.

Outputs are compared as ONNX's backend runner compares them: same shape, same dtype,
`np.testing.assert_allclose(rtol, atol)` with the case's tolerances (bf16 outputs get at
least two bf16 ulps of relative tolerance, as the runner gives them).
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

BIND_LIMIT = 64  # elements: only small tensors (shapes, axes, pads, k, scales) are bound


@dataclass
class Outcome:
    """How one case went: passed unbound, passed after binding, or why it failed."""

    name: str
    passed: bool
    passed_unbound: bool
    bound: tuple[str, ...] = ()
    error: str = ""


@functools.cache
def node_cases() -> dict[str, Any]:
    """Every ONNX node test case, by name (generated once per process)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases(None)}


def _to_numpy(x: Any) -> Any:
    from onnx import numpy_helper

    if hasattr(x, "SerializeToString"):
        return numpy_helper.to_array(x)
    return x


def compare(got: list[Any], want: list[Any], rtol: float, atol: float) -> None:
    """Raise AssertionError unless the outputs match as ONNX's runner requires."""
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(_to_numpy(w))
        assert g.shape == w.shape, f"output {i}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"output {i}: dtype {g.dtype}, expected {w.dtype}"
        r = rtol
        if g.dtype.name == "bfloat16":
            r = max(rtol, 2**-6)
            g, w = g.astype(np.float32), w.astype(np.float32)
        np.testing.assert_allclose(g, w, rtol=r, atol=atol, err_msg=f"output {i}")


def run_model(model: Any, inputs: list[Any], bind: dict[str, Any]) -> list[Any]:
    """Import `model` (binding `bind`), run it on the other inputs, return the outputs."""
    from dlc.frontends.onnx import import_onnx
    from dlc.interpreter import run_graph

    graph = import_onnx(model, constant_inputs=bind)
    init = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    feeds = [np.asarray(_to_numpy(x)) for n, x in zip(names, inputs) if n not in bind]
    with np.errstate(all="ignore"):
        return run_graph(graph, *feeds)


def run_case(case: Any) -> Outcome:
    """Run one case unbound, then (if the importer asks for it) with inputs bound."""
    from dlc.frontends.onnx import DynamicInputError

    inputs, want = case.data_sets[0]
    init = {t.name for t in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in init]
    by_name = dict(zip(names, inputs))
    bind: dict[str, Any] = {}
    unbound_ok = None
    for _ in range(8):
        try:
            got = run_model(case.model, list(inputs), bind)
            compare(got, list(want), case.rtol, case.atol)
        except DynamicInputError as err:
            if unbound_ok is None:
                unbound_ok = False
            wanted = [v for v in err.values if v in by_name and v not in bind and
                      np.asarray(_to_numpy(by_name[v])).size <= BIND_LIMIT]
            if not wanted:
                return Outcome(case.name, False, False, tuple(bind), _first_line(err))
            for v in wanted:
                bind[v] = np.asarray(_to_numpy(by_name[v]))
            continue
        except Exception as err:  # noqa: BLE001 - a conformance run reports every failure
            return Outcome(case.name, False, False, tuple(bind),
                           _first_line(err))
        return Outcome(case.name, True, unbound_ok is None, tuple(bind))
    return Outcome(case.name, False, False, tuple(bind), "too many binding rounds")


def _first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:4])[:400]


@dataclass
class Summary:
    total: int
    in_scope: int
    passed: int
    passed_unbound: int
    passed_in_scope: int
    passed_unbound_in_scope: int

    def lines(self) -> list[str]:
        def pct(a: int, b: int) -> str:
            return f"{a}/{b} = {100 * a / max(b, 1):.1f}%"
        return [
            "ONNX node conformance (importer + reference interpreter):",
            f"  all cases:      {pct(self.passed, self.total)} with small shape inputs bound, "
            f"{pct(self.passed_unbound, self.total)} without binding",
            f"  in-scope cases: {pct(self.passed_in_scope, self.in_scope)} with binding, "
            f"{pct(self.passed_unbound_in_scope, self.in_scope)} without binding",
        ]


def summarize(outcomes: list[Outcome], out_of_scope: set[str]) -> Summary:
    inside = [o for o in outcomes if o.name not in out_of_scope]
    return Summary(len(outcomes), len(inside), sum(o.passed for o in outcomes),
                   sum(o.passed_unbound for o in outcomes), sum(o.passed for o in inside),
                   sum(o.passed_unbound for o in inside))


def main(argv: list[str]) -> int:
    from tests.frontends.onnx.expected_failures import EXPECTED_FAILURES, OUT_OF_SCOPE

    verbose = "-v" in argv
    pattern = [a for a in argv if not a.startswith("-")]
    cases = node_cases()
    outcomes = []
    start = time.perf_counter()
    for name, case in cases.items():
        if pattern and not any(p.lower() in name.lower() for p in pattern):
            continue
        t0 = time.perf_counter()
        o = run_case(case)
        dt = time.perf_counter() - t0
        outcomes.append(o)
        listed = name in OUT_OF_SCOPE or name in EXPECTED_FAILURES
        if verbose or (o.passed == listed) or dt > 5:
            status = "PASS" if o.passed else "FAIL"
            flag = " (unexpected)" if o.passed == listed else ""
            print(f"{status}{flag} {name} [{dt:.1f}s] bound={list(o.bound)} {o.error}")
    print(f"{len(outcomes)} cases in {time.perf_counter() - start:.0f} s")
    for line in summarize(outcomes, set(OUT_OF_SCOPE)).lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
