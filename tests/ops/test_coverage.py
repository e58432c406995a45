"""Every registered op is exercised by at least one case compared against PyTorch."""

from __future__ import annotations

import importlib
import pkgutil

import tests.ops
from dlc.ops import all_ops


def all_cases() -> list:
    cases = []
    for info in pkgutil.iter_modules(tests.ops.__path__):
        if info.name.startswith("test_"):
            module = importlib.import_module(f"tests.ops.{info.name}")
            cases.extend(getattr(module, "CASES", []))
    return cases


def test_every_registered_op_has_a_torch_case() -> None:
    declared = {op for case in all_cases() for op in case.ops}
    missing = sorted(op.name for op in all_ops() if op.name not in declared)
    assert not missing, f"ops with no interpreter test against PyTorch: {missing}"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
