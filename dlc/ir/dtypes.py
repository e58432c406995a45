"""Element types of the graph IR and their NumPy equivalents."""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """An element type; `.value` is the short name used in the textual IR (`f32`)."""

    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u64 = "u64"
    u32 = "u32"
    u16 = "u16"
    u8 = "u8"
    bool = "bool"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.value}"

    @property
    def numpy(self) -> np.dtype:
        """The NumPy dtype that holds values of this type (ml_dtypes for bf16)."""
        return _TO_NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f64, DType.f32, DType.f16, DType.bf16)

    @property
    def is_int(self) -> bool:
        return self.value[0] in "iu"

    @property
    def is_signed(self) -> bool:
        return self.is_float or self.value[0] == "i"

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @staticmethod
    def from_numpy(dtype: np.dtype | type) -> DType:
        """The DType of a NumPy dtype; raises for types dlc does not model (complex, str)."""
        dtype = np.dtype(dtype)
        try:
            return _FROM_NUMPY[dtype]
        except KeyError:
            from dlc.errors import IRError

            raise IRError(f"NumPy dtype {dtype} has no dlc equivalent") from None

    @staticmethod
    def parse(name: str) -> DType:
        """`DType.parse("f32")`; raises IRError for an unknown name."""
        try:
            return DType(name)
        except ValueError:
            from dlc.errors import IRError

            known = ", ".join(d.value for d in DType)
            raise IRError(f"unknown dtype {name!r}; known dtypes: {known}") from None


_TO_NUMPY: dict[DType, np.dtype] = {
    DType.f64: np.dtype(np.float64),
    DType.f32: np.dtype(np.float32),
    DType.f16: np.dtype(np.float16),
    DType.bf16: np.dtype(ml_dtypes.bfloat16),
    DType.i64: np.dtype(np.int64),
    DType.i32: np.dtype(np.int32),
    DType.i16: np.dtype(np.int16),
    DType.i8: np.dtype(np.int8),
    DType.u64: np.dtype(np.uint64),
    DType.u32: np.dtype(np.uint32),
    DType.u16: np.dtype(np.uint16),
    DType.u8: np.dtype(np.uint8),
    DType.bool: np.dtype(np.bool_),
}
_FROM_NUMPY: dict[np.dtype, DType] = {v: k for k, v in _TO_NUMPY.items()}

f64, f32, f16, bf16 = DType.f64, DType.f32, DType.f16, DType.bf16
i64, i32, i16, i8 = DType.i64, DType.i32, DType.i16, DType.i8
u64, u32, u16, u8 = DType.u64, DType.u32, DType.u16, DType.u8
boolean = DType.bool
