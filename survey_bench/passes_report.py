"""What the graph passes do to each zoo model: nodes before and after O3, fused groups,
and the planned arena against the naive sum of intermediates.

    python -m survey_bench.passes_report --size bench
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def model_row(name: str, size: str) -> dict[str, Any]:
    """Graph statistics of one zoo model before and after the O3 pipeline."""
    import dlc
    from dlc.compiled import to_runtime_value
    from dlc.interpreter import bind_symbols
    from dlc.ir.symbolic import evaluate
    from dlc.passes.graph.plan_memory import nbytes
    from dlc.passes.manager import PassContext, run_pipeline
    from survey_bench import zoo

    module, inputs = zoo.get(name, size)
    graph = dlc.import_model(module, inputs, zoo.dynamic_shapes(name))
    bindings = bind_symbols(graph, [to_runtime_value(x) for x in inputs])
    naive = sum(int(evaluate(nbytes(v.type), bindings)) for n in graph.nodes
                for v in n.outputs)
    ctx = PassContext()
    start = time.perf_counter()
    optimized = run_pipeline(graph, 3, (), ctx)
    seconds = time.perf_counter() - start
    plan = ctx.memory_plan
    arena = plan.size(bindings) if plan is not None else 0
    return {"model": name, "nodes_before": len(graph.nodes), "nodes_after": len(optimized.nodes),
            "groups": len(ctx.fusion_plan.groups) if ctx.fusion_plan else len(optimized.nodes),
            "arena_bytes": arena, "naive_bytes": naive, "passes_s": seconds}


def markdown(rows: Sequence[dict[str, Any]], size: str) -> str:
    """The table README and the issue notes quote."""
    lines = [f"| model ({size}) | nodes imported | nodes after O3 | fused groups | arena | "
             "naive sum of intermediates | arena / naive | passes (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["arena_bytes"] / r["naive_bytes"] if r["naive_bytes"] else 0.0
        lines.append(f"| {r['model']} | {r['nodes_before']} | {r['nodes_after']} | "
                     f"{r['groups']} | {_mb(r['arena_bytes'])} | {_mb(r['naive_bytes'])} | "
                     f"{ratio:.2f} | {r['passes_s']:.2f} |")
    return "\n".join(lines) + "\n"


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def main(argv: Sequence[str] | None = None) -> int:
    """Compute the table for every zoo model of a size and write it under results/."""
    from survey_bench import zoo

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="bench")
    p.add_argument("--models", default="")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m] or [
        n for n in zoo.names() if args.size in zoo.ZOO[n].sizes]
    rows = []
    for name in names:
        rows.append(model_row(name, args.size))
        r = rows[-1]
        print(f"{name:24s} {r['nodes_before']:5d} -> {r['nodes_after']:5d} nodes, "
              f"{r['groups']:4d} groups, arena {_mb(r['arena_bytes'])} "
              f"(naive {_mb(r['naive_bytes'])})", flush=True)
    table = markdown(rows, args.size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"passes_{args.size}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
