"""ATen converters for sparse matrices: `torch.sparse.mm` and `to_dense` on COO inputs.

`torch.sparse.mm(adj, h)` exports as `aten._sparse_mm`, which `run_decompositions()`
turns into `aten._sparse_addmm(zeros, adj, h, beta=0)`; both map to `sparse.spmm`.
`adj @ h` exports as `aten.mm` with a sparse first operand: the linalg converter hands
that case to `spmm` below.
"""

from __future__ import annotations

from typing import Any

from dlc.errors import FrontendError
from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value, is_sparse


def spmm(b: Any, a: Value, x: Value) -> Value:
    """sparse `a` @ dense `x` (the dense operand cast to the sparse matrix's dtype)."""
    if not is_sparse(a) or is_sparse(x):
        raise FrontendError(f"dlc multiplies a sparse matrix by a dense one; got "
                            f"{a.type} @ {x.type}")
    return b.op("sparse.spmm", a, b.cast(x, a.dtype))


@torch_op("aten._sparse_mm.default")
def _sparse_mm(b: Any, node: Any, a: Value, x: Value) -> Value:
    return b.check_output(node, spmm(b, a, x))


@torch_op("aten._sparse_addmm.default")
def _sparse_addmm(b: Any, node: Any, bias: Value, a: Value, x: Value, *, beta: Any = 1,
                  alpha: Any = 1) -> Value:
    """beta * bias + alpha * (a @ x); with beta == 0 (torch.sparse.mm's decomposition,
    whose bias is a zeros `full`) the bias is ignored, as torch ignores it."""
    dtype = b.out_dtype(node)
    out = spmm(b, a, x)
    if alpha != 1:
        out = b.op("ew.mul", out, b.as_value(alpha, dtype))
    if beta != 0:
        bias = b.cast(bias, dtype)
        if beta != 1:
            bias = b.op("ew.mul", bias, b.as_value(beta, dtype))
        out = b.op("ew.add", bias, out)
    return b.check_output(node, out)


@torch_op("aten._to_dense.default")
def _to_dense(b: Any, node: Any, a: Value, dtype: Any = None, masked_grad: Any = None) -> Value:
    if not is_sparse(a):
        return a
    return b.cast(b.op("sparse.to_dense", a), b.out_dtype(node))
