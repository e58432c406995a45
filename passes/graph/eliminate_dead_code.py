"""eliminate-dead-code: remove nodes whose results nobody reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlc.ir.graph import Graph, Node
from dlc.passes.manager import GraphPass, PassContext, register_pass


@register_pass
@dataclass(frozen=True)
class EliminateDeadCode(GraphPass):
    """Dead code elimination: keep only the nodes the graph's outputs depend on.

    The graph IR is pure dataflow (no op has a side effect), so a node none of whose
    results reaches an output can go.

    Before:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.exp(%x) : f32[4]
          %1 = ew.relu(%x) : f32[4]
          return %1
        }
    After:
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.relu(%x) : f32[4]
          return %0
        }
    """

    name: ClassVar[str] = "eliminate-dead-code"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        live = live_nodes(graph)
        if len(live) == len(graph.nodes):
            return graph
        return graph.with_nodes([n for n in graph.nodes if id(n) in live])


def live_nodes(graph: Graph) -> set[int]:
    """Ids of the nodes that some graph output depends on (a walk back from the outputs)."""
    producers = graph.producers
    live: set[int] = set()
    work = list(graph.outputs)
    while work:
        node: Node | None = producers.get(work.pop())
        if node is None or id(node) in live:
            continue
        live.add(id(node))
        work.extend(node.inputs)
    return live
