"""Sparse-matrix ops (`sparse.*`): sparse-times-dense products and format conversions.

A sparse operand has a type of its own (`coo<f32>[N, N, nnz=E]`, `csr<...>`) and its
run-time value is a `dlc.sparse.SparseMatrix`. Both forms of a GCN layer reach
`sparse.spmm`: the frontend maps `torch.sparse.mm` on a COO input to it directly, and
the `recognize-spmm` pass rebuilds the adjacency of the edge-index form (`index_add`
over gathered rows) with `sparse.coo_from_edges`, converts it with `sparse.coo_to_csr`
and multiplies. Duplicate coordinates add up everywhere. All sparse ops are OPAQUE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import dims_equal
from dlc.ir.types import SparseTensorType, TensorType, ValueType
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor
from dlc.sparse import SparseMatrix


def sparse_operand(op: OpDef, t: ValueType, fmt: str | None = None) -> SparseTensorType:
    """Assert an operand is a sparse matrix (of format `fmt` if given)."""
    if not isinstance(t, SparseTensorType):
        want = f"a {fmt.upper()} sparse matrix" if fmt else "a sparse matrix"
        raise op.error(f"expects {want}, got dense {t}")
    if fmt and t.format != fmt:
        raise op.error(f"expects a {fmt.upper()} sparse matrix, got {t}")
    if t.rank != 2:
        raise op.error(f"expects a 2-D sparse matrix, got {t}")
    return t


@register_op
class Spmm(OpDef):
    """Sparse times dense: a (COO or CSR) [M, K] @ b [K, N] -> dense [M, N]."""

    name = "sparse.spmm"
    inputs = ("a", "b")
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, a: Any, b: Any) -> TensorType:
        a, b = sparse_operand(self, a), tensor(b, self.name)
        if b.rank != 2:
            raise self.error(f"the dense operand must be 2-D, got {b}")
        if a.dtype != b.dtype:
            raise self.error(f"operand dtypes differ: {a.dtype} and {b.dtype}; insert ew.cast")
        if not dims_equal(a.shape[1], b.shape[0]):
            raise self.error(f"inner sizes differ: {a} @ {b}")
        return TensorType((a.shape[0], b.shape[1]), a.dtype)

    def reference(self, a: SparseMatrix, b: np.ndarray) -> np.ndarray:
        return a.matmul(b)


@register_op
class CooToCsr(OpDef):
    """Convert a COO matrix to CSR (rows sorted, duplicates kept: nnz is unchanged)."""

    name = "sparse.coo_to_csr"
    inputs = ("a",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, a: Any) -> SparseTensorType:
        a = sparse_operand(self, a, "coo")
        return SparseTensorType("csr", a.shape, a.dtype, a.nnz)

    def reference(self, a: SparseMatrix) -> SparseMatrix:
        return a.to_csr()


@register_op
class CooFromEdges(OpDef):
    """A COO matrix of static `shape` [M, N] with entry k at (rows[k], cols[k]) holding
    values[k] (1 when `values` is omitted); nnz is the (possibly symbolic) edge count.

    For a message-passing layer `out.index_add(0, dst, h[src] * w)`, rows = dst and
    cols = src: out = A @ h.
    """

    name = "sparse.coo_from_edges"
    inputs = ("rows", "cols", "values?")
    attrs = {"shape": Attr("ints"), "dtype": Attr("dtype", None, optional=True,
                                                 doc="entry type without values (f32)")}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, rows: Any, cols: Any, values: Any = None, *, shape: tuple,
                   dtype: DType | None) -> SparseTensorType:
        rows, cols = tensor(rows, self.name), tensor(cols, self.name)
        if len(shape) != 2:
            raise self.error(f"shape must have 2 sizes, got {list(shape)}")
        for t in (rows, cols):
            if t.rank != 1 or not t.dtype.is_int:
                raise self.error(f"rows and cols must be 1-D integer tensors, got {t}")
        nnz = rows.shape[0]
        if not dims_equal(nnz, cols.shape[0]):
            raise self.error(f"rows {rows} and cols {cols} differ in length")
        if values is None:
            return SparseTensorType("coo", shape, dtype or DType.f32, nnz)
        values = tensor(values, self.name)
        if values.rank != 1 or not dims_equal(values.shape[0], nnz):
            raise self.error(f"values must be 1-D with one entry per edge, got {values} "
                             f"for {rows}")
        if dtype is not None and dtype != values.dtype:
            raise self.error(f"dtype={dtype} contradicts values {values}")
        return SparseTensorType("coo", shape, values.dtype, nnz)

    def reference(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None = None,
                  *, shape: tuple, dtype: DType | None) -> SparseMatrix:
        if values is None:
            values = np.ones(rows.shape, dtype=(dtype or DType.f32).numpy)
        if rows.size and (rows.min() < 0 or rows.max() >= shape[0]
                          or cols.min() < 0 or cols.max() >= shape[1]):
            raise IndexError(f"an edge lies outside the {shape[0]}x{shape[1]} matrix")
        return SparseMatrix.coo(np.stack([rows, cols]).astype(np.int64), values,
                                (shape[0], shape[1]))


@register_op
class ToDense(OpDef):
    """The dense [M, N] array of a sparse matrix (duplicates add up)."""

    name = "sparse.to_dense"
    inputs = ("a",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, a: Any) -> TensorType:
        a = sparse_operand(self, a)
        return TensorType(a.shape, a.dtype)

    def reference(self, a: SparseMatrix) -> np.ndarray:
        return a.to_dense()
