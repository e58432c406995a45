"""SparseMatrix: the run-time value of a `coo<...>` or `csr<...>` typed graph value."""

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

    def to_csr(self) -> SparseMatrix:
        """The same matrix in CSR form (rows sorted; duplicates kept, they still add up)."""
        if self.format == "csr":
            return self
        rows, cols = self.indices
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return SparseMatrix("csr", self.shape, cols[order].astype(np.int64),
                            self.values[order], np.cumsum(indptr))

    def to_dense(self) -> np.ndarray:
        """A dense NumPy array (for tests)."""
        out = np.zeros(self.shape, dtype=self.values.dtype)
        if self.format == "coo":
            np.add.at(out, (self.indices[0], self.indices[1]), self.values)
        else:
            assert self.indptr is not None
            rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
            np.add.at(out, (rows, self.indices), self.values)
        return out
