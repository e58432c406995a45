"""FusionPlan: the fused groups of a graph, kept beside it as an annotation.

Fusion does not rewrite nodes into `fused.group` nodes: it returns the graph with its
nodes ordered so that every group is contiguous, and a `FusionPlan` that lists the
groups in execution order. Lowering takes each group as one kernel (`plan.node_groups()`
is what `dlc.backends.llvm.executable.build` accepts); `print_fused` shows the plan.

    graph @f(%x: f32[1, 3, 8, 8]) -> (f32[1, 4, 8, 8]) {
      group #0 fused_conv2d_add_relu (out_fusable) {
        %0 = nn.conv2d(%x, @w, padding=[1, 1]) : f32[1, 4, 8, 8]
        %1 = ew.add(%0, @b) : f32[1, 4, 8, 8]
        %2 = ew.relu(%1) : f32[1, 4, 8, 8]
      }
      return %2
    }

A value crosses a group boundary (and so is written to memory) exactly when it is read
by a node of another group or is a graph output: `group.outputs(graph)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from dlc.errors import DLCError
from dlc.ir.graph import Graph, Node, Value
from dlc.ir.printer import Namer, print_graph, print_node
from dlc.ops.registry import FusionKind
from dlc.passes.manager import FusionRefusal

KIND_ORDER = {FusionKind.ELEMENTWISE: 0, FusionKind.BROADCAST: 1, FusionKind.INJECTIVE: 2,
              FusionKind.REDUCTION: 3, FusionKind.OUT_FUSABLE: 4, FusionKind.OPAQUE: 5}
"""Fusion kinds from the most to the least fusable (TVM's OpPatternKind order)."""


def combine(a: FusionKind, b: FusionKind) -> FusionKind:
    """The more restrictive of two kinds."""
    return a if KIND_ORDER[a] >= KIND_ORDER[b] else b


@dataclass(frozen=True, eq=False)
class FusedGroup:
    """One kernel's worth of nodes: topologically ordered, with the node that roots it.

    `root` is the node every other member flows into (its post-dominator in the group);
    `kind` the group's fusion kind (its root's, or out_fusable if it holds a conv/matmul).
    """

    index: int
    nodes: tuple[Node, ...]
    root: Node
    kind: FusionKind

    @property
    def name(self) -> str:
        """A kernel name from the ops it holds: `fused_conv2d_add_relu`."""
        ops: list[str] = []
        for n in self.nodes:
            short = n.op.name.split(".")[-1]
            if short not in ops:
                ops.append(short)
        if len(self.nodes) == 1:
            return ops[0]
        label = "_".join(ops[:4]) + ("_etc" if len(ops) > 4 else "")
        return f"fused_{label}"

    def inputs(self) -> list[Value]:
        """Values the group reads from outside (graph inputs, constants, other groups)."""
        inside = {v for n in self.nodes for v in n.outputs}
        out: list[Value] = []
        for n in self.nodes:
            for v in n.inputs:
                if v not in inside and v not in out:
                    out.append(v)
        return out

    def outputs(self, graph: Graph) -> list[Value]:
        """Values the group must write out: read by another group, or graph outputs."""
        members = set(map(id, self.nodes))
        results = set(graph.outputs)
        return [v for n in self.nodes for v in n.outputs
                if v in results or any(id(u) not in members for u in graph.users.get(v, []))]

    def __len__(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True, eq=False)
class FusionPlan:
    """The groups of a graph in execution order, and every edge fusion refused (with why)."""

    groups: tuple[FusedGroup, ...]
    refusals: tuple[FusionRefusal, ...] = ()
    naive: bool = False
    notes: tuple[str, ...] = field(default=())

    @cached_property
    def group_of(self) -> dict[Node, FusedGroup]:
        """Node -> the group holding it."""
        return {n: g for g in self.groups for n in g.nodes}

    def node_groups(self) -> list[list[Node]]:
        """The groups as lists of nodes (the form lowering takes)."""
        return [list(g.nodes) for g in self.groups]

    def check(self, graph: Graph) -> None:
        """Raise if the plan does not cover exactly the nodes of `graph` (a stale plan)."""
        planned = set(self.group_of)
        if planned != set(graph.nodes) or len(planned) != len(graph.nodes):
            raise DLCError("the fusion plan does not match the graph: a pass changed the graph "
                           "after `fuse`; run `fuse` again (it must be the last graph rewrite)")

    def why_not_fused(self) -> list[str]:
        """One line per refused edge: `cannot fuse %3 nn.conv2d with %4 nn.softmax: ...`."""
        return [r.message for r in self.refusals]


def print_fused(graph: Graph, plan: FusionPlan) -> str:
    """The textual IR with each group in braces, in the plan's order (`dlc show --stage fused`)."""
    plan.check(graph)
    namer = Namer(graph)
    header = print_graph(graph).splitlines()[0]
    lines = [header]
    for g in plan.groups:
        lines.append(f"  group #{g.index} {g.name} ({g.kind.value}) {{")
        lines.extend(f"    {print_node(n, namer)}" for n in g.nodes)
        lines.append("  }")
    lines.append(f"  return {', '.join(namer.ref(v) for v in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def ordered_groups(graph: Graph, members: Sequence[Sequence[Node]],
                   roots: Sequence[Node], kinds: Sequence[FusionKind]) -> list[FusedGroup]:
    """Groups in a topological order of the group DAG (earliest first node first).

    Raises DLCError if the groups are not convex (some group both feeds and reads another),
    which a correct fusion never produces.
    """
    import heapq

    position = {n: i for i, n in enumerate(graph.nodes)}
    gid = {n: k for k, nodes in enumerate(members) for n in nodes}
    preds: list[set[int]] = [set() for _ in members]
    succs: list[set[int]] = [set() for _ in members]
    producers = graph.producers
    for k, nodes in enumerate(members):
        for n in nodes:
            for v in n.inputs:
                p = producers.get(v)
                if p is not None and gid[p] != k:
                    preds[k].add(gid[p])
                    succs[gid[p]].add(k)
    first = [min(position[n] for n in nodes) for nodes in members]
    ready = [(first[k], k) for k in range(len(members)) if not preds[k]]
    heapq.heapify(ready)
    remaining = [len(p) for p in preds]
    order: list[int] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for s in succs[k]:
            remaining[s] -= 1
            if remaining[s] == 0:
                heapq.heappush(ready, (first[s], s))
    if len(order) != len(members):
        raise DLCError("fusion produced groups that depend on each other in a cycle; "
                       "this is a bug in the fuse pass")
    return [FusedGroup(i, tuple(sorted(members[k], key=position.__getitem__)), roots[k],
                       kinds[k]) for i, k in enumerate(order)]


def reorder_graph(graph: Graph, groups: Sequence[FusedGroup]) -> Graph:
    """The graph with its nodes in group order (each group contiguous)."""
    nodes = [n for g in groups for n in g.nodes]
    if nodes == list(graph.nodes):
        return graph
    return graph.with_nodes(nodes)
