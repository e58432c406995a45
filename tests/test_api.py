"""The public API: dlc.compile, CompiledModel and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlc
from dlc.errors import DLCError, InputError
from dlc.testing import assert_close


class TwoOutputs(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + y, torch.relu(x) * y


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)


def test_compile_returns_a_callable_on_numpy_and_torch() -> None:
    model, (x, y) = TwoOutputs(), inputs()
    compiled = dlc.compile(model, (x, y))
    want = tuple(t.numpy() for t in model(x, y))
    assert_close(compiled(x, y), want)
    assert_close(compiled(x.numpy(), y.numpy()), want)
    assert isinstance(compiled(x, y), tuple)


def test_import_model_gives_a_printable_graph() -> None:
    graph = dlc.import_model(TwoOutputs(), inputs())
    text = str(graph)
    assert text.startswith("graph @twooutputs(%x: f32[2, 3], %y: f32[2, 3])")
    assert "ew.relu" in text


def test_wrong_shape_names_the_input_and_expected_type() -> None:
    compiled = dlc.compile(TwoOutputs(), inputs())
    with pytest.raises(InputError, match=r"input %y expects f32\[2, 3\], got shape \[2, 4\]"):
        compiled(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))


def test_wrong_dtype_names_the_input_and_expected_dtype() -> None:
    compiled = dlc.compile(TwoOutputs(), inputs())
    with pytest.raises(InputError, match="input %x expects dtype f32, got float64"):
        compiled(np.zeros((2, 3)), np.zeros((2, 3), np.float32))


def test_wrong_input_count_lists_the_inputs() -> None:
    compiled = dlc.compile(TwoOutputs(), inputs())
    with pytest.raises(InputError, match=r"takes 2 inputs \(%x, %y\), got 1"):
        compiled(np.zeros((2, 3), np.float32))


def test_symbolic_size_must_agree_across_inputs() -> None:
    n = torch.export.Dim("N")
    compiled = dlc.compile(TwoOutputs(), inputs(), dynamic_shapes=({0: n}, {0: n}))
    with pytest.raises(InputError, match="size N is 4 here but 3 in an earlier input"):
        compiled(np.zeros((3, 3), np.float32), np.zeros((4, 3), np.float32))


def test_unknown_target_and_stage_are_clear_errors() -> None:
    with pytest.raises(DLCError, match="unknown target 'cuda'; available targets: ref, llvm"):
        dlc.compile(TwoOutputs(), inputs(), target="cuda")
    compiled = dlc.compile(TwoOutputs(), inputs())
    with pytest.raises(DLCError, match="unknown stage"):
        compiled.show("bogus")
    assert compiled.show("graph") == str(compiled.graph)
