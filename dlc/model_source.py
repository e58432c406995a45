"""Resolve a MODEL argument of the CLI: `path/to/file.py:factory`, a zoo name, or `.onnx`.

A factory returns `(module, example_inputs)` or `(module, example_inputs, dynamic_shapes)`.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlc.errors import DLCError


@dataclass
class ModelSource:
    """A model to compile, with its example inputs and where it came from."""

    label: str
    module: Any  # the source framework's model (a torch.nn.Module, or an OnnxModel)
    example_inputs: tuple[Any, ...]
    dynamic_shapes: Any = None


def load_model(spec: str, size: str = "tiny") -> ModelSource:
    """Load the model that a CLI MODEL argument names."""
    if spec.endswith(".onnx"):  # ONNX (issue 5): ONNX Runtime runs the source model
        from dlc.frontends.onnx.model import OnnxModel

        model = OnnxModel.load(spec)
        return ModelSource(spec, model, model.example_inputs())
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        return _load_factory(spec)
    try:
        from survey_bench import zoo
    except ImportError as err:
        raise DLCError(f"{spec!r} is not a file.py:factory and the zoo cannot be imported "
                       f"({err})") from None
    if spec not in zoo.names():
        raise DLCError(f"unknown model {spec!r}: give path/to/file.py:factory, an .onnx path, "
                       f"or a zoo name ({', '.join(zoo.names())})")
    module, inputs = zoo.get(spec, size)
    return ModelSource(f"{spec} ({size})", module, tuple(inputs), zoo.dynamic_shapes(spec))


def _load_factory(spec: str) -> ModelSource:
    path_text, factory_name = spec.rsplit(":", 1)
    path = Path(path_text)
    if not path.is_file():
        raise DLCError(f"{path}: no such file")
    mod_name = f"dlc_user_model_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    assert loader_spec and loader_spec.loader
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    loader_spec.loader.exec_module(module)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise DLCError(f"{path} has no callable {factory_name!r}")
    result = factory()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise DLCError(f"{spec} must return (module, example_inputs) or "
                       "(module, example_inputs, dynamic_shapes)")
    dynamic = result[2] if len(result) == 3 else None
    return ModelSource(spec, result[0], tuple(result[1]), dynamic)
