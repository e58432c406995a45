"""fuse: operator fusion by fusion kind, with a post-dominator analysis (TVM's FuseOps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from dlc.ir.graph import Graph, Node
from dlc.ir.printer import Namer
from dlc.ops.registry import FusionKind
from dlc.passes.graph.fusion_plan import (
    KIND_ORDER,
    FusedGroup,
    FusionPlan,
    combine,
    ordered_groups,
    print_fused,
    reorder_graph,
)
from dlc.passes.manager import FusionRefusal, GraphPass, PassContext, register_pass

EW, BCAST, INJ = FusionKind.ELEMENTWISE, FusionKind.BROADCAST, FusionKind.INJECTIVE
RED, OUT, OPAQUE = FusionKind.REDUCTION, FusionKind.OUT_FUSABLE, FusionKind.OPAQUE
EXIT = -1  # the virtual node after every graph output, the root of the post-dominator tree

PathCondition = Callable[[FusionKind, bool], bool]


def _le(a: FusionKind, b: FusionKind) -> bool:
    return KIND_ORDER[a] <= KIND_ORDER[b]


@register_pass
@dataclass(frozen=True)
class Fuse(GraphPass):
    """Operator fusion: group ops into kernels so intermediates stay in registers.

    For each node, in topological order, fusion looks at its immediate post-dominator
    (the first node every path from it to the outputs goes through) and merges the node,
    everything between, and the post-dominator into one group when the fusion kinds allow
    it (TVM's rules):

    * an out_fusable op (conv, matmul) absorbs an elementwise epilogue (bias, activation,
      a residual add);
    * elementwise and broadcast ops fuse into an elementwise, injective or reduction
      consumer (so a diamond that rejoins is one group, and a reduction takes its
      elementwise producers);
    * injective ops (reshape, slice, ...) fuse into an injective-or-lighter consumer, in
      a second phase so that out_fusable ops finish fusing first;
    * reductions end their group after an elementwise epilogue (a norm's activation), in
      the second phase, so that elementwise ops fuse into a reduction consumer first;
      opaque ops are never fused.

    The result is the same graph with each group's nodes contiguous, and a `FusionPlan`
    in `ctx.fusion_plan`; every edge left between two groups is logged with the rule
    that refused it. `naive=True` makes one group per op (O0, or `fuse` disabled).

    Before:
        graph @f(%a: f32[4, 8], %b: f32[8, 2], %c: f32[2]) -> (f32[4, 2]) {
          %0 = linalg.matmul(%a, %b) : f32[4, 2]
          %1 = ew.add(%0, %c) : f32[4, 2]
          %2 = ew.relu(%1) : f32[4, 2]
          return %2
        }
    After:
        graph @f(%a: f32[4, 8], %b: f32[8, 2], %c: f32[2]) -> (f32[4, 2]) {
          group #0 fused_matmul_add_relu (out_fusable) {
            %0 = linalg.matmul(%a, %b) : f32[4, 2]
            %1 = ew.add(%0, %c) : f32[4, 2]
            %2 = ew.relu(%1) : f32[4, 2]
          }
          return %2
        }
    """

    name: ClassVar[str] = "fuse"
    naive: bool = False
    max_group_size: int = 256

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        plan, graph = fuse_graph(graph, naive=self.naive, max_group_size=self.max_group_size)
        ctx.fusion_plan = plan
        for refusal in plan.refusals:
            ctx.record_refusal(refusal)
        return graph

    def show(self, graph: Graph, ctx: PassContext) -> str:
        assert ctx.fusion_plan is not None
        return print_fused(graph, ctx.fusion_plan)


def fuse_graph(graph: Graph, naive: bool = False, max_group_size: int = 256
               ) -> tuple[FusionPlan, Graph]:
    """The fusion plan of `graph` and the graph reordered to match it."""
    fusion = _Partitioner(graph, max_group_size)
    if not naive:
        fusion.run()
    else:
        fusion.reason = ["fusion is off (naive: one group per op)"] * len(graph.nodes)
    members: dict[int, list[Node]] = {}
    for i, n in enumerate(graph.nodes):
        members.setdefault(fusion.find(i), []).append(n)
    roots = list(members)
    groups = ordered_groups(graph, [members[r] for r in roots],
                            [graph.nodes[r] for r in roots], [fusion.pattern[r] for r in roots])
    new_graph = reorder_graph(graph, groups)
    refusals = _refusals(new_graph, fusion, groups)
    return FusionPlan(tuple(groups), tuple(refusals), naive), new_graph


class _Partitioner:
    """Union-find over node indices, driven by the post-dominator tree."""

    def __init__(self, graph: Graph, max_group_size: int) -> None:
        self.graph = graph
        self.max_group_size = max_group_size
        nodes = graph.nodes
        index = {n: i for i, n in enumerate(nodes)}
        self.kind = [n.op.fusion_kind for n in nodes]
        self.consumers: list[list[int]] = [[] for _ in nodes]
        self.edge_kind: dict[tuple[int, int], FusionKind] = {}
        users = graph.users
        for i, n in enumerate(nodes):
            for v in n.outputs:
                for u in users.get(v, []):
                    j = index[u]
                    if j not in self.consumers[i]:
                        self.consumers[i].append(j)
                    self.edge_kind[(i, j)] = combine(self.edge_kind.get((i, j), EW),
                                                     self._edge_kind(v, u))
        outputs = set(graph.outputs)
        self.escapes = [any(v in outputs for v in n.outputs) for n in nodes]
        self.ipdom = self._post_dominators()
        self.parent = list(range(len(nodes)))
        self.size = [1] * len(nodes)
        self.pattern = list(self.kind)
        self.anchor = [k == OUT for k in self.kind]
        self.reason: list[str] = [""] * len(nodes)

    @staticmethod
    def _edge_kind(v, consumer: Node) -> FusionKind:  # type: ignore[no-untyped-def]
        # A broadcasting op whose operand already has the result's shape is elementwise
        # on that edge (TVM does the same), so conv -> add(bias) is an elementwise step.
        kind = consumer.op.fusion_kind
        if kind == BCAST and v.type == consumer.outputs[0].type:
            return EW
        return kind

    def _post_dominators(self) -> list[int | None]:
        return immediate_post_dominators(self.consumers, self.escapes)

    # -- union-find --------------------------------------------------------------------
    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _merge(self, child: int, target: int) -> None:
        c, t = self.find(child), self.find(target)
        if c == t:
            return
        self.parent[c] = t
        self.size[t] += self.size[c]
        if self.anchor[c]:
            self.anchor[t] = True
            self.pattern[t] = combine(self.pattern[t], self.pattern[c])

    # -- paths between a node and its post-dominator ------------------------------------
    def _between(self, src: int, sink: int) -> list[int]:
        """Nodes on paths from src to sink, excluding both (every path from src meets sink)."""
        seen, order, work = {src, sink}, [], list(self.consumers[src])
        while work:
            j = work.pop()
            if j in seen:
                continue
            seen.add(j)
            order.append(j)
            work.extend(self.consumers[j])
        return order

    def _path_kind(self, src: int, sink: int, between: list[int]) -> FusionKind:
        """The most restrictive edge kind on the paths from src to sink."""
        kind = EW
        for a in [src, *between]:
            for b in self.consumers[a]:
                kind = combine(kind, self.edge_kind[(a, b)])
        return kind

    def _blocker(self, sink: int, between: list[int], ok: PathCondition) -> int | None:
        """The first node on the path whose group kind fails `ok`, or None."""
        for j in sorted(between):
            if not ok(self.pattern[self.find(j)], False):
                return j
        return None if ok(self.pattern[self.find(sink)], True) else sink

    def _commit(self, src: int, sink: int, between: list[int]) -> None:
        for j in [src, *between]:
            self._merge(j, sink)

    # -- the phases ----------------------------------------------------------------------
    def run(self) -> None:
        for phase in (0, 1):
            for i in range(len(self.kind)):
                self._visit(i, phase)

    def _visit(self, i: int, phase: int) -> None:
        # The node's own group record, as in TVM: a root that absorbed a conv is out_fusable.
        kind, d = self.pattern[i], self.ipdom[i]
        nodes = self.graph.nodes
        if kind == OPAQUE:
            self.reason[i] = f"{nodes[i].op.name} is opaque: it is never fused"
            return
        if d is None:
            self.reason[i] = ("its result is a graph output, so it is written out"
                              if self.escapes[i] else
                              "its uses never rejoin (no post-dominator), so it is written out")
            return
        if self.find(i) == self.find(d):
            self.reason[i] = ""
            return
        between = self._between(i, d)
        path = self._path_kind(i, d, between)
        if kind == OUT:
            if phase != 0:
                return
            if path != EW:
                self.reason[i] = (f"{path.value} consumer after out_fusable (only an "
                                  "elementwise epilogue fuses into a conv or matmul)")
                return
            self._try(i, d, between, lambda k, sink: _le(k, BCAST), "its epilogue")
        elif _le(kind, BCAST):
            if not (_le(path, INJ) or path == RED):
                self.reason[i] = (f"{path.value} consumer: elementwise ops fuse only into "
                                  "elementwise, injective or reduction consumers")
                return
            self._try(i, d, between, _elementwise_condition, "the path")
        elif kind == INJ:
            if phase != 1:
                self.reason[i] = "injective ops fuse in the second phase"
                return
            self._try(i, d, between, lambda k, sink: _le(k, INJ), "the path")
        elif phase == 1 and path == EW:
            # a norm's or softmax's activation: computed as the row is written (phase 1,
            # so that elementwise ops first fuse into a reduction that consumes them)
            self._try(i, d, between, lambda k, sink: _le(k, BCAST), "its epilogue")
            if not self.reason[i]:
                root = self.find(d)
                self.pattern[root] = combine(self.pattern[root], RED)
        elif phase == 1:
            self.reason[i] = ("a reduction ends its group: only its producers and an "
                              "elementwise epilogue fuse into it")

    def _try(self, i: int, d: int, between: list[int], ok: PathCondition, what: str) -> None:
        blocker = self._blocker(d, between, ok)
        nodes = self.graph.nodes
        if blocker == d:
            self.reason[i] = (f"its post-dominator {nodes[d].op.name} "
                              f"({self.pattern[self.find(d)].value}) cannot take "
                              f"{_article(self.pattern[i].value)} {self.pattern[i].value} "
                              "producer")
            return
        if blocker is not None:
            b = nodes[blocker]
            self.reason[i] = (f"{what} to its post-dominator {nodes[d].op.name} goes through "
                              f"{b.op.name} ({self.pattern[self.find(blocker)].value})")
            return
        roots = {self.find(j) for j in [i, d, *between]}
        if sum(self.size[r] for r in roots) > self.max_group_size:
            self.reason[i] = f"the group would exceed max_group_size={self.max_group_size}"
            return
        self._commit(i, d, between)
        self.reason[i] = ""


def immediate_post_dominators(consumers: list[list[int]], escapes: list[bool]
                               ) -> list[int | None]:
    """The immediate post-dominator of each node of a DAG given in topological order.

    Walking backwards, a node's post-dominator is the lowest common ancestor, in the tree
    built so far, of its consumers (TVM's DominatorTree does the same); a node read by
    nobody or whose result leaves the graph hangs from EXIT, reported as None: its result
    must be written out, so it fuses into no consumer.
    """
    n = len(consumers)
    parent: dict[int, int] = {}
    depth: dict[int, int] = {EXIT: 0}

    def lca(a: int, b: int) -> int:
        while a != b:
            if depth[a] < depth[b]:
                b = parent[b]
            elif depth[b] < depth[a]:
                a = parent[a]
            else:
                a, b = parent[a], parent[b]
        return a

    for i in reversed(range(n)):
        if escapes[i] or not consumers[i]:
            d = EXIT
        else:
            d = consumers[i][0]
            for c in consumers[i][1:]:
                d = lca(d, c)
        parent[i] = d
        depth[i] = depth[d] + 1
    return [None if parent[i] == EXIT else parent[i] for i in range(n)]


def _elementwise_condition(kind: FusionKind, is_sink: bool) -> bool:
    # Parallel branches may be injective; the sink may already hold a conv or a reduction.
    if not is_sink:
        return _le(kind, INJ)
    return _le(kind, INJ) or kind in (RED, OUT)


def _refusals(graph: Graph, fusion: _Partitioner, groups: list[FusedGroup]
              ) -> list[FusionRefusal]:
    """One refusal per edge between two groups, with the reason recorded for its producer."""
    namer = Namer(graph)
    old_index = {n: i for i, n in enumerate(fusion.graph.nodes)}
    group_of = {n: g.index for g in groups for n in g.nodes}
    out = []
    for producer in graph.nodes:
        i = old_index[producer]
        for j in fusion.consumers[i]:
            consumer = fusion.graph.nodes[j]
            if group_of[producer] == group_of[consumer]:
                continue
            reason = fusion.reason[i] or "its group was closed by another fusion decision"
            message = (f"cannot fuse %{namer.names[producer.outputs[0]]} {producer.op.name} "
                       f"with %{namer.names[consumer.outputs[0]]} {consumer.op.name}: {reason}")
            out.append(FusionRefusal(producer, consumer, reason, message))
    return out


def _article(word: str) -> str:
    """`an` before a vowel (an injective producer), else `a`."""
    return "an" if word[:1] in "aeiou" else "a"
