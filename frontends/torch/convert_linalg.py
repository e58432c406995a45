"""ATen converters for matrix products.

After torch.export's default decompositions, `F.linear` arrives as `permute` + `addmm`
(or `mm` without a bias, with `view`s around it for batched inputs), `@` as `mm`, `bmm`
(after `expand` + `view` for broadcast batches) or `mul` + `sum` for vectors, and
`torch.einsum` as `permute` + `bmm`. `addmm` maps to `linalg.matmul` + `ew.add`; rebuilding
`linalg.linear` from that is a graph pass's job, not the importer's. `aten.linear` and
`aten.einsum` map directly when decompositions preserve them.
"""

from __future__ import annotations

from typing import Any

from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value, is_sparse


def _operands(b: Any, node: Any, *xs: Value) -> list[Value]:
    return b.promote(b.out_dtype(node), *xs)


@torch_op("aten.mm.default", "aten.matmul.default", "aten.mv.default", "aten.dot.default")
def _matmul(b: Any, node: Any, x: Value, y: Value) -> Value:
    if is_sparse(x):  # `adj @ h` with a sparse COO adjacency exports as aten.mm
        from dlc.frontends.torch.convert_sparse import spmm

        return spmm(b, x, y)
    return b.op("linalg.matmul", *_operands(b, node, x, y))


@torch_op("aten.bmm.default")
def _bmm(b: Any, node: Any, x: Value, y: Value) -> Value:
    return b.op("linalg.batch_matmul", *_operands(b, node, x, y))


def _scaled_add(b: Any, node: Any, acc: Value, product: Value, beta: Any, alpha: Any
                ) -> Value:
    """beta * acc + alpha * product (torch's addmm family; beta == 0 ignores acc)."""
    dtype = b.out_dtype(node)
    if alpha != 1:
        product = b.op("ew.mul", product, b.as_value(alpha, dtype))
    if beta == 0:
        return product
    acc = b.cast(acc, dtype)
    if beta != 1:
        acc = b.op("ew.mul", acc, b.as_value(beta, dtype))
    return b.op("ew.add", product, acc)


@torch_op("aten.addmm.default", "aten.addmv.default")
def _addmm(b: Any, node: Any, acc: Value, x: Value, y: Value, beta: Any = 1, alpha: Any = 1
           ) -> Value:
    product = b.op("linalg.matmul", *_operands(b, node, x, y))
    return _scaled_add(b, node, acc, product, beta, alpha)


@torch_op("aten.baddbmm.default")
def _baddbmm(b: Any, node: Any, acc: Value, x: Value, y: Value, beta: Any = 1, alpha: Any = 1
             ) -> Value:
    product = b.op("linalg.batch_matmul", *_operands(b, node, x, y))
    return _scaled_add(b, node, acc, product, beta, alpha)


@torch_op("aten.linear.default")
def _linear(b: Any, node: Any, x: Value, w: Value, bias: Value | None = None) -> Value:
    operands = [x, w] if bias is None else [x, w, bias]
    return b.op("linalg.linear", *_operands(b, node, *operands))


@torch_op("aten.einsum.default")
def _einsum(b: Any, node: Any, equation: str, tensors: list[Value], path: Any = None
            ) -> Value:
    return b.op("linalg.einsum", *_operands(b, node, *tensors), equation=equation)
