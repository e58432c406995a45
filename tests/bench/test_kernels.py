"""Kernel benchmarks: dlc's compiled kernel next to NumPy and PyTorch on the same shapes.

Each kernel is a one-op torch module compiled with `dlc.compile(..., target="llvm")`; the
compiled call runs on NumPy inputs. Rows of one shape share a pytest-benchmark group, and
`extra_info` carries GFLOP/s and the fraction of this CPU's measured FMA peak
(`test_peak_flops`). Run with the command at the top of tests/bench/README.md.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

import dlc
from tests.bench.conftest import flops_per_call, peak_kernel, run_peak

pytestmark = pytest.mark.bench

IMPLS = ("dlc", "numpy", "torch")


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run(benchmark, record, impl, torch_fn, numpy_fn, inputs, flops, check=True):
    """Benchmark one implementation; `inputs` are NumPy arrays (dense) for dlc/NumPy."""
    tensors = [torch.from_numpy(x) for x in inputs]
    if impl == "dlc":
        compiled = dlc.compile(Fn(torch_fn), tensors, target="llvm")
        fn = lambda: compiled(*inputs)  # noqa: E731
    elif impl == "numpy":
        fn = lambda: numpy_fn(*inputs)  # noqa: E731
    else:
        def fn():
            with torch.inference_mode():
                return torch_fn(*tensors)
    result = benchmark(fn)
    if check:
        with torch.inference_mode():
            expected = torch_fn(*tensors).numpy()
        np.testing.assert_allclose(np.asarray(result), expected, rtol=2e-3, atol=2e-3)
    record(flops)


# -- GEMM ----------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("m,k,n", [(256, 256, 256), (128, 512, 1024)])
def test_gemm(benchmark, record, impl, m, k, n):
    benchmark.group = f"gemm {m}x{k}x{n}"
    run(benchmark, record, impl, torch.matmul, np.matmul, [rand(m, k), rand(k, n, seed=1)],
        2 * m * k * n)


# -- conv2d --------------------------------------------------------------------------------

def numpy_conv(x, w, groups):
    """3x3, stride 1, pad 1 conv via a sliding window view and einsum."""
    n, c, _, _ = x.shape
    cout, cin_g, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n c h w kh kw
    if groups == 1:
        return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    assert groups == c == cout and cin_g == 1
    return np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True)


CONVS = [  # (n, c, h, w, cout, groups)
    (1, 64, 56, 56, 64, 1),
    (1, 128, 64, 64, 128, 1),  # a UNet's high-resolution level: lanes along the row
    (1, 128, 28, 28, 128, 1),
    (1, 128, 28, 28, 128, 128),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n,c,h,w,cout,groups", CONVS)
def test_conv2d(benchmark, record, impl, n, c, h, w, cout, groups):
    kind = "depthwise " if groups > 1 else ""
    benchmark.group = f"conv2d {kind}{n}x{c}x{h}x{w} 3x3 {cout}"
    x, wt = rand(n, c, h, w), rand(cout, c // groups, 3, 3, seed=1) * 0.1
    # the weight is the layer's parameter, as in a model (dlc packs it at compile time)
    conv = torch.nn.Conv2d(c, cout, 3, padding=1, groups=groups, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(wt))
    run(benchmark, record, impl, conv.eval(), lambda a: numpy_conv(a, wt, groups), [x],
        2 * n * cout * h * w * (c // groups) * 9)


# -- softmax and layer norm ----------------------------------------------------------------

def numpy_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rows,cols", [(128, 1024)])
def test_softmax(benchmark, record, impl, rows, cols):
    benchmark.group = f"softmax {rows}x{cols}"
    # 5 flops an element: max, subtract, exp, sum, divide.
    run(benchmark, record, impl, lambda a: torch.softmax(a, -1), numpy_softmax,
        [rand(rows, cols)], 5 * rows * cols)


def numpy_layer_norm(x, g, b):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * g + b


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rows,cols", [(256, 768)])
def test_layer_norm(benchmark, record, impl, rows, cols):
    benchmark.group = f"layer_norm {rows}x{cols}"
    # 8 flops an element: mean, subtract, square, sum, normalize, scale, shift (+ 1 slack).
    run(benchmark, record, impl, lambda a, g, b: F.layer_norm(a, (cols,), g, b, 1e-5),
        numpy_layer_norm, [rand(rows, cols), rand(cols, seed=1), rand(cols, seed=2)],
        8 * rows * cols)


# -- transcendental activations ------------------------------------------------------------

def numpy_erf(x):
    """erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): NumPy has no erf."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return np.sign(x) * (1 - poly * np.exp(-x * x))


ACTIVATIONS = {  # name: (torch, NumPy, flops an element, counting each op of the formula)
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + numpy_erf(x / np.float32(np.sqrt(2)))), 4),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x))), 8),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x)), 4),
    "tanh": (torch.tanh, np.tanh, 1),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("rows,cols", [(256, 1024)])
def test_activation(benchmark, record, impl, act, rows, cols):
    """Elementwise epilogues whose cost is the transcendental (erf, tanh, exp)."""
    benchmark.group = f"{act} {rows}x{cols}"
    torch_fn, numpy_fn, per_element = ACTIVATIONS[act]
    run(benchmark, record, impl, torch_fn, numpy_fn, [rand(rows, cols) * 3],
        per_element * rows * cols)


# -- attention -----------------------------------------------------------------------------

def numpy_sdpa(q, k, v):
    s = q @ k.swapaxes(-1, -2) / np.float32(np.sqrt(q.shape[-1]))
    return numpy_softmax(s) @ v


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("b,h,seq,d", [(1, 8, 128, 64)])
def test_sdpa(benchmark, record, impl, b, h, seq, d):
    benchmark.group = f"sdpa {b}x{h}x{seq}x{d}"
    qkv = [rand(b, h, seq, d, seed=s) for s in range(3)]
    run(benchmark, record, impl, F.scaled_dot_product_attention, numpy_sdpa, qkv,
        4 * b * h * seq * seq * d + 5 * b * h * seq * seq)


# -- SpMM (GCN aggregation on a Cora-sized graph) ------------------------------------------

@pytest.fixture(scope="module")
def cora():
    """D^-1/2 (A + I) D^-1/2 of the zoo's Cora-sized graph (2708 nodes, ~13k nnz), COO."""
    from dlc.sparse import SparseMatrix
    from survey_bench.zoo.graphs import SPECS, gcn_normalized_edges, synthetic_graph

    g = synthetic_graph(SPECS["bench"])
    edges, weight = gcn_normalized_edges(g.edge_index, g.num_nodes)
    indices = np.stack([edges[1], edges[0]])  # A[dst, src]
    return SparseMatrix.coo(indices, weight, (g.num_nodes, g.num_nodes))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("impl", ("dlc", "numpy", "scipy", "torch"))
def test_spmm(benchmark, record, impl, cora):
    feats = 64
    benchmark.group = f"spmm {cora.shape[0]}x{cora.shape[1]} nnz={cora.nnz} x {feats}"
    x = rand(cora.shape[1], feats)
    adj = torch.sparse_coo_tensor(torch.from_numpy(cora.indices), torch.from_numpy(cora.values),
                                  cora.shape)
    if impl == "dlc":
        compiled = dlc.compile(Fn(torch.sparse.mm), [adj, torch.from_numpy(x)], target="llvm")
        result = benchmark(compiled, cora, x)
    elif impl == "numpy":  # the reference formulation: scatter-add of scaled rows
        result = benchmark(cora.matmul, x)
    elif impl == "scipy":
        sp = pytest.importorskip("scipy.sparse")
        a = sp.csr_matrix((cora.values, (cora.indices[0], cora.indices[1])), shape=cora.shape)
        result = benchmark(a.__matmul__, x)
    else:
        csr, xt = adj.coalesce().to_sparse_csr(), torch.from_numpy(x)

        def fn():
            with torch.inference_mode():
                return torch.sparse.mm(csr, xt)
        result = benchmark(fn)
    np.testing.assert_allclose(np.asarray(result), cora.matmul(x), rtol=1e-4, atol=1e-4)
    record(2 * cora.nnz * feats)


# -- peak ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cores", ("single", "all"))
def test_peak_flops(benchmark, record, peak_gflops, _threads, cores):
    """Register-resident FMA loop (16 x <16 x float> accumulators, llvm.fmuladd)."""
    benchmark.group = "peak fma"
    module, fn = peak_kernel()
    threads, iterations = (1 if cores == "single" else _threads), 1_000_000
    benchmark(run_peak, fn, iterations, threads)
    record(flops_per_call(iterations) * threads)
    benchmark.extra_info["peak_single_core_gflops"] = round(peak_gflops["single"], 1)
