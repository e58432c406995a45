"""SparseMatrix: the run-time value of a `coo<...>` or `csr<...>` typed graph value.

Both formats keep duplicate coordinates, which add up (torch's uncoalesced COO
semantics); converting COO to CSR never merges entries, so `nnz` is unchanged and a
graph can give both the same size symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import SparseTensorType


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
