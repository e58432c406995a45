"""The public entry points: `dlc.import_model` and `dlc.compile`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from dlc.compiled import TARGETS, CompiledModel
from dlc.errors import DLCError, FrontendError
from dlc.ir.graph import Graph


def import_model(model: Any, example_inputs: Sequence[Any] | None = None,
                 dynamic_shapes: Any = None) -> Graph:
    """Import a model into the graph IR.

    `model` is a `torch.nn.Module` (with `example_inputs`, and optionally torch.export's
    `dynamic_shapes`), a `torch.export.ExportedProgram`, an ONNX model (a `ModelProto`,
    or the path of an `.onnx` file), or a `Graph` (returned as is).
    """
    if isinstance(model, Graph):
        return model
    # -- ONNX (issue 5): a ModelProto, an .onnx path, or the CLI's OnnxModel --------------
    if isinstance(model, (str, os.PathLike)) or type(model).__name__ in ("ModelProto",
                                                                       "OnnxModel"):
        from dlc.frontends.onnx import import_onnx

        if type(model).__name__ == "OnnxModel":
            return import_onnx(model.proto, base_dir=model.base_dir)
        return import_onnx(model)
    kind = type(model).__name__
    if kind == "ExportedProgram":
        from dlc.frontends.torch import import_exported_program

        return import_exported_program(model.run_decompositions())
    if hasattr(model, "forward") and hasattr(model, "parameters"):
        if example_inputs is None:
            raise FrontendError("a torch.nn.Module needs example_inputs to be exported")
        from dlc.frontends.torch import cache, import_module

        inputs = tuple(example_inputs)
        key = cache.import_key(model, inputs, dynamic_shapes) if cache.cache_root() else None
        if key is not None:
            cached = cache.load(key, model)
            if cached is not None:
                return cached
        graph = import_module(model, inputs, dynamic_shapes=dynamic_shapes)
        if key is not None:
            cache.store(key, graph)
        return graph
    raise FrontendError(f"cannot import a {kind}: pass a torch.nn.Module, an ExportedProgram "
                        "or a dlc Graph")


def compile(model: Any, example_inputs: Sequence[Any] | None = None,  # noqa: A001
            dynamic_shapes: Any = None, target: str = "llvm", opt_level: int = 3,
            disable: Sequence[str] = (), debug: bool = False,
            instruments: Sequence[Any] = ()) -> CompiledModel:
    """Compile a model for `target` ("ref": the NumPy interpreter; "llvm": native code).

    The graph passes of `opt_level` run first (minus the passes named in `disable`,
    kebab-case or snake_case); `debug` verifies the IR after every pass and bounds-checks
    every load and store in generated code; `instruments` are pass instruments
    (`PrintAfter`, `DumpDir`, `Timing`) from `dlc.passes.manager`.
    """
    from dlc.passes.manager import PassContext, run_pipeline

    if target not in TARGETS:
        raise DLCError(f"unknown target {target!r}; available targets: {', '.join(TARGETS)}")
    if opt_level not in (0, 1, 2, 3):
        raise DLCError(f"opt_level must be 0, 1, 2 or 3, not {opt_level!r}")
    source = import_model(model, example_inputs, dynamic_shapes)
    ctx = PassContext(instruments=list(instruments), debug=debug)
    start = time.perf_counter()
    graph = run_pipeline(source, opt_level, tuple(disable), ctx)
    passes_s = time.perf_counter() - start
    compiled = CompiledModel(graph, target=target, opt_level=opt_level, ctx=ctx, source=source,
                             debug=debug)
    compiled.timings["passes"] = passes_s
    return compiled
