"""OnnxGraphBuilder: a GraphBuilder with the helpers ONNX converters share, and OnnxNode.

Shape tensors. ONNX computes shapes with tensors (`Shape -> Gather -> Concat -> Reshape`).
When such a tensor is known at import time it is a Constant; when it depends on a dynamic
input dimension it is a *symbolic constant*: a Constant whose data is a NumPy object array
of dlc dimensions (`[N, 64]`), typed i64. Converters read both through `static` /
`static_dims`, so a Reshape to `[N, 64]` gets the symbolic target shape it needs. A
symbolic constant never reaches the built graph (the importer checks), because no kernel
could read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlc.errors import FrontendError, MissingOp, UnsupportedOpError
from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ir.symbolic import Dim, dim
from dlc.ir.types import TensorType


class DynamicInputError(FrontendError):
    """An operand that must be known at compile time (a shape, axes, pads, k) is computed
    at run time. `values` names the ONNX values; binding them as constants (the importer's
    `constant_inputs`) specializes the model and makes the import succeed."""

    def __init__(self, message: str, values: Sequence[str]) -> None:
        super().__init__(message)
        self.values = tuple(values)


class UseFunctionBody(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a converter that leaves a node's variant to the op's ONNX function body
    (the importer expands the body instead, discarding anything the converter built)."""


@dataclass
class OnnxNode:
    """One ONNX node as a converter sees it: operands as Values, decoded attributes."""

    op_type: str
    name: str
    domain: str
    opset: int
    inputs: list[Value | None]
    input_names: list[str]
    output_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)

    def attr(self, key: str, default: Any = None) -> Any:
        """Attribute `key`, or `default` when the node does not set it."""
        return self.attrs.get(key, default)

    def input(self, index: int) -> Value | None:
        """Operand `index`, or None when it is absent (omitted or named "")."""
        return self.inputs[index] if index < len(self.inputs) else None

    def has_output(self, index: int) -> bool:
        """True when output `index` is requested (present and not named "")."""
        return index < len(self.output_names) and bool(self.output_names[index])

    def describe(self) -> str:
        """`Conv node 'conv1' (opset 13)` for error messages."""
        label = f"{self.domain}." if self.domain not in ("", "ai.onnx") else ""
        return f"{label}{self.op_type} node {self.name!r} (opset {self.opset})"


def is_symbolic(v: Any) -> bool:
    """True for a symbolic constant: a shape tensor holding symbolic dimensions."""
    return isinstance(v, Constant) and v.data.dtype == object


class OnnxGraphBuilder(GraphBuilder):
    """Builder state for one import, with the helpers converters use."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # The graph inputs each value depends on (kept by the importer), so that a
        # DynamicInputError can name the inputs to bind.
        self.input_deps: dict[Value, frozenset[str]] = {}
        # Set by the importer: converts a subgraph attribute (an If branch) in place.
        self.inline_subgraph: Any = None

    # -- operand values known at import time ----------------------------------------------
    def constant(self, v: Value | None) -> np.ndarray | None:
        """The data of `v` when it is known at import time (possibly symbolic), else None."""
        return v.data if isinstance(v, Constant) else None

    def static(self, node: OnnxNode, index: int, what: str) -> np.ndarray:
        """Operand `index` as a NumPy array; it must be known at import time."""
        v = node.input(index)
        if v is None:
            raise FrontendError(f"{node.describe()}: the {what} operand is missing")
        if not isinstance(v, Constant):
            name = node.input_names[index]
            inputs = sorted(self.input_deps.get(v, ())) or [name]
            listed = ", ".join(f"{n!r}: array" for n in inputs)
            raise DynamicInputError(
                f"{node.describe()}: its {what} operand {name!r} is computed at run time; "
                f"dlc needs it at compile time. Bind the model input(s) it comes from as "
                f"constants (import_onnx(..., constant_inputs={{{listed}}})).", inputs)
        return v.data

    def static_ints(self, node: OnnxNode, index: int, what: str) -> tuple[int, ...]:
        """Operand `index` as a tuple of Python ints (it must not be symbolic)."""
        data = self.static(node, index, what)
        if data.dtype == object:
            raise FrontendError(f"{node.describe()}: its {what} operand depends on a dynamic "
                                f"dimension ({list(data.reshape(-1))}); dlc needs integers")
        return tuple(int(x) for x in np.asarray(data).reshape(-1))

    def static_dims(self, node: OnnxNode, index: int, what: str) -> tuple[Dim, ...]:
        """Operand `index` as a tuple of dimensions (ints or symbolic sizes)."""
        data = self.static(node, index, what)
        return tuple(dim(x) if not isinstance(x, (int, np.integer)) else int(x)
                     for x in np.asarray(data).reshape(-1))

    def optional_ints(self, node: OnnxNode, index: int, what: str) -> tuple[int, ...] | None:
        """Like `static_ints`, but None when the operand is absent."""
        return None if node.input(index) is None else self.static_ints(node, index, what)

    def static_scalar(self, node: OnnxNode, index: int, what: str) -> Any:
        """A one-element operand known at import time, as a Python number."""
        data = np.asarray(self.static(node, index, what))
        if data.size != 1:
            raise FrontendError(f"{node.describe()}: the {what} operand must have one "
                                f"element, got shape {list(data.shape)}")
        return data.reshape(-1)[0].item() if data.dtype != object else data.reshape(-1)[0]

    def shape_constant(self, dims: Sequence[Dim], shape: tuple[int, ...] | None = None
                       ) -> Constant:
        """An i64 tensor of sizes (1-D unless `shape` says otherwise): a plain constant,
        or a symbolic one when a size is symbolic."""
        shape = (len(dims),) if shape is None else shape
        if all(isinstance(d, (int, np.integer)) for d in dims):
            return Constant.of(np.array([int(d) for d in dims], dtype=np.int64).reshape(shape))
        data = np.empty(len(dims), dtype=object)
        data[:] = list(dims)
        return Constant(TensorType(shape, DType.i64), "", data.reshape(shape))

    # -- small helpers -----------------------------------------------------------------
    def cast(self, x: Value, dtype: DType) -> Value:
        """`x` converted to `dtype` (no node when it already has it)."""
        return x if x.dtype == dtype else self.op("ew.cast", x, dtype=dtype)

    def scalar_like(self, value: float | int | bool, like: Value) -> Constant:
        """A rank-0 constant with the dtype of `like`."""
        return self.scalar(np.array(value).astype(like.dtype.numpy).item(), like.dtype)

    def shape_of(self, x: Value) -> tuple[Dim, ...]:
        """The (possibly symbolic) shape of a dense value."""
        return x.tensor_type.shape

    def rank_of(self, x: Value) -> int:
        return x.tensor_type.rank

    def unsupported(self, node: OnnxNode, detail: str) -> UnsupportedOpError:
        """The error for a node whose attributes or operands dlc does not support."""
        return UnsupportedOpError(
            "onnx frontend",
            [MissingOp(f"{node.op_type} (opset {node.opset}) {detail}", f"node {node.name!r}")],
            hint="Extend its converter in frontends/onnx/convert_<family>.py.")
