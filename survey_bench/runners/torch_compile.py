"""torch.compile with the Inductor backend (default mode): PyTorch's own compiler.

torch.compile is lazy: `torch.compile(module)` only wraps the module and the real work
(Dynamo tracing, Inductor lowering, C++ compilation) happens on the first call. `prepare`
therefore makes that first call itself, so the harness counts compilation as compile time
instead of folding it into the warm-up. Inductor's generated C++ runs its loops with
OpenMP at `torch.get_num_threads()` threads, read when the kernels are compiled, so the
thread count is set before the first call. Compilation starts from an empty Inductor
cache, so the compile time is a cold one however often the survey has run before.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from survey_bench.runners.base import Prepared, Runner, numpy_outputs


class TorchCompileRunner(Runner):
    """`torch.compile(module)` (Inductor, default mode), compiled by one call in `prepare`."""

    name = "torch-compile"
    label = "torch.compile (Inductor)"
    packages = ("torch",)

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        import torch
        from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

        torch.set_num_threads(threads)
        compiled = torch.compile(module.eval(), backend="inductor", mode="default")

        def call(*xs: Any) -> Any:
            with torch.no_grad():
                return compiled(*xs)

        # A private, empty Inductor cache: compile time is a cold compile every time, not
        # a hit in the FX-graph and C++ caches an earlier run left in /tmp.
        scratch = tempfile.mkdtemp(prefix="sb-inductor-")
        try:
            with temporary_cache_dir(scratch):
                call(*inputs)  # the compilation itself: counted as compile time
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise RuntimeError(f"torch.compile failed on {model_name}: "
                               f"{type(err).__name__}: {first[:300]}") from err
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # the kernels are loaded by now
        return Prepared(call, inputs, numpy_outputs,
                        notes="compile = first call, cold Inductor cache")

    def cleanup(self) -> None:
        import torch

        torch._dynamo.reset()
