"""Fair measurement: each (model, runner) pair in a fresh `spawn`ed worker process.

A fresh process isolates crashes, gives a true peak RSS, and keeps one runtime's
spinning thread pool from slowing the next. Every runner gets the same inputs, the same
thread count, and the same warm-up and repetition policy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import resource
import signal
import statistics
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Policy:
    """Warm-up and repetition policy, identical for every runner."""

    warmup: int = 3  # calls before timing (JIT warm-up, caches, thread pools)
    repeat: int = 20  # timed calls (at least `min_repeat`, at most this)
    min_repeat: int = 5
    budget_s: float = 10.0  # stop repeating after this much timed time
    threads: int = 0  # 0 = all cores
    timeout_s: float = 1800.0  # per worker


@dataclass
class Result:
    """One cell of the comparison."""

    model: str
    size: str
    runner: str
    label: str
    status: str  # ok | unavailable | failed | timeout
    reason: str = ""
    compile_s: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # median, p25, p75, min
    runs: int = 0
    peak_rss_mb: float | None = None
    max_rel_error: float | None = None
    notes: str = ""


def thread_count(policy: Policy) -> int:
    return policy.threads or os.cpu_count() or 1


def measure_in_worker(model: str, size: str, spec: str, policy: Policy) -> Result:
    """Run `measure` in a spawned process; a crash or timeout becomes a failed Result."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(queue, model, size, spec, policy), daemon=True)
    proc.start()
    deadline = time.monotonic() + policy.timeout_s
    result: Result | None = None
    while time.monotonic() < deadline:
        try:
            result = Result(**queue.get(timeout=1.0))
            break
        except Exception:  # queue.Empty: check the worker is still alive
            if not proc.is_alive():
                break
    proc.join(timeout=5)
    # The worker leads its own process group: this also ends what it started (TVM's
    # builder and runner processes), which would otherwise outlive a timed-out worker.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if result is not None:
        return result
    status = "timeout" if time.monotonic() >= deadline else "failed"
    reason = (f"no result within {policy.timeout_s:.0f} s" if status == "timeout"
              else f"worker died (exit code {proc.exitcode})")
    return Result(model, size, spec, spec, status, reason)


def _worker(queue: Any, model: str, size: str, spec: str, policy: Policy) -> None:
    os.setpgrp()
    _exit_with_parent()
    threads = str(thread_count(policy))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true "
                                       f"intra_op_parallelism_threads={threads}")
    queue.put(asdict(measure(model, size, spec, policy)))


def _exit_with_parent() -> None:
    """End this worker's process group when the harness that spawned it dies.

    A harness killed by a signal runs no clean-up, and a worker outside the harness's
    process group (see `_worker`) would go on for hours (a TVM tuning run) writing into
    the same tuning log as the next run.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def measure(model: str, size: str, spec: str, policy: Policy) -> Result:
    """Prepare and time one runner on one zoo model, in this process."""
    from survey_bench import zoo
    from survey_bench.runners import make_runner
    from survey_bench.runners.base import Unavailable

    runner = make_runner(spec)
    base = Result(model, size, spec, runner.label or spec, "unavailable")
    reason = runner.unavailable()
    if reason:
        base.reason = reason
        return base
    try:
        import torch

        threads = thread_count(policy)
        torch.set_num_threads(threads)
        module, inputs = zoo.get(model, size)
        with torch.no_grad():
            want = _numpy(module(*inputs))
        runner.size = size
        start = time.perf_counter()
        prepared = runner.prepare(model, module, tuple(inputs), threads)
        compile_s = time.perf_counter() - start
        out = None
        for _ in range(policy.warmup):
            out = prepared.call(*prepared.inputs)
        times: list[float] = []
        spent = 0.0
        while len(times) < policy.repeat and (len(times) < policy.min_repeat
                                               or spent < policy.budget_s):
            t0 = time.perf_counter()
            out = prepared.call(*prepared.inputs)
            dt = time.perf_counter() - t0
            times.append(dt)
            spent += dt
        got = prepared.to_numpy(out)
        err = _max_rel_error(got, want)
        if prepared.describe is not None:  # after timing, so it costs no measured time
            extra = prepared.describe()
            prepared.notes = "; ".join(x for x in (prepared.notes, extra) if x)
        runner.cleanup()
    except Unavailable as exc:  # this model cannot run on this runner here: say why
        base.reason = str(exc)
        return base
    except Exception as exc:  # every failure is reported with its reason
        base.status = "failed"
        base.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        base.notes = traceback.format_exc(limit=3)[-600:]
        return base
    ms = sorted(t * 1e3 for t in times)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    base.status = "ok"
    base.compile_s = compile_s
    base.latency_ms = {"median": statistics.median(ms), "p25": q[0], "p75": q[2],
                       "min": ms[0]}
    base.runs = len(ms)
    base.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base.max_rel_error = err
    base.notes = prepared.notes
    return base


def _numpy(out: Any) -> tuple[Any, ...]:
    from survey_bench.runners.base import numpy_outputs

    return numpy_outputs(out)


def _max_rel_error(got: tuple[Any, ...], want: tuple[Any, ...]) -> float:
    import numpy as np

    if len(got) != len(want):
        return float("inf")
    worst = 0.0
    for g, w in zip(got, want):
        g64, w64 = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g64.shape != w64.shape:
            return float("inf")
        scale = float(np.abs(w64).max()) if w64.size else 0.0
        diff = float(np.abs(g64 - w64).max()) if w64.size else 0.0
        worst = max(worst, diff / scale if scale else diff)
    return worst


def machine_description() -> dict[str, Any]:
    """CPU model, cores, Python and the versions of every relevant package."""
    from importlib import metadata

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for pkg in ("dlc", "torch", "numpy", "llvmlite", "onnx", "onnxruntime", "apache-tvm",
                "apache-tvm-ffi", "jax", "jaxlib", "torchax", "onnxscript"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions}
