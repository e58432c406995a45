"""The model zoo: PyTorch models of the surveyed papers, the compiler's workload and benchmark.

    from survey_bench import zoo
    module, inputs = zoo.get("mobileclip", size="tiny")   # seeded weights and inputs
    zoo.names()                                            # every registered model
    zoo.catalogue()                                        # paper, task, parameters, ATen ops

Every model comes in a `tiny` size (for tests: fast even through the NumPy reference
interpreter) and a `bench` size (the paper's architecture, scaled so one eager inference
takes milliseconds to a few hundred); the GCNs also have a PubMed-sized `large`. Factories
are deterministic: the same name and size give the same weights and inputs in every process.
Each model's module docstring names its paper and says what is faithful and what is scaled.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

# Importing a model module registers its models in ZOO.
from survey_bench.zoo import (  # noqa: F401
    aica,
    compositional_gan,
    ddpm_unet,
    easygen,
    gcn,
    kge,
    mobileclip,
    soda,
    uvit,
    vim_mllm,
)
from survey_bench.zoo.registry import ZOO, ZooModel, zoo_model
from survey_bench.zoo.sampling import ddpm_sample
from survey_bench.zoo.vim_mllm import generate

__all__ = ["ZOO", "UnknownModelError", "ZooModel", "catalogue", "ddpm_sample", "dynamic_shapes",
           "export", "generate", "get", "info", "names", "ops_used", "parameter_count",
           "zoo_model"]


class UnknownModelError(KeyError):
    """A zoo name that is not registered; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would print the message's repr, quotes and all
        return str(self.args[0])


def names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(ZOO)


def info(name: str) -> ZooModel:
    """The registry entry of `name` (paper, task, sizes, notes, ...)."""
    if name not in ZOO:
        raise UnknownModelError(f"no zoo model named {name!r}; the zoo has: {', '.join(names())}")
    return ZOO[name]


def get(name: str, size: str = "tiny") -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """Build model `name` at `size`: (module in eval mode, example inputs), seeded."""
    entry = info(name)
    if size not in entry.sizes:
        raise ValueError(f"zoo model {name!r} has no size {size!r}; "
                         f"sizes: {', '.join(entry.sizes)}")
    module, inputs = entry.factory(size)
    return module, tuple(inputs)


def dynamic_shapes(name: str) -> Any:
    """The torch.export `dynamic_shapes` of `name`, or None when every shape is static."""
    entry = info(name)
    return entry.dynamic_shapes() if entry.dynamic_shapes is not None else None


def export(name: str, size: str = "tiny",
           decompose: bool = True) -> torch.export.ExportedProgram:
    """torch.export (strict=False) of `name` at `size`, decomposed to core ATen by default."""
    module, inputs = get(name, size)
    program = torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes(name),
                                  strict=False)
    return program.run_decompositions() if decompose else program


@functools.cache
def ops_used(name: str, size: str = "tiny") -> tuple[str, ...]:
    """The ATen ops (`aten.add.Tensor`, ...) of `name` after export + run_decompositions()."""
    graph = export(name, size).graph
    return tuple(sorted({str(node.target) for node in graph.nodes
                         if node.op == "call_function"
                         and isinstance(node.target, torch._ops.OpOverload)}))


@functools.cache
def parameter_count(name: str, size: str = "bench") -> int:
    """How many parameters `name` has at `size` (buffers such as BN statistics excluded)."""
    module, _ = get(name, size)
    return sum(parameter.numel() for parameter in module.parameters())


def catalogue(with_ops: bool = True) -> list[dict[str, Any]]:
    """One dict per model: name, paper, task, sizes, parameters (at bench size), notes, ops.

    `ops` (with `with_ops`) is the sorted list of ATen ops at tiny size after torch.export
    and run_decompositions(); each is computed on first use and cached, as are parameters.
    """
    entries = []
    for name in names():
        entry = ZOO[name]
        size = "bench" if "bench" in entry.sizes else entry.sizes[-1]
        row: dict[str, Any] = {
            "name": name, "paper": entry.paper, "task": entry.task, "sizes": list(entry.sizes),
            "parameters": parameter_count(name, size), "onnx_exportable": entry.onnx_exportable,
            "notes": entry.notes}
        if with_ops:
            row["ops"] = list(ops_used(name, "tiny"))
        entries.append(row)
    return entries
