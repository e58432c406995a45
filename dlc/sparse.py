"""Sparse matrices: the run-time value of a `coo<...>` / `csr<...>` value, and its buffers.

`SparseMatrix` is what the interpreter and a compiled model take and return. Both formats
keep duplicate coordinates, which add up (torch's uncoalesced COO semantics); converting
COO to CSR never merges entries, so `nnz` is unchanged and a graph can give both the same
size symbol. The second half of the module maps a sparse value to the dense buffers
kernels read and write (`component_types`, `SparseTensor`, `SparseComponent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlc.errors import InputError
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.tensor.compute import Tensor, placeholder
from dlc.ir.tensor.expr import Expr, const, from_sympy
from dlc.ir.types import SparseTensorType, TensorType


@dataclass(frozen=True)
class SparseMatrix:
    """A 2-D sparse matrix in COO (`indices: [2, nnz]`) or CSR (`indptr`, `indices`) form."""

    format: str
    shape: tuple[int, int]
    indices: np.ndarray  # COO: int64 [2, nnz]; CSR: int64 [nnz] column indices
    values: np.ndarray  # [nnz]
    indptr: np.ndarray | None = None  # CSR only: int64 [rows + 1]

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    @property
    def dtype(self) -> DType:
        return DType.from_numpy(self.values.dtype)

    @property
    def type(self) -> SparseTensorType:
        return SparseTensorType(self.format, self.shape, self.dtype, self.nnz)

    @staticmethod
    def coo(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> SparseMatrix:
        """A COO matrix; duplicate coordinates are allowed and add up, as in torch."""
        return SparseMatrix("coo", (int(shape[0]), int(shape[1])),
                            np.asarray(indices, dtype=np.int64), np.asarray(values))

    @staticmethod
    def csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray,
            shape: tuple[int, int]) -> SparseMatrix:
        """A CSR matrix: row r holds entries `indptr[r]:indptr[r + 1]`."""
        return SparseMatrix("csr", (int(shape[0]), int(shape[1])),
                            np.asarray(indices, dtype=np.int64), np.asarray(values),
                            np.asarray(indptr, dtype=np.int64))

    def rows(self) -> np.ndarray:
        """The row index of every stored entry (int64 [nnz]), in either format."""
        if self.format == "coo":
            return self.indices[0]
        assert self.indptr is not None
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def cols(self) -> np.ndarray:
        """The column index of every stored entry (int64 [nnz]), in either format."""
        return self.indices[1] if self.format == "coo" else self.indices

    def to_csr(self) -> SparseMatrix:
        """The same matrix in CSR form, entries sorted by (row, column); duplicates are
        kept (they still add up), so nnz does not change."""
        if self.format == "csr":
            return self
        rows, cols = self.indices
        order = np.lexsort((cols, rows))
        indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return SparseMatrix("csr", self.shape, cols[order].astype(np.int64),
                            self.values[order], np.cumsum(indptr))

    def matmul(self, dense: np.ndarray) -> np.ndarray:
        """self @ dense for a 2-D dense operand (duplicate entries add up)."""
        out = np.zeros((self.shape[0], dense.shape[1]), dtype=np.result_type(self.values, dense))
        np.add.at(out, self.rows(), self.values[:, None] * dense[self.cols()])
        return out

    def to_dense(self) -> np.ndarray:
        """A dense NumPy array (for tests)."""
        out = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(out, (self.rows(), self.cols()), self.values)
        return out


# -- kernel buffers ------------------------------------------------------------------------
#
# Kernels see a sparse value as dense component buffers, one per array of its format:
#
#     coo<T>[M, N, nnz]:  indices i64[2, nnz] (row, col per entry),  values T[nnz]
#     csr<T>[M, N, nnz]:  indptr i64[M + 1],  indices i64[nnz] (cols),  values T[nnz]
#
# The graph keeps one value of a sparse type; lowering gives each component a
# placeholder (`SparseTensor`), and the LLVM executable gives each its own slot
# (`SparseComponent`), so an input, an intermediate or an output is just two or three
# ordinary buffers. `nnz` is a size symbol like any other (bound from the inputs).

# Values come last: an arena block holding a whole sparse value keeps its i64 arrays first.
COMPONENTS = {"coo": ("indices", "values"), "csr": ("indptr", "indices", "values")}


def component_types(t: SparseTensorType) -> dict[str, TensorType]:
    """The dense type of each buffer of a sparse value, in kernel-parameter order."""
    out = {"indptr": TensorType((t.shape[0] + 1,), DType.i64)} if t.format == "csr" else {}
    out["indices"] = TensorType((2, t.nnz) if t.format == "coo" else (t.nnz,), DType.i64)
    out["values"] = TensorType((t.nnz,), t.dtype)
    return out


@dataclass(frozen=True)
class SparseComponent:
    """One buffer (`field`) of a sparse graph value: what a kernel parameter binds to."""

    value: Value
    field: str

    @property
    def type(self) -> TensorType:
        return component_types(self.value.type)[self.field]


def buffer_keys(value: Value) -> list[Value | SparseComponent]:
    """The kernel buffers of a graph value: itself if dense, its components if sparse."""
    if isinstance(value.type, SparseTensorType):
        return [SparseComponent(value, f) for f in COMPONENTS[value.type.format]]
    return [value]


def component_arrays(a: SparseMatrix) -> dict[str, np.ndarray]:
    """`a`'s arrays as contiguous kernel buffers, after checking its structure.

    Kernels trust the structure (a CSR row loop reads `indptr` and then `indices`), so a
    malformed matrix is refused here rather than read out of bounds there.
    """
    rows, cols = a.shape
    where = f"{a.format} matrix of shape {list(a.shape)} with nnz={a.nnz}"
    arrays = {"indices": np.ascontiguousarray(a.indices, dtype=np.int64),
              "values": np.ascontiguousarray(a.values)}
    if a.format == "coo":
        want = (2, a.nnz)
        limits = np.array([[rows], [cols]])
    else:
        assert a.indptr is not None
        indptr = np.ascontiguousarray(a.indptr, dtype=np.int64)
        if indptr.shape != (rows + 1,) or indptr[0] != 0 or indptr[-1] != a.nnz \
                or np.any(np.diff(indptr) < 0):
            raise InputError(f"{where}: indptr must rise from 0 to nnz over {rows + 1} "
                             f"entries, got {indptr.tolist()[:8]}...")
        arrays = {"indptr": indptr, **arrays}
        want = (a.nnz,)
        limits = np.array(cols)
    idx = arrays["indices"]
    if idx.shape != want:
        raise InputError(f"{where}: indices have shape {list(idx.shape)}, expected {list(want)}")
    if idx.size and (idx.min() < 0 or np.any(idx >= limits)):
        raise InputError(f"{where}: an index lies outside the matrix")
    return arrays


def from_components(t: SparseTensorType, shape: tuple[int, int],
                    arrays: dict[str, np.ndarray]) -> SparseMatrix:
    """The SparseMatrix whose component buffers a kernel filled."""
    if t.format == "coo":
        return SparseMatrix.coo(arrays["indices"], arrays["values"], shape)
    return SparseMatrix.csr(arrays["indptr"], arrays["indices"], arrays["values"], shape)


@dataclass(eq=False)
class SparseTensor:
    """The tensor-IR view of a sparse value: its component tensors (`COMPONENTS` order).

    What a compute rule receives for a sparse operand and returns for a sparse result.
    """

    format: str
    shape: tuple[Expr, Expr]
    dtype: DType
    components: dict[str, Tensor]

    @property
    def nnz(self) -> Expr:
        return self.components["values"].shape[0]

    @property
    def indices(self) -> Tensor:
        return self.components["indices"]

    @property
    def values(self) -> Tensor:
        return self.components["values"]

    @property
    def indptr(self) -> Tensor:
        assert self.format == "csr", f"a {self.format} matrix has no indptr"
        return self.components["indptr"]

    def tensors(self) -> list[Tensor]:
        """The component tensors in kernel-parameter order."""
        return [self.components[f] for f in COMPONENTS[self.format]]

    @staticmethod
    def placeholder(t: SparseTensorType, name: str) -> SparseTensor:
        """Kernel inputs `<name>_indptr`, `<name>_indices`, `<name>_values`."""
        comps = {f: placeholder(shape_exprs(c), c.dtype, f"{name}_{f}")
                 for f, c in component_types(t).items()}
        return SparseTensor(t.format, shape_exprs(t), t.dtype, comps)

    @staticmethod
    def of(t: SparseTensorType, components: dict[str, Tensor]) -> SparseTensor:
        """A computed sparse value of type `t` from its component tensors."""
        assert set(components) == set(COMPONENTS[t.format]), list(components)
        return SparseTensor(t.format, shape_exprs(t), t.dtype, components)


def shape_exprs(t: TensorType | SparseTensorType) -> tuple[Expr, ...]:
    """A type's shape as index expressions (symbols become size variables)."""
    return tuple(from_sympy(d) if not isinstance(d, int) else const(d) for d in t.shape)
