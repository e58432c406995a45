"""Sparse values and data-dependent indexing through the LLVM executable.

A sparse graph value is two (COO) or three (CSR) dense buffers inside the executable;
these tests check that mapping end to end (sparse inputs, intermediates and outputs, with
a symbolic nnz), that malformed sparse inputs are refused at the boundary, and that bad
indices are clamped in the kernels instead of reading out of bounds.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlc.backends.llvm.executable import build, lower_model
from dlc.errors import InputError
from dlc.interpreter import run_graph
from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import symbol
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.types import SparseTensorType, TensorType
from dlc.passes.tensor.lower_group import lower_group
from dlc.sparse import SparseMatrix, component_arrays
from dlc.testing import assert_close

M, K = 5, 4


def random_coo(nnz: int, seed: int = 0, shape: tuple[int, int] = (M, K)) -> SparseMatrix:
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, shape[0], nnz), rng.integers(0, shape[1], nnz)])
    if nnz > 1:
        idx[:, -1] = idx[:, 0]  # a duplicate coordinate: it must add up, not merge
    return SparseMatrix.coo(idx, rng.standard_normal(nnz).astype(np.float32), shape)


def assert_same_sparse(got: SparseMatrix, want: SparseMatrix) -> None:
    assert got.format == want.format and got.shape == want.shape
    if want.indptr is not None:
        np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.values, want.values)


def both_ways(graph, *args):
    """Results of the per-node and the one-kernel builds (debug bounds checks on)."""
    per_node = build(graph, debug=True)(*args)
    fused = build(graph, groups=[list(graph.nodes)], debug=True)(*args)
    return per_node, fused


def coo_graph():
    """%a: coo -> (csr of %a, dense of the csr, (csr @ x))."""
    b = GraphBuilder("coo_pipeline")
    a = b.input("a", SparseTensorType("coo", (M, K), DType.f32, symbol("E")))
    x = b.input("x", TensorType((K, 3), DType.f32))
    csr = b.op("sparse.coo_to_csr", a)
    return b.build([csr, b.op("sparse.to_dense", csr), b.op("sparse.spmm", csr, x)])


@pytest.mark.parametrize("nnz", [9, 1, 0])
def test_sparse_input_intermediate_and_output(nnz):
    graph = coo_graph()
    a = random_coo(nnz)
    x = np.random.default_rng(1).standard_normal((K, 3)).astype(np.float32)
    want = run_graph(graph, a, x)
    for got in both_ways(graph, a, x):
        assert_same_sparse(got[0], want[0])  # the counting sort keeps lexsort's order
        assert_close(tuple(got[1:]), tuple(want[1:]))


def test_one_executable_serves_every_nnz():
    """nnz is a size symbol: a new value rebinds the arena, like any dynamic size."""
    graph = coo_graph()
    run = build(graph, debug=True)
    x = np.ones((K, 3), np.float32)
    for nnz in (3, 12, 3):
        a = random_coo(nnz, seed=nnz)
        assert_close(tuple(run(a, x)[1:]), tuple(run_graph(graph, a, x)[1:]))


def test_kernel_parameters_are_the_components():
    graph = coo_graph()
    model = lower_model(graph, [[n] for n in graph.nodes])
    sig = str(model.funcs[0]).splitlines()[1]
    assert sig.startswith("kernel @k0_coo_to_csr(a_indices: i64[2, E], a_values: f32[E], "
                          "v0_indptr: i64[6], v0_indices: i64[E], v0_values: f32[E], E: i64)")
    assert {model.buffer_name(k) for k in model.slots} >= {"a_indices", "v0_indptr"}


def test_csr_spmm_loop_nest_in_the_interpreter():
    """The CSR product loops over indptr[r]..indptr[r+1] (an extent read from memory);
    the loop-nest interpreter agrees with the reference on a tiny case."""
    b = GraphBuilder("spmm")
    a = b.input("a", SparseTensorType("csr", (M, K), DType.f32, symbol("E")))
    x = b.input("x", TensorType((K, 2), DType.f32))
    graph = b.build([b.op("sparse.spmm", a, x)])
    names = {a: "a", x: "x", graph.outputs[0]: "out"}
    func = lower_group(graph, graph.nodes, "spmm", names).func
    assert "for out_entry_k in 0..a_indptr[out_entry_r + 1] - a_indptr[out_entry_r]" \
        in str(func)
    csr = random_coo(7).to_csr()
    xs = np.arange(K * 2, dtype=np.float32).reshape(K, 2)
    out = np.zeros((M, 2), np.float32)
    run_func(func, {f"a_{k}": v for k, v in component_arrays(csr).items()} | {"x": xs,
                                                                              "out": out},
             {"E": csr.nnz})
    assert_close(out, csr.matmul(xs))


def test_malformed_sparse_inputs_are_refused():
    graph = coo_graph()
    run = build(graph)
    x = np.ones((K, 3), np.float32)
    bad = SparseMatrix.coo(np.array([[0, M], [1, 1]]), np.ones(2, np.float32), (M, K))
    with pytest.raises(InputError, match="outside the matrix"):
        run(bad, x)
    b = GraphBuilder("csr")
    a = b.input("a", SparseTensorType("csr", (2, 2), DType.f32, symbol("E")))
    csr_run = build(b.build([b.op("sparse.to_dense", a)]))
    unordered = SparseMatrix.csr(np.array([0, 2, 1]), np.array([0, 1]),
                                 np.ones(2, np.float32), (2, 2))
    with pytest.raises(InputError, match="indptr"):
        csr_run(unordered)


def test_edges_outside_the_matrix_are_clamped():
    """coo_from_edges: the reference raises; the kernel puts the edge on the border."""
    b = GraphBuilder("edges")
    e = symbol("E")
    rows = b.input("rows", TensorType((e,), DType.i64))
    cols = b.input("cols", TensorType((e,), DType.i32))
    coo = b.op("sparse.coo_from_edges", rows, cols, shape=[3, 2])
    graph = b.build([coo, b.op("sparse.to_dense", b.op("sparse.coo_to_csr", coo))])
    r, c = np.array([0, 7, -2]), np.array([1, 1, 9], np.int32)
    for got in both_ways(graph, r, c):
        np.testing.assert_array_equal(got[0].indices, [[0, 2, 0], [1, 1, 1]])
        np.testing.assert_array_equal(got[1], [[0, 2], [0, 0], [0, 1]])


def _indexing_graph(op: str, x_shape, idx_shape, **attrs):
    b = GraphBuilder(op.split(".")[1])
    operands = [b.input("x", TensorType(x_shape, DType.f32)),
                b.input("i", TensorType(idx_shape, DType.i64))]
    if op == "index.scatter_add":
        operands.append(b.input("s", TensorType(idx_shape, DType.f32)))
    return b.build([b.op(op, *operands, **attrs)])


@pytest.mark.parametrize("debug", [False, True])
def test_bad_indices_are_clamped_not_read_out_of_bounds(debug):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    idx = np.array([[5, -9, 1]])  # 5 and -9 are out of range for 4 rows
    gather = build(_indexing_graph("index.gather", (4, 3), (1, 3), axis=0), debug=debug)
    np.testing.assert_array_equal(gather(x, idx)[0], [[9, 1, 5]])  # x[3,0], x[0,1], x[1,2]
    take = build(_indexing_graph("index.take", (4, 3), (1, 3), axis=0), debug=debug)
    np.testing.assert_array_equal(take(x, idx)[0][0, :, 0], [9, 0, 3])
    index = build(_indexing_graph("index.index", (4, 3), (1, 3), axes=[0]), debug=debug)
    np.testing.assert_array_equal(index(x, idx)[0][0, :, 0], [9, 0, 3])
    embed = build(_indexing_graph("index.embedding", (4, 3), (1, 3)), debug=debug)
    np.testing.assert_array_equal(embed(x, idx)[0][0, :, 0], [9, 0, 3])
    scatter = build(_indexing_graph("index.scatter_add", (4, 3), (1, 3), axis=0),
                    debug=debug)
    got = scatter(x, idx, np.ones((1, 3), np.float32))[0]
    np.testing.assert_array_equal(got - x, [[0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]])


def test_negative_indices_wrap_like_numpy():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    idx = np.array([[-1, -4, 2]])
    graph = _indexing_graph("index.gather", (4, 3), (1, 3), axis=0)
    assert_close(build(graph)(x, idx)[0], run_graph(graph, x, idx)[0])


def gcn_edge_list_graph():
    """A GCN layer in edge-list form: out = zeros.index_put(dst, h[src] * w, add)."""
    b = GraphBuilder("gcn")
    e = symbol("E")
    h = b.input("h", TensorType((M, 3), DType.f32))
    src = b.input("src", TensorType((e,), DType.i64))
    dst = b.input("dst", TensorType((e,), DType.i64))
    w = b.input("w", TensorType((e,), DType.f32))
    msg = b.op("ew.mul", b.op("index.index", h, src, axes=[0]),
               b.op("shape.unsqueeze", w, axes=[1]))
    zeros = b.op("create.full", shape=[M, 3], value=0.0, dtype=DType.f32)
    return b.build([b.op("index.index_put", zeros, msg, dst, axes=[0], accumulate=True)])


def gcn_args(edges: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((M, 3)).astype(np.float32), rng.integers(0, M, edges),
            rng.integers(0, M, edges), rng.standard_normal(edges).astype(np.float32)]


def test_gcn_edge_list_after_recognize_spmm():
    """The edge-list GCN layer, rewritten to coo_from_edges -> coo_to_csr -> spmm, builds
    and matches the original graph, with a symbolic edge count."""
    from dlc.passes import make_pass

    graph = gcn_edge_list_graph()
    rewritten = make_pass("recognize-spmm")(graph)
    assert "sparse.spmm" in rewritten.ops_used()
    args = gcn_args(11)
    want = run_graph(graph, *args)
    for g in (graph, rewritten):
        for got in both_ways(g, *args):
            assert_close(got, want)


@pytest.mark.parametrize("opt_level", [0, 3])
def test_compiled_gcn_places_sparse_intermediates_in_the_arena(opt_level):
    """Through dlc.compile: plan-memory sizes a sparse intermediate as one block, which
    the executable splits into its component buffers."""
    import dlc

    graph = gcn_edge_list_graph()
    compiled = dlc.compile(graph, target="llvm", opt_level=opt_level, debug=True)
    if opt_level == 3:
        assert "sparse.coo_to_csr" in compiled.graph.ops_used()
    for edges in (11, 4):
        args = gcn_args(edges, seed=edges)
        assert_close(compiled(*args), run_graph(graph, *args)[0])


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", [DType.f32, DType.i64])
def test_scatter_reduce_matches_the_reference(reduce, include_self, dtype):
    """Duplicates combine in row-major order (NumPy's ufunc.at), bit for bit."""
    b = GraphBuilder("scatter_reduce")
    x = b.input("x", TensorType((4, 3), dtype))
    i = b.input("i", TensorType((5, 3), DType.i64))
    s = b.input("s", TensorType((6, 3), dtype))
    graph = b.build([b.op("index.scatter_reduce", x, i, s, axis=0, reduce=reduce,
                          include_self=include_self)])
    rng = np.random.default_rng(4)
    args = [(rng.standard_normal((4, 3)) * 4).astype(dtype.numpy),
            rng.integers(-4, 3, (5, 3)),  # row 3 is never hit; negative indices wrap
            (rng.standard_normal((6, 3)) * 4).astype(dtype.numpy)]
    want = run_graph(graph, *args)
    for got in both_ways(graph, *args):
        assert_close(got, want, exact=True)


@pytest.mark.parametrize("values_shape", [(3, 3), (3,), (3, 1), ()])
@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_with_a_mask_on_an_inner_axis(values_shape, accumulate):
    """x[:, mask] = values: values may run along the masked dim (a data-dependent
    length, tracked by a counter in the kernel)."""
    b = GraphBuilder("put_masked")
    x = b.input("x", TensorType((3, 4), DType.f32))
    m = b.input("m", TensorType((4,), DType.bool))
    v = b.input("v", TensorType(values_shape, DType.f32))
    graph = b.build([b.op("index.index_put", x, v, m, axes=[1], accumulate=accumulate)])
    args = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 0, 1, 1], bool),
            np.asarray(np.arange(np.prod(values_shape), dtype=np.float32).reshape(values_shape)
                       + 100)]
    want = run_graph(graph, *args)
    for got in both_ways(graph, *args):
        assert_close(got, want, exact=True)


def test_a_mask_mixed_with_integer_indices_is_refused():
    from dlc.errors import UnsupportedOpError

    b = GraphBuilder("mixed")
    x = b.input("x", TensorType((3, 4), DType.f32))
    m = b.input("m", TensorType((3,), DType.bool))
    i = b.input("i", TensorType((1,), DType.i64))
    v = b.input("v", TensorType((), DType.f32))
    graph = b.build([b.op("index.index_put", x, v, m, i, axes=[0, 1], accumulate=False)])
    with pytest.raises(UnsupportedOpError, match="index.index_put with a bool mask"):
        build(graph)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_matches_the_reference(reduction):
    b = GraphBuilder("scatter_nd")
    x = b.input("x", TensorType((4, 3, 2), DType.f32))
    i = b.input("i", TensorType((5, 2), DType.i64))
    u = b.input("u", TensorType((5, 2), DType.f32))
    graph = b.build([b.op("index.scatter_nd", x, i, u, reduction=reduction)])
    rng = np.random.default_rng(5)
    idx = np.array([[0, 1], [3, -1], [0, 1], [2, 0], [-4, 1]])  # duplicates, negatives
    args = [rng.standard_normal((4, 3, 2)).astype(np.float32), idx,
            rng.standard_normal((5, 2)).astype(np.float32)]
    if reduction == "none":
        args[1] = np.array([[0, 1], [3, 2], [1, 1], [2, 0], [3, 0]])  # last write wins
    want = run_graph(graph, *args)
    for got in both_ways(graph, *args):
        assert_close(got, want, exact=True)


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("rank", [1, 2])
def test_tfidf_vectorizer_matches_the_reference(mode, rank):
    b = GraphBuilder("tfidf")
    shape = (2, 12) if rank == 2 else (12,)
    x = b.input("x", TensorType(shape, DType.i32))
    attrs = dict(pool=[2, 3, 5, 4, 5, 6, 7, 8, 6, 7], ngram_counts=[0, 4],
                 ngram_indexes=[0, 1, 2, 3, 4, 5, 6], weights=[0.1, 0.2, 0.3, 0.4, 0.5, 1.5, 3.0],
                 min_gram_length=1, max_gram_length=2, max_skip_count=2, mode=mode)
    graph = b.build([b.op("index.tfidf_vectorizer", x, **attrs)])
    tokens = np.array([[1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [2, 3, 5, 4, 5, 6, 7, 8, 6, 7,
                                                              5, 6]], np.int32)
    arg = tokens if rank == 2 else tokens[1]
    want = run_graph(graph, arg)
    for got in both_ways(graph, arg):
        assert_close(got, want, exact=True)
