"""Render a survey_bench run: Markdown and CSV tables, speed-up and compile-time plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

BASELINE = "eager"


def load(path: str | Path) -> dict[str, Any]:
    """A results JSON file written by `survey_bench`."""
    return json.loads(Path(path).read_text())


def _cells(run: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    models: list[str] = []
    runners: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for r in run["results"]:
        if r["model"] not in models:
            models.append(r["model"])
        if r["runner"] not in runners:
            runners.append(r["runner"])
        cells[(r["model"], r["runner"])] = r
    return models, runners, cells


def speedup(cells: dict[tuple[str, str], dict], model: str, runner: str) -> float | None:
    """Eager median latency over the runner's, measured in the same run."""
    base, cell = cells.get((model, BASELINE)), cells.get((model, runner))
    if not base or not cell or base["status"] != "ok" or cell["status"] != "ok":
        return None
    return base["latency_ms"]["median"] / cell["latency_ms"]["median"]


def markdown(run: dict[str, Any]) -> str:
    """Rows = models, columns = runners; a cell is latency, speed-up over eager, compile s."""
    models, runners, cells = _cells(run)
    labels = {r["runner"]: r["label"] for r in run["results"]}
    head = "| model | " + " | ".join(labels[r] for r in runners) + " |"
    lines = [head, "|" + "---|" * (len(runners) + 1)]
    for m in models:
        row = [m]
        for r in runners:
            c = cells.get((m, r))
            if c is None:
                row.append("")
            elif c["status"] != "ok":
                row.append(f"{c['status']}: {c['reason'][:60]}")
            else:
                s = speedup(cells, m, r)
                row.append(f"{c['latency_ms']['median']:.2f} ms"
                           + (f" ({s:.2f}x)" if s is not None else "")
                           + f", compile {c['compile_s']:.1f} s")
        lines.append("| " + " | ".join(row) + " |")
    geo = ["geomean speed-up"]
    for r in runners:
        ratios = [speedup(cells, m, r) for m in models]
        ok = [x for x in ratios if x]
        geo.append(f"{math.exp(sum(map(math.log, ok)) / len(ok)):.2f}x ({len(ok)}/{len(models)})"
                   if ok else "")
    lines.append("| " + " | ".join(geo) + " |")
    machine = run.get("machine", {})
    lines.append("")
    lines.append(f"Median latency over {run['config'].get('repeat')} runs after "
                 f"{run['config'].get('warmup')} warm-up calls, {run['config'].get('threads')} "
                 f"threads, on {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), "
                 f"{run.get('date', '')}. Speed-up is PyTorch eager's median over the "
                 "runner's, measured in the same run.")
    notes = [f"- {m} / {labels[r]}: {cells[(m, r)]['notes']}" for m in models for r in runners
             if (m, r) in cells and cells[(m, r)]["status"] == "ok"
             and cells[(m, r)].get("notes")]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def write_csv(run: dict[str, Any], path: Path) -> None:
    """One row per (model, runner)."""
    fields = ["model", "size", "runner", "label", "status", "reason", "compile_s",
              "median_ms", "p25_ms", "p75_ms", "runs", "peak_rss_mb", "max_rel_error",
              "speedup_vs_eager"]
    _, _, cells = _cells(run)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in run["results"]:
            lat = r.get("latency_ms") or {}
            w.writerow({**{k: r.get(k) for k in fields if k in r},
                        "median_ms": lat.get("median"), "p25_ms": lat.get("p25"),
                        "p75_ms": lat.get("p75"),
                        "speedup_vs_eager": speedup(cells, r["model"], r["runner"])})


def plot(run: dict[str, Any], out_dir: Path, stem: str = "survey") -> list[Path]:
    """Speed-up bars per model (log axis) and compile time against latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, runners, cells = _cells(run)
    labels = {r["runner"]: r["label"] for r in run["results"]}
    others = [r for r in runners if r != BASELINE]
    written: list[Path] = []
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) * max(1, len(others)) / 2), 4))
    width = 0.8 / max(1, len(others))
    for k, r in enumerate(others):
        xs, ys = [], []
        for i, m in enumerate(models):
            s = speedup(cells, m, r)
            if s:
                xs.append(i + k * width)
                ys.append(s)
        ax.bar(xs, ys, width, label=labels[r])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + width * (len(others) - 1) / 2 for i in range(len(models))])
    ax.set_xticklabels(models, rotation=30, ha="right")
    ax.set_ylabel("speed-up over PyTorch eager (log)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}_speedup.{ext}"
        fig.savefig(path)
        written.append(path)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runners:
        pts = [(c["compile_s"], c["latency_ms"]["median"]) for (m, rr), c in cells.items()
               if rr == r and c["status"] == "ok" and c["compile_s"] is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=labels[r])
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_yscale("log")
    ax.set_xlabel("compile time (s)")
    ax.set_ylabel("median latency (ms)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}_compile_vs_latency.{ext}"
        fig.savefig(path)
        written.append(path)
    plt.close(fig)
    return written


def ablation_markdown(run: dict[str, Any], reference: str) -> str:
    """Slowdown of dlc with each pass disabled, relative to `reference` (full dlc)."""
    models, runners, cells = _cells(run)
    ablated = [r for r in runners if r.startswith(reference + "-no-")]
    lines = ["| model | " + " | ".join("without " + r.split("-no-", 1)[1] for r in ablated)
             + " |", "|" + "---|" * (len(ablated) + 1)]
    for m in models:
        base = cells.get((m, reference))
        row = [m]
        for r in ablated:
            c = cells.get((m, r))
            if not base or not c or base["status"] != "ok" or c["status"] != "ok":
                row.append(c["status"] if c else "")
            else:
                row.append(f"{c['latency_ms']['median'] / base['latency_ms']['median']:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Each cell: median latency with the pass disabled / with every pass "
                 f"({reference}); above 1 means the pass helps.")
    return "\n".join(lines) + "\n"
