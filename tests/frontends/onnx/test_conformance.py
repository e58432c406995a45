"""ONNX's own node test cases through the ONNX frontend and the reference interpreter.

Every case of `onnx.backend.test.case.node.collect_testcases(None)` is one test. A case
listed in `expected_failures.py` must fail (it is reported as xfail); any other case must
pass, and a listed case that passes fails the run until it is removed from the list. The
pass rates (all cases / in-scope cases, with and without binding small shape inputs as
constants) are printed at the end of the session (see conftest.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")

from tests.frontends.onnx.conformance import node_cases, run_case  # noqa: E402
from tests.frontends.onnx.expected_failures import EXPECTED_FAILURES, OUT_OF_SCOPE  # noqa: E402

CASES = sorted(node_cases())


def test_listed_cases_exist() -> None:
    """Every listed name is a case of the installed onnx (no stale entries)."""
    known = set(CASES)
    stale = sorted((set(OUT_OF_SCOPE) | set(EXPECTED_FAILURES)) - known)
    assert not stale, f"expected_failures.py lists cases onnx does not have: {stale}"
    both = sorted(set(OUT_OF_SCOPE) & set(EXPECTED_FAILURES))
    assert not both, f"listed as both out of scope and expected to fail: {both}"


@pytest.mark.parametrize("name", CASES)
def test_node_case(name: str, record_property: pytest.RecordProperty) -> None:
    outcome = run_case(node_cases()[name])
    in_scope = name not in OUT_OF_SCOPE
    record_property("onnx_case", (name, outcome.passed, outcome.passed_unbound, in_scope))
    reason = OUT_OF_SCOPE.get(name) or EXPECTED_FAILURES.get(name)
    if reason is not None:
        assert not outcome.passed, (f"{name} passes now: remove it from "
                                    f"tests/frontends/onnx/expected_failures.py ({reason})")
        pytest.xfail(reason)
    assert outcome.passed, f"{name}: {outcome.error}"
