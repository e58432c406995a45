"""Kernel benchmarks: thread settings, this CPU's peak FLOP/s, and the GFLOP/s recorder.

`DLC_BENCH_THREADS` (default: every core this process may use) sets both torch's intra-op
thread count and `dlc.set_num_threads`, so dlc, NumPy's BLAS (via OMP/OPENBLAS env vars,
set before NumPy loads, if you need it) and PyTorch are compared on the same cores.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import dlc


def bench_threads() -> int:
    value = os.environ.get("DLC_BENCH_THREADS")
    return int(value) if value else len(os.sched_getaffinity(0))


@pytest.fixture(scope="session", autouse=True)
def _threads() -> int:
    import torch

    n = bench_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    dlc.set_num_threads(n)
    yield n
    torch.set_num_threads(before)


# -- peak FLOP/s: a register-resident FMA loop JIT-ed through the LLVM backend -----------

LANES, ACCS = 16, 16  # 16 independent <16 x float> accumulators (fit 16 of 32 zmm registers)


def peak_ir() -> str:
    """`i32 dlc_peak(i64 n, float* out)`: n iterations of ACCS independent vector FMAs."""
    vec = f"<{LANES} x float>"
    splat = lambda v: f"<{', '.join([f'float {v}'] * LANES)}>"  # noqa: E731
    lines = [
        f"declare {vec} @llvm.fmuladd.v{LANES}f32({vec}, {vec}, {vec})",
        'define i32 @dlc_peak(i64 %n, ptr %out) #0 {',
        "entry:",
        "  br label %loop",
        "loop:",
        "  %i = phi i64 [0, %entry], [%i.next, %loop]",
    ]
    for k in range(ACCS):
        init = splat(f"{1.0 + k / 64:.6e}")  # exact in binary: LLVM insists
        lines.append(f"  %a{k} = phi {vec} [{init}, %entry], [%a{k}.next, %loop]")
    for k in range(ACCS):
        lines.append(f"  %a{k}.next = call {vec} @llvm.fmuladd.v{LANES}f32({vec} %a{k}, "
                     f"{vec} {splat('5.000000e-01')}, {vec} {splat('2.500000e-01')})")
    lines += ["  %i.next = add i64 %i, 1", "  %done = icmp uge i64 %i.next, %n",
              "  br i1 %done, label %exit, label %loop", "exit:"]
    total = "%a0.next"
    for k in range(1, ACCS):  # sum the accumulators so nothing is dead code
        lines.append(f"  %s{k} = fadd {vec} {total}, %a{k}.next")
        total = f"%s{k}"
    lines += [f"  %r = call float @llvm.vector.reduce.fadd.v{LANES}f32(float 0.0, {vec} {total})",
              "  store float %r, ptr %out", "  ret i32 0", "}",
              f"declare float @llvm.vector.reduce.fadd.v{LANES}f32(float, {vec})",
              # Let the backend keep 512-bit vectors whole (the host may prefer 256-bit).
              'attributes #0 = { "min-legal-vector-width"="512" }']
    return "\n".join(lines) + "\n"


@functools.cache
def peak_kernel():
    """(JIT module, ctypes function); cached, so the module (which owns the machine code)
    outlives every caller of the function."""
    from dlc.backends.llvm import jit

    module = jit.compile_ir(peak_ir())
    fn = module.function("dlc_peak", [ctypes.c_int64, ctypes.POINTER(ctypes.c_float)])
    return module, fn


def flops_per_call(iterations: int) -> int:
    return 2 * LANES * ACCS * iterations


def run_peak(fn, iterations: int, threads: int) -> None:
    """`threads` concurrent calls (ctypes releases the GIL), each `iterations` long."""
    outs = [ctypes.c_float() for _ in range(threads)]
    if threads == 1:
        fn(iterations, ctypes.byref(outs[0]))
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda o: fn(iterations, ctypes.byref(o)), outs))


PEAK_ITERATIONS = 2_000_000


@pytest.fixture(scope="session")
def peak_gflops(_threads) -> dict[str, float]:
    """Measured peak GFLOP/s of this CPU, one core and `_threads` cores (best of 5)."""
    _, fn = peak_kernel()
    out = {}
    for label, t in (("single", 1), ("all", _threads)):
        run_peak(fn, PEAK_ITERATIONS // 10, t)  # warm up
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            run_peak(fn, PEAK_ITERATIONS, t)
            best = min(best, time.perf_counter() - start)
        out[label] = flops_per_call(PEAK_ITERATIONS) * t / best / 1e9
    return out


@pytest.fixture
def record(benchmark, peak_gflops, _threads):
    """`record(flops)` after `benchmark(...)`: GFLOP/s (at the fastest round) and its
    fraction of the measured all-core peak go into `extra_info`."""

    def put(flops: float) -> None:
        seconds = benchmark.stats.stats.min
        gflops = flops / seconds / 1e9
        benchmark.extra_info["gflops"] = round(gflops, 2)
        benchmark.extra_info["peak_gflops"] = round(peak_gflops["all"], 1)
        benchmark.extra_info["frac_peak"] = round(gflops / peak_gflops["all"], 4)
        benchmark.extra_info["threads"] = _threads

    return put


def pytest_terminal_summary(terminalreporter, config) -> None:
    """One compact table after pytest-benchmark's: GFLOP/s and fraction of peak per row."""
    session = getattr(config, "_benchmarksession", None)
    rows = [b for b in getattr(session, "benchmarks", []) if "gflops" in b.extra_info]
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write(f"{'group':<40} {'impl':<8} {'min (us)':>10} {'GFLOP/s':>9} {'of peak':>8}")
    for b in sorted(rows, key=lambda b: (b.group or "", b.stats.min)):
        impl = b.name.rsplit("-", 1)[-1].rstrip("]").split("[")[-1]
        write(f"{b.group or '':<40} {impl:<8} {b.stats.min * 1e6:>10.1f} "
              f"{b.extra_info['gflops']:>9.1f} {b.extra_info['frac_peak']:>8.1%}")
