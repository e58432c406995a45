"""The generated code's thread pool: `dlc.set_num_threads(n)` / `dlc.get_num_threads()`.

Parallel loops run on libgomp's thread team (see backends/llvm/parallel.py). Each
compiled module holds its thread count in a global, `i32 dlc_num_threads`, read just
before each parallel loop forks: generated code never calls into Python for it. This
module remembers the requested count and writes it into every live JIT-ed module's
global, now and whenever it changes.

The default is every core this process may run on (`OMP_NUM_THREADS` when it is set).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
import weakref
from typing import Any

NUM_THREADS_SYMBOL = "dlc_num_threads"

_requested: int | None = None
_cells: dict[int, int] = {}  # token -> address of a live module's dlc_num_threads
_tokens = itertools.count()
_lock = threading.Lock()


def default_num_threads() -> int:
    """`OMP_NUM_THREADS` if set to a positive integer, else the usable CPU count."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads a parallel loop in compiled code runs on."""
    return _requested if _requested is not None else default_num_threads()


def set_num_threads(n: int) -> None:
    """Run parallel loops of compiled code (compiled before or after this call) on `n`
    threads; a loop with fewer iterations than `n` uses one thread per iteration."""
    global _requested
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    with _lock:
        _requested = n
        for address in _cells.values():
            ctypes.c_int32.from_address(address).value = n


def track_thread_count(owner: Any, address: int) -> None:
    """Keep the i32 at `address` (a module's dlc_num_threads) equal to the thread count
    while `owner` (the JIT module holding that memory) is alive."""
    token = next(_tokens)
    with _lock:
        ctypes.c_int32.from_address(address).value = get_num_threads()
        _cells[token] = address
    weakref.finalize(owner, _forget, token)


def _forget(token: int) -> None:
    with _lock:
        _cells.pop(token, None)
