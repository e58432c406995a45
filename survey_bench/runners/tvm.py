"""Apache TVM (Relax) on the host CPU, untuned and tuned with MetaSchedule.

Both runners import the model the same way: `torch.export` with static shapes (the
measured inputs' shapes; TVM's tuning pipeline needs static shapes, and the untuned runner
uses the same module so that the two differ only in tuning), then
`tvm.relax.frontend.torch.from_exported_program`, then `tvm.compile` for
`{"kind": "llvm", "mcpu": <host CPU>, "num-cores": threads}`.

* "TVM untuned" compiles with TVM's default schedules. They are naive loop nests (no
  tiling, no vectorization plan): this column shows what TVM gives without tuning, not
  what it can reach (DESIGN.md section 9: a small UNet ran about 25x slower than eager).
* "TVM tuned" uses MetaSchedule. With `DLC_BENCH_TVM_TRIALS=N` (`python -m survey_bench
  --tune N`) it tunes N trials into `survey_bench/results/tvm_tuning/<model>_<size>/`
  (the compile time then includes the tuning, and the notes say how long it took); with
  the default 0 it only re-applies the log already in that folder, and reports the model
  unavailable when there is none. Applying is always
  `relax.pipeline.static_shape_tuning_pipeline(total_trials=0, work_dir=<that folder>)`;
  tuning is that pipeline's own tuning step called directly (see `tune` for why). A log
  is only valid for the target it was tuned for, so the folder also records the target,
  and a log for another target (another CPU, another thread count) is refused.

Threads: TVM's thread pool reads `TVM_NUM_THREADS` when it starts (without it, TVM takes
half the logical cores); the runner sets it before the first call. In a process whose TVM
pool already started with another size, the count cannot change (the harness's spawned
workers are fresh processes, so it always holds there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from survey_bench.runners.base import Prepared, Runner, Unavailable

TRIALS_ENV = "DLC_BENCH_TVM_TRIALS"
TUNING_DIR = Path(__file__).resolve().parents[1] / "results" / "tvm_tuning"
RECORDS = "database_tuning_record.json"  # MetaSchedule's JSON database under work_dir
TARGET_FILE = "target.json"  # ours: the target the log was tuned for
TUNED_FLOP_FRACTION = 0.99  # tune the heaviest tasks holding this share of the FLOPs


class _TVMRunner(Runner):
    """Shared import, build and call of a Relax module on the CPU."""

    packages = ("tvm",)

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        os.environ["TVM_NUM_THREADS"] = str(threads)
        import tvm

        target = host_target(threads)
        self.check(model_name, target)
        mod = relax_module(model_name, module, inputs)
        mod, notes = self.optimize(model_name, mod, target)
        try:
            executable = tvm.compile(mod, target)
        except Exception as err:
            raise RuntimeError(f"tvm.compile failed on {model_name}: "
                               f"{type(err).__name__}: {_first_line(err)}") from err
        vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
        main = vm["main"]
        arrays = tuple(tvm.runtime.tensor(_to_array(x)) for x in inputs)
        return Prepared(main, arrays, tvm_outputs, notes)

    def check(self, model_name: str, target: Any) -> None:
        """Raise Unavailable before any work when this model cannot run (default: it can)."""

    def optimize(self, model_name: str, mod: Any, target: Any) -> tuple[Any, str]:
        """Transform the imported module before `tvm.compile`; (module, notes)."""
        return mod, ""


class TVMUntunedRunner(_TVMRunner):
    """`tvm.compile` with TVM's default (untuned) schedules."""

    name = "tvm-untuned"
    label = "TVM untuned (default schedules)"

    def optimize(self, model_name: str, mod: Any, target: Any) -> tuple[Any, str]:
        return mod, "default schedules, no tuning"


class TVMTunedRunner(_TVMRunner):
    """MetaSchedule: tune `DLC_BENCH_TVM_TRIALS` trials, or re-apply the model's log."""

    name = "tvm-tuned"
    label = "TVM tuned (MetaSchedule)"

    def check(self, model_name: str, target: Any) -> None:
        if tuning_trials() > 0:
            return
        work_dir = tuning_dir(model_name, self.size)
        where = _shown(work_dir)
        if not has_log(work_dir):
            raise Unavailable(f"no tuning log ({where}); run with --tune N")
        recorded = work_dir / TARGET_FILE
        if recorded.exists() and recorded.read_text().strip() != str(target):
            raise Unavailable(f"the tuning log in {where} is for target "
                              f"{recorded.read_text().strip()}, not {target}; "
                              "run with --tune N")

    def optimize(self, model_name: str, mod: Any, target: Any) -> tuple[Any, str]:
        from tvm import relax

        trials = tuning_trials()
        work_dir = tuning_dir(model_name, self.size)
        notes = f"re-applied the log in {work_dir.name}"
        if trials:
            work_dir.mkdir(parents=True, exist_ok=True)
            spent = tune(model_name, mod, target, work_dir, trials)
            (work_dir / TARGET_FILE).write_text(f"{target}\n")
            notes = f"tuned {trials} trials in {spent:.0f} s (included in compile time)"
        pipeline = relax.pipeline.static_shape_tuning_pipeline(
            total_trials=0, target=target, work_dir=str(work_dir))
        try:
            tuned = pipeline(mod)
        except Exception as err:
            raise RuntimeError(f"applying the TVM tuning log in {work_dir} to {model_name} "
                               f"failed: {type(err).__name__}: {_first_line(err)}") from err
        scheduled, total = scheduled_kernels(tuned)
        return tuned, f"{notes}; {scheduled}/{total} kernels from the log"


def tune(model_name: str, mod: Any, target: Any, work_dir: Path, trials: int) -> float:
    """MetaSchedule-tune `mod` for `trials` trials into `work_dir`; the seconds it took.

    This is the tuning half of `static_shape_tuning_pipeline` (the same preparation passes,
    then `tune_relax`), called directly for one reason: the builder. TVM's default
    LocalBuilder starts fresh worker processes for every batch, and each worker's first
    build imports `tvm.s_tir.tensor_intrin`, which takes over 20 s here, so under load
    every build hit the builder's 30 s timeout and no candidate was ever measured. Importing
    it in the workers' initializer (which has no timeout) avoids that.

    The batch size is the other change: MetaSchedule measures up to `num_trials_per_iter`
    (TVM's default: 64) candidates per task per round and visits the tasks round-robin
    first, so with the default a budget under 64 x tasks leaves the later tasks untuned,
    and an untuned kernel keeps TVM's naive default schedule (aica_cnn has 23 tasks: 736
    trials would reach only about the first half of them). The batch is therefore
    `trials // tasks` (8 to 64), so every task is measured once the budget allows 8 each.

    Only the heaviest tasks are tuned: those that together hold `TUNED_FLOP_FRACTION` of
    the model's FLOPs (`heaviest_tasks`), the objective Ansor's task scheduler weighs tasks
    by. Each task costs over a minute here even at 8 trials (building the candidates
    dominates), and ddpm_unet has 70 tasks of which 39 (reshapes, concats, group norms)
    hold under 1% of its FLOPs; those keep TVM's default schedule, and the runner's notes
    say how many kernels came from the log.
    """
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    def load_tensor_intrinsics() -> None:  # a closure, so cloudpickle ships it by value
        import tvm.s_tir.tensor_intrin  # noqa: F401

    with target:
        prepared = tvm.transform.Sequential([
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.pipeline.zero_pipeline(),
        ])(mod)
    builder = ms.builder.LocalBuilder(initializer=load_tensor_intrinsics)
    start = time.perf_counter()
    try:
        extracted = heaviest_tasks(ms.relax_integration.extract_tasks(prepared, target))
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            extracted, str(work_dir))
        ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(work_dir),
                           max_trials_global=trials, builder=builder,
                           num_trials_per_iter=trials_per_round(trials, len(contexts)))
    except Exception as err:
        raise RuntimeError(f"TVM MetaSchedule tuning ({trials} trials) failed on "
                           f"{model_name}: {type(err).__name__}: {_first_line(err)}") from err
    spent = time.perf_counter() - start
    if not measured_records(work_dir):
        raise RuntimeError(f"TVM MetaSchedule tuned {model_name} for {trials} trials but no "
                           f"candidate built and ran; see {work_dir / 'logs'}")
    return spent


def heaviest_tasks(tasks: list[Any], fraction: float | None = None) -> list[Any]:
    """The fewest tasks, heaviest first, whose FLOPs (times their weight) reach `fraction`.

    A task's FLOPs are TVM's own estimate (`estimate_tir_flops` of its PrimFunc); tasks
    without arithmetic (copies, reshapes) count zero and are tuned only when every task
    does (then all of them are kept).
    """
    from tvm.s_tir.analysis import estimate_tir_flops

    fraction = TUNED_FLOP_FRACTION if fraction is None else fraction

    def flops(task: Any) -> float:
        try:
            return float(estimate_tir_flops(task.dispatched[0])) * int(task.weight)
        except Exception:  # TVM cannot estimate some PrimFuncs: weigh them as copies
            return 0.0

    ranked = sorted(((flops(t), i, t) for i, t in enumerate(tasks)), key=lambda r: -r[0])
    total = sum(r[0] for r in ranked)
    if total <= 0:
        return list(tasks)
    chosen: list[Any] = []
    reached = 0.0
    for work, _, task in ranked:
        if reached >= fraction * total:
            break
        chosen.append(task)
        reached += work
    return chosen


def trials_per_round(trials: int, tasks: int) -> int:
    """MetaSchedule's batch per task and round: the budget shared by the tasks, 8 to 64."""
    return max(8, min(64, trials // max(tasks, 1)))


def host_target(threads: int) -> Any:
    """The LLVM target for this CPU (`mcpu` from LLVM's host detection), `threads` cores."""
    import tvm

    cpu = tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": threads})


def relax_module(model_name: str, module: Any, inputs: tuple[Any, ...]) -> Any:
    """torch.export (static shapes) and TVM's importer; errors name the stage that failed."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    try:
        program = torch.export.export(module.eval(), tuple(inputs), strict=False)
    except Exception as err:
        raise RuntimeError(f"torch.export failed on {model_name}: "
                           f"{type(err).__name__}: {_first_line(err)}") from err
    try:
        return from_exported_program(program)
    except Exception as err:
        raise RuntimeError(f"TVM's torch importer failed on {model_name}: "
                           f"{type(err).__name__}: {_first_line(err)}") from err


def tuning_trials() -> int:
    """MetaSchedule trials for this run, from `DLC_BENCH_TVM_TRIALS` (0: re-apply a log)."""
    text = os.environ.get(TRIALS_ENV, "0").strip() or "0"
    try:
        trials = int(text)
    except ValueError:
        raise ValueError(f"{TRIALS_ENV}={text!r}: expected a whole number of trials") from None
    if trials < 0:
        raise ValueError(f"{TRIALS_ENV}={trials}: trials cannot be negative")
    return trials


def tuning_dir(model_name: str, size: str) -> Path:
    """MetaSchedule's work_dir for one model and size."""
    if not size:
        raise RuntimeError("TVMTunedRunner.size is not set: the harness sets it to the zoo "
                           "size before prepare()")
    return TUNING_DIR / f"{model_name}_{size}"


def has_log(work_dir: Path) -> bool:
    """Whether `work_dir` holds a MetaSchedule log with at least one measured candidate."""
    return measured_records(work_dir) > 0


def measured_records(work_dir: Path) -> int:
    """How many records in the log hold a real measurement (failures record 1e10 s)."""
    import json

    count = 0
    records = work_dir / RECORDS
    if records.exists():
        for line in records.read_text().splitlines():
            if line.strip():
                run_secs = json.loads(line)[1][1]
                count += bool(run_secs) and min(float(t) for t in run_secs) < 1e9
    return count


def scheduled_kernels(mod: Any) -> tuple[int, int]:
    """(PrimFuncs that MetaSchedule replaced from the log, all PrimFuncs) in `mod`."""
    import tvm

    total = scheduled = 0
    for _, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc):
            total += 1
            attrs = func.attrs or {}
            # TVM 0.27 spells the mark `tirx.is_scheduled`; older releases `tir.is_scheduled`
            scheduled += any(bool(attrs[key]) for key in ("tirx.is_scheduled",
                                                          "tir.is_scheduled") if key in attrs)
    return scheduled, total


def tvm_outputs(out: Any) -> tuple[Any, ...]:
    """Flat tuple of NumPy arrays from a TVM tensor or a (nested) array of them."""
    import numpy as np

    if hasattr(out, "numpy"):
        return (np.asarray(out.numpy()),)
    arrays: list[Any] = []
    for item in out:
        arrays.extend(tvm_outputs(item))
    return tuple(arrays)


def _to_array(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        return np.ascontiguousarray(x.detach().cpu().numpy())
    return np.asarray(x)


def _shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it: report cells stay short."""
    root = Path(__file__).resolve().parents[2]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""
