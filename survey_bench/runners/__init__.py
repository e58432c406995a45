"""The compilers survey_bench compares, one module per peer; `make_runner(spec)` by name.

Specs: `eager`, `torch-compile`, `onnxruntime`, `tvm-untuned`, `tvm-tuned`, `xla`, and
dlc as `dlc-<target>-O<level>` with optional `-no-<pass>` suffixes joined by `+`
(`dlc-llvm-O3-no-fuse+plan-memory`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from survey_bench.runners.base import Runner

PEERS: dict[str, tuple[str, str]] = {
    "eager": ("survey_bench.runners.eager", "EagerRunner"),
    "torch-compile": ("survey_bench.runners.torch_compile", "TorchCompileRunner"),
    "onnxruntime": ("survey_bench.runners.onnxruntime", "OnnxRuntimeRunner"),
    "tvm-untuned": ("survey_bench.runners.tvm", "TVMUntunedRunner"),
    "tvm-tuned": ("survey_bench.runners.tvm", "TVMTunedRunner"),
    "xla": ("survey_bench.runners.xla", "XLARunner"),
}

DEFAULT_RUNNERS = ("eager", "torch-compile", "onnxruntime", "xla", "tvm-untuned", "tvm-tuned",
                   "dlc-llvm-O3")


def make_runner(spec: str) -> Runner:
    """The runner a spec names (ValueError listing the specs when it names none)."""
    if spec.startswith("dlc-"):
        from survey_bench.runners.dlc_runner import DLCRunner

        parts = spec.split("-")
        if len(parts) < 3 or not parts[2].startswith("O"):
            raise ValueError(f"dlc runner spec {spec!r}: expected dlc-<target>-O<level>")
        disable: tuple[str, ...] = ()
        if "-no-" in spec:
            disable = tuple(spec.split("-no-", 1)[1].split("+"))
        return DLCRunner(parts[1], int(parts[2][1:]), disable)
    if spec not in PEERS:
        raise ValueError(f"unknown runner {spec!r}; runners: {', '.join(PEERS)}, "
                         "dlc-<target>-O<level>[-no-<pass>+<pass>]")
    module_name, cls_name = PEERS[spec]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        return _Missing(spec, f"runner module {module_name} is missing: {err}")
    factory: Callable[[], Runner] = getattr(module, cls_name)
    return factory()


class _Missing(Runner):
    def __init__(self, name: str, reason: str) -> None:
        self.name = self.label = name
        self.reason = reason

    def unavailable(self) -> str | None:
        return self.reason
