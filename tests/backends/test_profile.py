"""The per-kernel profile: cycle counters around each kernel call of the entry."""

from __future__ import annotations

import torch

import dlc
from dlc.backends.llvm.profile import node_flops, profile_model
from dlc.cli import main


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 128)
        self.fc2 = torch.nn.Linear(128, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


def test_profile_times_every_kernel_and_counts_gemm_flops() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 64)
    compiled = dlc.compile(MLP().eval(), (x,))
    prof = profile_model(compiled, x.numpy(), repeat=3)
    groups = compiled.executable.model.groups
    assert [k.name for k in prof.kernels] == [g.func.name for g in groups]
    assert all(k.seconds >= 0 for k in prof.kernels)
    assert 0 < sum(k.seconds for k in prof.kernels) <= prof.wall * 1.5
    flops = sorted(k.flops for k in prof.kernels if k.flops)
    assert flops == [2 * 16 * 128 * 32, 2 * 16 * 64 * 128]
    assert "GFLOP/s" in prof.table(top=2)


def test_node_flops_of_a_convolution() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).eval()
    compiled = dlc.compile(conv, (torch.randn(1, 3, 10, 10),), opt_level=0)
    node = next(n for n in compiled.graph.nodes if n.op.name == "nn.conv2d")
    assert node_flops(node, {}) == 2 * 8 * 10 * 10 * 3 * 3 * 3


def test_cli_profile(capsys) -> None:
    assert main(["profile", "gcn", "--repeat", "2", "--top", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 kernels," in out and "k9_add_log_softmax" in out
