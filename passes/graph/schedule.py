"""schedule: choose how each fused group's loop nest is scheduled (the pass's switch).

Scheduling rewrites tensor-IR loop nests, after lowering, so it cannot run on the graph
itself; this pass records the choice in the PassContext, where the backend reads it when
it lowers each group (`dlc.passes.tensor.schedule_rules.default_schedule`). Registering
it here makes it an ordinary pass for the pipeline: it runs at O1 and above, can be
disabled by name (`disable=["schedule"]`, `--disable schedule`), and its naive variant
(O0, or disabled) leaves every loop nest exactly as lowered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlc.ir.graph import Graph
from dlc.ir.printer import print_graph
from dlc.passes.manager import GraphPass, PassContext, register_pass


@register_pass
@dataclass(frozen=True)
class Schedule(GraphPass):
    """Loop scheduling: tile, vectorize, unroll and parallelize each kernel by rules.

    The graph is unchanged; the pass records that each group's loop nest is to be
    scheduled when it is lowered (`dlc show MODEL --stage tensor --schedule` shows the
    result: `parallel for i ...`, a 4x16 register tile, `vectorized for j_i in 0..16`).

    Before:
        graph @f(%a: f32[70, 40], %b: f32[40, 64]) -> (f32[70, 64]) {
          %0 = linalg.matmul(%a, %b) : f32[70, 64]
          return %0
        }
    After:
        # loop schedules: default (tile, vectorize, unroll, parallelize by rules)
    """

    name: ClassVar[str] = "schedule"
    naive: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ctx.schedule = "naive" if self.naive else "default"
        return graph

    def show(self, graph: Graph, ctx: PassContext) -> str:
        what = ("naive (loop nests as lowered)" if ctx.schedule == "naive"
                else "default (tile, vectorize, unroll, parallelize by rules)")
        return print_graph(graph) + f"# loop schedules: {what}\n"
