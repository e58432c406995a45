"""Optimize an LLVM module for the host CPU and JIT-compile it (llvmlite MCJIT).

The target machine is created for the host's CPU name and features (`znver4` with
AVX-512 here), so LLVM may use 512-bit vectors; -O3 runs LLVM's standard pipeline.

Parallel loops call libgomp (`GOMP_parallel`, `omp_get_thread_num`): it is loaded into the
process before anything is JIT-ed, so MCJIT resolves those symbols. Each JIT-ed module's
`dlc_num_threads` global is registered with `dlc.runtime`, which writes the thread count
set by `dlc.set_num_threads` into it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir

from dlc import runtime
from dlc.errors import DLCError


@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    openmp_library()


def _openmp_candidates() -> list[str]:
    """libgomp from the system first, then the copy torch bundles (`torch/lib`)."""
    names = ["libgomp.so.1"]
    for lib in ("gomp", "omp"):
        found = ctypes.util.find_library(lib)
        if found:
            names.append(found)
    spec = importlib.util.find_spec("torch")  # located, not imported (that takes seconds)
    for root in (spec.submodule_search_locations or []) if spec else []:
        names += sorted(glob.glob(os.path.join(root, "lib", "libgomp*.so*")))
        names += sorted(glob.glob(os.path.join(root, os.pardir, "torch.libs", "libgomp*")))
    return list(dict.fromkeys(names))


@functools.cache
def openmp_library() -> str | None:
    """Load an OpenMP runtime with the GOMP entry points into the process; its name, or
    None when there is none (kernels with parallel loops then cannot be JIT-ed)."""
    for name in _openmp_candidates():
        try:
            llvm.load_library_permanently(name)
        except RuntimeError:
            continue
        return name
    return None


@functools.cache
def host_target_machine(opt_level: int = 3) -> Any:
    """The shared TargetMachine for this CPU, for data layout, optimization and assembly.

    It is never handed to MCJIT: the execution engine takes ownership of its target
    machine, so each `jit` call creates one of its own (`new_target_machine`).
    """
    return new_target_machine(opt_level)


def new_target_machine(opt_level: int = 3) -> Any:
    """A TargetMachine for this CPU (its name and features), PIC, -O`opt_level` codegen."""
    _initialize()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt_level, reloc="pic", codemodel="default")


def host_cpu() -> str:
    """`znver4 +avx512f,...`: the CPU name and features code is generated for."""
    _initialize()
    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def prepare(module: ir.Module) -> ir.Module:
    """Set the module's triple and data layout to the host's."""
    tm = host_target_machine()
    module.triple = llvm.get_process_triple()
    module.data_layout = str(tm.target_data)
    return module


def optimize(text: str, opt_level: int = 3) -> Any:
    """Parse LLVM IR text, verify it, and run LLVM's -O`opt_level` pipeline on it."""
    _initialize()
    mod = llvm.parse_assembly(text)
    mod.verify()
    if opt_level > 0:
        tm = host_target_machine()
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_unrolling = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return mod


@dataclass
class JITModule:
    """A JIT-compiled module; `function(name, nargs)` gives a ctypes callable.

    `module` is the optimized LLVM module (for `show("llvm-opt")` and assembly); when the
    machine code came from the compile cache it is re-derived from `text` on first use.
    """

    engine: Any
    _module: Any = None
    text: str = ""
    opt_level: int = 3
    from_cache: bool = False
    _fns: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> Any:
        if self._module is None:
            self._module = optimize(self.text, self.opt_level)
        return self._module

    def address(self, name: str) -> int:
        addr = self.engine.get_function_address(name)
        if not addr:
            raise KeyError(f"no function {name} in the JIT module")
        return addr

    def function(self, name: str, argtypes: list[Any]) -> Any:
        """A ctypes function returning int32 (calls release the GIL)."""
        key = f"{name}/{len(argtypes)}"
        if key not in self._fns:
            proto = ctypes.CFUNCTYPE(ctypes.c_int32, *argtypes)
            self._fns[key] = proto(self.address(name))
        return self._fns[key]

    def assembly(self) -> str:
        return host_target_machine().emit_assembly(self.module)


def jit(module: Any) -> JITModule:
    """Compile an optimized binding module to machine code in this process."""
    _initialize()
    if openmp_library() is None and _declares(module, "GOMP_parallel"):
        raise DLCError("this model has parallel loops, but no OpenMP runtime was found "
                       "(looked for libgomp.so.1 and torch's bundled copy); install libgomp "
                       "(e.g. `apt-get install libgomp1`) or schedule without `parallel`")
    engine = llvm.create_mcjit_compiler(module, new_target_machine())
    engine.finalize_object()
    engine.run_static_constructors()
    compiled = JITModule(engine, module)
    if _defines(module, runtime.NUM_THREADS_SYMBOL):
        address = engine.get_global_value_address(runtime.NUM_THREADS_SYMBOL)
        runtime.track_thread_count(compiled, address)
    return compiled


def _declares(module: Any, name: str) -> bool:
    return any(f.name == name for f in module.functions)


def _defines(module: Any, name: str) -> bool:
    return any(g.name == name and not g.is_declaration for g in module.global_variables)


# -- the compile cache -------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Where compiled objects are kept (`$DLC_CACHE_DIR/kernels`, default
    `~/.cache/dlc/kernels`); None when `DLC_NO_CACHE` is set."""
    if os.environ.get("DLC_NO_CACHE"):
        return None
    root = Path(os.environ.get("DLC_CACHE_DIR", Path.home() / ".cache" / "dlc"))
    return root / "kernels"


def cache_key(text: str, opt_level: int) -> str:
    """The key of a compiled object: the emitted IR (which already names every kernel and
    its schedule deterministically), the CPU and its features, LLVM and dlc versions."""
    import llvmlite

    from dlc import __version__

    h = hashlib.sha256()
    for part in (text, host_cpu(), llvmlite.__version__, __version__, str(opt_level)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def compile_ir(text: str, opt_level: int = 3) -> JITModule:
    """Optimize and JIT LLVM IR text, reusing machine code from the on-disk cache.

    A miss runs LLVM's -O`opt_level` pipeline and code generation and stores the object
    file; a hit loads the object file straight into the JIT, which skips both (about three
    quarters of a model's compile time).
    """
    _initialize()
    directory = cache_dir()
    key = cache_key(text, opt_level)
    path = directory / f"{key}.o" if directory is not None else None
    obj = path.read_bytes() if path is not None and path.is_file() else None
    module = None
    if obj is None:
        module = optimize(text, opt_level)
        if path is None:
            compiled = jit(module)
            compiled.text, compiled.opt_level = text, opt_level
            return compiled
        obj = host_target_machine().emit_object(module)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(obj)
        tmp.replace(path)  # atomic: a concurrent reader sees the whole file or none
    if openmp_library() is None and "GOMP_parallel" in text:
        raise DLCError("this model has parallel loops, but no OpenMP runtime was found; "
                       "install libgomp (e.g. `apt-get install libgomp1`)")
    empty = llvm.parse_assembly("")
    empty.triple = llvm.get_process_triple()
    engine = llvm.create_mcjit_compiler(empty, new_target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    engine.run_static_constructors()
    compiled = JITModule(engine, module, text, opt_level, from_cache=module is None)
    if f"@{runtime.NUM_THREADS_SYMBOL} =" in text or \
            f'@"{runtime.NUM_THREADS_SYMBOL}" =' in text:
        address = engine.get_global_value_address(runtime.NUM_THREADS_SYMBOL)
        runtime.track_thread_count(compiled, address)
    return compiled
