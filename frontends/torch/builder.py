"""TorchGraphBuilder: a GraphBuilder with the helpers ATen converters share."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.errors import FrontendError
from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType

_TORCH_DTYPES = {
    "float64": DType.f64, "float32": DType.f32, "float16": DType.f16, "bfloat16": DType.bf16,
    "int64": DType.i64, "int32": DType.i32, "int16": DType.i16, "int8": DType.i8,
    "uint8": DType.u8, "uint16": DType.u16, "uint32": DType.u32, "uint64": DType.u64,
    "bool": DType.bool,
}


def torch_dtype(dtype: Any) -> DType:
    """The dlc DType of a torch.dtype (raises FrontendError for complex and others)."""
    key = str(dtype).removeprefix("torch.")
    try:
        return _TORCH_DTYPES[key]
    except KeyError:
        raise FrontendError(f"torch dtype {dtype} has no dlc equivalent") from None


class TorchGraphBuilder(GraphBuilder):
    """Builder state for one import: symbol names and the helpers converters use."""

    def __init__(self, name: str, symbol_names: dict[str, str]) -> None:
        super().__init__(name)
        self.symbol_names = symbol_names

    def dim_of(self, size: Any) -> Dim:
        """A dlc dimension from an int or a torch SymInt."""
        from dlc.frontends.torch.importer import to_dim

        return to_dim(size, self.symbol_names)

    def meta_type(self, node: Any, index: int | None = None) -> TensorType:
        """The type torch inferred for `node` (output `index` of a multi-output node)."""
        val = node.meta["val"]
        if index is not None:
            val = val[index]
        return TensorType(tuple(self.dim_of(d) for d in val.shape), torch_dtype(val.dtype))

    def out_dtype(self, node: Any, index: int | None = None) -> DType:
        """The dtype torch inferred for `node`'s output."""
        val = node.meta["val"]
        return torch_dtype((val[index] if index is not None else val).dtype)

    def cast(self, x: Value, dtype: DType) -> Value:
        """`x` converted to `dtype` (no node when it already has it)."""
        return x if x.dtype == dtype else self.op("ew.cast", x, dtype=dtype)

    def as_value(self, x: Value | float | int | bool, dtype: DType) -> Value:
        """A Value of `dtype` from a Value (cast if needed) or a Python scalar (a constant)."""
        if isinstance(x, Value):
            return self.cast(x, dtype)
        return self.scalar(np.array(x).astype(dtype.numpy).item(), dtype)

    def promote(self, dtype: DType, *xs: Value | float | int | bool) -> list[Value]:
        """Every operand as a Value of `dtype` (torch's type promotion, made explicit)."""
        return [self.as_value(x, dtype) for x in xs]

    def check_output(self, node: Any, value: Value) -> Value:
        """Assert the converted value has the type torch inferred (catches converter bugs)."""
        want = self.meta_type(node)
        if not value.type.same_as(want):
            raise FrontendError(f"converter for {node.target} produced {value.type}, "
                                f"torch says {want}")
        return value
