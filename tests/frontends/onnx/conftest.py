"""Prints the ONNX conformance pass rates after a session that ran the node cases."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.frontends.onnx.conformance import Summary

    seen: dict[str, tuple[bool, bool, bool]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport) or report.when != "call":
                continue
            for key, value in report.user_properties:
                if key == "onnx_case":
                    name, passed, unbound, in_scope = value
                    seen[name] = (passed, unbound, in_scope)
    if not seen:
        return
    inside = [v for v in seen.values() if v[2]]
    summary = Summary(len(seen), len(inside), sum(v[0] for v in seen.values()),
                      sum(v[1] for v in seen.values()), sum(v[0] for v in inside),
                      sum(v[1] for v in inside))
    terminalreporter.write_sep("-", "ONNX conformance")
    for line in summary.lines():
        terminalreporter.write_line(line)
