"""The `dlc` command line: show, run, compile and zoo (viz and bench join as they land).

    dlc show path/to/model.py:factory          # the graph IR
    dlc run ddpm_unet --size tiny              # run, checksum, max difference from PyTorch
    dlc compile model.onnx -o out/model.so     # a C library: model.so, model.h, model.weights
    dlc zoo                                    # the model zoo
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import DLCError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except DLCError as err:
        print(f"dlc {args.command}: error: {err}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlc", description="dlc, a deep-learning compiler.")
    sub = p.add_subparsers(dest="command")

    def model_command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("model", help="path/to/file.py:factory, a zoo name, or a .onnx path")
        c.add_argument("--size", default="tiny", help="zoo model size (tiny, bench, large)")
        c.add_argument("--target", default="llvm", choices=("ref", "llvm"),
                       help="ref: the NumPy interpreter; llvm: native code")
        c.add_argument("--opt-level", type=int, default=3, choices=(0, 1, 2, 3))
        c.add_argument("--disable", default="", metavar="PASS,...",
                       help="graph passes to switch off (e.g. fuse,transform-layout)")
        c.add_argument("--debug", action="store_true",
                       help="verify the IR after every pass; bounds-check generated code")
        c.add_argument("--print-after", default="", metavar="PASS,...",
                       help="print the IR after these passes")
        c.add_argument("--print-after-all", action="store_true", help="print the IR after "
                                                                       "every pass")
        c.add_argument("--dump-ir", metavar="DIR", help="write NN_<pass>.ir files to DIR")
        c.add_argument("--time-passes", action="store_true", help="report time per pass")
        return c

    show = model_command("show", "print a compilation stage of a model")
    show.add_argument("--stage", default="graph",
                      help="graph | fused | tensor | llvm | llvm-opt | asm")
    show.add_argument("--why-not-fused", action="store_true",
                      help="list every edge fusion refused, with the rule that refused it")
    show.add_argument("--rules", action="store_true", help="list the rewrite rules that fired")
    show.add_argument("--schedule", action="store_true",
                      help="with --stage tensor: print each kernel's schedule trace")
    show.set_defaults(handler=_show)

    run = model_command("run", "run a model and compare it with its source framework")
    run.add_argument("--inputs", help=".npz file with the inputs (in order: arr_0, arr_1, "
                                      "... or named after the model's inputs)")
    run.set_defaults(handler=_run)

    prof = model_command("profile", "time each kernel of a model compiled for llvm")
    prof.add_argument("--repeat", type=int, default=10, help="timed runs (after 2 warm-ups)")
    prof.add_argument("--top", type=int, default=20, help="kernels to list, slowest first")
    prof.add_argument("--threads", type=int, help="threads for parallel loops "
                                                  "(default: all cores)")
    prof.set_defaults(handler=_profile)

    viz = model_command("viz", "draw the graph IR with graphviz (fused groups as clusters)")
    viz.add_argument("-o", "--output", default="graph.svg", help="output file (.svg, .png, "
                                                                  ".pdf or .dot)")
    viz.add_argument("--after", default="", metavar="PASS",
                     help="draw the graph after this pass of the pipeline (default: the end)")
    viz.set_defaults(handler=_viz)

    _add_compile_command(sub)

    zoo = sub.add_parser("zoo", help="list the model zoo")
    zoo.add_argument("--ops", action="store_true", help="also list the ATen ops each uses "
                                                        "(exports every model: slow)")
    zoo.set_defaults(handler=_zoo)
    return p


def _compile(args: argparse.Namespace) -> tuple[Any, Any]:
    return _compile_with(args, [])


def _compile_with(args: argparse.Namespace, extra: list[Any]) -> tuple[Any, Any]:
    import dlc
    from dlc.model_source import load_model
    from dlc.passes.manager import DumpDir, PrintAfter, Timing

    source = load_model(args.model, args.size)
    instruments: list[Any] = list(extra)
    if args.print_after_all:
        instruments.append(PrintAfter("all"))
    elif args.print_after:
        instruments.append(PrintAfter(_names(args.print_after)))
    if args.dump_ir:
        instruments.append(DumpDir(args.dump_ir))
    timing = Timing() if args.time_passes else None
    if timing is not None:
        instruments.append(timing)
    compiled = dlc.compile(source.module, source.example_inputs, source.dynamic_shapes,
                           target=args.target, opt_level=args.opt_level,
                           disable=_names(args.disable), debug=args.debug,
                           instruments=instruments)
    if timing is not None:
        print(timing.report(), file=sys.stderr)
    return source, compiled


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _show(args: argparse.Namespace) -> int:
    _, compiled = _compile(args)
    if args.why_not_fused:
        plan = compiled.ctx.fusion_plan
        print("\n".join(plan.why_not_fused()) if plan.why_not_fused() else "every edge fused")
        return 0
    if args.rules:
        firings = compiled.ctx.rule_firings()
        print("\n".join(str(f) for f in firings) if firings else "no rewrite rule fired")
        return 0
    print(compiled.show(args.stage, schedule=args.schedule), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dlc.compiled import as_tuple
    from dlc.testing import to_numpy

    source, compiled = _compile(args)
    inputs = source.example_inputs
    if args.inputs:
        inputs = _load_npz(args.inputs, compiled.graph)
    start = time.perf_counter()
    got = as_tuple(compiled(*inputs))
    elapsed = time.perf_counter() - start
    want = as_tuple(_run_source(source.module, inputs))
    print(f"model {source.label}: {len(compiled.graph.nodes)} nodes, target {compiled.target}, "
          f"ran in {elapsed * 1e3:.1f} ms")
    peer = "onnxruntime" if type(source.module).__name__ == "OnnxModel" else "torch"
    for i, (g, w) in enumerate(zip(got, want)):
        w = to_numpy(w)
        diff = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.size else 0.0
        scale = float(np.max(np.abs(w.astype(np.float64)))) if w.size else 0.0
        checksum = float(g.astype(np.float64).sum())
        print(f"  output {i}: {g.dtype}{list(g.shape)}  checksum {checksum:.6g}"
              f"  max|diff| vs {peer} {diff:.3g} (max|{peer}| {scale:.3g})")
    return 0


def _profile(args: argparse.Namespace) -> int:
    import dlc
    from dlc.backends.llvm.profile import profile_model

    if args.target != "llvm":
        raise DLCError("profile times generated kernels: use --target llvm")
    if args.threads:
        dlc.set_num_threads(args.threads)
    source, compiled = _compile(args)
    print(f"model {source.label}, {dlc.get_num_threads()} threads")
    print(profile_model(compiled, *source.example_inputs, repeat=args.repeat).table(args.top))
    return 0


def _run_source(module: Any, inputs: Sequence[Any]) -> Any:
    import torch

    tensors = [torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in inputs]
    with torch.no_grad():
        out = module(*tensors)
    return tuple(out) if isinstance(out, (list, tuple)) else out


def _load_npz(path: str, graph: Any) -> tuple[np.ndarray, ...]:
    data = np.load(path)
    names = [v.name for v in graph.inputs]
    if all(n in data for n in names):
        return tuple(data[n] for n in names)
    keys = [f"arr_{i}" for i in range(len(names))]
    if all(k in data for k in keys):
        return tuple(data[k] for k in keys)
    raise DLCError(f"{path} holds {sorted(data.files)}; expected {names} or {keys}")


def _viz(args: argparse.Namespace) -> int:
    from dlc.viz import render

    if args.after:
        from dlc.passes.manager import PassInstrument, normalize_pass_name

        captured: dict[str, Any] = {}

        class Capture(PassInstrument):
            """An instrument that keeps the graph after one pass."""

            def after_pass(self, index: int, pass_: Any, before: Any, after: Any,
                           ctx: Any) -> None:
                if normalize_pass_name(pass_.name) == normalize_pass_name(args.after):
                    captured["graph"] = after
                    captured["plan"] = ctx.fusion_plan

        args.print_after = ""
        source, compiled = _compile_with(args, [Capture()])
        if "graph" not in captured:
            raise DLCError(f"pass {args.after!r} did not run at opt level {args.opt_level}")
        graph, plan = captured["graph"], captured["plan"]
    else:
        _, compiled = _compile(args)
        graph, plan = compiled.graph, compiled.ctx.fusion_plan
    _, message = render(graph, args.output, plan)
    print(message)
    return 0


def _add_compile_command(sub: Any) -> None:
    """`dlc compile MODEL -o model.so`: an ahead-of-time library, header and weights."""
    c = sub.add_parser("compile", help="compile a model to a shared library runnable from C "
                                       "(model.so, model.h, model.weights)")
    c.add_argument("model", help="path/to/file.py:factory, a zoo name, or a .onnx path")
    c.add_argument("-o", "--output", required=True, metavar="model.so",
                   help="the library; model.h and model.weights are written next to it")
    c.add_argument("--size", default="tiny", help="zoo model size (tiny, bench, large)")
    c.add_argument("--opt-level", type=int, default=3, choices=(0, 1, 2, 3))
    c.add_argument("--disable", default="", metavar="PASS,...",
                   help="graph passes to switch off (e.g. fuse,transform-layout)")
    c.add_argument("--debug", action="store_true",
                   help="bounds-check every load and store (a failure is a nonzero status)")
    c.add_argument("--keep-sources", action="store_true",
                   help="also keep the object file and the generated C wrapper")
    c.set_defaults(handler=_compile_library)


def _compile_library(args: argparse.Namespace) -> int:
    import dlc
    from dlc.backends.llvm.aot import write_library
    from dlc.model_source import load_model

    source = load_model(args.model, args.size)
    start = time.perf_counter()
    compiled = dlc.compile(source.module, source.example_inputs, source.dynamic_shapes,
                           target="llvm", opt_level=args.opt_level,
                           disable=_names(args.disable), debug=args.debug)
    artifacts = write_library(compiled, args.output, keep_sources=args.keep_sources)
    print(f"model {source.label}: {len(compiled.graph.nodes)} nodes, compiled in "
          f"{time.perf_counter() - start:.1f} s")
    print(artifacts.describe())
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from survey_bench import zoo

    table = Table(title="dlc model zoo")
    for col in ("name", "task", "paper", "parameters", "sizes"):
        table.add_column(col)
    if args.ops:
        table.add_column("ATen ops")
    for entry in zoo.catalogue(with_ops=args.ops):
        row = [entry["name"], entry["task"], entry["paper"], f"{entry['parameters']:,}",
               ", ".join(entry["sizes"])]
        if args.ops:
            row.append(", ".join(entry["ops"]))
        table.add_row(*row)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
