"""Synthetic citation-like graphs for the GCN zoo models, generated from a fixed seed.

Real citation graphs (Cora, PubMed) are not downloaded; a Chung-Lu random graph with a
power-law expected degree sequence stands in for them, with the same node, edge and feature
counts. Node features are sparse binary bag-of-words vectors, row-normalized as Kipf &
Welling preprocess them. Everything comes from `numpy.random.default_rng(seed)`, whose
PCG64 stream is the same on every platform and in every process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Graph:
    """An undirected graph stored as directed edges in both directions, plus node features."""

    num_nodes: int
    edge_index: np.ndarray  # int64 [2, E]: row 0 = source, row 1 = destination
    features: np.ndarray  # float32 [num_nodes, num_features]
    num_classes: int

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


@dataclass(frozen=True)
class GraphSpec:
    """How big a synthetic graph is; `num_edges` counts directed edges (both directions)."""

    num_nodes: int
    num_edges: int
    num_features: int
    num_classes: int
    words_per_node: float = 18.0  # Cora's documents average ~18 words of a 1,433-word vocabulary
    exponent: float = 2.8  # power-law exponent of the expected degree distribution


SPECS: dict[str, GraphSpec] = {
    "tiny": GraphSpec(num_nodes=200, num_edges=800, num_features=24, num_classes=4,
                      words_per_node=4.0),
    # Cora
    "bench": GraphSpec(num_nodes=2_708, num_edges=10_556, num_features=1_433, num_classes=7),
    # PubMed (TF-IDF features over a 500-word vocabulary)
    "large": GraphSpec(num_nodes=19_717, num_edges=88_648, num_features=500, num_classes=3,
                       words_per_node=50.0),
}


def power_law_edges(num_nodes: int, num_undirected: int, exponent: float,
                    rng: np.random.Generator) -> np.ndarray:
    """`num_undirected` distinct undirected edges (int64 [2, m], u < v) of a Chung-Lu graph.

    Node i gets the expected-degree weight (i + 1) ** (-1 / (exponent - 1)); both endpoints of
    each edge are drawn in proportion to these weights, so degrees follow a power law.
    Self loops and repeated edges are dropped and drawing continues until enough are found.
    """
    max_edges = num_nodes * (num_nodes - 1) // 2
    if num_undirected > max_edges:
        raise ValueError(f"{num_undirected} edges do not fit in a simple graph of "
                         f"{num_nodes} nodes")
    weights = (np.arange(num_nodes) + 1.0) ** (-1.0 / (exponent - 1.0))
    probabilities = weights / weights.sum()
    found = np.zeros((0, 2), dtype=np.int64)
    while found.shape[0] < num_undirected:
        draw = rng.choice(num_nodes, size=(2 * num_undirected, 2), p=probabilities)
        draw = np.sort(draw, axis=1)
        draw = draw[draw[:, 0] != draw[:, 1]]
        found = np.concatenate([found, draw])
        _, first = np.unique(found, axis=0, return_index=True)
        found = found[np.sort(first)]  # keep the order of first appearance: deterministic
    return found[:num_undirected].T.astype(np.int64)


def synthetic_graph(spec: GraphSpec, seed: int = 0) -> Graph:
    """A seeded power-law graph and bag-of-words features of the sizes in `spec`."""
    rng = np.random.default_rng(seed)
    undirected = power_law_edges(spec.num_nodes, spec.num_edges // 2, spec.exponent, rng)
    relabel = rng.permutation(spec.num_nodes)  # hubs should not all have small ids
    u, v = relabel[undirected[0]], relabel[undirected[1]]
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    order = np.lexsort((src, dst))  # sorted by destination, then source: CSR-friendly
    edge_index = np.stack([src[order], dst[order]]).astype(np.int64)
    density = min(1.0, spec.words_per_node / spec.num_features)
    words = rng.random((spec.num_nodes, spec.num_features)) < density
    words[np.arange(spec.num_nodes), rng.integers(0, spec.num_features, spec.num_nodes)] = True
    features = words.astype(np.float32)
    features /= features.sum(axis=1, keepdims=True)
    return Graph(spec.num_nodes, edge_index, features, spec.num_classes)


def gcn_normalized_edges(edge_index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges of D^-1/2 (A + I) D^-1/2: self loops appended, weight 1/sqrt(deg(src) deg(dst)).

    Returns (edge_index int64 [2, E + N], edge_weight float32 [E + N]); degrees count the
    self loop, as in Kipf & Welling's renormalization trick.
    """
    loops = np.arange(num_nodes, dtype=np.int64)
    src = np.concatenate([edge_index[0], loops])
    dst = np.concatenate([edge_index[1], loops])
    degree = np.bincount(dst, minlength=num_nodes).astype(np.float64)
    weight = 1.0 / np.sqrt(degree[src] * degree[dst])
    return np.stack([src, dst]).astype(np.int64), weight.astype(np.float32)


def degree_histogram(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """How many nodes have each in-degree (index = degree), for checking the power law."""
    return np.bincount(np.bincount(edge_index[1], minlength=num_nodes))
