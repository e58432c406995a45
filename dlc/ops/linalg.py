"""Linear-algebra ops (`linalg.*`): matrix products and einsum.

All are contractions that may absorb an elementwise epilogue (fusion kind OUT_FUSABLE).
Operands share one dtype (frontends insert casts). References accumulate f16 and bf16 in
f32 and round once, as PyTorch's CPU kernels do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dims_equal
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
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
