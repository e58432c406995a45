"""Graph convolutional networks: GCN (Kipf & Welling, ICLR 2017) and AdaGCN (Sun et al., ICLR 2021).

GCN follows "Semi-Supervised Classification with Graph Convolutional Networks": two graph
convolutions H' = Â H W + b with Â = D^-1/2 (A + I) D^-1/2 (the renormalization trick),
ReLU between them, 16 hidden units, log-softmax over classes. Â's values are computed from
the edge list when the zoo entry is built and passed as an input: edge weights beside the
edge list (`gcn`, `adagcn`), or the values of a sparse COO matrix (`gcn_sparse`,
`adagcn_sparse`, which torch.onnx cannot export; see DESIGN.md section 9).

AdaGCN follows "AdaGCN: Adaboosting Graph Convolutional Networks into Deep Models": the
features are propagated over increasing hops, X_l = Â^l X for l = 0..L, one base classifier
(a two-layer MLP) reads each X_l, and the classifiers are combined AdaBoost-style: each
one's log-probabilities become SAMME.R scores (K-1)(log p - mean_k log p), weighted by a
SAMME coefficient alpha_l = log((1 - err_l) / err_l) + log(K - 1) and summed.

Faithful: the layer equations, normalization, depth and widths of GCN; AdaGCN's hop-wise
propagation of the raw features and its boosting combination. Scaled down or synthetic:
graphs are seeded Chung-Lu power-law graphs with Cora's and PubMed's node, edge and
feature counts (graphs.py), not the datasets; weights are random (Glorot), not trained, so
the boosting errors err_l behind alpha_l are seeded numbers; AdaGCN uses L = 5 hops and 64
hidden units (the paper sweeps deeper models and wider classifiers); dropout is an identity
at inference and is omitted.

Eager latency at bench size (Cora-sized): gcn 3.4 ms, gcn_sparse 3.0 ms, adagcn 464 ms,
adagcn_sparse 69 ms; at large size (PubMed-sized): gcn 17 ms, gcn_sparse 15 ms, adagcn
1.59 s, adagcn_sparse 408 ms. Cora's size is the point of `bench`, so the two-layer GCN stays
under 5 ms there; `large` is the heavier graph. The edge-list forms gather every edge's
1,433-wide source row, which is why adagcn costs far more than its sparse twin.
Times are single-thread CPU time per inference (median of 11), which other processes
inflate far less than wall time; with torch.set_num_threads(2) expect a little over half
(aica_cnn: 35 ms on one thread, 19 ms wall on two, timed while the host was quiet). The
shared 2-core host was too loaded (load 4-9) for trustworthy two-thread wall times here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from survey_bench.zoo.graphs import SPECS, gcn_normalized_edges, synthetic_graph
from survey_bench.zoo.registry import zoo_model

Propagate = Callable[[torch.Tensor], torch.Tensor]

GCN_PAPER = "Kipf & Welling 2017, Semi-Supervised Classification with Graph Convolutional Networks"
ADAGCN_PAPER = ("Sun, Zhu & Lin 2021, AdaGCN: Adaboosting Graph Convolutional Networks into "
                "Deep Models")
SIZES = ("tiny", "bench", "large")
ADAGCN_HOPS = {"tiny": 3, "bench": 5, "large": 5}
ADAGCN_HIDDEN = {"tiny": 8, "bench": 64, "large": 64}
GCN_HIDDEN = {"tiny": 8, "bench": 16, "large": 16}


def propagate_edges(h: torch.Tensor, edge_index: torch.Tensor,
                    edge_weight: torch.Tensor) -> torch.Tensor:
    """Â h in edge-list form: gather h at the sources, scale by the weights, add at the targets."""
    messages = h[edge_index[0]] * edge_weight[:, None]
    return torch.zeros_like(h).index_add(0, edge_index[1], messages)


def propagate_sparse(h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """Â h with Â a sparse COO matrix (rows are destinations)."""
    return torch.sparse.mm(adjacency, h)


class GraphConvolution(nn.Module):
    """One GCN layer, H' = Â (H W) + b; the product is taken first since it narrows H."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.xavier_uniform_(self.weight)
        nn.init.uniform_(self.bias, -0.1, 0.1)

    def forward(self, h: torch.Tensor, propagate: Propagate) -> torch.Tensor:
        return propagate(h @ self.weight) + self.bias


class GCN(nn.Module):
    """Kipf & Welling's two-layer GCN; subclasses choose how the adjacency is passed in."""

    def __init__(self, in_features: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = GraphConvolution(in_features, hidden)
        self.conv2 = GraphConvolution(hidden, num_classes)

    def classify(self, x: torch.Tensor, propagate: Propagate) -> torch.Tensor:
        """Log-probabilities per node, [N, classes]."""
        h = torch.relu(self.conv1(x, propagate))
        return torch.log_softmax(self.conv2(h, propagate), dim=-1)


class GCNEdges(GCN):
    """GCN over an edge list with self loops and their normalized weights."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_weight: torch.Tensor) -> torch.Tensor:
        return self.classify(x, lambda h: propagate_edges(h, edge_index, edge_weight))


class GCNSparse(GCN):
    """GCN over Â given as a sparse COO tensor."""

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.classify(x, lambda h: propagate_sparse(h, adjacency))


class AdaGCN(nn.Module):
    """AdaGCN: a two-layer MLP per hop of Â^l X, combined with SAMME.R scores and weights."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, hops: int,
                 errors: np.ndarray) -> None:
        super().__init__()
        self.hops = hops
        self.num_classes = num_classes
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
            for _ in range(hops + 1))
        alpha = np.log((1.0 - errors) / errors) + math.log(num_classes - 1)
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))

    def combine(self, x: torch.Tensor, propagate: Propagate) -> torch.Tensor:
        """Boosted class scores per node, [N, classes] (argmax = prediction)."""
        total = torch.zeros(x.shape[0], self.num_classes, dtype=x.dtype)
        features = x
        for hop, classifier in enumerate(self.classifiers):
            if hop > 0:
                features = propagate(features)
            log_p = torch.log_softmax(classifier(features), dim=-1)
            samme_r = (self.num_classes - 1) * (log_p - log_p.mean(dim=-1, keepdim=True))
            total = total + self.alpha[hop] * samme_r
        return total


class AdaGCNEdges(AdaGCN):
    """AdaGCN over an edge list with self loops and their normalized weights."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_weight: torch.Tensor) -> torch.Tensor:
        return self.combine(x, lambda h: propagate_edges(h, edge_index, edge_weight))


class AdaGCNSparse(AdaGCN):
    """AdaGCN over Â given as a sparse COO tensor."""

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.combine(x, lambda h: propagate_sparse(h, adjacency))


def _graph_inputs(size: str, sparse: bool) -> tuple[tuple[torch.Tensor, ...], int, int]:
    """The seeded graph's inputs in edge-list or COO form, its feature and class counts."""
    if size not in SPECS:
        raise ValueError(f"unknown size {size!r} for a GCN model; sizes: {', '.join(SPECS)}")
    graph = synthetic_graph(SPECS[size], seed=0)
    edge_index, edge_weight = gcn_normalized_edges(graph.edge_index, graph.num_nodes)
    x = torch.from_numpy(graph.features)
    if sparse:
        indices = torch.from_numpy(np.stack([edge_index[1], edge_index[0]]))  # (row=dst, col=src)
        adjacency = torch.sparse_coo_tensor(indices, torch.from_numpy(edge_weight),
                                            (graph.num_nodes, graph.num_nodes),
                                            check_invariants=True).coalesce()
        inputs: tuple[torch.Tensor, ...] = (x, adjacency)
    else:
        inputs = (x, torch.from_numpy(edge_index), torch.from_numpy(edge_weight))
    return inputs, graph.features.shape[1], graph.num_classes


def _gcn(size: str, sparse: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    inputs, features, classes = _graph_inputs(size, sparse)
    torch.manual_seed(0)
    model = (GCNSparse if sparse else GCNEdges)(features, GCN_HIDDEN[size], classes)
    return model.eval(), inputs


def _adagcn(size: str, sparse: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    inputs, features, classes = _graph_inputs(size, sparse)
    hops = ADAGCN_HOPS[size]
    errors = np.random.default_rng(1).uniform(0.15, 0.45, hops + 1)
    torch.manual_seed(0)
    model = (AdaGCNSparse if sparse else AdaGCNEdges)(features, ADAGCN_HIDDEN[size], classes,
                                                      hops, errors)
    return model.eval(), inputs


EDGE_INPUTS = ("x", "edge_index", "edge_weight")
SPARSE_INPUTS = ("x", "adjacency")


@zoo_model("gcn", paper=GCN_PAPER, task="node classification (edge list)", sizes=SIZES,
           input_names=EDGE_INPUTS)
def gcn(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Two-layer GCN; Â as an edge list (with self loops) and normalized edge weights."""
    return _gcn(size, sparse=False)


@zoo_model("gcn_sparse", paper=GCN_PAPER, task="node classification (sparse COO adjacency)",
           sizes=SIZES, onnx_exportable=False, input_names=SPARSE_INPUTS,
           notes="torch.onnx cannot export sparse COO inputs")
def gcn_sparse(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Two-layer GCN; Â as a sparse COO tensor. Same weights as `gcn`."""
    return _gcn(size, sparse=True)


@zoo_model("adagcn", paper=ADAGCN_PAPER, task="node classification (edge list)", sizes=SIZES,
           input_names=EDGE_INPUTS)
def adagcn(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """AdaGCN over hops of Â; Â as an edge list and normalized edge weights."""
    return _adagcn(size, sparse=False)


@zoo_model("adagcn_sparse", paper=ADAGCN_PAPER, task="node classification (sparse COO adjacency)",
           sizes=SIZES, onnx_exportable=False, input_names=SPARSE_INPUTS,
           notes="torch.onnx cannot export sparse COO inputs")
def adagcn_sparse(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """AdaGCN over hops of Â; Â as a sparse COO tensor. Same weights as `adagcn`."""
    return _adagcn(size, sparse=True)
