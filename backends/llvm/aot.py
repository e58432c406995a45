"""Ahead-of-time compilation: a compiled model as a shared library, a C header and weights.

    write_library(compiled, "out/model.so")   # or: dlc compile MODEL -o out/model.so

writes three files that run the model from C without Python:

    model.so       the optimized LLVM module (every kernel and `dlc_entry`, built for this
                   host's CPU) as an object, linked by the system C compiler with a small
                   generated C wrapper: `cc -shared -fPIC ... -lgomp -lm`
    model.h        the C API, and every input's and output's name, dtype and shape
    model.weights  the constants, in slot order (format below)

The C API (all in model.h; `dlc_model_strerror(status)` explains a status):

    dlc_model* m = dlc_model_load("model.weights");  // NULL path: next to model.so
    if (!m) fprintf(stderr, "%s\\n", dlc_model_last_error());
    int status = dlc_model_run(m, inputs, outputs);  // const void* const*, void* const*
    int status = dlc_model_run_with_sizes(m, sizes, inputs, outputs);  // size symbols
    dlc_model_free(m);

`inputs[i]` and `outputs[i]` point at dense row-major buffers the caller owns
(`dlc_model_inputnbytes(i, sizes)` bytes); outputs must not overlap the inputs. The status
is 0 (DLC_OK), the 1-based index of the kernel whose debug bounds check failed (a model
compiled with `debug=True`), or a negative DLC_ERR_* code. A handle holds the weights,
the arena and the slot table: runs on one handle must not overlap; use one handle per
thread. `dlc_model_set_num_threads(n)` sets the parallel loops' thread count (every handle).

Shapes: static shapes get a fixed arena, allocated at load. With size symbols (a batch
`N`), `sizes` holds one value per symbol in `DLC_MODEL_SIZE_NAMES` order; the generated
C evaluates the memory plan's SymPy offsets (`c_expr`) and (re)allocates the arena when
the sizes change. The caller vouches that its buffers match the sizes. Sparse inputs,
outputs, intermediates and constants are refused (`AOTError`): the library takes dense
buffers only.

The weights file (all integers little-endian):

    offset  bytes      field
    0       8          magic b"DLCWGHTS"
    8       4          version: u32, 1
    12      4          count: u32, the number of constants
    16      8          fingerprint: u64 over the graph name, dtypes and shapes; the library
                       refuses a file written for another model
    24      16*count   per constant, in slot order: offset (u64, from the file start, a
                       multiple of 64) and nbytes (u64)
    ...                the data, row-major, each at its offset, zero-padded between
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
import numpy as np
import sympy

from dlc.backends.llvm.aot_c import render_header, render_wrapper
from dlc.backends.llvm.jit import host_target_machine, optimize
from dlc.errors import AOTError
from dlc.ir.graph import Constant, Value
from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType
from dlc.passes.graph.plan_memory import nbytes
from dlc.runtime import NUM_THREADS_SYMBOL  # a parallel module's thread count (0: default)

MAGIC = b"DLCWGHTS"
VERSION = 1
HEADER = struct.Struct("<8sIIQ")  # magic, version, count, fingerprint
ENTRY = struct.Struct("<QQ")  # offset, nbytes
ALIGN = 64
LINK_LIBS = ("-lgomp", "-lm", "-ldl")  # OpenMP runtime (parallel loops), libm, dladdr
_C_INT = {"i32": "int32_t", "i64": "int64_t"}


@dataclass(frozen=True)
class AOTArtifacts:
    """The files `write_library` wrote."""

    library: Path
    header: Path
    weights: Path

    @property
    def files(self) -> tuple[Path, Path, Path]:
        return self.library, self.header, self.weights

    def describe(self) -> str:
        """One line per file: its path and size."""
        return "\n".join(f"{p}  ({p.stat().st_size:,} bytes)" for p in self.files)


@dataclass(frozen=True)
class Port:
    """An input or output as the C API sees it."""

    name: str
    type: TensorType
    kind: str  # "input"; outputs: "slot" (the kernels write it) or "copy" (of `slot`, an
    # input, a weight or an earlier output, after the run)
    slot: int


@dataclass
class Layout:
    """How the library fills the slot table of `dlc_entry`."""

    name: str
    symbols: list[str]
    num_slots: int
    inputs: list[Port]
    outputs: list[Port]
    weights: list[tuple[str, np.ndarray, int]]  # name, data, slot; in slot order
    arena: list[tuple[int, Dim, str]]  # slot, byte offset, buffer name
    arena_bytes: Dim
    kernels: list[str]  # what status k > 0 reports
    threads_ctype: str | None = None  # the C type of the module's NUM_THREADS_SYMBOL

    @property
    def fingerprint(self) -> int:
        key = "|".join([self.name, *(f"{a.dtype}{list(a.shape)}" for _, a, _ in self.weights)])
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def write_library(compiled: Any, path: str | os.PathLike[str],
                  keep_sources: bool = False) -> AOTArtifacts:
    """Write `compiled` (a `CompiledModel` for target "llvm") as `path` (model.so), with
    `model.h` and `model.weights` next to it; `keep_sources` also keeps `model.o` and
    `model_api.c`."""
    library = Path(path)
    if library.suffix in (".h", ".weights", ".c", ".o"):
        raise AOTError(f"{library}: the library path needs another suffix (e.g. .so)")
    header, weights = library.with_suffix(".h"), library.with_suffix(".weights")
    cc = c_compiler()
    layout = plan_layout(compiled)
    library.parent.mkdir(parents=True, exist_ok=True)
    obj, layout.threads_ctype = emit_object(compiled.executable.llvm_ir)
    write_weights(layout, weights)
    header.write_text(render_header(layout, library.name, weights.name))
    source = render_wrapper(layout, header.name, weights.name)
    with tempfile.TemporaryDirectory(prefix="dlc-aot-") as tmp:
        tmp_dir = Path(tmp) if not keep_sources else library.parent
        stem = library.stem
        obj_path, c_path = tmp_dir / f"{stem}.o", tmp_dir / f"{stem}_api.c"
        obj_path.write_bytes(obj)
        c_path.write_text(source)
        link(cc, [c_path, obj_path], library, include=header.parent)
    return AOTArtifacts(library, header, weights)


def c_compiler() -> str:
    """The system C compiler: `$CC`, else `cc`, `gcc` or `clang` on the PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return found
    raise AOTError("no C compiler found (set CC, or install cc/gcc/clang): the library is "
                   "linked by the system C compiler")


def emit_object(llvm_ir: str) -> tuple[bytes, str | None]:
    """The optimized module as an ELF object for this host (PIC), every symbol hidden so
    that two models in one process never bind each other's `dlc_entry`; and the C type of
    its thread-count global (None when it has none)."""
    module = optimize(llvm_ir)
    threads = None
    for gv in [*module.functions, *module.global_variables]:
        if not gv.is_declaration and gv.linkage == llvm.Linkage.external:
            gv.visibility = "hidden"
        if gv.name == NUM_THREADS_SYMBOL and not gv.is_declaration and not gv.is_function:
            threads = _C_INT.get(str(gv.global_value_type))
            if threads is None:
                raise AOTError(f"@{NUM_THREADS_SYMBOL} has type {gv.global_value_type}; the "
                               "library can set an i32 or i64 thread count")
    return host_target_machine().emit_object(module), threads


def link(cc: str, sources: Sequence[Path], library: Path, include: Path) -> None:
    """`cc -shared -fPIC` the wrapper and the object into `library`; undefined symbols
    fail here, not when the library is loaded."""
    cmd = [cc, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", f"-I{include}",
           "-o", str(library), *map(str, sources), "-Wl,--no-undefined", "-Wl,-z,noexecstack",
           *LINK_LIBS]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AOTError(f"linking {library.name} failed ({' '.join(cmd)}):\n"
                       f"{done.stderr.strip()[-4000:]}")


# -- the slot layout ---------------------------------------------------------------------


def plan_layout(compiled: Any) -> Layout:
    """Classify every slot of the executable: input, weight, arena slice or output."""
    exe = getattr(compiled, "executable", None)
    if exe is None:
        raise AOTError(f"a library needs a model compiled for target 'llvm' (this one is "
                       f"{getattr(compiled, 'target', '?')!r}): dlc.compile(..., "
                       "target='llvm')")
    model = exe.model
    graph, slots, names = model.graph, model.slots, model.names
    for key in slots:
        if not isinstance(key, Value) or not isinstance(key.type, TensorType):
            raise AOTError(f"@{graph.name}: {_describe(model, key)} is sparse; an AOT library "
                           "takes and returns dense buffers only (densify the sparse values, "
                           "or call the JIT-compiled model from Python)")
    inputs = [Port(v.name, v.type, "input", slots[v]) for v in graph.inputs]
    weights = sorted(((names[c], _weight_data(c), slots[c]) for c in model.constants()),
                     key=lambda w: w[2])
    outputs: list[Port] = []
    written: set[int] = set()  # slots the kernels write an output to
    for i, v in enumerate(graph.outputs):
        name = names.get(v, f"out{i}")
        if v not in slots:
            raise AOTError(f"@{graph.name}: output {i} ({name}) is produced by no kernel")
        slot = slots[v]
        if v in graph.inputs or isinstance(v, Constant) or slot in written:
            outputs.append(Port(name, v.type, "copy", slot))
        else:
            written.add(slot)
            outputs.append(Port(name, v.type, "slot", slot))
    taken = {p.slot for p in inputs} | {w[2] for w in weights} | set(written)
    arena: dict[int, tuple[int, Dim, str]] = {}
    for key, (offset, _) in exe.arena.placement.items():
        if key in slots and slots[key] not in taken:
            arena[slots[key]] = (slots[key], offset, model.buffer_name(key))
    total: Dim = exe.arena.total if exe.arena.placement else 0
    for key, slot in slots.items():  # a buffer no plan placed gets a slice of its own
        if slot not in taken and slot not in arena:
            arena[slot] = (slot, total, model.buffer_name(key))
            total = _aligned(_add(total, nbytes(key.type)))
    kernels = [f"out-of-bounds access in kernel {g.func.name} ({g.func.comment})"
               for g in model.groups]
    layout = Layout(graph.name, list(model.symbols), len(slots), inputs, outputs, weights,
                    sorted(arena.values()), total, kernels)
    _check_symbols(layout)
    return layout


def _describe(model: Any, key: Any) -> str:
    value = key.value if hasattr(key, "field") else key
    if value in model.graph.inputs:
        return f"input %{value.name}"
    return f"{'output' if value in model.graph.outputs else 'value'} {model.names[value]}"


def _weight_data(c: Constant) -> np.ndarray:
    data = np.ascontiguousarray(c.data).astype(c.type.dtype.numpy, copy=False)
    if data.nbytes != nbytes(c.type):
        raise AOTError(f"constant {c.name}: {data.nbytes} bytes of data for type {c.type}")
    return data


def _check_symbols(layout: Layout) -> None:
    known = set(layout.symbols)
    exprs = [layout.arena_bytes, *(o for _, o, _ in layout.arena),
             *(d for p in [*layout.inputs, *layout.outputs] for d in p.type.shape)]
    for e in exprs:
        unknown = {str(s) for s in sympy.sympify(e).free_symbols} - known
        if unknown:
            raise AOTError(f"@{layout.name}: size {e} depends on {', '.join(sorted(unknown))}, "
                           "which no input shape binds (a data-dependent size)")


def _add(a: Dim, b: Dim) -> Dim:
    return a + b if isinstance(a, int) and isinstance(b, int) else sympy.sympify(a) + b


def _aligned(n: Dim) -> Dim:
    if isinstance(n, int):
        return -(-n // ALIGN) * ALIGN
    return sympy.ceiling(n / ALIGN) * ALIGN


# -- the weights file --------------------------------------------------------------------


def write_weights(layout: Layout, path: Path) -> None:
    """Write the constants (format in the module docstring)."""
    count = len(layout.weights)
    offset = _aligned(HEADER.size + ENTRY.size * count)
    table, blobs = [], []
    for _, data, _ in layout.weights:
        table.append(ENTRY.pack(offset, data.nbytes))
        blobs.append((offset, data))
        offset = _aligned(offset + data.nbytes)
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, count, layout.fingerprint))
        f.write(b"".join(table))
        for at, data in blobs:
            f.write(b"\0" * (at - f.tell()))
            f.write(data.reshape(-1).view(np.uint8).data)  # no copy of a large weight
        f.write(b"\0" * (offset - f.tell()))  # every offset, even an empty last one, <= size


def read_weights(path: str | os.PathLike[str]) -> tuple[int, list[bytes]]:
    """(fingerprint, each constant's bytes) of a weights file."""
    raw = Path(path).read_bytes()
    magic, version, count, fingerprint = HEADER.unpack_from(raw)
    if magic != MAGIC or version != VERSION:
        raise AOTError(f"{path} is not a version-{VERSION} dlc weights file")
    blobs = []
    for k in range(count):
        offset, nbytes = ENTRY.unpack_from(raw, HEADER.size + ENTRY.size * k)
        blobs.append(raw[offset:offset + nbytes])
    return fingerprint, blobs
