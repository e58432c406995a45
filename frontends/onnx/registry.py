"""The table of ONNX-op converters: `@onnx_op("Conv", since=1)` registers one.

ONNX versions each operator: a model imports an opset per domain, and a node of type `T`
means the newest version of `T` whose `since_version` is at most that opset. Converters
are registered the same way: several handlers may serve one op type, each from the opset
where its behaviour starts (Squeeze takes `axes` as an attribute before opset 13 and as an
input from 13), and the importer picks the newest handler not newer than the model's opset.

A converter receives the importer (an `OnnxGraphBuilder`) and an `OnnxNode` (the node's
operands as dlc Values, its decoded attributes, its opset) and returns a Value, or a
tuple with one entry per ONNX output (None for an output it does not produce).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Converter = Callable[..., Any]

DEFAULT_DOMAIN = ""  # "ai.onnx": ONNX writes the default domain as an empty string


@dataclass(frozen=True)
class Handler:
    """One converter for one op type, valid from opset `since` on."""

    since: int
    convert: Converter


ONNX_OPS: dict[tuple[str, str], list[Handler]] = {}


def onnx_op(*op_types: str, since: int = 1, domain: str = DEFAULT_DOMAIN
            ) -> Callable[[Converter], Converter]:
    """Register a converter for one or more op types, from opset `since` on."""

    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            handlers = ONNX_OPS.setdefault((_domain(domain), op_type), [])
            assert all(h.since != since for h in handlers), \
                f"two converters for {op_type} since opset {since}"
            handlers.append(Handler(since, fn))
            handlers.sort(key=lambda h: h.since)
        return fn

    return register


def find_converter(domain: str, op_type: str, opset: int) -> Converter | None:
    """The converter for `op_type` at `opset`: the newest registered at or before it."""
    best = None
    for h in ONNX_OPS.get((_domain(domain), op_type), ()):
        if h.since <= opset:
            best = h.convert
    return best


def known_op_types() -> list[str]:
    """Every op type with a converter (for "did you mean" hints)."""
    return sorted({op for _, op in ONNX_OPS})


def _domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", "ai.onnx") else domain


def load_converters() -> None:
    """Import every converter family (they register themselves on import)."""
    from dlc.frontends.onnx import (  # noqa: F401
        convert_attention,
        convert_control,
        convert_creation,
        convert_elementwise,
        convert_image,
        convert_indexing,
        convert_linalg,
        convert_nn,
        convert_norm,
        convert_reduce,
        convert_shape,
    )
