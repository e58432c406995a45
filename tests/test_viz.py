"""dlc viz: graphviz pictures of the graph IR with fused groups as clusters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dlc
from dlc import viz


class ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).softmax(-1)


def compiled() -> dlc.CompiledModel:
    return dlc.compile(ConvNet(), (torch.randn(1, 3, 6, 6),), disable=["transform-layout"])


def test_groups_are_clusters_and_edges_carry_shapes() -> None:
    c = compiled()
    source = viz.to_dot(c.graph, c.ctx.fusion_plan).source
    assert source.count("subgraph cluster_") == len(c.ctx.fusion_plan.groups)
    assert "fused_conv2d_relu (out_fusable)" in source
    assert 'label="f32[1, 4, 6, 6]"' in source


def test_without_dot_the_source_is_written(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    c = compiled()
    out, message = viz.render(c.graph, tmp_path / "g.svg", c.ctx.fusion_plan)
    assert out.suffix == ".dot" and out.read_text().startswith("digraph")
    assert "not installed" in message


def test_cli_viz_after_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "net.py"
    model.write_text("import torch\nfrom tests.test_viz import ConvNet\n"
                     "def make():\n    return ConvNet(), (torch.randn(1, 3, 6, 6),)\n")
    from dlc.cli import main

    assert main(["viz", f"{model}:make", "-o", str(tmp_path / "g.dot"),
                 "--after", "fold_constants"]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
