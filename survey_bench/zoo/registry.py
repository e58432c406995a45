"""The zoo's catalogue: each model family registers its models here.

    @zoo_model("ddpm_unet", paper="...", task="diffusion denoiser", sizes=("tiny", "bench"))
    def ddpm_unet(size: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        ...

A factory returns `(module, example_inputs)` with seeded weights and seeded inputs. It
must be deterministic: the same size gives the same weights and inputs in every process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Factory = Callable[[str], tuple[Any, tuple[Any, ...]]]


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: how to build it and what it is."""

    name: str
    factory: Factory
    paper: str
    task: str
    sizes: tuple[str, ...] = ("tiny", "bench")
    dynamic_shapes: Callable[[], Any] | None = None  # torch.export spec, built lazily
    onnx_exportable: bool = True  # False for the sparse-COO forms
    notes: str = ""
    input_names: tuple[str, ...] = field(default=())


ZOO: dict[str, ZooModel] = {}


def zoo_model(name: str, *, paper: str, task: str, sizes: tuple[str, ...] = ("tiny", "bench"),
              dynamic_shapes: Callable[[], Any] | None = None, onnx_exportable: bool = True,
              notes: str = "", input_names: tuple[str, ...] = ()) -> Callable[[Factory], Factory]:
    """Register a model factory under `name`."""

    def register(factory: Factory) -> Factory:
        assert name not in ZOO, f"zoo model {name} registered twice"
        ZOO[name] = ZooModel(name, factory, paper, task, sizes, dynamic_shapes,
                             onnx_exportable, notes, input_names)
        return factory

    return register
