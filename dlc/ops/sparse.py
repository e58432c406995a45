"""Sparse-matrix ops (`sparse.*`): sparse-times-dense products and format conversions.

A sparse operand has a type of its own (`coo<f32>[N, N, nnz=E]`, `csr<...>`) and its
run-time value is a `dlc.sparse.SparseMatrix`. Both forms of a GCN layer reach
`sparse.spmm`: the frontend maps `torch.sparse.mm` on a COO input to it directly, and
the `recognize-spmm` pass rebuilds the adjacency of the edge-index form (`index_add`
over gathered rows) with `sparse.coo_from_edges`, converts it with `sparse.coo_to_csr`
and multiplies. Duplicate coordinates add up everywhere. All sparse ops are OPAQUE.

Lowering: a sparse operand reaches `compute` as a `dlc.sparse.SparseTensor`, its
component buffers (COO: `indices` i64[2, nnz], `values`; CSR: `indptr` i64[M + 1],
`indices` i64[nnz], `values`), and a sparse result is returned as one. `spmm` and
`to_dense` are extern loop nests over the stored entries (over CSR, a loop per row whose
extent `indptr[r + 1] - indptr[r]` is read from memory), `coo_to_csr` is a two-pass
counting sort, and `coo_from_edges` is a compute over the edge list. Kernels
trust a sparse value's structure: the executable checks sparse inputs at the boundary,
and `coo_from_edges` clamps an edge outside the matrix onto its border (the reference
raises), so no kernel reads out of bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import dims_equal
from dlc.ir.tensor import compute as te
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, cast, compare, const, max_, min_, select, var
from dlc.ir.tensor.stmt import Allocate, Buffer, For, Stmt, Store, seq
from dlc.ir.types import SparseTensorType, TensorType, ValueType
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor
from dlc.sparse import COMPONENTS, SparseMatrix, SparseTensor, component_types, shape_exprs


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


# -- lowering helpers --------------------------------------------------------------------


def _zero_row(out: Buffer, r: Expr, prefix: str) -> Stmt:
    """out[r, :] = 0."""
    j = var(f"{prefix}_j")
    return For(j, out.shape[1], Store(out, (r, j), const(0, out.dtype)))


def _accumulate_rows(out: Buffer, a: dict[str, Buffer], fmt: str, prefix: str,
                     body: Callable[[Expr, Expr, Expr], Stmt]) -> Stmt:
    """Zero `out`, then visit every stored entry in storage order: `body(entry, row, col)`.

    COO: `for e in 0..nnz`, after zeroing all of `out`. CSR: `for r in 0..M`, zeroing
    row r and then `for k in 0..indptr[r+1]-indptr[r]`, the entry at `indptr[r] + k` (a
    loop whose extent is read from memory), so the row is still in cache as it is summed.
    """
    if fmt == "coo":
        e, r = var(f"{prefix}_e"), var(f"{prefix}_r")
        idx = a["indices"]
        return seq(For(r, out.shape[0], _zero_row(out, r, f"{prefix}_zero")),
                   For(e, a["values"].shape[0], body(e, idx[const(0), e], idx[const(1), e])))
    indptr = a["indptr"]
    r, k = var(f"{prefix}_r"), var(f"{prefix}_k")
    e = indptr[r] + k
    return For(r, indptr.shape[0] - 1,
               seq(_zero_row(out, r, f"{prefix}_zero"),
                   For(k, indptr[r + 1] - indptr[r], body(e, r, a["indices"][e]))))


def _sparse_extern(ctx: LowerContext, inputs: Sequence[te.Tensor],
                   build: Callable[[list[Buffer], dict[str, Buffer]], Stmt]) -> SparseTensor:
    """The node's sparse result, filled by an extern nest `build(input buffers,
    components)`; its buffers are named `<value>_indptr`, `<value>_indices`, ..."""
    t = ctx.out_types[0]
    assert isinstance(t, SparseTensorType)
    types = component_types(t)
    op = te.ExternOp(ctx.name(), tuple(inputs),
                     lambda ins, outs: build(ins, dict(zip(types, outs))))
    comps = {}
    for f, c in types.items():
        comps[f] = te.Tensor(Buffer(ctx.name(f), shape_exprs(c), c.dtype),
                             inputs=tuple(inputs), extern=op)
    op.outputs = tuple(comps[f] for f in COMPONENTS[t.format])
    return SparseTensor.of(t, comps)


def _counts(start: Buffer, n: Expr, e: Expr, nnz: Expr, key: Expr, k: Expr) -> Stmt:
    """start[k] = the number of entries whose `key` (read at entry `e`) is below k, for
    k in 0..n: a histogram shifted by one, then its running sum."""
    return seq(For(k, n + 1, Store(start, (k,), const(0))),
               For(e, nnz, Store(start, (key + 1,), start[key + 1] + 1)),
               For(k, n, Store(start, (k + 1,), start[k + 1] + start[k])))


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

    def compute(self, ctx: LowerContext, a: SparseTensor, b: te.Tensor) -> te.Tensor:
        """Zero `out`, then for each stored entry e (row r, column c) in storage order:
        out[r, :] += values[e] * b[c, :] (`_accumulate_rows`). Each output element sums
        its terms in entry order, as the reference does. The innermost loop runs along a
        row of `b` (contiguous, so it vectorizes): a reduction over a row's entries, with
        the entries innermost, ran about twice as slow on a 20k-row GCN adjacency."""

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            *parts, bb = ins
            (out,) = outs
            comps = dict(zip(COMPONENTS[a.format], parts))
            j = var(ctx.name("col"))

            def entry(e: Expr, r: Expr, c: Expr) -> Stmt:
                add = out[r, j] + comps["values"][e] * bb[c, j]
                return For(j, out.shape[1], Store(out, (r, j), add))

            return _accumulate_rows(out, comps, a.format, ctx.name("entry"), entry)

        (out,) = te.extern(ctx.name(), [*a.tensors(), b], [(ctx.out_shape(), ctx.out_dtype())],
                           build)
        return out


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

    def compute(self, ctx: LowerContext, a: SparseTensor) -> SparseTensor:
        """A stable two-pass counting sort, which orders entries by (row, col) exactly as
        the reference's `lexsort` does: sort entry numbers by column into `perm`, then
        place them by row in `perm` order; `indptr` is the prefix sum of row counts."""
        rows, cols = a.shape

        def build(ins: list[Buffer], out: dict[str, Buffer]) -> Stmt:
            idx, vals = ins
            indptr, col_out, val_out = out["indptr"], out["indices"], out["values"]
            nnz = vals.shape[0]
            start = Buffer(ctx.name("colstart"), (cols + 1,), DType.i64)
            perm = Buffer(ctx.name("perm"), (nnz,), DType.i64)
            cursor = Buffer(ctx.name("cursor"), (rows,), DType.i64)
            e, c, r = var(ctx.name("e")), var(ctx.name("c")), var(ctx.name("r"))
            row, col = idx[const(0), e], idx[const(1), e]
            by_col = seq(
                _counts(start, cols, e, nnz, col, c),
                For(e, nnz, seq(Store(perm, (start[col],), e),
                                Store(start, (col,), start[col] + 1))))
            p = perm[e]  # the e-th entry in column order
            prow = idx[const(0), p]
            by_row = seq(
                _counts(indptr, rows, e, nnz, row, r),
                For(r, rows, Store(cursor, (r,), indptr[r])),
                For(e, nnz, seq(Store(col_out, (cursor[prow],), idx[const(1), p]),
                                Store(val_out, (cursor[prow],), vals[p]),
                                Store(cursor, (prow,), cursor[prow] + 1))))
            return Allocate(start, Allocate(perm, Allocate(cursor, seq(by_col, by_row))))

        return _sparse_extern(ctx, a.tensors(), build)


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

    def compute(self, ctx: LowerContext, rows: te.Tensor, cols: te.Tensor,
                values: te.Tensor | None = None, *, shape: tuple, dtype: DType | None
                ) -> SparseTensor:
        """indices[0, e] = rows[e], indices[1, e] = cols[e] (each clamped into the
        matrix), values[e] = values[e] or 1."""
        t = ctx.out_types[0]
        assert isinstance(t, SparseTensorType)
        nnz = rows.shape[0]

        def coord(d: Expr, e: Expr) -> Expr:
            r = max_(min_(cast(rows[e], DType.i64), shape[0] - 1), 0)
            c = max_(min_(cast(cols[e], DType.i64), shape[1] - 1), 0)
            return select(compare("eq", d, const(0)), r, c)

        indices = te.compute((2, nnz), coord, ctx.name("indices"),
                             axis_names=ctx.axis_names(2))
        weights = te.compute((nnz,), (lambda e: values[e]) if values is not None
                             else (lambda e: const(1, t.dtype)), ctx.name("values"),
                             axis_names=ctx.axis_names(1))
        return SparseTensor.of(t, {"indices": indices, "values": weights})


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

    def compute(self, ctx: LowerContext, a: SparseTensor) -> te.Tensor:
        """Zero `out`, then out[row, col] += value for every entry in storage order."""

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            (out,) = outs
            comps = dict(zip(COMPONENTS[a.format], ins))

            def entry(e: Expr, r: Expr, c: Expr) -> Stmt:
                return Store(out, (r, c), out[r, c] + comps["values"][e])

            return _accumulate_rows(out, comps, a.format, ctx.name("entry"), entry)

        (out,) = te.extern(ctx.name(), a.tensors(), [(ctx.out_shape(), ctx.out_dtype())],
                           build)
        return out
