"""plan-memory: static memory planning (liveness + best-fit buffer reuse in one arena)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import ClassVar

import sympy

from dlc.ir.graph import Graph, Value
from dlc.ir.symbolic import Dim, evaluate, free_symbols
from dlc.ir.types import SparseTensorType, TensorType, ValueType
from dlc.passes.graph.fusion_plan import FusionPlan, print_fused
from dlc.passes.graph.views import view_aliases
from dlc.passes.manager import GraphPass, PassContext, register_pass

ALIGNMENT = 64  # bytes: a cache line, and one AVX-512 vector
SAMPLE_SIZE = 64  # a symbol's stand-in value when ranking sizes that cannot be compared


@dataclass(frozen=True)
class Allocation:
    """Where one intermediate lives: its buffer, and the steps it is live for (inclusive)."""

    value: Value
    buffer: int
    start: int  # the step that writes it
    end: int  # the last step that reads it
    nbytes: Dim


@dataclass(frozen=True)
class Buffer:
    """A slice of the arena: `[offset, offset + size)` bytes, both aligned."""

    index: int
    offset: Dim
    size: Dim


@dataclass(frozen=True, eq=False)
class MemoryPlan:
    """Every intermediate's place in one arena.

    Sizes and offsets are ints for static shapes and SymPy expressions over the graph's
    size symbols otherwise (`ceiling(N/16)*64`, `Max(...)`): a caller evaluates them once
    per call with the bindings of that call's inputs (`resolve`, `offsets`, `size`), so a
    symbolic plan is planned once and costs a few expression evaluations per call.

    Graph inputs, constants and graph outputs are not in the arena (the caller owns them).
    With a fusion plan, only values that cross a group boundary are planned: values inside
    a group stay in registers or in the kernel's own scratch.
    """

    allocations: dict[Value, Allocation]
    buffers: tuple[Buffer, ...]
    total: Dim  # arena bytes
    steps: int
    alignment: int = ALIGNMENT
    naive: bool = False
    aliases: dict[Value, Value] = field(default_factory=dict)  # view -> the value it reuses

    @property
    def placement(self) -> dict[Value, tuple[Dim, Dim]]:
        """value -> (offset, nbytes): the form the LLVM backend's arena binding reads."""
        return {v: (self.buffers[a.buffer].offset, a.nbytes) for v, a in self.allocations.items()}

    def offset_of(self, value: Value) -> Dim:
        return self.buffers[self.allocations[value].buffer].offset

    def size(self, bindings: dict[str, int] | None = None) -> int:
        """The arena's size in bytes under `bindings` (symbol -> size)."""
        return int(evaluate(self.total, bindings or {})) if self.allocations else 0

    def offsets(self, bindings: dict[str, int] | None = None) -> dict[Value, int]:
        """Each planned value's byte offset under `bindings`."""
        return {v: int(evaluate(off, bindings or {})) for v, (off, _) in self.placement.items()}

    def resolve(self, bindings: dict[str, int] | None = None
                ) -> dict[Value, tuple[int, int, int, int]]:
        """value -> (offset, nbytes, start step, end step), all ints, under `bindings`."""
        b = bindings or {}
        return {v: (int(evaluate(self.offset_of(v), b)), int(evaluate(a.nbytes, b)), a.start,
                    a.end) for v, a in self.allocations.items()}

    def naive_total(self) -> Dim:
        """What one buffer per intermediate would take (the O0 arena)."""
        return _sum(_align(a.nbytes, self.alignment) for a in self.allocations.values())

    def __str__(self) -> str:
        kind = "naive, one buffer per value" if self.naive else "best-fit reuse"
        lines = [f"memory plan ({kind}): {len(self.allocations)} values in "
                 f"{len(self.buffers)} buffers, arena {self.total} bytes, "
                 f"alignment {self.alignment}"]
        for b in self.buffers:
            tenants = [a for a in self.allocations.values() if a.buffer == b.index]
            spans = ", ".join(f"steps {a.start}-{a.end}" for a in tenants)
            lines.append(f"  buffer {b.index}: offset {b.offset}, {b.size} bytes ({spans})")
        if self.aliases:
            lines.append(f"  {len(self.aliases)} views reuse the buffer of the value they "
                         "reshape (no kernel, no copy)")
        return "\n".join(lines) + "\n"


@register_pass
@dataclass(frozen=True)
class PlanMemory(GraphPass):
    """Static memory planning: compute the liveness of every intermediate over the
    execution order, then reuse buffers greedily (best fit: the smallest free buffer that
    holds the value, else grow the largest free one, else a new one) in one arena with
    `alignment`-byte offsets. The graph is returned unchanged; the `MemoryPlan` goes to
    `ctx.memory_plan`. `naive=True` gives every intermediate its own buffer (O0, or
    `plan-memory` disabled).

    Before:
        graph @f(%x: f32[256]) -> (f32[256]) {
          %0 = ew.exp(%x) : f32[256]
          %1 = ew.relu(%0) : f32[256]
          %2 = ew.neg(%1) : f32[256]
          %3 = ew.sin(%2) : f32[256]
          return %3
        }
    After (the graph is unchanged; the plan: %0 and %2 share buffer 0, naive would take 3072):
        memory plan (best-fit reuse): 3 values in 2 buffers, arena 2048 bytes, alignment 64
          buffer 0: offset 0, 1024 bytes (steps 0-1, steps 2-3)
          buffer 1: offset 1024, 1024 bytes (steps 1-2)
    """

    name: ClassVar[str] = "plan-memory"
    naive: bool = False
    alignment: int = ALIGNMENT

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ctx.memory_plan = plan_memory(graph, ctx.fusion_plan, naive=self.naive,
                                      alignment=self.alignment)
        return graph

    def show(self, graph: Graph, ctx: PassContext) -> str:
        text = print_fused(graph, ctx.fusion_plan) if ctx.fusion_plan else str(graph)
        return text + str(ctx.memory_plan)


def plan_memory(graph: Graph, fusion: FusionPlan | None = None, naive: bool = False,
                alignment: int = ALIGNMENT) -> MemoryPlan:
    """The memory plan of `graph`, executed group by group (one node per step without a
    fusion plan)."""
    if naive:
        return _naive(liveness(graph, fusion), alignment)
    groups = [list(g.nodes) for g in fusion.groups] if fusion is not None else \
        [[n] for n in graph.nodes]
    aliases = view_aliases(graph, groups)
    plan = _best_fit(liveness(graph, fusion, aliases), alignment)
    return replace(plan, aliases=aliases)


def liveness(graph: Graph, fusion: FusionPlan | None = None,
             aliases: dict[Value, Value] | None = None) -> list[tuple[Value, int, int]]:
    """(value, first step, last step) of every planned intermediate, by first step.

    A step is a node (or a fused group). A value is live from the step that writes it to
    the last step that reads it, both included, so a step's inputs and outputs never share.
    A view in `aliases` (see `views.py`) gets no lifetime of its own: its readers keep its
    root alive instead.
    """
    aliases = aliases or {}
    if fusion is not None:
        fusion.check(graph)
        step_nodes = [list(g.nodes) for g in fusion.groups]
    else:
        step_nodes = [[n] for n in graph.nodes]
    step_of = {n: s for s, nodes in enumerate(step_nodes) for n in nodes}
    outside = set(graph.outputs) | set(graph.inputs)
    last_read: dict[Value, int] = {}  # root -> the last step that reads it or a view of it
    for view, root in aliases.items():
        readers = [step_of[u] for u in graph.users.get(view, [])]
        last_read[root] = max([last_read.get(root, -1), *readers])
    out: list[tuple[Value, int, int]] = []
    for s, nodes in enumerate(step_nodes):
        for n in nodes:
            for v in n.outputs:
                if v in outside or v in aliases:
                    continue
                readers = {step_of[u] for u in graph.users.get(v, [])}
                if readers == {s} and v not in last_read:
                    continue  # read only inside its own group: never written to memory
                out.append((v, s, max(readers | {s, last_read.get(v, s)})))
    return out


def nbytes(t: ValueType) -> Dim:
    """Bytes a value occupies: its elements, or a sparse matrix's index and value arrays."""
    if isinstance(t, TensorType):
        return _mul(t.dtype.itemsize, t.numel)
    assert isinstance(t, SparseTensorType)
    values = _mul(t.dtype.itemsize, t.nnz)
    if t.format == "coo":
        return _add(values, _mul(16, t.nnz))  # i64 [2, nnz]
    return _add(values, _add(_mul(8, t.nnz), _mul(8, _add(t.shape[0], 1))))


def _naive(lifetimes: list[tuple[Value, int, int]], alignment: int) -> MemoryPlan:
    allocations, buffers, offset = {}, [], 0
    for k, (v, start, end) in enumerate(lifetimes):
        size = _align(nbytes(v.type), alignment)
        buffers.append(Buffer(k, offset, size))
        allocations[v] = Allocation(v, k, start, end, nbytes(v.type))
        offset = _add(offset, size)
    steps = max((e for _, _, e in lifetimes), default=-1) + 1
    return MemoryPlan(allocations, tuple(buffers), offset, steps, alignment, naive=True)


def _best_fit(lifetimes: list[tuple[Value, int, int]], alignment: int) -> MemoryPlan:
    sizes: list[Dim] = []  # per buffer, aligned; grows as larger values move in
    busy_until: list[int] = []  # per buffer, the last step its tenant is live
    assignment: dict[Value, int] = {}
    for v, start, _end in lifetimes:
        need = _align(nbytes(v.type), alignment)
        free = [b for b in range(len(sizes)) if busy_until[b] < start]
        fits = [b for b in free if _at_least(sizes[b], need)]
        if fits:
            b = min(fits, key=lambda k: _rank(sizes[k]))
        elif free:
            b = max(free, key=lambda k: _rank(sizes[k]))
            sizes[b] = _max(sizes[b], need)
        else:
            b = len(sizes)
            sizes.append(need)
            busy_until.append(-1)
        busy_until[b] = _end
        assignment[v] = b
    buffers, offset = [], 0
    for k, size in enumerate(sizes):
        buffers.append(Buffer(k, offset, size))
        offset = _add(offset, size)
    allocations = {v: Allocation(v, assignment[v], s, e, nbytes(v.type))
                   for v, s, e in lifetimes}
    steps = max((e for _, _, e in lifetimes), default=-1) + 1
    return MemoryPlan(allocations, tuple(buffers), offset, steps, alignment)


# -- size arithmetic on ints or SymPy expressions ----------------------------------------


def _add(a: Dim, b: Dim) -> Dim:
    return a + b if isinstance(a, int) and isinstance(b, int) else _simplify(a + b)


def _mul(a: Dim, b: Dim) -> Dim:
    return a * b if isinstance(a, int) and isinstance(b, int) else _simplify(a * b)


def _sum(items) -> Dim:  # type: ignore[no-untyped-def]
    total: Dim = 0
    for x in items:
        total = _add(total, x)
    return total


def _align(n: Dim, alignment: int) -> Dim:
    if isinstance(n, int):
        return -(-n // alignment) * alignment
    return _simplify(sympy.ceiling(n / alignment) * alignment)


def _max(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if _at_least(a, b):
        return a
    if _at_least(b, a):
        return b
    # Unevaluated: SymPy's Max simplification is slow, and the plan only evaluates it.
    return sympy.Max(a, b, evaluate=False)


@lru_cache(maxsize=4096)
def _at_least(a: Dim, b: Dim) -> bool:
    """True when `a >= b` provably (for every positive value of the size symbols)."""
    if isinstance(a, int) and isinstance(b, int):
        return a >= b
    # Cheap refutation first: sizes at a few sample points (most pairs end here).
    for sample in (1, SAMPLE_SIZE, 4096):
        if _value(a, sample) < _value(b, sample):
            return False
    diff = sympy.sympify(a) - sympy.sympify(b)
    return diff == 0 or bool(diff.is_nonnegative)


@lru_cache(maxsize=4096)
def _value(size: Dim, sample: int) -> int:
    if isinstance(size, int):
        return size
    return int(evaluate(size, {s: sample for s in free_symbols(size)}))


def _rank(size: Dim) -> int:
    """A size's value with every symbol at SAMPLE_SIZE: orders sizes that cannot be compared."""
    return _value(size, SAMPLE_SIZE)


def _simplify(e: sympy.Expr) -> Dim:
    e = sympy.sympify(e)
    return int(e) if e.is_Integer else e
