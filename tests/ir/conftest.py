"""Fixtures for the IR tests."""

from __future__ import annotations

import pytest

from dlc.ops import all_ops, registry
from tests.ir.toy_ops import TOY_OPS


@pytest.fixture
def toy_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test-only `toy.*` ops for one test (removed afterwards)."""
    all_ops()  # load the real families first
    for op in TOY_OPS:
        monkeypatch.setitem(registry._REGISTRY, op.name, op)
