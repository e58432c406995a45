"""CompiledModel: what `dlc.compile` returns — callable, inspectable, comparable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import DLCError, InputError
from dlc.interpreter import bind_symbols, run_graph
from dlc.ir.graph import Graph
from dlc.ir.types import SparseTensorType
from dlc.sparse import SparseMatrix

TARGETS = ("ref",)
STAGES = ("graph", "fused", "tensor", "llvm", "llvm-opt", "asm")


class CompiledModel:
    """A model compiled for one target; call it on NumPy arrays or torch tensors.

    Returns a NumPy array, or a tuple of arrays when the model has several outputs.
    Inputs are checked (count, rank, shape, dtype) before anything runs.
    """

    def __init__(self, graph: Graph, target: str = "ref", opt_level: int = 0) -> None:
        self.graph = graph
        self.target = target
        self.opt_level = opt_level

    def __call__(self, *args: Any) -> Any:
        arrays = [to_runtime_value(a, v.name) for a, v in zip(args, self.graph.inputs)]
        if len(args) != len(self.graph.inputs):
            bind_symbols(self.graph, args)  # raises the InputError naming every input
        outputs = run_graph(self.graph, *arrays)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def check_inputs(self, *args: Any) -> dict[str, int]:
        """Validate inputs without running; returns the bound size symbols."""
        arrays = [to_runtime_value(a, v.name) for a, v in zip(args, self.graph.inputs)]
        return bind_symbols(self.graph, arrays if len(args) == len(self.graph.inputs) else args)

    def show(self, stage: str = "graph") -> str:
        """The text of one compilation stage (`graph` today; later fused, tensor, llvm, ...)."""
        if stage not in STAGES:
            raise DLCError(f"unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
        if stage == "graph":
            return str(self.graph)
        raise DLCError(f"stage {stage!r} is produced by the optimizing pipeline and the LLVM "
                       f"backend, which this build does not have yet; target {self.target!r} "
                       "shows only 'graph'")

    def __repr__(self) -> str:
        return (f"<CompiledModel @{self.graph.name} target={self.target} "
                f"opt_level={self.opt_level}: {len(self.graph.nodes)} nodes>")


def to_runtime_value(x: Any, name: str = "") -> Any:
    """NumPy array (or SparseMatrix) from a NumPy array, torch tensor or Python scalar."""
    if isinstance(x, (np.ndarray, SparseMatrix)):
        return x
    if hasattr(x, "layout") and hasattr(x, "detach"):
        import torch

        if x.layout == torch.sparse_coo:
            x = x.detach()
            from dlc.frontends.torch.importer import tensor_to_numpy

            return SparseMatrix.coo(tensor_to_numpy(x._indices()),
                                    tensor_to_numpy(x._values()), tuple(x.shape))
        if x.layout != torch.strided:
            raise InputError(f"input {name}: torch layout {x.layout} is not supported")
        from dlc.frontends.torch.importer import tensor_to_numpy

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
