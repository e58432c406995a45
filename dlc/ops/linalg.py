"""Linear-algebra ops (`linalg.*`): matrix products, einsum and determinants.

All but `linalg.det` (OPAQUE, reference only) are contractions that may absorb an
elementwise epilogue (fusion kind OUT_FUSABLE). Operands share one dtype (frontends insert
casts). References accumulate f16 and bf16 in f32 and round once, as PyTorch's CPU
kernels do.

Lowering: each is a `reduce("sum", ...)` over the contracted axes. f16/bf16 operands are
widened to f32 inside the reduction and the result is rounded by an elementwise tensor
reading it at its own position, so the epilogue machinery of `dlc.ir.tensor.lower`
folds the rounding (and linear's bias) into the accumulator's write:

    acc[i, j] = sum_k f32(a[i, k]) * f32(b[k, j])      # reduction, never stored
    out[i, j] = f16(acc[i, j])                         # epilogue at the write
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dims_equal
from dlc.ir.tensor.compute import Reduce, ReduceAxis, Tensor, compute, reduce, reduce_axis
from dlc.ir.tensor.context import LowerContext, broadcast_load
from dlc.ir.tensor.expr import Expr, cast, const
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    float_tensor,
    register_op,
    same_dtype,
    tensor,
)

_LOW_PRECISION = (DType.f16, DType.bf16)


def _no_bool(op: OpDef, dtype: DType) -> None:
    if dtype == DType.bool:
        raise op.error("is not defined on bool; cast the operands to a number type")


def _widen(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    """f16/bf16 operands as f32, so products accumulate in f32."""
    return tuple(x.astype(np.float32) if DType.from_numpy(x.dtype) in _LOW_PRECISION else x
                 for x in xs)


def _widened(e: Expr) -> Expr:
    """A loaded f16/bf16 element as f32, so products accumulate in f32."""
    return cast(e, DType.f32) if e.dtype in _LOW_PRECISION else e


def _batch_index(x: Tensor, batch_rank: int, out_axes: Sequence[Expr]) -> list[Expr]:
    """`x`'s batch indices (all but its last two axes) under NumPy broadcasting."""
    dims = x.shape[:-2]
    offset = batch_rank - len(dims)
    return [const(0) if d is const(1) else out_axes[offset + k]
            for k, d in enumerate(dims)]


def _contraction(ctx: LowerContext, body: Callable[..., Expr], axes: Sequence[ReduceAxis],
                 epilogue: Callable[..., Expr] | None = None) -> Tensor:
    """The node's output: the sum of `body(*out_axes)` over `axes`, then `epilogue`.

    The sum runs in the body's (widened) dtype. When the output dtype is narrower, or an
    `epilogue(acc, *out_axes)` is given, a second tensor applies it and casts; it reads the
    sum at its own position, so lowering fuses it into the accumulator's write.
    """
    shape, dtype = ctx.out_shape(), ctx.out_dtype()
    names = ctx.axis_names(len(shape))

    def summed(*out: Expr) -> Reduce | Expr:
        value = body(*out)
        return reduce("sum", value, axes) if axes else value

    if epilogue is None and dtype not in _LOW_PRECISION:
        return compute(shape, summed, ctx.name(), axis_names=names)
    acc = compute(shape, summed, ctx.name("sum"), axis_names=names)
    finish = epilogue or (lambda value, *out: value)
    return compute(shape, lambda *out: cast(finish(acc[out], *out), dtype), ctx.name(),
                   axis_names=names)


def _check_k(op: OpDef, a: TensorType, b: TensorType, ka: Dim, kb: Dim) -> None:
    if not dims_equal(ka, kb):
        raise op.error(f"contracted sizes differ: {a} has {ka}, {b} has {kb}")


@register_op
class Matmul(OpDef):
    """NumPy matmul: batch axes broadcast; a 1-D operand is a vector (its axis is dropped)."""

    name = "linalg.matmul"
    inputs = ("a", "b")
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, a: Any, b: Any) -> TensorType:
        a, b = tensor(a, self.name), tensor(b, self.name)
        dtype = same_dtype(self.name, a, b)
        _no_bool(self, dtype)
        if a.rank == 0 or b.rank == 0:
            raise self.error(f"operands must have rank >= 1, got {a} and {b}")
        sa = a.shape if a.rank > 1 else (1, *a.shape)
        sb = b.shape if b.rank > 1 else (*b.shape, 1)
        _check_k(self, a, b, sa[-1], sb[-2])
        batch = broadcast_shapes(self.name, sa[:-2], sb[:-2])
        out = (*batch, *((sa[-2],) if a.rank > 1 else ()), *((sb[-1],) if b.rank > 1 else ()))
        return TensorType(out, dtype)

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(np.matmul(*_widen(a, b))).astype(a.dtype)

    def compute(self, ctx: LowerContext, a: Tensor, b: Tensor) -> Tensor:
        k = reduce_axis(a.shape[-1], ctx.name("rk"))
        batch = len(ctx.out_shape()) - (a.ndim > 1) - (b.ndim > 1)

        def product(*out: Expr) -> Expr:
            m = out[batch:batch + 1] if a.ndim > 1 else ()  # a vector operand has no row
            n = out[-1:] if b.ndim > 1 else ()  # ... nor a column
            ia = (*_batch_index(a, batch, out), *m, k.var)
            ib = (*_batch_index(b, batch, out), k.var, *n)
            return _widened(a[ia]) * _widened(b[ib])

        return _contraction(ctx, product, [k])


@register_op
class BatchMatmul(OpDef):
    """A batch of matrix products: [B, M, K] x [B, K, N] -> [B, M, N] (torch.bmm)."""

    name = "linalg.batch_matmul"
    inputs = ("a", "b")
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, a: Any, b: Any) -> TensorType:
        a, b = tensor(a, self.name), tensor(b, self.name)
        dtype = same_dtype(self.name, a, b)
        _no_bool(self, dtype)
        if a.rank != 3 or b.rank != 3:
            raise self.error(f"operands must have rank 3, got {a} and {b}")
        if not dims_equal(a.shape[0], b.shape[0]):
            raise self.error(f"batch sizes differ: {a} and {b}")
        _check_k(self, a, b, a.shape[2], b.shape[1])
        return TensorType((a.shape[0], a.shape[1], b.shape[2]), dtype)

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(*_widen(a, b)).astype(a.dtype)

    def compute(self, ctx: LowerContext, a: Tensor, b: Tensor) -> Tensor:
        k = reduce_axis(a.shape[2], ctx.name("rk"))

        def product(n: Expr, i: Expr, j: Expr) -> Expr:
            return _widened(a[n, i, k.var]) * _widened(b[n, k.var, j])

        return _contraction(ctx, product, [k])


@register_op
class Linear(OpDef):
    """x @ w.T + bias, with x [..., K], w [N, K] and bias [N] (torch.nn.functional.linear)."""

    name = "linalg.linear"
    inputs = ("x", "w", "bias?")
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, x: Any, w: Any, bias: Any = None) -> TensorType:
        x, w = tensor(x, self.name), tensor(w, self.name)
        operands = (x, w) if bias is None else (x, w, tensor(bias, self.name))
        dtype = same_dtype(self.name, *operands)
        _no_bool(self, dtype)
        if x.rank < 1 or w.rank != 2:
            raise self.error(f"expects x of rank >= 1 and a 2-D weight, got {x} and {w}")
        _check_k(self, x, w, x.shape[-1], w.shape[1])
        if bias is not None:
            b = operands[2]
            if b.rank > 1 or (b.rank == 1 and not dims_equal(b.shape[0], w.shape[0])):
                raise self.error(f"bias {b} does not match the weight's {w.shape[0]} outputs")
        return TensorType((*x.shape[:-1], w.shape[0]), dtype)

    def reference(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
                  ) -> np.ndarray:
        xw, ww = _widen(x, w)
        out = np.matmul(xw, ww.T)
        if bias is not None:
            out = out + _widen(bias)[0]
        return np.asarray(out).astype(x.dtype)

    def compute(self, ctx: LowerContext, x: Tensor, w: Tensor, bias: Tensor | None = None
                ) -> Tensor:
        k = reduce_axis(x.shape[-1], ctx.name("rk"))

        def product(*out: Expr) -> Expr:
            return _widened(x[(*out[:-1], k.var)]) * _widened(w[out[-1], k.var])

        def add_bias(acc: Expr, *out: Expr) -> Expr:
            assert bias is not None
            return acc + _widened(broadcast_load(bias, out))

        return _contraction(ctx, product, [k], add_bias if bias is not None else None)


def parse_einsum(op: OpDef, equation: str, ranks: list[int]
                 ) -> tuple[list[list[str]], list[str]]:
    """Each operand's axis labels and the output's, with `...` expanded into labels
    `.0`, `.1`, ... (right-aligned: `.0` is the outermost broadcast axis)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise op.error(f"equation {equation!r} has {len(terms)} operands, got {len(ranks)}")
    n_ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t),
                default=0)

    def labels(term: str, rank: int | None) -> list[str]:
        letters = term.replace("...", "")
        if term.count("...") > 1 or (letters and not letters.isalpha()):
            raise op.error(f"bad subscripts {term!r} in {equation!r}")
        pre, ell, post = term.partition("...")
        k = (rank - len(pre) - len(post)) if rank is not None else n_ell
        if not ell and rank is not None and len(term) != rank:
            raise op.error(f"subscripts {term!r} name {len(term)} axes of a rank-{rank} operand")
        if k < 0:
            raise op.error(f"subscripts {term!r} name too many axes for rank {rank}")
        return [*pre, *(f".{n_ell - k + i}" for i in range(k) if ell), *post]

    ins = [labels(t, r) for t, r in zip(terms, ranks)]
    if arrow:
        out = labels(rhs, None)
        if len(set(out)) != len(out):
            raise op.error(f"output subscripts {rhs!r} repeat a label")
        unknown = set(out) - {lab for t in ins for lab in t}
        if unknown:
            raise op.error(f"output labels {sorted(unknown)} appear in no operand")
    else:  # implicit output: broadcast axes, then labels used once, alphabetically
        flat = [lab for t in ins for lab in t]
        out = [f".{i}" for i in range(n_ell)]
        out += sorted(lab for lab in set(flat) if not lab.startswith(".") and
                      flat.count(lab) == 1)
    return ins, out


@register_op
class Einsum(OpDef):
    """Einstein summation (`"bij,bjk->bik"`), with `...` broadcast axes and implicit output."""

    name = "linalg.einsum"
    inputs = ("xs*",)
    attrs = {"equation": Attr("str")}
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, *xs: Any, equation: str) -> TensorType:
        if not xs:
            raise self.error("needs at least one operand")
        xs = tuple(tensor(x, self.name) for x in xs)
        dtype = same_dtype(self.name, *xs)
        _no_bool(self, dtype)
        ins, out = parse_einsum(self, equation, [x.rank for x in xs])
        sizes: dict[str, Dim] = {}
        broadcast: list[tuple[Dim, ...]] = []
        for x, labels in zip(xs, ins):
            ell = tuple(d for lab, d in zip(labels, x.shape) if lab.startswith("."))
            broadcast.append(ell)
            for lab, d in zip(labels, x.shape):
                if lab.startswith("."):
                    continue
                if lab in sizes and not dims_equal(sizes[lab], d):
                    raise self.error(f"label {lab!r} has size {sizes[lab]} and {d}")
                sizes.setdefault(lab, d)
        ell_shape = broadcast_shapes(self.name, *broadcast)
        sizes.update({f".{i}": d for i, d in enumerate(ell_shape)})
        return TensorType(tuple(sizes[lab] for lab in out), dtype)

    def reference(self, *xs: np.ndarray, equation: str) -> np.ndarray:
        return np.asarray(np.einsum(equation, *_widen(*xs))).astype(xs[0].dtype)

    def compute(self, ctx: LowerContext, *xs: Tensor, equation: str) -> Tensor:
        ins, out = parse_einsum(self, equation, [x.ndim for x in xs])
        sizes: dict[str, Expr] = {}
        for x, labels in zip(xs, ins):
            for lab, d in zip(labels, x.shape):
                if lab not in sizes or sizes[lab] is const(1):  # a broadcast axis may be 1
                    sizes[lab] = d
        summed = [lab for lab in sizes if lab not in out]
        # labels are letters, or `.0`, `.1`, ... for broadcast axes
        axes = {lab: reduce_axis(sizes[lab], ctx.name(f"r{lab.replace('.', 'e')}"))
                for lab in summed}

        def product(*out_axes: Expr) -> Expr:
            index = dict(zip(out, out_axes)) | {lab: ax.var for lab, ax in axes.items()}
            terms = []
            for x, labels in zip(xs, ins):
                idx = tuple(const(0) if lab.startswith(".") and d is const(1) else index[lab]
                            for lab, d in zip(labels, x.shape))
                terms.append(_widened(x[idx]))
            value = terms[0]
            for t in terms[1:]:
                value = value * t
            return value

        return _contraction(ctx, product, list(axes.values()))


# -- determinants ------------------------------------------------------------------------


@register_op
class Det(OpDef):
    """The determinant of each trailing square matrix of `x: [..., M, M]`."""

    name = "linalg.det"
    inputs = ("x",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any) -> TensorType:
        x = float_tensor(self, x)
        if x.rank < 2:
            raise self.error(f"expects [..., M, M], got {x}")
        return x.with_shape(x.shape[:-2])

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.det(opmath(x))).astype(x.dtype)
