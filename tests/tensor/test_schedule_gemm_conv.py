"""Convolutions as GEMM micro-kernels: the padded copy, the lane choice, the thread split.

Every case runs through LLVM against the reference interpreter (`target="ref"`) and
PyTorch, with odd sizes, strides, dilations and one-sided padding, then checks the
schedule the rules chose.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import dlc
from dlc.ops.nn_conv import PAD_FIRST_MIN_REDUCTION
from dlc.testing import assert_close


def compile_and_check(model: torch.nn.Module, x: torch.Tensor, **options
                      ) -> dlc.CompiledModel:
    model = model.eval()
    compiled = dlc.compile(model, (x,), target="llvm", **options)
    oracle = dlc.compile(model, (x,), target="ref", **options)
    got = compiled(x)
    assert_close(got, oracle(x), rtol=1e-4)
    with torch.no_grad():
        assert_close(got, model(x).numpy(), rtol=1e-4)
    return compiled


def conv_kernel(compiled: dlc.CompiledModel) -> str:
    text = compiled.show("tensor", schedule=True)
    return text[text.index("# schedule:"):]


@pytest.mark.parametrize("c,o,hw,kernel,stride,padding,dilation", [
    (16, 64, (7, 7), 3, 1, 1, 1),  # rows of 7 (a shifted row block)
    (8, 40, (9, 13), 3, 2, 1, 1),  # stride 2, odd image, 40 channels (a partial panel)
    (12, 33, (10, 6), (3, 5), 1, (2, 1), 1),  # wider padding on one axis, 33 channels
    (8, 24, (11, 12), 3, 1, (0, 1), 2),  # padding on one axis only, dilation 2
    (24, 17, (5, 37), 3, 1, 1, 1),  # 37 columns: lanes along the image row
])
def test_padded_conv_reads_a_zero_padded_copy(c, o, hw, kernel, stride, padding,
                                              dilation) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c, o, kernel, stride=stride, padding=padding, dilation=dilation)
    compiled = compile_and_check(conv, torch.randn(2, c, *hw))
    text = conv_kernel(compiled)
    assert "v0_padded: f32[2, " in text
    update = next(line for line in text.splitlines() if "v0_local[" in line and "] + " in line
                  and "=" in line and "wb" not in line)
    assert "select(" not in update  # the micro-kernel's loads are unguarded


def test_small_reduction_keeps_the_guarded_load() -> None:
    """3 input channels x 9 taps: the copy would cost more than the selects."""
    assert 3 * 9 < PAD_FIRST_MIN_REDUCTION
    conv = torch.nn.Conv2d(3, 32, 3, padding=1)
    text = conv_kernel(compile_and_check(conv, torch.randn(1, 3, 12, 12)))
    assert "padded" not in text and "select(" in text


def test_depthwise_conv_keeps_the_guarded_load() -> None:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)
    assert "padded" not in conv_kernel(compile_and_check(conv, torch.randn(1, 64, 10, 10)))


def test_narrow_image_vectorizes_output_channels_two_vectors_wide() -> None:
    """A 16-wide image fills one vector per row; 64 output channels fill two, so the
    register tile holds MR x 32 accumulators instead of MR x 16."""
    conv = torch.nn.Conv2d(32, 64, 3, padding=1)
    text = conv_kernel(compile_and_check(conv, torch.randn(1, 32, 16, 16)))
    assert re.search(r"tile\(v0_l, v0_j, \d+, 32", text)  # columns x 32 channels
    assert "pack(w_weight" in text


def test_symbolic_batch_conv_runs_its_channel_blocks_in_parallel() -> None:
    """Fusing the batch loop N into the parallel loop leaves `// N` indices the race check
    cannot prove distinct: the batch moves outside and the constant loops run in parallel."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 64, 3, padding=1).eval()
    x = torch.randn(2, 16, 24, 24)
    batch = torch.export.Dim("N")
    previous = dlc.get_num_threads()
    dlc.set_num_threads(2)
    try:
        compiled = dlc.compile(conv, (x,), dynamic_shapes={"input": {0: batch}},
                               target="llvm")
    finally:
        dlc.set_num_threads(previous)
    text = conv_kernel(compiled)
    nest = text[text.index("  for v0_i in 0..N"):]
    assert re.match(r"  for v0_i in 0\.\.N \{\n    parallel for v0_j_o_k_fused in 0\.\.\d+", nest)
    for n in (1, 3):
        xn = torch.randn(n, 16, 24, 24)
        with torch.no_grad():
            assert_close(compiled(xn), conv(xn).numpy(), rtol=1e-4)


def test_padded_copy_matches_the_interpreter_in_a_fused_kernel() -> None:
    """The copy sits before the conv in a kernel that also adds a residual."""

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + x

    torch.manual_seed(0)
    x = torch.randn(1, 16, 9, 11)
    compiled = compile_and_check(Block(), x)
    assert np.isfinite(compiled(x)).all()
    assert "padded" in conv_kernel(compiled)
