"""The table of ATen-op converters: `@torch_op("aten.relu.default")` registers one.

A converter receives the importer (a GraphBuilder with torch helpers), the FX node, and
the node's arguments with every FX node already replaced by its dlc Value (lists and
tuples converted element by element; SymInts replaced by symbolic dimensions). It returns
a Value, or a tuple of Values (None for an output it does not produce).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[..., Any]

TORCH_OPS: dict[str, Converter] = {}


def torch_op(*targets: str) -> Callable[[Converter], Converter]:
    """Register a converter for one or more ATen overloads (`aten.add.Tensor`)."""

    def register(fn: Converter) -> Converter:
        for target in targets:
            assert target not in TORCH_OPS, f"two converters for {target}"
            TORCH_OPS[target] = fn
        return fn

    return register


def load_converters() -> None:
    """Import every converter family (they register themselves on import)."""
    from dlc.frontends.torch import (  # noqa: F401
        convert_creation,
        convert_elementwise,
        convert_image,
        convert_indexing,
        convert_linalg,
        convert_nn,
        convert_norm,
        convert_reduce,
        convert_shape,
        convert_sparse,
    )
