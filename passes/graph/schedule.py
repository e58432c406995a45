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

from dlc.passes.manager import GraphPass, PassContext, register_pass

from dlc.ir.graph import Graph


@register_pass
@dataclass(frozen=True)
class Schedule(GraphPass):
    """Loop scheduling: tile, vectorize, unroll and parallelize each kernel by rules.

    Before (the graph is unchanged; `ctx.schedule` is "naive"):
        for i in 0..70 { for j in 0..64 { acc = 0; for k in 0..40 {...}; C[i, j] = acc } }
    After (`ctx.schedule` is "default", applied when the group is lowered):
        parallel for i in 0..70 { for j_o in 0..4 {
          C_local[0..16] = 0 (vectorized); for k in 0..40 { vectorized for j_i in 0..16 {...} }
          C[i, j_o*16 + j_i] = C_local[j_i] (vectorized) } }
    """

    name: ClassVar[str] = "schedule"
    naive: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ctx.schedule = "naive" if self.naive else "default"
        return graph
