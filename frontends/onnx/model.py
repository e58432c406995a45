"""OnnxModel: an ONNX model as the CLI and `dlc.compile` handle it.

It holds the ModelProto and the folder of its external data, makes example inputs from
the input types (seeded; a dynamic dimension gets size 1, as ONNX's backend runner
does), and runs the model with ONNX Runtime when called, so that `dlc run model.onnx`
can compare dlc's result with the source framework's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlc.errors import DLCError
from dlc.frontends.onnx.dtypes import from_onnx
from dlc.frontends.onnx.importer import load_model


class OnnxModel:
    """An ONNX model with where it came from; callable through ONNX Runtime."""

    def __init__(self, proto: Any, base_dir: Path | None = None, label: str = "") -> None:
        self.proto = proto
        self.base_dir = base_dir
        self.label = label or proto.graph.name or "onnx model"

    @classmethod
    def load(cls, path: str | Path) -> OnnxModel:
        """Read an .onnx file (its external data stays beside it until import)."""
        proto, folder = load_model(path)
        return cls(proto, folder, str(path))

    def input_names(self) -> list[str]:
        """Names of the graph inputs that are not initializers."""
        init = {t.name for t in self.proto.graph.initializer}
        return [i.name for i in self.proto.graph.input if i.name not in init]

    def example_inputs(self, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Seeded inputs of the declared types: floats from N(0, 1), integers in [0, 4),
        bools at random; a dimension without a fixed size is 1."""
        rng = np.random.default_rng(seed)
        init = {t.name for t in self.proto.graph.initializer}
        out = []
        for info in self.proto.graph.input:
            if info.name in init:
                continue
            tt = info.type.tensor_type
            dtype = from_onnx(tt.elem_type, f"input {info.name!r}")
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
            if dtype.is_float:
                value = rng.standard_normal(shape).astype(dtype.numpy)
            elif dtype.value == "bool":
                value = rng.random(shape) < 0.5
            else:
                value = rng.integers(0, 4, size=shape).astype(dtype.numpy)
            out.append(value)
        return tuple(out)

    def __call__(self, *inputs: Any) -> tuple[np.ndarray, ...]:
        """Run the model with ONNX Runtime (the reference `dlc run` compares with)."""
        try:
            import onnxruntime
        except ImportError:
            raise DLCError("running an ONNX model for comparison needs onnxruntime "
                           "(pip install dlc[bench])") from None
        from dlc.testing import to_numpy

        if self.base_dir is not None:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(self.proto, str(self.base_dir))
            self.base_dir = None
        session = onnxruntime.InferenceSession(self.proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        feeds = {n: to_numpy(x) for n, x in zip(self.input_names(), inputs)}
        return tuple(session.run(None, feeds))

    def __repr__(self) -> str:
        return f"<OnnxModel {self.label}>"
