"""ONNX Runtime on the CPU, from the zoo model's ONNX export: the peer to beat on CPU.

Compile time is the ONNX export (torch.onnx's dynamo exporter plus onnx.checker, through
`zoo.onnx_export.export_onnx`) and the session creation with every graph optimization
enabled. The export always runs inside `prepare`, into a private cache folder, so a file
left in the shared cache by an earlier run never makes the compile time look free. Models
registered with `onnx_exportable=False` (the sparse-COO GCNs: torch.onnx cannot export
`torch.sparse.mm` on a COO tensor) are reported unavailable with the zoo's reason.

Threads: `intra_op_num_threads` is the harness's thread count; the graph runs
sequentially (`inter_op_num_threads = 1`), as PyTorch eager does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from survey_bench.runners.base import Prepared, Runner, Unavailable


class OnnxRuntimeRunner(Runner):
    """`onnxruntime.InferenceSession` on the CPU, ORT_ENABLE_ALL, `threads` intra-op threads."""

    name = "onnxruntime"
    label = "ONNX Runtime"
    packages = ("onnxruntime", "onnx", "onnxscript")

    def __init__(self) -> None:
        self._session: Any = None

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        import numpy as np
        import onnxruntime as ort

        from survey_bench import zoo
        from survey_bench.zoo.onnx_export import export_onnx

        entry = zoo.info(model_name)
        if not entry.onnx_exportable:
            raise Unavailable(f"{model_name} cannot be exported to ONNX"
                              + (f" ({entry.notes})" if entry.notes else ""))
        if not self.size:
            raise RuntimeError("OnnxRuntimeRunner.size is not set: the harness sets it to "
                               "the zoo size before prepare()")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        scratch = tempfile.mkdtemp(prefix="sb-onnx-")
        previous = os.environ.get("DLC_CACHE_DIR")
        os.environ["DLC_CACHE_DIR"] = scratch  # a fresh export, timed as compile time
        try:
            path = export_onnx(model_name, self.size)
            session = ort.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as err:
            raise RuntimeError(f"ONNX Runtime on {model_name} ({self.size}): "
                               f"{type(err).__name__}: {_first_line(err)}") from err
        finally:
            if previous is None:
                os.environ.pop("DLC_CACHE_DIR", None)
            else:
                os.environ["DLC_CACHE_DIR"] = previous
            shutil.rmtree(scratch, ignore_errors=True)  # the session holds the model now
        self._session = session

        names = [i.name for i in session.get_inputs()]
        arrays = [np.ascontiguousarray(_to_array(x)) for x in inputs]
        if len(names) != len(arrays):
            raise RuntimeError(f"ONNX export of {model_name} has {len(names)} inputs "
                               f"({', '.join(names)}) but the model takes {len(arrays)}")
        feeds = dict(zip(names, arrays))

        def call(feed: dict[str, Any]) -> Any:
            return session.run(None, feed)

        def to_numpy(out: Any) -> tuple[Any, ...]:
            return tuple(np.asarray(o) for o in out)

        return Prepared(call, (feeds,), to_numpy, notes="compile = ONNX export + session")

    def cleanup(self) -> None:
        self._session = None


def _to_array(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""
