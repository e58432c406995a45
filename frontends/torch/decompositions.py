"""Which ATen ops torch.export may decompose, and which dlc keeps whole.

The frontend imports core ATen after `run_decompositions()`. Ops listed in `PRESERVED`
are removed from the decomposition table, so they reach the importer as one node and map
to one registry op (a fused attention or normalization is easier to optimize whole than
re-discovered from its decomposition).
"""

from __future__ import annotations

from typing import Any

PRESERVED: tuple[str, ...] = ()  # e.g. "aten.linear.default"; each needs a converter


def decomposition_table() -> Any:
    """torch.export's default decomposition table minus the PRESERVED ops."""
    import torch

    table = torch.export.default_decompositions()
    for name in PRESERVED:
        packet, _, overload = name.removeprefix("aten.").rpartition(".")
        op = getattr(getattr(torch.ops.aten, packet), overload)
        if op in table:
            del table[op]
    return table
