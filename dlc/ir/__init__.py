"""The graph IR: types, values, nodes, graphs, their builder, verifier, printer and parser."""

from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Location, Node, Value
from dlc.ir.symbolic import symbol
from dlc.ir.types import SparseTensorType, TensorType


def parse(text: str, constants: dict | None = None) -> Graph:
    """Parse the textual form of a graph (`constants` maps `@name` to arrays)."""
    from dlc.ir.parser import parse_graph

    return parse_graph(text, constants)


def verify(graph: Graph) -> None:
    """Check types, SSA and topological order; raises VerificationError."""
    from dlc.ir.verifier import verify_graph

    verify_graph(graph)


__all__ = [
    "Constant", "DType", "Graph", "GraphBuilder", "Location", "Node", "SparseTensorType",
    "TensorType", "Value", "parse", "symbol", "verify",
]
