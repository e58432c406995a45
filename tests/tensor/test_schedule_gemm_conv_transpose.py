"""Strided transposed convolutions as GEMM micro-kernels, one per output phase.

The phase decomposition (`dlc/ops/nn_conv.py`) reads the weight tap `(l + pad) % s + s*j`,
so the rule splits each output loop by the stride and runs the phases outermost
(`passes/tensor/schedule_gemm.py`): within a phase the tap is fixed and the columns are
the register tile's rows. Every case runs through LLVM against the reference interpreter
and PyTorch, then checks the schedule.
"""

from __future__ import annotations

import re

import pytest
import torch

from tests.tensor.test_schedule_gemm_conv import compile_and_check, conv_kernel


@pytest.mark.parametrize("c,o,hw,kernel,stride,padding,output_padding", [
    (16, 32, (7, 9), 4, 2, 1, 0),  # the GAN upsampler on an odd image
    (8, 24, (5, 6), 3, 2, 1, 1),  # 3 taps over stride 2: the last phase has fewer
    (8, 20, (4, 5), 5, 3, 2, 2),  # stride 3, kernel 5, output_padding 2
    (8, 32, (6, 5), (4, 3), (2, 3), (0, 1), (1, 2)),  # per-axis strides, no padding on h
    (6, 16, (3, 4), 2, 2, 0, 0),  # kernel == stride: one tap per phase, no zeros read
    (8, 16, (6, 6), 4, 2, 3, 0),  # padding wider than a phase's reach: no zeros before
])
def test_each_phase_is_a_register_tiled_gemm(c, o, hw, kernel, stride, padding,
                                             output_padding) -> None:
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(c, o, kernel, stride=stride, padding=padding,
                                    output_padding=output_padding)
    text = conv_kernel(compile_and_check(conv, torch.randn(2, c, *hw)))
    splits = re.findall(r"split\(v0_[kl], (\d)\) -> (v0_[kl]_o), (v0_[kl]_i)", text)
    assert splits, "the output loops were not split by the stride"
    assert re.search(r"tile\(v0_\w+, v0_\w+, [2-9]|tile\(v0_\w+, v0_\w+, 1\d", text), \
        "the micro-kernel has no row tile"
    update = next(line for line in text.splitlines() if "v0_local[" in line and "] + " in line
                  and "=" in line and "wb" not in line)
    for _, outer, _ in splits:  # the phase no longer depends on the output position
        assert not re.search(rf"\({outer}\b[^()]*\) (//|%)", update)


def test_three_output_channels_vectorize_the_image_row() -> None:
    """An RGB output: the lanes run along the columns of a phase, which read a zero-padded
    input in place (a guarded read along them would gather), the weight broadcast."""
    conv = torch.nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1)
    text = conv_kernel(compile_and_check(conv, torch.randn(1, 32, 16, 16)))
    assert "v0_padded: f32[1, 32, 18, 18]" in text
    assert re.search(r"tile\(v0_j, v0_l_o, 3, 16", text)
    assert "select(" not in text.split("v0_local:")[1]


def test_an_odd_output_keeps_the_phases_in_one_loop() -> None:
    """7x9 outputs do not divide by the stride: no split (a tail would guard each FMA),
    still correct."""
    conv = torch.nn.ConvTranspose2d(8, 32, 3, stride=2, padding=1)
    text = conv_kernel(compile_and_check(conv, torch.randn(1, 8, 4, 5)))
    assert "split(v0_k, 2)" not in text and "split(v0_l, 2)" not in text


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_transposed_conv_stays_correct(groups) -> None:
    conv = torch.nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1, groups=groups)
    compile_and_check(conv, torch.randn(2, 8, 5, 6))


def test_transposed_conv1d_by_phase() -> None:
    conv = torch.nn.ConvTranspose1d(16, 32, 5, stride=3, padding=2, output_padding=2)
    text = conv_kernel(compile_and_check(conv, torch.randn(2, 16, 11)))
    assert "split(v0_k, 3)" in text


@pytest.mark.parametrize("kernel,padding", [(2, 0), (4, 3)])
def test_phases_that_stay_inside_the_input_read_it_unguarded(kernel, padding) -> None:
    """Kernel == stride (one tap per phase), or padding that crops more than the taps
    reach: every read lies inside the input, so neither a copy nor a select."""
    conv = torch.nn.ConvTranspose2d(16, 32, kernel, stride=2, padding=padding)
    text = conv_kernel(compile_and_check(conv, torch.randn(1, 16, 6, 5)))
    assert "padded" not in text and "select(" not in text
