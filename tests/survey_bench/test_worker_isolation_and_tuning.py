"""survey_bench's worker isolation (a worker outlives no harness) and TVM task selection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The "harness": starts a worker the way survey_bench's `_worker` sets itself up (its own
# process group, watching its parent), prints the worker's pid, and dies without clean-up.
HARNESS = """
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", '''
import os, time
from survey_bench.harness import _exit_with_parent
os.setpgrp()
_exit_with_parent()
print(os.getpid(), flush=True)
time.sleep(120)
'''], stdout=subprocess.PIPE, text=True)
print(worker.stdout.readline().strip(), flush=True)
import os
os._exit(0)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): it has exited, which is what counts here
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_worker_ends_when_its_harness_dies() -> None:
    """A harness killed by a signal runs no clean-up; the worker must still end (a TVM
    tuning worker left behind went on writing into the next run's tuning log)."""
    out = subprocess.run([sys.executable, "-c", HARNESS], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    worker = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), f"worker {worker} outlived its harness"


def test_tvm_tunes_the_tasks_holding_most_flops() -> None:
    """Tuning time goes to the heaviest tasks (FLOPs x occurrences), copies count zero."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    from survey_bench.runners.tvm import heaviest_tasks

    def matmul(n: int) -> object:
        a = te.placeholder((n, n), name="a")
        b = te.placeholder((n, n), name="b")
        k = te.reduce_axis((0, n), name="k")
        c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
        return te.create_prim_func([a, b, c])

    def copy(n: int) -> object:
        a = te.placeholder((n, n), name="a")
        return te.create_prim_func([a, te.compute((n, n), lambda i, j: a[i, j], name="c")])

    def task(name: str, func: object, weight: int) -> SimpleNamespace:
        # MetaSchedule's ExtractedTask holds each candidate as an IRModule
        return SimpleNamespace(task_name=name, dispatched=[tvm.IRModule({"main": func})],
                               weight=weight)

    big, small, tiny = task("big", matmul(64), 1), task("small", matmul(16), 3), task(
        "copy", copy(256), 5)
    # 64^3 x 2 = 524288 FLOPs against 3 x 16^3 x 2 = 24576: the big one holds 95.5%
    assert [t.task_name for t in heaviest_tasks([small, tiny, big], 0.9)] == ["big"]
    assert [t.task_name for t in heaviest_tasks([small, tiny, big], 0.99)] == ["big", "small"]
    assert [t.task_name for t in heaviest_tasks([tiny], 0.99)] == ["copy"]  # all copies
