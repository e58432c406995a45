"""Passes: graph-IR optimizations and tensor-IR lowering and scheduling.

    from dlc.passes import PassContext, Timing, run_pipeline
    ctx = PassContext(instruments=[Timing()])
    optimized = run_pipeline(graph, opt_level=3, disable=["fuse"], ctx=ctx)
    ctx.fusion_plan, ctx.memory_plan      # what lowering reads

`manager` holds the pass base class, registry, context, instruments and pipelines;
`rewrite` the pattern-rewrite engine; `graph/` one module per graph pass.
"""

from dlc.passes.manager import (
    LEVEL_OF,
    DumpDir,
    GraphPass,
    PassContext,
    PassInstrument,
    Pipeline,
    PrintAfter,
    Timing,
    UnknownPassError,
    VerifyAfterEach,
    get_pass,
    make_pass,
    register_pass,
    registered_passes,
    run_pipeline,
)

__all__ = [
    "LEVEL_OF", "DumpDir", "GraphPass", "PassContext", "PassInstrument", "Pipeline", "PrintAfter",
    "Timing", "UnknownPassError", "VerifyAfterEach", "get_pass", "make_pass", "register_pass",
    "registered_passes", "run_pipeline",
]
