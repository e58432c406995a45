"""Sparse ops: the interpreter against PyTorch, including both forms of a GCN layer.

torch.export cannot trace a CSR input, so CSR products, COO-to-CSR conversion and
building a matrix from an edge list are DirectCases against torch's sparse functions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import symbol
from dlc.ir.types import SparseTensorType, TensorType
from dlc.sparse import SparseMatrix
from tests.ops.cases import DirectCase, TorchCase, case_params, run_case, seeded

N, F, H = 6, 5, 3  # nodes, input features, hidden features
# Edges (src -> dst) with a repeated edge 0->1 and a self loop: duplicates must add up.
SRC = [0, 1, 2, 3, 4, 5, 0, 2, 3]
DST = [1, 0, 1, 4, 5, 5, 1, 2, 0]
EDGES = torch.export.Dim("E")


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def adjacency(seed=0):
    """A COO adjacency A[dst, src] = w (uncoalesced: the duplicate edge stays twice)."""
    w = torch.rand(len(SRC), generator=torch.Generator().manual_seed(seed)) + 0.5
    return torch.sparse_coo_tensor(torch.tensor([DST, SRC]), w, (N, N))


class GCNLayerCOO(torch.nn.Module):
    """out = A @ (x @ W), A a sparse COO input."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(randn(F, H, seed=3))

    def forward(self, adj, x):
        return torch.sparse.mm(adj, x @ self.weight)


class GCNLayerEdges(torch.nn.Module):
    """The same layer in edge-index form: messages h[src] * w summed into out[dst]."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(randn(F, H, seed=3))

    def forward(self, x, src, dst, w):
        h = x @ self.weight
        out = torch.zeros(x.shape[0], h.shape[1])
        return out.index_add(0, dst, h[src] * w[:, None])


class Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def edge_inputs():
    adj = adjacency()
    return randn(N, F), torch.tensor(SRC), torch.tensor(DST), adj._values().clone()


# -- DirectCases: ops the torch frontend never emits itself ------------------------------


def coo_input(seed=0, shape=(N, N)):
    rng = seeded(seed)
    nnz = 11
    indices = np.stack([rng.integers(0, shape[0], nnz), rng.integers(0, shape[1], nnz)])
    indices[:, 1] = indices[:, 0]  # one duplicate coordinate
    return SparseMatrix.coo(indices, rng.standard_normal(nnz).astype(np.float32), shape)


def dense_input(rows, cols, seed=1):
    return seeded(seed).standard_normal((rows, cols)).astype(np.float32)


def sparse_type(a: SparseMatrix, nnz: str = "E") -> SparseTensorType:
    return SparseTensorType(a.format, a.shape, a.dtype, symbol(nnz))


def spmm_graph(a: SparseMatrix, x: np.ndarray, convert: bool = False):
    b = GraphBuilder("spmm")
    av = b.input("a", sparse_type(a))
    xv = b.input("x", TensorType(x.shape, DType.f32))
    if convert:
        av = b.op("sparse.coo_to_csr", av)
    return b.build([b.op("sparse.spmm", av, xv)])


def edges_graph(rows, cols, values, x, shape):
    b = GraphBuilder("edges")
    e = symbol("E")
    rv = b.input("rows", TensorType((e,), DType.from_numpy(rows.dtype)))
    cv = b.input("cols", TensorType((e,), DType.from_numpy(cols.dtype)))
    operands = [rv, cv]
    if values is not None:
        operands.append(b.input("values", TensorType((e,), DType.f32)))
    xv = b.input("x", TensorType(x.shape, DType.f32))
    adj = b.op("sparse.coo_from_edges", *operands, shape=shape)
    return b.build([b.op("sparse.spmm", b.op("sparse.coo_to_csr", adj), xv)])


def torch_edges_mm(rows, cols, values, x, shape):
    values = torch.ones(rows.shape[0]) if values is None else values
    adj = torch.sparse_coo_tensor(torch.stack([rows.long(), cols.long()]), values, shape)
    return torch.sparse.mm(adj, x)


def edge_arrays(dtype=np.int64, seed=2):
    rng = seeded(seed)
    rows = np.array(DST, dtype=dtype)
    cols = np.array(SRC, dtype=dtype)
    return rows, cols, rng.random(len(SRC)).astype(np.float32)


CASES = [
    # -- TorchCases ----------------------------------------------------------------------
    TorchCase("sparse_mm_coo_duplicates", lambda: Lambda(torch.sparse.mm),
              lambda: (adjacency(), randn(N, 4)), ops=("sparse.spmm",)),
    TorchCase("sparse_mm_then_dense", lambda: Lambda(lambda a, x: torch.sparse.mm(a, x) * 2.0),
              lambda: (adjacency(seed=1), randn(N, 2)), ops=("sparse.spmm",)),
    TorchCase("sparse_addmm_beta_alpha",
              lambda: Lambda(lambda c, a, x: torch.sparse.addmm(c, a, x, beta=0.5, alpha=2.0)),
              lambda: (randn(N, 3, seed=2), adjacency(), randn(N, 3)), ops=("sparse.spmm",)),
    TorchCase("sparse_to_dense", lambda: Lambda(lambda a: a.to_dense()),
              lambda: (adjacency(),), ops=("sparse.to_dense",)),
    TorchCase("gcn_layer_coo", GCNLayerCOO, lambda: (adjacency(), randn(N, F)),
              ops=("sparse.spmm",)),
    TorchCase("gcn_layer_edge_index", GCNLayerEdges, edge_inputs,
              ops=("index.index", "index.index_put")),
    TorchCase("gcn_layer_edge_index_dynamic_edges", GCNLayerEdges, edge_inputs,
              ops=("index.index", "index.index_put"),
              dynamic_shapes={"x": None, "src": {0: EDGES}, "dst": {0: EDGES},
                              "w": {0: EDGES}}),
    # -- DirectCases ---------------------------------------------------------------------
    DirectCase("spmm_csr", lambda a, x: spmm_graph(a, x),
               lambda: (coo_input().to_csr(), dense_input(N, 4)), torch.sparse.mm,
               ops=("sparse.spmm",)),
    DirectCase("coo_to_csr_spmm", lambda a, x: spmm_graph(a, x, convert=True),
               lambda: (coo_input(seed=3, shape=(4, N)), dense_input(N, 3)),
               lambda a, x: torch.sparse.mm(a.to_sparse_csr(), x),
               ops=("sparse.coo_to_csr", "sparse.spmm")),
    DirectCase("coo_from_edges_spmm",
               lambda r, c, v, x: edges_graph(r, c, v, x, (N, N)),
               lambda: (*edge_arrays(), dense_input(N, 3)),
               lambda r, c, v, x: torch_edges_mm(r, c, v, x, (N, N)),
               ops=("sparse.coo_from_edges", "sparse.coo_to_csr", "sparse.spmm")),
    DirectCase("coo_from_edges_unweighted_i32",
               lambda r, c, x: edges_graph(r, c, None, x, (N, 8)),
               lambda: (*edge_arrays(np.int32)[:2], dense_input(8, 2)),
               lambda r, c, x: torch_edges_mm(r, c, None, x, (N, 8)),
               ops=("sparse.coo_from_edges",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_coo_to_csr_keeps_duplicates_and_sorts_rows():
    a = SparseMatrix.coo(np.array([[2, 0, 2, 0], [1, 3, 1, 0]]),
                         np.array([1.0, 2.0, 3.0, 4.0], np.float32), (3, 4))
    csr = a.to_csr()
    assert csr.nnz == a.nnz
    assert csr.indptr.tolist() == [0, 2, 2, 4]
    assert csr.indices.tolist() == [0, 3, 1, 1]
    np.testing.assert_array_equal(csr.to_dense(), a.to_dense())


def test_spmm_rejects_mismatched_inner_size():
    from dlc.errors import TypeInferenceError

    b = GraphBuilder()
    a = b.input("a", SparseTensorType("coo", (4, 5), DType.f32, symbol("E")))
    x = b.input("x", TensorType((4, 2), DType.f32))
    with pytest.raises(TypeInferenceError, match="inner sizes differ"):
        b.op("sparse.spmm", a, x)
