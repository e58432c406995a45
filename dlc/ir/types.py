"""Types of graph-IR values: dense tensors and sparse (COO / CSR) matrices."""

from __future__ import annotations

from dataclasses import dataclass

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dim, dim_str, dims_equal, free_symbols, is_static, product


@dataclass(frozen=True, slots=True)
class TensorType:
    """A dense tensor: a shape of ints or symbolic sizes, and an element type.

    Prints as `f32[1, 8, S + 1, 64]`; a scalar is `f32[]`.
    """

    shape: tuple[Dim, ...]
    dtype: DType

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(dim(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(is_static(d) for d in self.shape)

    @property
    def numel(self) -> Dim:
        return product(self.shape)

    @property
    def symbols(self) -> set[str]:
        out: set[str] = set()
        for d in self.shape:
            out |= free_symbols(d)
        return out

    def with_shape(self, shape: tuple[Dim, ...] | list[Dim]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    def same_as(self, other: object) -> bool:
        """Equality up to symbolic simplification of the dimensions."""
        return (
            isinstance(other, TensorType)
            and other.dtype == self.dtype
            and other.rank == self.rank
            and all(dims_equal(a, b) for a, b in zip(self.shape, other.shape))
        )

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(dim_str(d) for d in self.shape)}]"


SPARSE_FORMATS = ("coo", "csr")


@dataclass(frozen=True, slots=True)
class SparseTensorType:
    """A sparse matrix with its index and value arrays, e.g. `csr<f32>[N, N, nnz=E]`.

    COO holds `indices: i64[2, nnz]` and `values: dtype[nnz]`; CSR holds
    `indptr: i64[rows + 1]`, `indices: i64[nnz]` and `values: dtype[nnz]`. The number of
    stored entries `nnz` is usually data-dependent, so it is a symbol.
    """

    format: str
    shape: tuple[Dim, ...]
    dtype: DType
    nnz: Dim

    def __post_init__(self) -> None:
        if self.format not in SPARSE_FORMATS:
            raise ValueError(f"sparse format must be one of {SPARSE_FORMATS}, not {self.format!r}")
        object.__setattr__(self, "shape", tuple(dim(d) for d in self.shape))
        object.__setattr__(self, "nnz", dim(self.nnz))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def symbols(self) -> set[str]:
        out = free_symbols(self.nnz)
        for d in self.shape:
            out |= free_symbols(d)
        return out

    def same_as(self, other: object) -> bool:
        return (
            isinstance(other, SparseTensorType)
            and other.format == self.format
            and other.dtype == self.dtype
            and other.rank == self.rank
            and all(dims_equal(a, b) for a, b in zip(self.shape, other.shape))
            and dims_equal(self.nnz, other.nnz)
        )

    def __str__(self) -> str:
        dims = ", ".join(dim_str(d) for d in self.shape)
        return f"{self.format}<{self.dtype}>[{dims}, nnz={dim_str(self.nnz)}]"


ValueType = TensorType | SparseTensorType
