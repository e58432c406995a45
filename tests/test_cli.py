"""The dlc command line on a file.py:factory model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlc.cli import main

MODEL = '''
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((3,), 2.0))

    def forward(self, x):
        return torch.relu(x * self.scale) + x

def make():
    return Net(), (torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2,)
'''


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    return path


def test_show_prints_the_graph(model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", f"{model_file}:make"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph @net(%x: f32[2, 3]) -> (f32[2, 3]) {")
    assert "ew.relu" in out and 'loc("" net.py:' not in out


def test_run_prints_shapes_checksum_and_difference(model_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{model_file}:make"]) == 0
    out = capsys.readouterr().out
    # x = [-2..3]: relu(2x) + x = [-2, -1, 0, 3, 6, 9] -> checksum 15
    assert "output 0: float32[2, 3]  checksum 15" in out
    assert "max|diff| vs torch 0 " in out


def test_run_takes_inputs_from_npz(model_file: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.ones((2, 3), np.float32))
    assert main(["run", f"{model_file}:make", "--inputs", str(npz)]) == 0
    assert "checksum 18" in capsys.readouterr().out  # relu(2) + 1 = 3, six times


def test_errors_are_one_line_not_a_traceback(model_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", f"{model_file}:nothing"]) == 1
    assert "has no callable 'nothing'" in capsys.readouterr().err
