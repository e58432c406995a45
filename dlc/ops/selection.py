"""ONNX's selections and counts by value (`index.nonzero`, `index.unique`,
`index.tfidf_vectorizer`): ops whose output depends on the values of `x`, not only on
positions.

`nonzero` and `unique` return a data-dependent number of elements: that length is a new
size symbol (`fresh_size`), bound when the op runs. `tfidf_vectorizer` counts pooled
n-grams of integer tokens; its lowering is an `extern` loop nest with the pool unrolled
into constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.tensor import compute as te
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import Expr, cast, compare, const, logical, select, var
from dlc.ir.tensor.stmt import Buffer, For, IfThenElse, Stmt, Store, seq
from dlc.ir.types import TensorType
from dlc.ops.indexing import check_indices
from dlc.ops.registry import Attr, FusionKind, OpDef, normalize_axis, register_op, tensor
from dlc.ops.shape_dynamic import fresh_size


@register_op
class NonZero(OpDef):
    """The indices of the nonzero elements of `x`, as `i64[rank, n]` in row-major order
    (ONNX NonZero; `n` is a new size symbol bound when the op runs)."""

    name = "index.nonzero"
    inputs = ("x",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any) -> TensorType:
        x = tensor(x, self.name)
        return TensorType((x.rank, fresh_size("nnz")), DType.i64)

    def reference(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 0:
            return np.zeros((0, int(x != 0)), dtype=np.int64)
        return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@register_op
class Unique(OpDef):
    """The distinct values of `x` (flattened, or distinct slices along `axis`), with the
    index of each one's first occurrence, the inverse map and the counts (ONNX Unique).

    `sorted` orders the values ascending; otherwise they come in order of first
    occurrence. The number of distinct values is a new size symbol.
    """

    name = "index.unique"
    inputs = ("x",)
    attrs = {"axis": Attr("int", None, optional=True), "sorted": Attr("bool", True)}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, *, axis: int | None, sorted: bool
                   ) -> tuple[TensorType, ...]:
        x = tensor(x, self.name)
        n = fresh_size("unique")
        if axis is None:
            values = TensorType((n,), x.dtype)
            size = x.numel
        else:
            a = normalize_axis(axis, x.rank, self.name)
            values = x.with_shape((*x.shape[:a], n, *x.shape[a + 1:]))
            size = x.shape[a]
        return (values, TensorType((n,), DType.i64), TensorType((size,), DType.i64),
                TensorType((n,), DType.i64))

    def reference(self, x: np.ndarray, *, axis: int | None, sorted: bool
                  ) -> tuple[np.ndarray, ...]:
        if axis is None:
            values, first, inverse, counts = np.unique(
                x.reshape(-1), return_index=True, return_inverse=True, return_counts=True)
        else:
            values, first, inverse, counts = np.unique(
                x, axis=axis, return_index=True, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if not sorted:  # order of first occurrence
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            values = np.take(values, order, axis=0 if axis is None else axis)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        return (values.astype(x.dtype), first.astype(np.int64), inverse.astype(np.int64),
                counts.astype(np.int64))


def _tfidf_columns(pool: Sequence[int], ngram_counts: Sequence[int],
                   ngram_indexes: Sequence[int]) -> dict[tuple[int, ...], int]:
    """Each pooled n-gram's output column (a repeated n-gram keeps its last column)."""
    column: dict[tuple[int, ...], int] = {}
    k = 0
    for n, start in enumerate(ngram_counts, start=1):
        end = ngram_counts[n] if n < len(ngram_counts) else len(pool)
        for s in range(start, end, n):
            column[tuple(pool[s:s + n])] = ngram_indexes[k]
            k += 1
    return column


@register_op
class TfIdfVectorizer(OpDef):
    """Count the n-grams of each row of integer tokens that appear in a pool (ONNX
    TfIdfVectorizer): n from `min_gram_length` to `max_gram_length`, tokens up to
    `max_skip_count` apart (every skip counts again for n >= 2). `pool` lists the
    1-grams, then the 2-grams, ... (`ngram_counts` gives where each length starts);
    `ngram_indexes` maps each pooled n-gram to its output column. `mode` TF gives the
    counts, IDF the `weights` of the n-grams present, TFIDF counts times weights."""

    name = "index.tfidf_vectorizer"
    inputs = ("x",)
    attrs = {"pool": Attr("ints"), "ngram_counts": Attr("ints"), "ngram_indexes": Attr("ints"),
             "weights": Attr("floats", ()), "min_gram_length": Attr("int"),
             "max_gram_length": Attr("int"), "max_skip_count": Attr("int"),
             "mode": Attr("str", choices=("TF", "IDF", "TFIDF"))}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, *, ngram_indexes: tuple[int, ...], **_: Any) -> TensorType:
        x = tensor(x, self.name)
        check_indices(self, x)
        if x.rank not in (1, 2):
            raise self.error(f"expects [C] or [B, C] tokens, got {x}")
        size = max(ngram_indexes) + 1
        return TensorType((size,) if x.rank == 1 else (x.shape[0], size), DType.f32)

    def reference(self, x: np.ndarray, *, pool: tuple[int, ...], ngram_counts: tuple[int, ...],
                  ngram_indexes: tuple[int, ...], weights: tuple[float, ...],
                  min_gram_length: int, max_gram_length: int, max_skip_count: int,
                  mode: str) -> np.ndarray:
        column = _tfidf_columns(pool, ngram_counts, ngram_indexes)
        size = max(ngram_indexes) + 1
        rows = x.reshape(-1, x.shape[-1]) if x.ndim == 2 else x.reshape(1, -1)
        counts = np.zeros((rows.shape[0], size), dtype=np.float64)
        for r, row in enumerate(rows.tolist()):
            for n in range(min_gram_length, max_gram_length + 1):
                for skip in range(max_skip_count + 1 if n > 1 else 1):
                    d = skip + 1
                    for s in range(len(row) - d * (n - 1)):
                        col = column.get(tuple(row[s:s + d * (n - 1) + 1:d]))
                        if col is not None:
                            counts[r, col] += 1
        w = np.asarray(weights, dtype=np.float64) if weights else np.ones(size)
        if mode == "IDF":
            out = np.where(counts > 0, w, 0.0)
        elif mode == "TFIDF":
            out = counts * w
        else:
            out = counts
        return out.reshape((size,) if x.ndim == 1 else (x.shape[0], size)).astype(np.float32)

    def compute(self, ctx: LowerContext, x: te.Tensor, *, pool: tuple[int, ...],
                ngram_counts: tuple[int, ...], ngram_indexes: tuple[int, ...],
                weights: tuple[float, ...], min_gram_length: int, max_gram_length: int,
                max_skip_count: int, mode: str) -> te.Tensor:
        """Per row: zero the counts, then one loop per pooled n-gram and skip over the
        start positions, adding 1 where every token matches (the pool is an attribute,
        so the n-grams are constants in the loop nest); IDF and TFIDF then rewrite each
        pooled column, in f64 as the reference does."""
        column = {g: c for g, c in _tfidf_columns(pool, ngram_counts, ngram_indexes).items()
                  if min_gram_length <= len(g) <= max_gram_length}

        def build(ins: list[Buffer], outs: list[Buffer]) -> Stmt:
            (xb,), (out,) = ins, outs
            rows = xb.shape[0] if len(xb.shape) == 2 else const(1)
            r, c, s = var(ctx.name("row")), var(ctx.name("col")), var(ctx.name("start"))

            def cell(col: Any) -> tuple[Expr, ...]:
                return (r, col) if len(out.shape) == 2 else (col,)

            def token(pos: Expr) -> Expr:
                return xb[r, pos] if len(xb.shape) == 2 else xb[pos]

            steps = [For(c, out.shape[-1], Store(out, cell(c), const(0.0)))]
            for gram, col in column.items():
                n = len(gram)
                for skip in range(max_skip_count + 1 if n > 1 else 1):
                    d = skip + 1
                    match = const(True)
                    for t, g in enumerate(gram):
                        match = logical("and", match,
                                        compare("eq", token(s + d * t), const(g, xb.dtype)))
                    at = cell(const(col))
                    steps.append(For(s, xb.shape[-1] - d * (n - 1),
                                     IfThenElse(match, Store(out, at, out[at] + 1.0))))
            if mode != "TF":
                for col in sorted(set(column.values())):
                    w = const(weights[col] if weights else 1.0, DType.f64)
                    at = cell(const(col))
                    count = cast(out[at], DType.f64)
                    value = (select(compare("gt", count, const(0.0, DType.f64)), w,
                                    const(0.0, DType.f64)) if mode == "IDF" else count * w)
                    steps.append(Store(out, at, cast(value, DType.f32)))
            return For(r, rows, seq(*steps))

        (out,) = te.extern(ctx.name(), [x], [(ctx.out_shape(), ctx.out_dtype())], build)
        return out
