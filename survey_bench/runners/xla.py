"""XLA on the CPU via torchax: the exported program becomes a JAX function, then `jax.jit`.

The module is exported with `torch.export` (static shapes, the same program the other
exporting peers see) and `torchax.export.exported_program_to_jax` turns it into the
program's state (weights, buffers and lifted constants, as JAX arrays) and a pure function
`f(state, args)` that interprets the graph's ATen ops with torchax's JAX lowerings;
`jax.jit` traces it once and XLA compiles the whole graph. `prepare` makes the first call
(export, tracing and XLA compilation), so the harness counts it as compile time, and every
call blocks until the result is ready (JAX dispatches asynchronously; timing the dispatch
alone would flatter XLA).

Why the exported program and not `torchax.extract_jax(module)`: `extract_jax` runs the
module's Python code on torchax tensors and only converts the `state_dict`, so a tensor
the model makes or keeps outside it (a non-persistent buffer, a constant built in
`forward`) meets torchax tensors and fails ("mixed math between XLATensor and
torch.Tensor": 6 of the 18 zoo models). `torch.export` lifts every such tensor into the
program's state. Three ATen ops the zoo's programs keep have no torchax lowering
(`unbind.int`, `index_add`, `upsample_nearest2d.vec`): `EXTRA_DECOMPOSITIONS` rewrites
them into ops that have one.

torchax 0.0.13 and torch 2.13 (DESIGN.md section 9):
* torchax does not import as is: at import it builds tables keyed by named-tensor
  overloads (`aten.prod.dim_Dimname`, ...) that torch has dropped. While it imports and
  builds its environment, a missing overload whose name contains "name" is aliased to its
  packet's first overload; torchax uses those entries only as dictionary keys.
* its decomposition table lists ATen ops that torch 2.13's `run_decompositions` refuses
  to take as user decompositions (`aten.std` and other CompositeImplicitAutograd ops:
  "This should be a custom op"); torch decomposes those by default anyway, so they are
  left out of the table while the program is converted (`torchax_decompositions`).
Importing torchax also changes PyTorch for the whole process (it renames the privateuse1
backend to "jax"; torch.compile fails afterwards), which is one more reason the harness
runs every runner in a fresh worker.

Threads: XLA's CPU client has no thread-count option; it sizes its pool from the CPUs the
process may run on. When `threads` is below that, the runner narrows the process's CPU
affinity while JAX's CPU client starts, then restores it. Once the client exists (a
second model in one process) its pool size is fixed; the harness's spawned workers
always start fresh. JAX's default 32-bit mode turns int64 inputs (indices) into int32.
Sparse inputs (adagcn_sparse, gcn_sparse) are not converted: JAX arrays are dense.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from survey_bench.runners.base import Prepared, Runner, Unavailable


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
        import torch

        start_cpu_client(threads)
        torchax = import_torchax()

        if any(getattr(x, "is_sparse", False) or getattr(x, "layout", None) not in
               (None, torch.strided) for x in inputs):
            raise Unavailable("XLA via torchax takes dense arrays; this model's input is a "
                              "sparse tensor")
        args = tuple(jax.numpy.asarray(_to_array(x)) for x in inputs)
        try:
            state, function = exported_to_jax(torchax, module, inputs)
            jitted = jax.jit(function)

            def call(*xs: Any) -> Any:
                return jax.block_until_ready(jitted(state, xs))

            call(*args)  # tracing and XLA compilation: counted as compile time
        except Exception as err:
            text = str(err).strip()
            first = text.splitlines()[0][:300] if text else ""
            raise RuntimeError(f"torchax/XLA failed on {model_name}: "
                               f"{type(err).__name__}: {first}") from err

        def to_numpy(out: Any) -> tuple[Any, ...]:
            return tuple(np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(out))

        return Prepared(call, args, to_numpy, notes="compile = torch.export + trace + XLA compile")


def exported_to_jax(torchax: Any, module: Any, inputs: tuple[Any, ...]) -> tuple[Any, Any]:
    """`torch.export` the module and convert the program: (state, `f(state, args)`)."""
    import torch
    import torchax.export

    program = torch.export.export(module.eval(), tuple(inputs), strict=False)
    with torchax_decompositions(torchax):
        return torchax.export.exported_program_to_jax(program)


@contextlib.contextmanager
def torchax_decompositions(torchax: Any) -> Iterator[None]:
    """torchax's decomposition table as torch 2.13 accepts it, plus ours, for the block.

    `exported_program_to_jax` reads the module global `torchax.decompositions.DECOMPOSITIONS`
    when it runs; the table is swapped for the block and restored after it.
    """
    import torchax.decompositions as table
    from torch.export.exported_program import _is_preservable_cia_op

    original = table.DECOMPOSITIONS
    kept = {op: fn for op, fn in original.items()
            if not (_is_preservable_cia_op(op) and op.name().startswith("aten"))}
    table.DECOMPOSITIONS = {**kept, **extra_decompositions()}
    try:
        yield
    finally:
        table.DECOMPOSITIONS = original


def extra_decompositions() -> dict[Any, Any]:
    """Rewrites of the ATen ops the zoo's programs keep that torchax cannot lower."""
    import torch
    from torch._decomp import get_decompositions

    aten = torch.ops.aten

    def unbind(x: Any, dim: int = 0) -> list[Any]:
        return [aten.select.int(x, dim, i) for i in range(x.shape[dim])]

    def index_add(x: Any, dim: int, index: Any, source: Any, alpha: Any = 1) -> Any:
        # out[index[i]] += alpha * source[i] along `dim`: an accumulating index_put
        dim = dim % max(x.dim(), 1)
        src = torch.movedim(source, dim, 0) if source.dim() else source
        if alpha != 1:
            src = src * alpha
        out = aten.index_put.default(torch.movedim(x, dim, 0), [index], src, True)
        return torch.movedim(out, 0, dim)

    return {aten.unbind.int: unbind, aten.index_add.default: index_add,
            **get_decompositions([aten.upsample_nearest2d.vec])}


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
