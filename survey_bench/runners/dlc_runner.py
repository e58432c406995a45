"""dlc itself, for each target and opt level (and with passes disabled, for ablations)."""

from __future__ import annotations

from typing import Any

from survey_bench.runners.base import Prepared, Runner, numpy_outputs


class DLCRunner(Runner):
    """`dlc.compile(module, inputs, target=..., opt_level=..., disable=...)`."""

    packages = ("llvmlite",)

    def __init__(self, target: str = "llvm", opt_level: int = 3,
                 disable: tuple[str, ...] = ()) -> None:
        self.target = target
        self.opt_level = opt_level
        self.disable = disable
        suffix = f"-no-{'-'.join(disable)}" if disable else ""
        self.name = f"dlc-{target}-O{opt_level}{suffix}"
        self.label = f"dlc {target} O{opt_level}" + (f" without {', '.join(disable)}"
                                                     if disable else "")

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        import dlc
        from dlc.compiled import to_runtime_value
        from survey_bench import zoo

        if hasattr(dlc, "set_num_threads"):
            dlc.set_num_threads(threads)
        compiled = dlc.compile(module, inputs, zoo.dynamic_shapes(model_name),
                               target=self.target, opt_level=self.opt_level,
                               disable=self.disable)
        arrays = tuple(to_runtime_value(x) for x in inputs)
        describe = (lambda: kernel_summary(compiled, arrays)) if self.target == "llvm" else None
        return Prepared(compiled, arrays, numpy_outputs, describe=describe)


def kernel_summary(compiled: Any, arrays: tuple[Any, ...]) -> str:
    """The GFLOP/s of the largest GEMM-like and conv kernels (by FLOPs), from
    `dlc.backends.llvm.profile` (cycle counters around each kernel call)."""
    from dlc.backends.llvm.profile import profile_model

    prof = profile_model(compiled, *arrays, repeat=5)
    groups = compiled.executable.model.groups
    parts = []
    for kind, test in (("GEMM", lambda ops: not any(o.startswith("nn.conv") for o in ops)),
                       ("conv", lambda ops: any(o.startswith("nn.conv") for o in ops))):
        best = max(((k, g) for k, g in zip(prof.kernels, groups)
                    if k.flops and test({n.op.name for n in g.nodes})),
                   key=lambda kg: kg[0].flops, default=None)
        if best is not None:
            k = best[0]
            parts.append(f"largest {kind} {k.name} {k.flops / 1e9:.3g} GFLOP at "
                         f"{k.gflops:.0f} GFLOP/s")
    return ", ".join(parts)
