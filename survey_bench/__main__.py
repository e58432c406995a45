"""`python -m survey_bench` (also `dlc bench`): compare compilers on the zoo models.

    python -m survey_bench --size bench --runners eager,onnxruntime,dlc-llvm-O3
    python -m survey_bench --models gcn,ddpm_unet --ablate fuse,plan-memory
    python -m survey_bench --models aica_cnn --runners eager,tvm-tuned --tune 500
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from survey_bench.harness import Policy, machine_description, measure_in_worker, thread_count
from survey_bench.runners import DEFAULT_RUNNERS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write JSON, Markdown, CSV and plots."""
    from rich.progress import Progress

    from survey_bench import report, zoo

    p = argparse.ArgumentParser(prog="survey_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated zoo names (default: all)")
    p.add_argument("--size", default="bench")
    p.add_argument("--runners", default=",".join(DEFAULT_RUNNERS))
    p.add_argument("--threads", type=int, default=0, help="0 = all cores")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget", type=float, default=10.0, help="seconds of timed runs per cell")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker")
    p.add_argument("--tune", type=int, default=None, metavar="N",
                   help="tvm-tuned: tune N MetaSchedule trials per model into "
                        "results/tvm_tuning/ (default: re-apply the logs there; "
                        "raise --timeout for large N)")
    p.add_argument("--ablate", default="", help="dlc passes to disable one at a time")
    p.add_argument("--ablate-base", default="dlc-llvm-O3")
    p.add_argument("--out", default=str(RESULTS), help="output directory")
    p.add_argument("--name", default="", help="file stem (default: survey_<size>)")
    args = p.parse_args(argv)
    if args.tune is not None and args.tune < 0:
        p.error("--tune: the number of trials cannot be negative")
    if args.tune is not None:  # read by the tvm-tuned runner in each spawned worker
        os.environ["DLC_BENCH_TVM_TRIALS"] = str(args.tune)

    models = [m for m in args.models.split(",") if m] or [
        n for n in zoo.names() if args.size in zoo.ZOO[n].sizes]
    runners = [r for r in args.runners.split(",") if r]
    if args.ablate:
        runners = ["eager", args.ablate_base] + [
            f"{args.ablate_base}-no-{p}" for p in args.ablate.split(",") if p]
    policy = Policy(warmup=args.warmup, repeat=args.repeat, budget_s=args.budget,
                    threads=args.threads, timeout_s=args.timeout)
    results = []
    with Progress() as progress:
        task = progress.add_task("measuring", total=len(models) * len(runners))
        for model in models:  # runners interleaved per model: drift hits all alike
            for spec in runners:
                progress.update(task, description=f"{model} / {spec}")
                results.append(measure_in_worker(model, args.size, spec, policy))
                r = results[-1]
                summary = (f"{r.latency_ms['median']:.2f} ms" if r.status == "ok"
                           else f"{r.status}: {r.reason[:100]}")
                progress.console.print(f"{model:24s} {spec:28s} {summary}")
                progress.advance(task)
    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": machine_description(),
           "config": {"size": args.size, "threads": thread_count(policy),
                      "repeat": policy.repeat, "warmup": policy.warmup,
                      "runners": runners, "models": models},
           "results": [asdict(r) for r in results]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("ablation" if args.ablate else f"survey_{args.size}")
    (out / f"{stem}.json").write_text(json.dumps(run, indent=1))
    table = (report.ablation_markdown(run, args.ablate_base) if args.ablate
             else report.markdown(run))
    (out / f"{stem}.md").write_text(table)
    report.write_csv(run, out / f"{stem}.csv")
    report.plot(run, out, stem)
    print(table)
    print(f"wrote {out}/{stem}.{{json,md,csv}} and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
