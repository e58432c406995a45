"""CompiledModel: what `dlc.compile` returns — callable, inspectable, comparable.

Compilation is: import -> graph passes (`opt_level`, `disable`) -> fusion plan and memory
plan -> (target "llvm") lower each fused group to a loop nest, emit LLVM IR, optimize,
JIT into one executable. Every stage stays inspectable through `show(stage)`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import DLCError, InputError
from dlc.interpreter import bind_symbols, run_graph
from dlc.ir.graph import Graph
from dlc.ir.types import SparseTensorType
from dlc.sparse import SparseMatrix

TARGETS = ("ref", "llvm")
STAGES = ("graph", "fused", "tensor", "llvm", "llvm-opt", "asm")


class CompiledModel:
    """A model compiled for one target; call it on NumPy arrays or torch tensors.

    Returns a NumPy array, or a tuple of arrays when the model has several outputs.
    Inputs are checked (count, rank, shape, dtype) before anything runs.
    """

    def __init__(self, graph: Graph, target: str = "ref", opt_level: int = 3,
                 ctx: Any = None, source: Graph | None = None, debug: bool = False) -> None:
        self.graph = graph  # after the graph passes
        self.source = source if source is not None else graph  # as imported
        self.target = target
        self.opt_level = opt_level
        self.ctx = ctx  # the PassContext: fusion and memory plans, the pass log
        self.debug = debug
        self.timings: dict[str, float] = {}
        self.executable: Any = None
        if target == "llvm":
            self._build_llvm()

    def _build_llvm(self) -> None:
        from dlc.backends.llvm.executable import build

        start = time.perf_counter()
        plan = self.ctx.fusion_plan if self.ctx is not None else None
        groups = plan.node_groups() if plan is not None else None
        arena = self.ctx.memory_plan if self.ctx is not None else None
        schedule = self.ctx.schedule if self.ctx is not None else "naive"
        self.executable = build(self.graph, groups=groups, arena=arena, debug=self.debug,
                                schedule=schedule)
        self.timings["llvm"] = time.perf_counter() - start

    def __call__(self, *args: Any) -> Any:
        if len(args) != len(self.graph.inputs):
            bind_symbols(self.graph, args)  # raises the InputError naming every input
        arrays = [to_runtime_value(a, v.name) for a, v in zip(args, self.graph.inputs)]
        if self.executable is not None:
            outputs = self.executable(*arrays)
        else:
            outputs = run_graph(self.graph, *arrays)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def check_inputs(self, *args: Any) -> dict[str, int]:
        """Validate inputs without running; returns the bound size symbols."""
        arrays = [to_runtime_value(a, v.name) for a, v in zip(args, self.graph.inputs)]
        return bind_symbols(self.graph, arrays if len(args) == len(self.graph.inputs) else args)

    def show(self, stage: str = "graph", schedule: bool = False) -> str:
        """The text of one stage: graph, fused, tensor, llvm (before LLVM's optimizer),
        llvm-opt (after -O3) or asm (machine code). With `schedule`, the tensor stage
        prints each kernel's schedule trace above its scheduled loop nest."""
        if stage not in STAGES:
            raise DLCError(f"unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
        if stage == "graph":
            return str(self.graph)
        if stage == "fused":
            from dlc.passes.graph.fusion_plan import print_fused

            if self.ctx is None or self.ctx.fusion_plan is None:
                raise DLCError("no fusion plan: compile through dlc.compile")
            return print_fused(self.graph, self.ctx.fusion_plan)
        if self.executable is None:
            raise DLCError(f"stage {stage!r} needs target 'llvm' (this model was compiled "
                           f"for {self.target!r})")
        exe = self.executable
        if stage == "tensor":
            if not schedule:
                return "\n".join(str(f) for f in exe.model.funcs)
            parts = []
            for func, trace in zip(exe.model.funcs, exe.model.traces):
                steps = str(trace).strip() if trace is not None and str(trace).strip() else \
                    "(not scheduled)"
                parts.append("# schedule:\n" + "\n".join(f"#   {line}" for line in
                                                           steps.splitlines()) + "\n" + str(func))
            return "\n".join(parts)
        if stage == "llvm":
            return exe.llvm_ir
        if stage == "llvm-opt":
            return str(exe.jit.module)
        return exe.jit.assembly()

    def __repr__(self) -> str:
        return (f"<CompiledModel @{self.graph.name} target={self.target} "
                f"opt_level={self.opt_level}: {len(self.graph.nodes)} nodes>")


def to_runtime_value(x: Any, name: str = "") -> Any:
    """NumPy array (or SparseMatrix) from a NumPy array, torch tensor or Python scalar."""
    if isinstance(x, (np.ndarray, SparseMatrix)):
        return x
    if hasattr(x, "layout") and hasattr(x, "detach"):
        import torch

        from dlc.frontends.torch.importer import tensor_to_numpy

        if x.layout == torch.sparse_coo:
            x = x.detach()
            return SparseMatrix.coo(tensor_to_numpy(x._indices()),
                                    tensor_to_numpy(x._values()), tuple(x.shape))
        if x.layout != torch.strided:
            raise InputError(f"input {name}: torch layout {x.layout} is not supported")
        return tensor_to_numpy(x.detach().contiguous())
    if isinstance(x, (int, float, bool, np.generic)):
        return np.asarray(x)
    raise InputError(f"input {name}: expected a NumPy array or a torch tensor, "
                     f"got {type(x).__name__}")


def describe_inputs(graph: Graph) -> list[str]:
    """`%name: type` for each input (used in error messages and the CLI)."""
    return [f"%{v.name}: {v.type}" for v in graph.inputs]


def is_integer_input(graph: Graph, index: int) -> bool:
    """True when input `index` holds integers (token ids, edge indices) or is sparse."""
    t = graph.inputs[index].type
    return isinstance(t, SparseTensorType) or not t.dtype.is_float


def as_tuple(outputs: Any) -> Sequence[Any]:
    """A model's outputs as a tuple."""
    return outputs if isinstance(outputs, tuple) else (outputs,)
