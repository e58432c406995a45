"""LLVM types of dlc's element types (bool is i1 in registers, i8 in memory)."""

from __future__ import annotations

from llvmlite import ir

from dlc.ir.dtypes import DType

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()

_SCALAR: dict[DType, ir.Type] = {
    DType.f64: ir.DoubleType(), DType.f32: ir.FloatType(), DType.f16: ir.HalfType(),
    DType.i64: I64, DType.i32: I32, DType.i16: ir.IntType(16), DType.i8: I8,
    DType.u64: I64, DType.u32: I32, DType.u16: ir.IntType(16), DType.u8: I8,
    DType.bool: I1,
}


def value_type(dtype: DType) -> ir.Type:
    """The type of a value of `dtype` in registers (bf16 values are held widened to f32)."""
    return compute_type(dtype)


def memory_type(dtype: DType) -> ir.Type:
    """The type of an element of `dtype` in memory."""
    if dtype == DType.bool:
        return I8
    if dtype == DType.bf16:
        return ir.IntType(16)
    return _SCALAR[dtype]


def compute_type(dtype: DType) -> ir.Type:
    """The type arithmetic on `dtype` is done in (bf16 widens to f32)."""
    return ir.FloatType() if dtype == DType.bf16 else _SCALAR[dtype]
