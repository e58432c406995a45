"""Shape ops: the interpreter against PyTorch, through torch.export and directly.

Also home of the helpers the linalg and creation tests share: `Fn` (a module around a
function, with named parameters so `dynamic_shapes` can name their axes), `one_op` (a
one-node DirectCase graph), `PreservedCase` (import an ATen op that the default
decompositions would split, to test its converter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.export import Dim

from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.testing import assert_close, to_numpy
from tests.ops.cases import DirectCase, TorchCase, case_params, run_case
from tests.ops.cases import _round_trip as round_trip


class Fn(torch.nn.Module):
    """A module wrapping a function of up to three tensors, so each case is one line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, y=None, z=None):
        return self.fn(*[a for a in (x, y, z) if a is not None])


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def ints(*shape, seed=0, high=100):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-high, high, shape, generator=g, dtype=torch.int64)


def bools(*shape, seed=0):
    return randn(*shape, seed=seed) > 0


N = Dim("N")
S = Dim("S")


def one_op(op: str, **attrs: Any):
    """A DirectCase graph builder: one `op` node over all the inputs."""

    def build(*arrays: np.ndarray):
        b = GraphBuilder(op.replace(".", "_"))
        xs = [b.input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype)))
              for i, a in enumerate(arrays)]
        return b.build(list(b.node(op, xs, attrs).outputs))

    return build


def np_inputs(*tensors: torch.Tensor):
    return lambda: tuple(t.numpy() for t in tensors)


@dataclass
class PreservedCase:
    """Import `fn(*inputs)` with `keep` removed from the decomposition table, so the
    converter of an ATen op that core ATen normally splits is exercised too."""

    id: str
    fn: Any
    inputs: Any
    keep: tuple[str, ...]  # ATen overloads to keep whole, e.g. "linear.default"
    ops: tuple[str, ...]
    rtol: float = 1e-5
    exact: bool = False


def run_preserved_case(case: PreservedCase) -> None:
    from dlc.frontends.torch import import_exported_program

    module, inputs = Fn(case.fn).eval(), case.inputs()
    table = torch.export.default_decompositions()
    for name in case.keep:
        packet, overload = name.split(".")
        del table[getattr(getattr(torch.ops.aten, packet), overload)]
    with torch.no_grad():
        ep = torch.export.export(module, inputs, strict=False).run_decompositions(table)
        want = module(*inputs)
    kept = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert all(f"aten.{k}" in kept for k in case.keep), f"{case.id}: export split {kept}"
    graph = round_trip(import_exported_program(ep, name=case.id))
    missing = [op for op in case.ops if op not in graph.ops_used()]
    assert not missing, f"{case.id}: graph lacks {missing}; it uses {graph.ops_used()}"
    got = run_graph(graph, *[to_numpy(x) for x in inputs])
    want_t = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    assert_close(tuple(got), tuple(to_numpy(w) for w in want_t), case.rtol, case.exact,
                 what=case.id)


def _nchw_to_blocked(x, block):
    n, c, h, w = x.shape
    return x.reshape(n, c // block, block, h, w).permute(0, 1, 3, 4, 2)


def _blocked_to_nchw(x):
    n, cb, h, w, block = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(n, cb * block, h, w)


T = TorchCase
CASES = [
    # reshape / view
    T("view_neg1", lambda: Fn(lambda x: x.view(-1, 3)), lambda: (randn(4, 6),),
      ops=("shape.reshape",)),
    T("reshape_3d", lambda: Fn(lambda x: x.reshape(2, -1, 3)), lambda: (randn(4, 6),),
      ops=("shape.reshape",)),
    T("view_int64", lambda: Fn(lambda x: x.view(3, 2, 4)), lambda: (ints(4, 6),),
      ops=("shape.reshape",), exact=True),
    T("view_bool", lambda: Fn(lambda x: x.reshape(-1)), lambda: (bools(2, 3, 4),),
      ops=("shape.reshape",), exact=True),
    T("view_dynamic_neg1", lambda: Fn(lambda x: x.view(-1, 3)), lambda: (randn(4, 6),),
      ops=("shape.reshape",), dynamic_shapes=({0: N},)),
    T("view_dynamic_expr", lambda: Fn(lambda x: x.view(x.shape[0] * 2, 3)),
      lambda: (randn(4, 6),), ops=("shape.reshape",), dynamic_shapes=({0: N},)),
    T("flatten_dynamic", lambda: Fn(lambda x: x.flatten(1)), lambda: (randn(5, 3, 4),),
      ops=("shape.reshape",), dynamic_shapes=({0: N},)),
    T("flatten_all_dynamic", lambda: Fn(lambda x: x.flatten()), lambda: (randn(5, 3, 4),),
      ops=("shape.reshape",), dynamic_shapes=({0: N},)),
    T("view_two_symbols", lambda: Fn(lambda x: x.view(x.shape[0], x.shape[1], 2, 4)),
      lambda: (randn(3, 5, 8),), ops=("shape.reshape",),
      dynamic_shapes=({0: N, 1: S},)),
    # permute / transpose
    T("permute", lambda: Fn(lambda x: x.permute(2, 0, 1)), lambda: (randn(2, 3, 4),),
      ops=("shape.permute",)),
    T("permute_negative", lambda: Fn(lambda x: x.permute(-1, 0, -2)),
      lambda: (randn(2, 3, 4),), ops=("shape.permute",)),
    T("transpose_contiguous", lambda: Fn(lambda x: x.transpose(0, 2).contiguous()),
      lambda: (ints(2, 3, 4),), ops=("shape.permute",), exact=True),
    T("t_dynamic", lambda: Fn(lambda x: x.t() * 2), lambda: (randn(5, 3),),
      ops=("shape.permute",), dynamic_shapes=({0: N},)),
    T("mT", lambda: Fn(lambda x: x.mT), lambda: (randn(2, 3, 4),), ops=("shape.permute",)),
    # concat
    T("cat", lambda: Fn(lambda x, y: torch.cat([x, y], 1)),
      lambda: (randn(2, 3), randn(2, 5, seed=1)), ops=("shape.concat",)),
    T("cat_negative_axis", lambda: Fn(lambda x, y, z: torch.cat([x, y, z], -1)),
      lambda: (randn(2, 3, 1), randn(2, 3, 2, seed=1), randn(2, 3, 3, seed=2)),
      ops=("shape.concat",)),
    T("cat_dynamic", lambda: Fn(lambda x: torch.cat([x, x * 2], 0)), lambda: (randn(4, 6),),
      ops=("shape.concat",), dynamic_shapes=({0: N},)),
    T("cat_bool", lambda: Fn(lambda x, y: torch.cat([x, y])),
      lambda: (bools(2, 3), bools(1, 3, seed=1)), ops=("shape.concat",), exact=True),
    T("cat_promotes", lambda: Fn(lambda x, y: torch.cat([x, y], 1)),
      lambda: (randn(2, 3), ints(2, 2)), ops=("shape.concat", "ew.cast")),
    T("stack_as_cat", lambda: Fn(lambda x, y: torch.stack([x, y], 1)),
      lambda: (randn(2, 3), randn(2, 3, seed=1)), ops=("shape.concat", "shape.reshape")),
    # split
    T("split_equal", lambda: Fn(lambda x: x.split(2, 1)), lambda: (randn(3, 6),),
      ops=("shape.split",)),
    T("split_uneven", lambda: Fn(lambda x: x.split(4, 1)), lambda: (randn(3, 6),),
      ops=("shape.split",)),
    T("split_sizes_int", lambda: Fn(lambda x: x.split([1, 5], -1)), lambda: (ints(3, 6),),
      ops=("shape.split",), exact=True),
    T("chunk_dynamic", lambda: Fn(lambda x: x.chunk(3, 1)), lambda: (randn(4, 6),),
      ops=("shape.split",), dynamic_shapes=({0: N},)),
    T("unbind", lambda: Fn(lambda x: x.unbind(1)), lambda: (randn(2, 3, 4),),
      ops=("shape.slice", "shape.squeeze")),
    # slice / select
    T("slice_steps", lambda: Fn(lambda x: x[1:, ::2]), lambda: (randn(4, 6),),
      ops=("shape.slice",)),
    T("slice_negative", lambda: Fn(lambda x: x[:, -4:-1]), lambda: (randn(4, 6),),
      ops=("shape.slice",)),
    T("slice_clamped", lambda: Fn(lambda x: x[:, 3:100]), lambda: (ints(4, 6),),
      ops=("shape.slice",), exact=True),
    T("slice_dynamic", lambda: Fn(lambda x: x[1:, :2]), lambda: (randn(4, 6),),
      ops=("shape.slice",), dynamic_shapes=({0: Dim("N", min=3)},)),
    T("slice_dynamic_tail", lambda: Fn(lambda x: x[-2:]), lambda: (randn(5, 3),),
      ops=("shape.slice",), dynamic_shapes=({0: N},)),
    T("slice_symbolic_end", lambda: Fn(lambda x, y: x[:, : y.shape[0]]),
      lambda: (randn(3, 8), randn(5)), ops=("shape.slice",),
      dynamic_shapes=(None, {0: Dim("S", max=7)})),
    T("narrow", lambda: Fn(lambda x: x.narrow(1, 1, 3)), lambda: (randn(2, 6),),
      ops=("shape.slice",)),
    T("select_last", lambda: Fn(lambda x: x[:, -1]), lambda: (randn(4, 6),),
      ops=("shape.slice", "shape.squeeze")),
    T("select_int64", lambda: Fn(lambda x: x[1, 2]), lambda: (ints(4, 6, 2),),
      ops=("shape.slice", "shape.squeeze"), exact=True),
    # squeeze / unsqueeze
    T("unsqueeze_none", lambda: Fn(lambda x: x[None, :, None]), lambda: (randn(4, 6),),
      ops=("shape.unsqueeze",)),
    T("unsqueeze_negative", lambda: Fn(lambda x: x.unsqueeze(-1)), lambda: (bools(4, 6),),
      ops=("shape.unsqueeze",), exact=True),
    T("squeeze_dim", lambda: Fn(lambda x: x.squeeze(1)), lambda: (randn(4, 1, 6),),
      ops=("shape.squeeze",)),
    T("squeeze_all", lambda: Fn(lambda x: x.squeeze()), lambda: (randn(1, 4, 1, 6, 1),),
      ops=("shape.squeeze",)),
    T("squeeze_dynamic", lambda: Fn(lambda x: x.squeeze(-1)), lambda: (randn(4, 3, 1),),
      ops=("shape.squeeze",), dynamic_shapes=({0: N},)),
    # expand
    T("expand", lambda: Fn(lambda x: x.expand(3, 4, 6)), lambda: (randn(4, 1),),
      ops=("shape.expand",)),
    T("expand_dynamic", lambda: Fn(lambda x: x[:, :1].expand(-1, 5)),
      lambda: (randn(4, 6),), ops=("shape.expand",), dynamic_shapes=({0: N},)),
    T("expand_dynamic_named", lambda: Fn(lambda x: x.unsqueeze(1).expand(x.shape[0], 3, 6)),
      lambda: (ints(4, 6),), ops=("shape.expand",), exact=True, dynamic_shapes=({0: N},)),
    T("expand_as_bool", lambda: Fn(lambda x, y: x.expand_as(y)),
      lambda: (bools(1, 6), bools(3, 6, seed=1)), ops=("shape.expand",), exact=True),
    # pad
    T("pad_constant", lambda: Fn(lambda x: F.pad(x, (1, 2))), lambda: (randn(2, 3, 4),),
      ops=("shape.pad",)),
    T("pad_constant_value", lambda: Fn(lambda x: F.pad(x, (1, 1, 2, 0), value=-1.5)),
      lambda: (randn(2, 3, 4),), ops=("shape.pad",)),
    T("pad_crop", lambda: Fn(lambda x: F.pad(x, (-1, 2, 0, -2))), lambda: (randn(2, 3, 4),),
      ops=("shape.pad",)),
    T("pad_int64", lambda: Fn(lambda x: F.pad(x, (2, 0), value=7)), lambda: (ints(3, 4),),
      ops=("shape.pad",), exact=True),
    T("pad_dynamic", lambda: Fn(lambda x: F.pad(x, (1, 1, 1, 1))), lambda: (randn(3, 4),),
      ops=("shape.pad",), dynamic_shapes=({0: N},)),
    # repeat / tile / flip
    T("repeat", lambda: Fn(lambda x: x.repeat(2, 1, 3)), lambda: (randn(4, 6),),
      ops=("shape.repeat",)),
    T("tile_int64", lambda: Fn(lambda x: x.tile(2)), lambda: (ints(2, 3),),
      ops=("shape.repeat",), exact=True),
    T("repeat_dynamic", lambda: Fn(lambda x: x.repeat(2, 3)), lambda: (randn(4, 6),),
      ops=("shape.repeat",), dynamic_shapes=({0: N},)),
    T("flip", lambda: Fn(lambda x: x.flip(0, -1)), lambda: (randn(3, 4, 5),),
      ops=("shape.flip",)),
    # ops core ATen never emits: checked directly against torch
    DirectCase("flatten_direct", one_op("shape.flatten", start=1, end=2),
               np_inputs(randn(2, 3, 4, 5)), lambda x: torch.flatten(x, 1, 2),
               ops=("shape.flatten",)),
    DirectCase("stack_direct", one_op("shape.stack", axis=-1),
               np_inputs(randn(2, 3), randn(2, 3, seed=1), randn(2, 3, seed=2)),
               lambda *xs: torch.stack(xs, -1), ops=("shape.stack",)),
    DirectCase("pad_reflect", one_op("shape.pad", pads=[0, 0, 1, 2, 0, 0, 2, 1],
                                     mode="reflect"),
               np_inputs(randn(1, 2, 4, 5)), lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"),
               ops=("shape.pad",)),
    DirectCase("pad_replicate", one_op("shape.pad", pads=[0, 0, 3, 0, 0, 1],
                                       mode="replicate"),
               np_inputs(randn(1, 4, 5)), lambda x: F.pad(x, (3, 1), mode="replicate"),
               ops=("shape.pad",)),
    DirectCase("pad_circular", one_op("shape.pad", pads=[0, 1, 2, 0, 2, 1],
                                      mode="circular"),
               np_inputs(randn(1, 4, 5)), lambda x: F.pad(x, (2, 1, 1, 2), mode="circular"),
               ops=("shape.pad",)),
    DirectCase("layout_nchw_nhwc",
               one_op("shape.layout_transform", src_layout="NCHW", dst_layout="NHWC"),
               np_inputs(randn(2, 3, 4, 5)), lambda x: x.permute(0, 2, 3, 1),
               ops=("shape.layout_transform",)),
    DirectCase("layout_nhwc_nchw",
               one_op("shape.layout_transform", src_layout="NHWC", dst_layout="NCHW"),
               np_inputs(randn(2, 4, 5, 3)), lambda x: x.permute(0, 3, 1, 2),
               ops=("shape.layout_transform",)),
    DirectCase("layout_nchw_blocked",
               one_op("shape.layout_transform", src_layout="NCHW", dst_layout="NCHW8c"),
               np_inputs(randn(2, 16, 3, 4)), lambda x: _nchw_to_blocked(x, 8),
               ops=("shape.layout_transform",)),
    DirectCase("layout_blocked_nchw",
               one_op("shape.layout_transform", src_layout="NCHW4c", dst_layout="NCHW"),
               np_inputs(randn(2, 3, 5, 6, 4)), _blocked_to_nchw,
               ops=("shape.layout_transform",)),
    DirectCase("layout_nhwc_blocked",
               one_op("shape.layout_transform", src_layout="NHWC", dst_layout="NCHW4c"),
               np_inputs(randn(2, 5, 6, 8)),
               lambda x: _nchw_to_blocked(x.permute(0, 3, 1, 2), 4),
               ops=("shape.layout_transform",)),
    DirectCase("layout_reblock_int64",
               one_op("shape.layout_transform", src_layout="NCHW4c", dst_layout="NCHW8c"),
               np_inputs(ints(1, 4, 2, 3, 4)),
               lambda x: _nchw_to_blocked(_blocked_to_nchw(x), 8),
               ops=("shape.layout_transform",), exact=True),
]

PRESERVED = [
    PreservedCase("stack_preserved", lambda x, y: torch.stack([x, y], 1),
                  lambda: (randn(2, 3), randn(2, 3, seed=1)), ("stack.default",),
                  ("shape.stack",)),
    PreservedCase("reflection_pad2d", lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"),
                  lambda: (randn(1, 2, 4, 6),), ("reflection_pad2d.default",),
                  ("shape.pad",)),
    PreservedCase("reflection_pad1d", lambda x: F.pad(x, (3, 1), mode="reflect"),
                  lambda: (randn(2, 4, 6),), ("reflection_pad1d.default",), ("shape.pad",)),
    PreservedCase("replication_pad2d", lambda x: F.pad(x, (1, 2, 0, 3), mode="replicate"),
                  lambda: (randn(1, 2, 4, 6),), ("replication_pad2d.default",),
                  ("shape.pad",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


@pytest.mark.parametrize("case", PRESERVED, ids=lambda c: c.id)
def test_preserved_converter(case):
    run_preserved_case(case)


def test_dynamic_view_keeps_symbolic_sizes():
    from dlc.frontends.torch import import_module

    graph = import_module(Fn(lambda x: x.view(x.shape[0] * 2, 3)), (randn(4, 6),),
                          dynamic_shapes=({0: N},))
    (node,) = [n for n in graph.nodes if n.op.name == "shape.reshape"]
    assert str(node.output.type) == "f32[2*N, 3]"


def test_layout_transform_symbolic_batch():
    b = GraphBuilder("g")
    x = b.input("x", TensorType((symbol("N"), 32, 7, 7), DType.f32))
    y = b.op("shape.layout_transform", x, src_layout="NCHW", dst_layout="NCHW16c")
    assert str(y.type) == "f32[N, 2, 7, 7, 16]"


@pytest.mark.parametrize("layout", ["NCHW16", "NCcHW", "NCHW16C", "NCHW4c4c", "NHW", "NCHWD",
                                    "NCHW3c"])
def test_layout_transform_rejects_bad_layouts(layout):
    from dlc.errors import IRError

    b = GraphBuilder("g")
    x = b.input("x", TensorType((1, 32, 7, 7), DType.f32))
    with pytest.raises(IRError):
        b.op("shape.layout_transform", x, src_layout="NCHW", dst_layout=layout)


def test_reshape_rejects_a_wrong_element_count():
    from dlc.errors import IRError

    b = GraphBuilder("g")
    x = b.input("x", TensorType((symbol("N"), 6), DType.f32))
    assert str(b.op("shape.reshape", x, shape=[-1, 4]).type) == "f32[floor(3*N/2), 4]"
    with pytest.raises(IRError):
        b.op("shape.reshape", x, shape=[symbol("N"), 5])


def test_slice_symbolic_bounds():
    b = GraphBuilder("g")
    x = b.input("x", TensorType((symbol("N"), 6), DType.f32))
    y = b.op("shape.slice", x, axes=[0, 1], starts=[-3, 1], ends=[2**63 - 1, -1],
             steps=[1, 2])
    assert str(y.type) == "f32[Min(3, N), 2]"


def test_split_symbolic_piece():
    b = GraphBuilder("g")
    x = b.input("x", TensorType((3, symbol("S")), DType.f32))
    first, rest = b.node("shape.split", [x], {"sizes": [2, symbol("S") - 2], "axis": 1}).outputs
    assert str(rest.type) == "f32[3, S - 2]"
    data = randn(3, 7).numpy()
    got = run_graph(round_trip(b.build([first, rest])), data)
    assert_close(tuple(got), (data[:, :2], data[:, 2:]))
