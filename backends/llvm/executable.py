"""The whole-model executable: every kernel, one entry function, one call per inference.

    i32 @dlc_entry(ptr %slots, ptr %sizes)

`slots` is a table with one pointer per buffer the model touches — inputs, weights,
intermediates (slices of one arena, placed by the memory plan) and outputs; `sizes` holds
the values of the size symbols. The entry calls the kernels in order with their buffers'
slots and returns 0, or the 1-based index of the kernel whose debug bounds check failed.
Python fills the slot table once per shape binding and the input/output slots per call,
so a call costs one ctypes transition, with the GIL released.

A sparse value owns one slot per component buffer (`dlc.sparse.COMPONENTS`: a CSR value
has `indptr`, `indices` and `values`; COO has `indices` and `values`). A `SparseMatrix`
argument is checked and split into those slots, a sparse intermediate gets an arena slice
per component, and a sparse output is allocated per component and returned as a
`SparseMatrix`. Its `nnz` is a size symbol, bound from the inputs like any other.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llvmlite import ir

from dlc.backends.llvm.codegen import emit_kernel
from dlc.backends.llvm.jit import JITModule, compile_ir, prepare
from dlc.backends.llvm.types import I32, I64, PTR
from dlc.errors import DLCError
from dlc.interpreter import bind_symbols
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.ir.printer import Namer
from dlc.ir.symbolic import evaluate
from dlc.ir.tensor.stmt import PrimFunc
from dlc.ir.types import SparseTensorType, TensorType
from dlc.passes.tensor.lower_group import LoweredGroup, check_lowerable, lower_group
from dlc.sparse import (
    SparseComponent,
    SparseMatrix,
    buffer_keys,
    component_arrays,
    from_components,
)

BufferKey = Value | SparseComponent  # what a slot holds: a dense value or a sparse component

ALIGN = 64  # bytes: one cache line, and the width of an AVX-512 vector


class KernelFault(DLCError):
    """A debug-mode bounds check failed inside a generated kernel."""


@dataclass
class ModelKernels:
    """The lowered model: kernels in order, and every buffer's slot."""

    graph: Graph
    groups: list[LoweredGroup]
    slots: dict[BufferKey, int]  # buffer -> index in the slot table
    symbols: list[str]  # order of the sizes array
    names: dict[Value, str] = field(default_factory=dict)
    traces: list[Any] = field(default_factory=list)  # per kernel: its schedule Trace or None
    unscheduled: list[str] = field(default_factory=list)  # rules that did not apply

    def constants(self) -> list[Constant]:
        """The graph's constants, then the weights packed at compile time (prepack)."""
        return [k for k in self.slots if isinstance(k, Constant)]

    @property
    def funcs(self) -> list[PrimFunc]:
        return [g.func for g in self.groups]

    def buffer_name(self, key: BufferKey) -> str:
        """`v3`, or `v3_indptr` for a component of a sparse value."""
        if isinstance(key, SparseComponent):
            return f"{self.names[key.value]}_{key.field}"
        return self.names[key]


def value_names(graph: Graph) -> dict[Value, str]:
    """Buffer names: inputs keep theirs, node outputs are `v<N>` as `%N` in the text form."""
    namer = Namer(graph)
    names: dict[Value, str] = {}
    for v in graph.inputs:
        names[v] = namer.names[v]
    for n in graph.nodes:
        for v in n.outputs:
            names[v] = f"v{namer.names[v]}"
    for k, c in enumerate(graph.constant_values()):
        names[c] = f"w_{namer.constants.get(c, f'c{k}')}".replace(".", "_")
    return names


def lower_model(graph: Graph, groups: Sequence[Sequence[Node]],
                schedule: str = "naive", aliases: dict[Value, Value] | None = None
                ) -> ModelKernels:
    """Lower every group of `graph` to a PrimFunc and assign buffer slots.

    `schedule="default"` applies the rule-based schedules (passes/tensor/schedule_rules)
    to each kernel; "naive" keeps the loop nests as lowered. A group whose output is a
    view in `aliases` (view -> root, from the memory plan) gets no kernel: the view shares
    its root's slot.
    """
    check_lowerable(graph, "llvm")
    names = value_names(graph)
    aliases = aliases or {}
    groups = [nodes for nodes in groups
              if not any(v in aliases for n in nodes for v in n.outputs)]
    lowered = [lower_group(graph, nodes, f"k{i}_{_kernel_label(nodes)}", names)
               for i, nodes in enumerate(groups)]
    traces: list[Any] = [None] * len(lowered)
    skipped: list[str] = []
    if schedule == "default":
        from dlc.passes.tensor.prepack import PackCache, fold_constant_packs
        from dlc.passes.tensor.schedule_rules import default_schedule
        from dlc.runtime import get_num_threads

        packed: PackCache = {}
        for k, g in enumerate(lowered):
            constants = frozenset(p.name for p, v in zip(g.func.params, g.inputs)
                                  if isinstance(v, Constant))
            sch, report = default_schedule(g.func, get_num_threads(), constants)
            lowered[k] = fold_constant_packs(dataclasses.replace(g, func=sch.func), sch.trace,
                                             packed)
            traces[k] = sch.trace
            skipped.extend(report.skipped)
    taken = set(names.values())
    for g in lowered:  # weights packed at compile time get names of their own
        for v in g.inputs:
            if isinstance(v, Constant) and v not in names:
                base = re.sub(r"\W", "_", v.name or "w_packed")
                name, k = base, 1
                while name in taken:
                    name, k = f"{base}{k}", k + 1
                names[v] = name
                taken.add(name)
    slots: dict[BufferKey, int] = {}
    for v in [*graph.inputs, *graph.constant_values()]:
        for key in buffer_keys(v):
            slots.setdefault(key, len(slots))
    for g in lowered:
        for v in g.inputs:
            if v in aliases:
                slots.setdefault(aliases[v], len(slots))
                slots[v] = slots[aliases[v]]
            slots.setdefault(v, len(slots))
        for v in g.outputs:
            slots.setdefault(v, len(slots))
    return ModelKernels(graph, lowered, slots, sorted(graph.symbols), names, traces, skipped)


def _kernel_label(nodes: Sequence[Node]) -> str:
    ops = [n.op.name.split(".")[1] for n in nodes]
    label = "_".join(dict.fromkeys(ops))
    return label[:48]


PROFILE_SYMBOL = "dlc_profile_ticks"  # i64[kernels]: cycle counts summed per kernel


def emit_module(model: ModelKernels, debug: bool = False, profile: bool = False) -> ir.Module:
    """One LLVM module: each kernel, then `dlc_entry` calling them in order.

    With `profile`, the entry reads the cycle counter around each kernel call and adds the
    difference to `dlc_profile_ticks[k]` (see `dlc.backends.llvm.profile`).
    """
    module = prepare(ir.Module(name=model.graph.name))
    ticks = None
    if profile:
        ticks = ir.GlobalVariable(module, ir.ArrayType(I64, len(model.groups)), PROFILE_SYMBOL)
        ticks.initializer = ir.Constant(ticks.value_type, None)
        clock = ir.Function(module, ir.FunctionType(I64, []), name="llvm.readcyclecounter")
        now = ir.Function(module, ir.FunctionType(I64, []), name=PROFILE_SYMBOL + "_now")
        nb = ir.IRBuilder(now.append_basic_block())
        nb.ret(nb.call(clock, []))  # lets Python convert ticks to seconds
    kernels = []
    for g in model.groups:
        fn = emit_kernel(module, g.func, debug)
        fn.linkage = "internal"
        kernels.append(fn)
    entry = ir.Function(module, ir.FunctionType(I32, [PTR, PTR]), name="dlc_entry")
    slots_arg, sizes_arg = entry.args
    slots_arg.name, sizes_arg.name = "slots", "sizes"
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    sizes = {}
    for k, sym in enumerate(model.symbols):
        ptr = b.gep(sizes_arg, [ir.Constant(I64, k)], source_etype=I64, name=f"{sym}.ptr")
        sizes[sym] = b.load(ptr, typ=I64, name=sym)
    fail = entry.append_basic_block("fail")
    for k, (g, fn) in enumerate(zip(model.groups, kernels)):
        args = []
        for v in [*g.inputs, *g.outputs]:
            ptr = b.gep(slots_arg, [ir.Constant(I64, model.slots[v])], source_etype=PTR)
            args.append(b.load(ptr, typ=PTR, name=model.buffer_name(v)))
        args += [sizes[s.name] for s in g.func.sizes]
        start = b.call(clock, [], name=f"t{k}") if ticks is not None else None
        status = b.call(fn, args, name=f"status{k}")
        if ticks is not None:
            slot = b.gep(ticks, [ir.Constant(I64, 0), ir.Constant(I64, k)])
            spent = b.sub(b.call(clock, []), start)
            b.store(b.add(b.load(slot, typ=I64), spent), slot)
        ok = entry.append_basic_block(f"after_k{k}")
        bad = entry.append_basic_block(f"fail_k{k}")
        b.cbranch(b.icmp_signed("==", status, ir.Constant(I32, 0)), ok, bad)
        b.position_at_end(bad)
        b.ret(ir.Constant(I32, k + 1))
        b.position_at_end(ok)
    b.ret(ir.Constant(I32, 0))
    b.position_at_end(fail)
    b.ret(ir.Constant(I32, -1))
    return module


class Executable:
    """A JIT-compiled model: call with NumPy arrays, get NumPy arrays."""

    def __init__(self, model: ModelKernels, llvm_ir: str, jit_module: JITModule,
                 arena: ArenaPlan) -> None:
        self.model = model
        self.llvm_ir = llvm_ir
        self.jit = jit_module
        self.arena = arena
        self._entry = jit_module.function("dlc_entry", [ctypes.c_void_p, ctypes.c_void_p])
        self._slots = (ctypes.c_void_p * max(len(model.slots), 1))()
        for c in model.constants():
            data = np.ascontiguousarray(c.data)
            self._keep = getattr(self, "_keep", []) + [data]
            self._slots[model.slots[c]] = data.ctypes.data
        self._bound: tuple[int, ...] | None = None
        self._arena_buf: np.ndarray | None = None

    def __call__(self, *args: Any) -> list[Any]:
        graph = self.model.graph
        bindings = bind_symbols(graph, args)
        key = tuple(bindings[s] for s in self.model.symbols)
        if key != self._bound:
            self._bind_arena(bindings)
            self._bound = key
        sizes = (ctypes.c_int64 * max(len(key), 1))(*key)
        keep = []
        for v, a in zip(graph.inputs, args):
            if isinstance(a, SparseMatrix):  # one slot per component, structure checked
                arrays = component_arrays(a)
                buffers = {k: arrays[k.field] for k in buffer_keys(v)}
            else:
                buffers = {v: np.ascontiguousarray(a)}
            keep.append(buffers)
            for k, array in buffers.items():
                self._slots[self.model.slots[k]] = array.ctypes.data
        outputs: list[Any] = []
        for v in graph.outputs:
            if v in graph.inputs or isinstance(v, Constant) or \
                    buffer_keys(v)[0] not in self.model.slots:
                outputs.append(None)
                continue
            arrays = {}
            for k in buffer_keys(v):
                t = k.type
                out = np.empty(tuple(evaluate(d, bindings) for d in t.shape), t.dtype.numpy)
                arrays[k.field if isinstance(k, SparseComponent) else ""] = out
                self._slots[self.model.slots[k]] = out.ctypes.data
            outputs.append(arrays)
        status = self._entry(ctypes.addressof(self._slots), ctypes.addressof(sizes))
        if status != 0:
            g = self.model.groups[status - 1] if 0 < status <= len(self.model.groups) else None
            where = f"kernel {g.func.name} ({g.func.comment})" if g else "the entry"
            raise KernelFault(f"out-of-bounds access in {where}")
        results = []
        for v, out in zip(graph.outputs, outputs):
            if out is not None and isinstance(v.type, SparseTensorType):
                shape = tuple(int(evaluate(d, bindings)) for d in v.type.shape)
                results.append(from_components(v.type, shape, out))
            elif out is not None:
                results.append(out[""])
            elif isinstance(v, Constant):
                results.append(np.array(v.data))
            elif isinstance(args[graph.inputs.index(v)], SparseMatrix):
                results.append(args[graph.inputs.index(v)])
            else:
                results.append(np.array(args[graph.inputs.index(v)]))
        return results

    def _bind_arena(self, bindings: dict[str, int]) -> None:
        size = self.arena.size(bindings)
        self._arena_buf = np.empty(size + ALIGN, dtype=np.uint8)
        base = self._arena_buf.ctypes.data
        base += (-base) % ALIGN
        for v, offset in self.arena.offsets(bindings).items():
            for key, delta in _component_offsets(v, bindings):
                if key in self.model.slots:  # a dead value is planned but never written
                    self._slots[self.model.slots[key]] = base + offset + delta


def _component_offsets(key: BufferKey, bindings: dict[str, int]
                       ) -> list[tuple[BufferKey, int]]:
    """The buffers of one arena entry and their byte offsets in it.

    A memory plan may place a whole sparse value as one block (`plan-memory` sizes it as
    the sum of its arrays): its components follow each other in `COMPONENTS` order, i64
    index arrays first and the values last, so every component stays 8-byte aligned.
    """
    if not (isinstance(key, Value) and isinstance(key.type, SparseTensorType)):
        return [(key, 0)]
    out, delta = [], 0
    for k in buffer_keys(key):
        out.append((k, delta))
        delta += int(evaluate(_nbytes(k.type), bindings))
    return out


@dataclass
class ArenaPlan:
    """Where each intermediate lives in the arena: an offset and a size per value.

    Offsets and sizes may be symbolic; they are evaluated once per shape binding.
    """

    placement: dict[BufferKey, tuple[Any, Any]]  # buffer -> (offset, nbytes), ints or sympy
    total: Any

    def size(self, bindings: dict[str, int]) -> int:
        return int(evaluate(self.total, bindings)) if self.placement else 0

    def offsets(self, bindings: dict[str, int]) -> dict[BufferKey, int]:
        return {v: int(evaluate(off, bindings)) for v, (off, _) in self.placement.items()}


def naive_arena(model: ModelKernels) -> ArenaPlan:
    """Every intermediate in a buffer of its own (no reuse): the O0 memory plan."""
    graph = model.graph
    skip = {k for v in [*graph.inputs, *graph.outputs] for k in buffer_keys(v)}
    placement: dict[BufferKey, tuple[Any, Any]] = {}
    offset: Any = 0
    for g in model.groups:
        for v in g.outputs:
            if v in skip or v in placement:
                continue
            nbytes = _nbytes(v.type)
            placement[v] = (offset, nbytes)
            offset = _align(offset + nbytes)
    return ArenaPlan(placement, offset)


def _nbytes(t: TensorType) -> Any:
    n: Any = t.dtype.itemsize
    for d in t.shape:
        n = n * d
    return n


def _align(x: Any) -> Any:
    if isinstance(x, int):
        return -(-x // ALIGN) * ALIGN
    import sympy

    return sympy.ceiling(x / ALIGN) * ALIGN


def build(graph: Graph, groups: Sequence[Sequence[Node]] | None = None,
          arena: ArenaPlan | None = None, debug: bool = False, opt_level: int = 3,
          schedule: str = "naive") -> Executable:
    """Lower, emit, optimize and JIT a graph (one group per node when none are given).
    Views the memory plan aliases (`arena.aliases`) get no kernel."""
    model = lower_model(graph, groups if groups is not None else [[n] for n in graph.nodes],
                        schedule, getattr(arena, "aliases", None))
    module = emit_module(model, debug)
    text = str(module)
    jit_module = compile_ir(text, opt_level)
    return Executable(model, text, jit_module, arena or naive_arena(model))
