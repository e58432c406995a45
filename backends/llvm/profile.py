"""Per-kernel profile of a compiled model: where an inference spends its time.

The model is re-emitted with `emit_module(profile=True)`: the entry reads the CPU's cycle
counter (`llvm.readcyclecounter`, RDTSC on x86) around each kernel call and sums the cycles
per kernel in a global array. Nothing else changes — the same kernels, schedules and
memory plan — so the profile describes the model as it runs. Kernels run one after the
other (a parallel loop joins before its kernel returns), so cycles convert to seconds by
a tick rate measured against `time.perf_counter`.

    prof = profile_model(compiled, x, repeat=20)
    print(prof.table(top=15))
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass
from typing import Any

from dlc.backends.llvm.executable import PROFILE_SYMBOL, Executable, emit_module
from dlc.backends.llvm.jit import compile_ir
from dlc.interpreter import bind_symbols
from dlc.ir.graph import Node
from dlc.ir.symbolic import evaluate

MATMUL_OPS = ("linalg.matmul", "linalg.batch_matmul", "linalg.linear")


@dataclass
class KernelTime:
    """One kernel's share of an inference."""

    name: str
    label: str  # the graph nodes it computes
    seconds: float  # per inference
    flops: float  # multiply-adds x 2 of its GEMM/conv/attention nodes (0 when none)

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 and self.flops else 0.0


@dataclass
class Profile:
    """Per-kernel times of one model, in the order the kernels run."""

    kernels: list[KernelTime]
    wall: float  # seconds per inference, measured around the whole call

    def table(self, top: int = 20) -> str:
        """The `top` most expensive kernels, with their share and GFLOP/s."""
        total = sum(k.seconds for k in self.kernels) or 1.0
        rows = sorted(self.kernels, key=lambda k: -k.seconds)[:top]
        lines = [f"{len(self.kernels)} kernels, {self.wall * 1e3:.3f} ms per inference",
                 f"{'ms':>8} {'%':>5} {'GFLOP/s':>8}  kernel"]
        for k in rows:
            rate = f"{k.gflops:8.1f}" if k.flops else f"{'':8}"
            lines.append(f"{k.seconds * 1e3:8.3f} {100 * k.seconds / total:5.1f} {rate}  "
                         f"{k.name}: {k.label}")
        return "\n".join(lines)


def node_flops(node: Node, bindings: dict[str, int]) -> float:
    """2 x multiply-adds of a GEMM, convolution or attention node; 0 for other ops."""
    def numel(value: Any) -> float:
        return math.prod(float(evaluate(d, bindings)) for d in value.type.shape)

    def dim(value: Any, axis: int) -> float:
        return float(evaluate(value.type.shape[axis], bindings))

    name = node.op.name
    if name in MATMUL_OPS:
        return 2 * numel(node.outputs[0]) * dim(node.inputs[0], -1)
    if name.startswith("nn.conv_transpose"):
        weight = node.inputs[1]
        return 2 * numel(node.inputs[0]) * numel(weight) / dim(weight, 0)
    if name.startswith("nn.conv"):
        weight = node.inputs[1]
        return 2 * numel(node.outputs[0]) * numel(weight) / dim(weight, 0)
    if name == "nn.sdpa":
        q, k = node.inputs[0], node.inputs[1]
        return 4 * numel(q) * dim(k, -2)
    return 0.0


def _seconds_per_tick(exe: Executable, span: float = 0.05) -> float:
    """Calibrate the cycle counter (constant-rate on current x86) against the wall clock."""
    now = ctypes.CFUNCTYPE(ctypes.c_int64)(exe.jit.address(PROFILE_SYMBOL + "_now"))
    t0, c0 = time.perf_counter(), now()
    while time.perf_counter() - t0 < span:
        pass
    t1, c1 = time.perf_counter(), now()
    return (t1 - t0) / max(c1 - c0, 1)


def profile_model(compiled: Any, *args: Any, repeat: int = 10, warmup: int = 2) -> Profile:
    """Run a `CompiledModel` (target llvm) `repeat` times with cycle counters per kernel."""
    from dlc.compiled import to_runtime_value

    base: Executable = compiled.executable
    if base is None:
        raise ValueError("profiling needs a model compiled for target 'llvm'")
    model = base.model
    text = str(emit_module(model, compiled.debug, profile=True))
    exe = Executable(model, text, compile_ir(text), base.arena)
    arrays = [to_runtime_value(a, v.name) for a, v in zip(args, model.graph.inputs)]
    for _ in range(warmup):
        exe(*arrays)
    n = len(model.groups)
    ticks = (ctypes.c_int64 * n).from_address(
        exe.jit.engine.get_global_value_address(PROFILE_SYMBOL))
    ctypes.memset(ticks, 0, ctypes.sizeof(ticks))
    start = time.perf_counter()
    for _ in range(repeat):
        exe(*arrays)
    wall = (time.perf_counter() - start) / repeat
    per_tick = _seconds_per_tick(exe)
    bindings = bind_symbols(model.graph, arrays)
    kernels = []
    for g, t in zip(model.groups, ticks):
        flops = sum(node_flops(node, bindings) for node in g.nodes)
        kernels.append(KernelTime(g.func.name, g.func.comment.removeprefix("graph nodes: "),
                                  t / repeat * per_tick, flops))
    return Profile(kernels, wall)
