"""Views: reshape-only groups alias their input's buffer (no kernel, no copy), and the
memory plan keeps the aliased buffer alive for as long as any view of it is read."""

from __future__ import annotations

import numpy as np
import torch

import dlc
from dlc.passes.graph.plan_memory import plan_memory
from dlc.passes.graph.views import view_aliases
from tests.passes.helpers import ir
from tests.passes.test_plan_memory import simulate

LATE_VIEW = """
graph @f(%x: f32[64]) -> (f32[64]) {
  %0 = ew.exp(%x) : f32[64]
  %1 = shape.reshape(%0, shape=[8, 8]) : f32[8, 8]
  %2 = ew.neg(%0) : f32[64]
  %3 = ew.sin(%2) : f32[64]
  %4 = ew.tanh(%3) : f32[64]
  %5 = shape.flatten(%1, start=0, end=1) : f32[64]
  %6 = ew.add(%5, %4) : f32[64]
  return %6
}
"""


def test_view_chain_aliases_its_root_and_keeps_it_alive() -> None:
    graph = ir(LATE_VIEW)
    nodes = graph.nodes
    aliases = view_aliases(graph, [[n] for n in nodes])
    root = nodes[0].output
    assert aliases == {nodes[1].output: root, nodes[5].output: root}
    plan = plan_memory(graph)
    simulate(plan)
    assert nodes[1].output not in plan.allocations and nodes[5].output not in plan.allocations
    assert plan.allocations[root].end == 6  # read through the flatten by the last add
    assert "2 views reuse the buffer" in str(plan)


def test_graph_outputs_are_never_views() -> None:
    graph = ir("""
graph @f(%x: f32[64]) -> (f32[8, 8]) {
  %0 = ew.exp(%x) : f32[64]
  %1 = shape.reshape(%0, shape=[8, 8]) : f32[8, 8]
  return %1
}
""")
    assert view_aliases(graph, [[n] for n in graph.nodes]) == {}


class Heads(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-1, -2)  # torch.export reshapes 4-d to 3-d around bmm
        return torch.softmax(scores, -1).sum(1)


def test_reshapes_around_batch_matmul_emit_no_kernels() -> None:
    q, k = torch.randn(1, 4, 16, 8), torch.randn(1, 4, 16, 8)
    compiled = dlc.compile(Heads(), (q, k), target="llvm")
    with torch.no_grad():
        np.testing.assert_allclose(compiled(q, k), Heads()(q, k).numpy(), rtol=1e-5, atol=1e-6)
    plan = compiled.ctx.memory_plan
    assert plan.aliases
    kernels = [g.func.name for g in compiled.executable.model.groups]
    assert not [name for name in kernels if name.split("_", 1)[1] == "reshape"]
    unviewed = dlc.compile(Heads(), (q, k), target="llvm", disable=["plan-memory"])
    assert len(unviewed.executable.model.groups) > len(kernels)
