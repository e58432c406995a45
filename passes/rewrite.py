"""The pattern-rewrite engine every local graph rewrite uses.

A `Rule` pairs a title written as the algebra it performs ("x * 1 -> x") with a pattern
and a function that builds the replacement:

    rules_algebra = RuleSet([
        Rule("x * 1 -> x", P.op("ew.mul", P.var("x"), P.const(1.0)), lambda x: x),
        Rule("relu(relu(x)) -> relu(x)",
             P.op("ew.relu", P.op("ew.relu", P.var("x"), name="inner")),
             lambda inner: inner),
    ])
    graph = rewrite_to_fixpoint(graph, rules_algebra, ctx)

Patterns: `P.op(name, *children, name=...)` matches a node of that op whose operands match
the children (binding the node under `name`); `P.var(name)` matches any value (the same
name twice must be the same value); `P.const(value)` matches a constant whose every
element equals `value` (`P.const()` any constant).

The build function receives the bindings it names as parameters, plus `b` (a
GraphBuilder for new nodes, located at the matched node), `root` (the matched node) and
`graph` (the graph the round started from: `single_use(graph, v)`) if it asks for them.
It returns the replacement value (a Value, a Node meaning its outputs, or a tuple for a
multi-output node), or None for "no match after all". A replacement must have exactly
the type of what it replaces, else the rule does not fire (so `x * 1 -> x` never fires
where broadcasting makes the product larger than x).

Rules are indexed by their root op; a rule whose ops are absent from the graph is not
tried. Each firing is reported to the PassContext with the rule title and the node.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.passes.manager import PassContext

# -- patterns --------------------------------------------------------------------------

ANY = object()  # P.const() without a value: any constant


class Pattern:
    """Base class of patterns."""

    def ops(self) -> set[str]:
        """Every op name the pattern mentions (for early rejection)."""
        return set()

    def names(self) -> set[str]:
        """Every binding name the pattern introduces."""
        return set()


@dataclass(frozen=True)
class OpPattern(Pattern):
    """Matches a node of op `op` whose operands match `children` (exactly that many)."""

    op: str
    children: tuple[Pattern, ...]
    name: str | None = None

    def ops(self) -> set[str]:
        return {self.op}.union(*(c.ops() for c in self.children))

    def names(self) -> set[str]:
        own = {self.name} if self.name else set()
        return own.union(*(c.names() for c in self.children))


@dataclass(frozen=True)
class VarPattern(Pattern):
    """Matches any value and binds it."""

    name: str

    def names(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class ConstPattern(Pattern):
    """Matches a constant; with a value, only one whose every element equals it."""

    value: Any = ANY
    name: str | None = None

    def names(self) -> set[str]:
        return {self.name} if self.name else set()


class P:
    """Pattern constructors: `P.op`, `P.var`, `P.const`."""

    @staticmethod
    def op(op: str, *children: Pattern, name: str | None = None) -> OpPattern:
        return OpPattern(op, tuple(children), name)

    @staticmethod
    def var(name: str) -> VarPattern:
        return VarPattern(name)

    @staticmethod
    def const(value: Any = ANY, name: str | None = None) -> ConstPattern:
        return ConstPattern(value, name)


Bindings = dict[str, Any]


def match(pattern: OpPattern, node: Node, producers: Mapping[Value, Node]) -> Bindings | None:
    """Match `pattern` rooted at `node`; the bindings, or None for no match."""
    bindings: Bindings = {}
    return bindings if _match_node(pattern, node, producers, bindings) else None


def _match_node(p: OpPattern, node: Node, producers: Mapping[Value, Node], b: Bindings) -> bool:
    if node.op.name != p.op or len(node.inputs) != len(p.children):
        return False
    if p.name and not _bind(b, p.name, node):
        return False
    return all(_match_value(c, v, producers, b) for c, v in zip(p.children, node.inputs))


def _match_value(p: Pattern, v: Value, producers: Mapping[Value, Node], b: Bindings) -> bool:
    if isinstance(p, VarPattern):
        return _bind(b, p.name, v)
    if isinstance(p, ConstPattern):
        if not isinstance(v, Constant) or not isinstance(v.data, np.ndarray):
            return False
        if p.value is not ANY and not _all_equal(v.data, p.value):
            return False
        return _bind(b, p.name, v) if p.name else True
    if isinstance(p, OpPattern):
        node = producers.get(v)
        return node is not None and _match_node(p, node, producers, b)
    raise TypeError(f"not a pattern: {p!r}")


def _bind(b: Bindings, name: str, item: Any) -> bool:
    if name in b:
        return b[name] is item
    b[name] = item
    return True


def _all_equal(data: np.ndarray, value: Any) -> bool:
    if data.size == 0 or data.dtype == np.bool_ and not isinstance(value, bool):
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all(data == value))


# -- rules -----------------------------------------------------------------------------

Replacement = Value | Node | tuple[Value, ...] | None

RESERVED = frozenset({"b", "root", "graph"})  # what the engine passes besides the bindings


@dataclass(frozen=True)
class Rule:
    """A titled rewrite: when `pattern` matches, `build(**bindings)` gives the replacement."""

    title: str
    pattern: OpPattern
    build: Callable[..., Replacement]
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        assert isinstance(self.pattern, OpPattern), f"rule {self.title!r}: the root must be P.op"
        params = tuple(inspect.signature(self.build).parameters)
        reserved = self.pattern.names() & RESERVED
        assert not reserved, f"rule {self.title!r}: {sorted(reserved)} name engine arguments"
        unknown = set(params) - self.pattern.names() - RESERVED
        assert not unknown, f"rule {self.title!r} asks for unbound names {sorted(unknown)}"
        object.__setattr__(self, "params", params)

    @property
    def root_op(self) -> str:
        return self.pattern.op

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(self.pattern.ops())

    def apply(self, bindings: Bindings, b: GraphBuilder, root: Node, graph: Graph
              ) -> Replacement:
        extra = {"b": b, "root": root, "graph": graph}
        return self.build(**{p: bindings[p] if p in bindings else extra[p] for p in self.params})


class RuleSet:
    """Rules indexed by the op at their root, in declaration order."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self.by_op: dict[str, list[Rule]] = {}
        for rule in self.rules:
            self.by_op.setdefault(rule.root_op, []).append(rule)

    def for_op(self, op: str) -> list[Rule]:
        return self.by_op.get(op, [])

    def ops(self) -> set[str]:
        """Every op name the rules mention."""
        return set().union(*(r.ops for r in self.rules))

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet([*self.rules, *other.rules])

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)


# -- the engine ------------------------------------------------------------------------


def rewrite_to_fixpoint(graph: Graph, rules: RuleSet, ctx: PassContext,
                        max_rounds: int = 8) -> Graph:
    """Apply `rules` round after round until none fires (or `max_rounds` is reached)."""
    for _ in range(max_rounds):
        new = rewrite_once(graph, rules, ctx)
        if new is None:
            return graph
        graph = new
    ctx.note(f"rules still firing after {max_rounds} rounds; stopped")
    return graph


def rewrite_once(graph: Graph, rules: RuleSet, ctx: PassContext) -> Graph | None:
    """One round over the nodes in topological order; None when no rule fired.

    Each node sees its operands after earlier replacements, so a chain like
    `((x * 1) * 1)` collapses in one round. A replaced node is removed, and so is every
    producer that the replacement left without users.
    """
    present = {n.op.name for n in graph.nodes}
    subst: dict[Value, Value] = {}
    producers: dict[Value, Node] = {}
    kept: list[Node] = []
    removed: list[Node] = []
    for index, original in enumerate(graph.nodes):
        node = substitute_inputs(original, subst)
        replacement = None
        for rule in rules.for_op(node.op.name):
            if not rule.ops <= present:
                continue
            bindings = match(rule.pattern, node, producers)
            if bindings is None:
                continue
            b = GraphBuilder(graph.name)
            b.loc = node.loc
            values = _as_values(rule.apply(bindings, b, node, graph))
            if values is None or not _same_types(values, node.outputs) \
                    or any(v in node.outputs for v in values):
                continue
            for new in b.nodes:
                kept.append(new)
                producers.update((v, new) for v in new.outputs)
                present.add(new.op.name)
            replacement = values
            ctx.record_rewrite(rule.title, original, index)
            break
        if replacement is None:
            kept.append(node)
            producers.update((v, node) for v in node.outputs)
        else:
            subst.update(zip(node.outputs, replacement))
            removed.append(node)
    if not removed:
        return None
    outputs = tuple(subst.get(v, v) for v in graph.outputs)
    return graph.with_nodes(drop_orphans(kept, removed, outputs), outputs)


def single_use(graph: Graph, value: Value) -> bool:
    """True when exactly one node reads `value` and it is not a graph output (so a rule
    that replaces that reader may drop the value's producer without duplicating work)."""
    return len(graph.users.get(value, [])) == 1 and value not in graph.outputs


def substitute_inputs(node: Node, subst: Mapping[Value, Value]) -> Node:
    """`node` reading `subst[v]` instead of each replaced operand `v` (same outputs)."""
    if not any(v in subst for v in node.inputs):
        return node
    inputs = tuple(subst.get(v, v) for v in node.inputs)
    return Node(node.op, inputs, node.attrs, node.outputs, node.loc)


def replace_values(graph: Graph, subst: Mapping[Value, Value]) -> Graph:
    """The graph with every use of each key of `subst` reading its value instead."""
    nodes = [substitute_inputs(n, subst) for n in graph.nodes]
    return graph.with_nodes(nodes, tuple(subst.get(v, v) for v in graph.outputs))


def drop_orphans(nodes: list[Node], removed: Iterable[Node],
                 outputs: tuple[Value, ...]) -> list[Node]:
    """Remove the producers that lost their last user when `removed` went away.

    Only nodes reachable backwards from the removed ones are considered: dead code that
    was already there is left for `eliminate-dead-code`.
    """
    uses: dict[Value, int] = {}
    for n in nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in outputs:
        uses[v] = uses.get(v, 0) + 1
    producer = {v: n for n in nodes for v in n.outputs}
    work = [v for n in removed for v in n.inputs]
    gone: set[int] = set()
    while work:
        v = work.pop()
        n = producer.get(v)
        if n is None or id(n) in gone or any(uses.get(o, 0) for o in n.outputs):
            continue
        gone.add(id(n))
        for u in n.inputs:
            uses[u] -= 1
            work.append(u)
    return [n for n in nodes if id(n) not in gone]


def _as_values(result: Replacement) -> tuple[Value, ...] | None:
    if result is None:
        return None
    if isinstance(result, Node):
        return result.outputs
    if isinstance(result, Value):
        return (result,)
    return tuple(result)


def _same_types(new: tuple[Value, ...], old: tuple[Value, ...]) -> bool:
    """Rewrites must keep types exactly: same count, dtype and shape per output."""
    if len(new) != len(old):
        return False
    return all(a.type == b.type or a.type.same_as(b.type) for a, b in zip(new, old))
