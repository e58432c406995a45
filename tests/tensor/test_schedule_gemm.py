"""GEMM-like nests: lane choice, packed panels, register tiles, prepacked weights.

Every case runs through LLVM against PyTorch, including the tails the micro-kernel must
handle (rows not a multiple of MR, columns not a multiple of 32, fewer than 32 columns,
one row).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlc
from dlc.backends.llvm.executable import lower_model
from dlc.testing import assert_close


def compile_and_check(model: torch.nn.Module, *xs: torch.Tensor, **options
                      ) -> dlc.CompiledModel:
    compiled = dlc.compile(model.eval(), xs, target="llvm", **options)
    with torch.no_grad():
        want = model(*xs).numpy()
    assert_close(compiled(*xs), want, rtol=1e-4)
    return compiled


def traces(compiled: dlc.CompiledModel) -> str:
    return compiled.show("tensor", schedule=True)


class MatMul(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


@pytest.mark.parametrize("m,k,n", [(64, 40, 96), (70, 33, 50), (1, 64, 80), (9, 16, 16),
                                   (130, 20, 17)])
def test_matmul_shapes_and_tails(m: int, k: int, n: int) -> None:
    torch.manual_seed(0)
    compiled = compile_and_check(MatMul(), torch.randn(m, k), torch.randn(k, n))
    text = traces(compiled)
    assert "vectorize(" in text


def test_matmul_register_tile_is_rows_by_two_vectors_in_panel_order() -> None:
    compiled = compile_and_check(MatMul(), torch.randn(64, 40), torch.randn(40, 96))
    text = traces(compiled)
    assert "tile(v0_i, v0_j, 8, 32" in text  # MR=8 rows x NR=32 lanes
    assert "reorder(v0_j_o, v0_i_o)" in text  # B's panel outside the row blocks
    assert "split(v0_j_i, 16)" in text and "unroll(v0_j_i_o)" in text


def test_row_tail_is_shifted_not_guarded() -> None:
    compiled = compile_and_check(torch.nn.Linear(24, 64), torch.randn(1, 37, 24))
    text = traces(compiled)
    assert ", shift) ->" in text
    assert "min(" in compiled.show("tensor")


def test_linear_weight_is_packed_at_compile_time() -> None:
    compiled = compile_and_check(torch.nn.Linear(48, 80), torch.randn(16, 48))
    text = traces(compiled)
    assert "pack(w_" in text and '"0/32,1,0%32"' in text
    kernel = compiled.show("tensor")
    # the pack's copy loop left the kernel: the packed weight is a parameter
    assert "_packed: f32[3, 48, 32]" in kernel.split("{")[0]
    assert "_packed[" in kernel and "_p0 in" not in kernel
    model = compiled.executable.model
    packed = [c for c in model.constants() if c.name.endswith("_packed")]
    assert len(packed) == 1 and packed[0].data.shape == (3, 48, 32)


def test_activation_is_packed_only_when_enough_rows_reuse_it() -> None:
    few = compile_and_check(MatMul(), torch.randn(8, 40), torch.randn(40, 96))
    many = compile_and_check(MatMul(), torch.randn(128, 40), torch.randn(40, 96))
    assert "pack(" not in traces(few)
    assert "pack(b," in traces(many) and "b_p0 in" in many.show("tensor")


def test_conv_vectorizes_output_channels_over_a_packed_weight() -> None:
    conv = torch.nn.Conv2d(16, 64, 3, padding=1)
    compiled = compile_and_check(conv, torch.randn(1, 16, 7, 7), disable=["transform-layout"])
    text = traces(compiled)
    assert '"0/32,1,2,3,0%32"' in text  # OIHW -> O/32, I, H, W, 32
    assert "tile(v0_l, v0_j, 7, 32" in text  # 7 output columns x 32 channels


def test_wide_1x1_conv_keeps_the_image_row_as_lanes() -> None:
    conv = torch.nn.Conv2d(8, 16, 1)
    compiled = compile_and_check(conv, torch.randn(1, 8, 4, 64), disable=["transform-layout"])
    assert "pack(" not in traces(compiled)
    assert "v0_l_i" in traces(compiled)  # the width is split into lanes


def test_channels_last_conv_vectorizes_output_channels() -> None:
    from dlc.interpreter import run_graph
    from dlc.ir import DType, GraphBuilder, TensorType

    rng = np.random.default_rng(0)
    b = GraphBuilder("nhwc")
    x = b.input("x", TensorType((1, 10, 12, 8), DType.f32))
    w = b.const(rng.standard_normal((48, 8, 3, 3)).astype(np.float32), "w")
    b_ = b.const(rng.standard_normal(48).astype(np.float32), "b")
    graph = b.build([b.op("nn.conv2d", x, w, b_, padding=[1, 1], layout="NHWC")])
    compiled = dlc.compile(graph, target="llvm", disable=["transform-layout"])
    data = rng.standard_normal((1, 10, 12, 8)).astype(np.float32)
    assert_close(compiled(data), run_graph(graph, data)[0], rtol=1e-4)
    text = traces(compiled)
    assert "tile(v0_k, v0_l, 6, 32" in text  # 12 = 2 x 6 columns, 32 channels
    # the input channel (contiguous in NHWC) becomes the innermost reduction loop, and
    # the packed weight follows the loop order: O/32, KH, KW, I, 32
    assert "reorder(v0_rk0, v0_rk1, v0_rc)" in text
    assert '"0/32,2,3,1,0%32"' in text


def test_depthwise_conv_is_left_to_the_general_rule() -> None:
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)
    compiled = compile_and_check(conv, torch.randn(1, 32, 9, 20), disable=["transform-layout"])
    assert "pack(" not in traces(compiled)


def test_prepacked_constants_are_shared_between_kernels() -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(64, 32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.nn.functional.linear(x, self.w)
            return torch.nn.functional.linear(torch.relu(h) @ self.w, self.w)

    compiled = compile_and_check(Tied(), torch.randn(4, 32))
    model = compiled.executable.model
    packed = [c for c in model.constants() if c.name.endswith("_packed")]
    assert len({id(c) for c in packed}) == len(packed) <= 2


def test_aot_library_runs_with_prepacked_weights(tmp_path) -> None:
    from tests.backends.test_aot import CC, run_from_c

    if CC is None:
        pytest.skip("no C compiler (cc) on the PATH")
    x = torch.randn(4, 48)
    compiled = compile_and_check(torch.nn.Linear(48, 64), x)
    assert any(c.name.endswith("_packed") for c in compiled.executable.model.constants())
    (got,), = run_from_c(compiled, [({}, [x.numpy()])], tmp_path)
    assert_close(got, compiled(x), rtol=1e-6)


def test_lower_model_without_schedule_packs_nothing() -> None:
    compiled = dlc.compile(torch.nn.Linear(48, 64).eval(), (torch.randn(4, 48),),
                           target="llvm")
    model = lower_model(compiled.graph, [[n] for n in compiled.graph.nodes], "naive")
    assert not [c for c in model.constants() if c.name.endswith("_packed")]
    assert np.all([t is None for t in model.traces])
