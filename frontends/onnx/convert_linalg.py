"""ONNX converters for matrix products (`linalg.*`): MatMul, Gemm, Einsum, Det."""

from __future__ import annotations

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.graph import Value

B = OnnxGraphBuilder


@onnx_op("MatMul")
def _matmul(b: B, node: OnnxNode) -> Value:
    return b.op("linalg.matmul", node.inputs[0], node.inputs[1])


@onnx_op("Gemm")
def _gemm(b: B, node: OnnxNode) -> Value:
    """alpha * A' @ B' + beta * C; `linalg.linear` when it is a fully connected layer."""
    a, w, c = node.inputs[0], node.inputs[1], node.input(2)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)
    if trans_a:
        a = b.op("shape.permute", a, perm=(1, 0))
    n = b.shape_of(w)[0 if trans_b else 1]
    if alpha == 1.0 and beta == 1.0 and (c is None or (b.rank_of(c) == 1 and
                                                        b.shape_of(c)[0] == n)):
        weight = w if trans_b else b.op("shape.permute", w, perm=(1, 0))
        return b.op("linalg.linear", a, weight, *([c] if c is not None else []))
    if trans_b:
        w = b.op("shape.permute", w, perm=(1, 0))
    y = b.op("linalg.matmul", a, w)
    if alpha != 1.0:
        y = b.op("ew.mul", y, b.scalar_like(alpha, y))
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = b.op("ew.mul", c, b.scalar_like(beta, c))
        y = b.op("ew.add", y, c)
    return y


@onnx_op("Einsum")
def _einsum(b: B, node: OnnxNode) -> Value:
    return b.op("linalg.einsum", *node.inputs, equation=node.attr("equation"))


@onnx_op("Det")
def _det(b: B, node: OnnxNode) -> Value:
    return b.op("linalg.det", node.inputs[0])
