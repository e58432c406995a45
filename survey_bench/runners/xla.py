"""XLA on the CPU via torchax: the PyTorch module becomes a JAX function, then `jax.jit`.

`torchax.extract_jax(module)` returns the module's weights as JAX arrays and a pure
function `f(weights, args)` that runs the module's PyTorch code on JAX arrays; `jax.jit`
traces it once and XLA compiles the whole graph. `prepare` makes the first call (tracing
plus XLA compilation), so the harness counts it as compile time, and every call blocks
until the result is ready (JAX dispatches asynchronously; timing the dispatch alone would
flatter XLA).

torchax 0.0.13 does not import with torch 2.13: at import it builds tables keyed by
named-tensor overloads (`aten.prod.dim_Dimname`, ...) that torch has dropped. While it
imports and builds its environment, a missing overload whose name contains "name" is
aliased to its packet's first overload; torchax uses those entries only as dictionary keys
(DESIGN.md section 9). Importing torchax also changes PyTorch for the whole process (it
renames the privateuse1 backend to "jax"; torch.compile fails afterwards), which is one
more reason the harness runs every runner in a fresh worker.

Threads: XLA's CPU client has no thread-count option; it sizes its pool from the CPUs the
process may run on. When `threads` is below that, the runner narrows the process's CPU
affinity while JAX's CPU client starts, then restores it. Once the client exists (a
second model in one process) its pool size is fixed; the harness's spawned workers
always start fresh. JAX's default 32-bit mode turns int64 inputs (indices) into int32.
"""

from __future__ import annotations

import os
from typing import Any

from survey_bench.runners.base import Prepared, Runner


class XLARunner(Runner):
    """torchax `extract_jax` + `jax.jit` on the CPU; compile time includes the first call."""

    name = "xla"
    label = "XLA via torchax"
    packages = ("jax", "jaxlib", "torchax")

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import numpy as np

        start_cpu_client(threads)
        torchax = import_torchax()

        weights, function = torchax.extract_jax(module.eval())
        jitted = jax.jit(function)
        args = tuple(jax.numpy.asarray(_to_array(x)) for x in inputs)

        def call(*xs: Any) -> Any:
            return jax.block_until_ready(jitted(weights, xs))

        try:
            call(*args)  # tracing and XLA compilation: counted as compile time
        except Exception as err:
            text = str(err).strip()
            first = text.splitlines()[0][:300] if text else ""
            raise RuntimeError(f"torchax/XLA failed on {model_name}: "
                               f"{type(err).__name__}: {first}") from err

        def to_numpy(out: Any) -> tuple[Any, ...]:
            return tuple(np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(out))

        return Prepared(call, args, to_numpy, notes="compile = trace + XLA compile")


def import_torchax() -> Any:
    """`import torchax` and its default environment, aliasing the overloads torch dropped.

    torchax looks up named-tensor overloads (`aten.prod.dim_Dimname`, `aten.all.dimname`)
    both at import and when it builds its environment. While it does, a missing overload
    whose name contains "name" is aliased (set on its packet, so later look-ups find it
    too) to the packet's first overload; torchax only uses them as dictionary keys.
    """
    import torch._ops

    packet = torch._ops.OpOverloadPacket
    original = packet.__getattr__

    def lenient(self: Any, key: str) -> Any:
        try:
            return original(self, key)
        except AttributeError:
            if key.startswith("__") or "name" not in key.lower() or not self.overloads():
                raise
            alias = original(self, self.overloads()[0])
            setattr(self, key, alias)
            return alias

    packet.__getattr__ = lenient  # type: ignore[method-assign]
    try:
        import torchax

        torchax.default_env()
    finally:
        packet.__getattr__ = original  # type: ignore[method-assign]
    return torchax


def start_cpu_client(threads: int) -> None:
    """Start JAX's CPU client with a `threads`-thread pool (no-op once it has started).

    XLA sizes its pool from the CPUs the process may use, so the affinity is narrowed to
    `threads` CPUs while the client starts and restored afterwards: the pool keeps its
    size, and the rest of the process (PyTorch) keeps every CPU.
    """
    import jax

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    narrow = 0 < threads < len(allowed)
    if narrow:
        os.sched_setaffinity(0, sorted(allowed)[:threads])
    try:
        jax.devices("cpu")
    finally:
        if narrow:
            os.sched_setaffinity(0, allowed)


def _to_array(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
