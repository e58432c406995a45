"""`make demo`: compile zoo models with dlc, check them against PyTorch, print a table.

    python -m dlc.demo [--size tiny] [model ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

DEMO_MODELS = ("ddpm_unet", "uvit_bidiffuser", "soda", "mobileclip", "gcn", "gcn_sparse",
               "kge_conve", "compositional_gan", "easygen_bridge", "vim_mllm.prefill",
               "aica_cnn")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 1 if any model fails or disagrees with PyTorch."""
    import torch
    from rich.console import Console
    from rich.table import Table

    import dlc
    from dlc.compiled import as_tuple
    from dlc.testing import assert_close, to_numpy
    from survey_bench import zoo

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", default=list(DEMO_MODELS))
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--target", default="llvm")
    args = parser.parse_args(argv)

    console = Console()
    table = Table(title=f"dlc vs PyTorch eager ({args.size} models, target {args.target})")
    for col in ("model", "nodes", "ops", "compile s", "eager ms", "dlc ms", "max rel. error",
                "verdict"):
        table.add_column(col)
    failures = 0
    for name in args.models:
        module, inputs = zoo.get(name, args.size)
        try:
            start = time.perf_counter()
            compiled = dlc.compile(module, inputs, zoo.dynamic_shapes(name), target=args.target)
            compile_s = time.perf_counter() - start
            with torch.no_grad():
                start = time.perf_counter()
                want = as_tuple(module(*inputs))
                eager_ms = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            got = as_tuple(compiled(*inputs))
            dlc_ms = (time.perf_counter() - start) * 1e3
            want_np = tuple(to_numpy(w) for w in want)
            err = max(_rel_error(g, w) for g, w in zip(got, want_np))
            assert_close(got, want_np, rtol=1e-4)
            verdict = "[green]match[/green]"
        except Exception as exc:  # the demo reports every model, failing or not
            failures += 1
            table.add_row(name, "", "", "", "", "", "", f"[red]{type(exc).__name__}[/red]")
            console.print(f"[red]{name}[/red]: {str(exc).splitlines()[0][:300]}")
            continue
        table.add_row(name, str(len(compiled.graph.nodes)), str(len(compiled.graph.ops_used())),
                      f"{compile_s:.2f}", f"{eager_ms:.1f}", f"{dlc_ms:.1f}", f"{err:.1e}", verdict)
    console.print(table)
    if args.target == "ref":
        console.print("target 'ref' is dlc's NumPy reference interpreter: the oracle, not a "
                      "fast backend.")
    console.print("Times are one call each on tiny models (a smoke test, not a benchmark: "
                  "`make bench` measures bench-size models against PyTorch, ONNX Runtime, "
                  "TVM and XLA).")
    return 1 if failures else 0


def _rel_error(got: np.ndarray, want: np.ndarray) -> float:
    g, w = got.astype(np.float64), want.astype(np.float64)
    scale = float(np.abs(w).max()) if w.size else 0.0
    worst = float(np.abs(g - w).max()) if w.size else 0.0
    return worst / scale if scale else worst


if __name__ == "__main__":
    raise SystemExit(main())
