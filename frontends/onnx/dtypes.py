"""ONNX element types and tensors as dlc dtypes and NumPy arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlc.errors import FrontendError
from dlc.ir.dtypes import DType

# TensorProto.DataType numbers (onnx.onnx_pb), written out so that reading this table
# needs no ONNX installation.
_FROM_ONNX: dict[int, DType] = {
    1: DType.f32, 2: DType.u8, 3: DType.i8, 4: DType.u16, 5: DType.i16, 6: DType.i32,
    7: DType.i64, 9: DType.bool, 10: DType.f16, 11: DType.f64, 12: DType.u32, 13: DType.u64,
    16: DType.bf16,
}
_TO_ONNX: dict[DType, int] = {v: k for k, v in _FROM_ONNX.items()}


def onnx_type_name(elem_type: int) -> str:
    """The TensorProto name of an element type (`FLOAT8E4M3FN`), for error messages."""
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type {elem_type}"


class UnsupportedDTypeError(FrontendError):
    """An ONNX element type dlc does not model (string, complex, float8, int4, ...)."""


def from_onnx(elem_type: int, where: str = "") -> DType:
    """The dlc DType of an ONNX element type; raises for types dlc does not model."""
    try:
        return _FROM_ONNX[elem_type]
    except KeyError:
        at = f" ({where})" if where else ""
        known = ", ".join(onnx_type_name(t) for t in _FROM_ONNX)
        raise UnsupportedDTypeError(
            f"ONNX element type {onnx_type_name(elem_type)}{at} has no dlc dtype; "
            f"supported: {known}") from None


def to_onnx(dtype: DType) -> int:
    """The ONNX element type of a dlc DType."""
    return _TO_ONNX[dtype]


def tensor_to_numpy(tensor: Any, base_dir: str | Path | None = None, where: str = "") -> np.ndarray:
    """A TensorProto as a NumPy array (external data read from `base_dir`)."""
    from onnx import numpy_helper

    from_onnx(tensor.data_type, where or tensor.name)  # raises for unsupported types
    try:
        array = numpy_helper.to_array(tensor, str(base_dir) if base_dir else "")
    except Exception as err:  # missing external file, truncated data, ...
        raise FrontendError(f"cannot read tensor {tensor.name or where!r}: "
                            f"{type(err).__name__}: {err}") from err
    want = from_onnx(tensor.data_type).numpy
    return array if array.dtype == want else array.astype(want)
