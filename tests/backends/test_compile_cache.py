"""The on-disk compile cache: a second compile of the same model in a new process loads
its machine code instead of running LLVM again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys, time, torch, dlc
torch.manual_seed(0)
width = int(sys.argv[1])
model = torch.nn.Sequential(torch.nn.Linear(32, width), torch.nn.ReLU(),
                            torch.nn.Linear(width, 8)).eval()
x = torch.randn(5, 32)
start = time.perf_counter()
compiled = dlc.compile(model, (x,), target="llvm")
seconds = time.perf_counter() - start
with torch.no_grad():
    error = float((torch.from_numpy(compiled(x)) - model(x)).abs().max())
print(json.dumps({"from_cache": compiled.executable.jit.from_cache, "error": error,
                  "seconds": seconds}))
"""


def run(tmp: Path, width: int) -> dict:
    env = {**os.environ, "DLC_CACHE_DIR": str(tmp), "OMP_NUM_THREADS": "1"}
    env.pop("DLC_NO_CACHE", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(width)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_second_compile_in_a_new_process_hits_the_cache(tmp_path: Path) -> None:
    first = run(tmp_path, 64)
    second = run(tmp_path, 64)
    assert not first["from_cache"] and second["from_cache"]
    assert first["error"] < 1e-5 and second["error"] < 1e-5
    assert len(list((tmp_path / "kernels").glob("*.o"))) == 1


def test_a_different_model_misses(tmp_path: Path) -> None:
    run(tmp_path, 64)
    other = run(tmp_path, 48)
    assert not other["from_cache"]
    assert len(list((tmp_path / "kernels").glob("*.o"))) == 2
