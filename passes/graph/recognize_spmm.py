"""recognize-spmm: turn edge-list message passing back into a sparse matrix product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.passes.graph.eliminate_common_subexpressions import EliminateCommonSubexpressions
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import OpPattern, P, Pattern, Rule, RuleSet, rewrite_to_fixpoint


def _is_zeros(v: Value, graph: Graph) -> bool:
    """True for a tensor that is all zeros by construction (full, full_like, a constant)."""
    if isinstance(v, Constant):
        return isinstance(v.data, np.ndarray) and not np.any(v.data)
    node = graph.producers.get(v)
    return node is not None and node.op.name in ("create.full", "create.full_like") \
        and node.attrs["value"] == 0


def _edge_weights(w: Value, graph: Graph, b: GraphBuilder) -> Value | None:
    """The per-edge weights `[E]` of a `[E, 1]` multiplier (None if it is not one)."""
    if w.type.rank != 2 or w.type.shape[1] != 1:
        return None
    node = graph.producers.get(w)
    if node is not None and node.op.name == "shape.unsqueeze" and \
            tuple(node.attrs["axes"]) in ((1,), (-1,)):
        return node.inputs[0]
    return b.op("shape.squeeze", w, axes=[1])


def _spmm(h: Value, cols: Value, rows: Value, zeros: Value, scatter: Node, gather: Node,
          weights: Value | None, b: GraphBuilder, graph: Graph) -> Value | None:
    """zeros.index_put(rows, h[cols] * w, accumulate) -> A @ h with A[rows[k], cols[k]] = w[k]."""
    if tuple(scatter.attrs["axes"]) != (0,) or not scatter.attrs["accumulate"] \
            or tuple(gather.attrs["axes"]) != (0,) or not _is_zeros(zeros, graph):
        return None
    m, k = zeros.type.shape[0], h.type.shape[0]
    if h.type.rank != 2 or not (isinstance(m, int) and isinstance(k, int)):
        return None  # coo_from_edges needs a static matrix shape
    if rows.type.rank != 1 or cols.type.rank != 1:
        return None
    if weights is None:
        coo = b.op("sparse.coo_from_edges", rows, cols, shape=[m, k], dtype=h.dtype)
    else:
        coo = b.op("sparse.coo_from_edges", rows, cols, weights, shape=[m, k])
    return b.op("sparse.spmm", b.op("sparse.coo_to_csr", coo), h)


def _weighted(h: Value, cols: Value, rows: Value, zeros: Value, w: Value, scatter: Node,
              gather: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    weights = _edge_weights(w, graph, b)
    if weights is None:
        return None
    return _spmm(h, cols, rows, zeros, scatter, gather, weights, b, graph)


def _unweighted(h: Value, cols: Value, rows: Value, zeros: Value, scatter: Node,
                gather: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    return _spmm(h, cols, rows, zeros, scatter, gather, None, b, graph)


_GATHER = P.op("index.index", P.var("h"), P.var("cols"), name="gather")


def _scatter(values: Pattern) -> OpPattern:
    return P.op("index.index_put", P.var("zeros"), values, P.var("rows"), name="scatter")


rules_recognize_spmm = RuleSet([
    Rule("index_put(0, rows, h[cols] * w) -> spmm(A(rows, cols, w), h)",
         _scatter(P.op("ew.mul", _GATHER, P.var("w"))), _weighted),
    Rule("index_put(0, rows, w * h[cols]) -> spmm(A(rows, cols, w), h)",
         _scatter(P.op("ew.mul", P.var("w"), _GATHER)), _weighted),
    Rule("index_put(0, rows, h[cols]) -> spmm(A(rows, cols), h)", _scatter(_GATHER),
         _unweighted),
])


@register_pass
@dataclass(frozen=True)
class RecognizeSpmm(GraphPass):
    """Sparse recognition: a message-passing layer written over an edge list (gather the
    source rows, scale by the edge weights, scatter-add into the destinations — what
    torch.export makes of `index_add`) is a sparse matrix times a dense one. The pass
    rebuilds the adjacency with `sparse.coo_from_edges`, converts it to CSR and uses
    `sparse.spmm`, so a GCN imported from ONNX or the edge-index form runs as sparse as
    one written with `torch.sparse.mm`. Layers over the same edges share one adjacency.

    Before:
        graph @f(%h: f32[3, 2], %src: i64[4], %dst: i64[4], %w: f32[4]) -> (f32[3, 2]) {
          %0 = index.index(%h, %src, axes=[0]) : f32[4, 2]
          %1 = shape.unsqueeze(%w, axes=[1]) : f32[4, 1]
          %2 = ew.mul(%0, %1) : f32[4, 2]
          %3 = create.full_like(%h, value=0.0) : f32[3, 2]
          %4 = index.index_put(%3, %2, %dst, axes=[0], accumulate=true) : f32[3, 2]
          return %4
        }
    After:
        graph @f(%h: f32[3, 2], %src: i64[4], %dst: i64[4], %w: f32[4]) -> (f32[3, 2]) {
          %0 = sparse.coo_from_edges(%dst, %src, %w, shape=[3, 3], dtype=none) : coo<f32>[3, 3, nnz=4]
          %1 = sparse.coo_to_csr(%0) : csr<f32>[3, 3, nnz=4]
          %2 = sparse.spmm(%1, %h) : f32[3, 2]
          return %2
        }
    """  # noqa: E501

    name: ClassVar[str] = "recognize-spmm"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        out = rewrite_to_fixpoint(graph, rules_recognize_spmm, ctx)
        if out is graph:
            return graph
        return EliminateCommonSubexpressions().run(out, ctx)  # one adjacency per edge list
