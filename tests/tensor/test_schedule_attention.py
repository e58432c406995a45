"""Scaled dot-product attention: the row-blocked lowering and its schedule
(passes/tensor/schedule_attention.py).

Every case is compiled with the default schedules and debug bounds checks (the padded K
panels, the repeated last query row and the shifted lane tails must never read or write
outside a buffer) and compared with the reference interpreter; the structural tests check
the trace the rule records and the LLVM IR dlc emits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlc
from dlc.backends.llvm.executable import build, emit_module, lower_model
from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.tensor.expr import const, var
from dlc.ir.tensor.stmt import Buffer, For, Seq, Store
from dlc.ops.attention import row_blocks
from dlc.passes.tensor.schedule_analysis import independence_problem
from dlc.passes.tensor.schedule_rules import default_schedule
from dlc.testing import assert_close

F16, F32 = DType.f16, DType.f32
N, L, S = symbol("N"), symbol("L"), symbol("S")


@pytest.fixture(autouse=True)
def two_threads() -> Any:
    """Schedule for two threads, so the rule's parallel loops are part of every case."""
    previous = dlc.get_num_threads()
    dlc.set_num_threads(2)
    yield
    dlc.set_num_threads(previous)


def sdpa_graph(q: tuple, k: tuple, v: tuple, mask: tuple | None = None,
               dtype: DType = F32, **attrs: Any) -> Any:
    """A graph of one nn.sdpa over inputs of these shapes (`mask`: (shape, dtype))."""
    b = GraphBuilder("g")
    xs = [b.input(name, TensorType(shape, dtype)) for name, shape in zip("qkv", (q, k, v))]
    if mask is not None:
        xs.append(b.input("m", TensorType(*mask)))
    return b.build([b.op("nn.sdpa", *xs, **attrs)])


def inputs(graph: Any, sizes: dict[str, int], seed: int = 0) -> list[np.ndarray]:
    """Random inputs for the graph, symbolic sizes bound by `sizes`; bool masks keep about
    70% of the keys."""
    rng = np.random.default_rng(seed)
    out = []
    for value in graph.inputs:
        t = value.type
        shape = tuple(int(d) if not hasattr(d, "name") else sizes[d.name] for d in t.shape)
        if t.dtype == DType.bool:
            out.append(rng.random(shape) > 0.3)
        else:
            out.append(rng.standard_normal(shape).astype(t.dtype.numpy))
    return out


def check(graph: Any, sizes: dict[str, int] | None = None, rtol: float = 1e-5,
          arrays: list[np.ndarray] | None = None) -> None:
    """The scheduled kernel, bounds-checked, against the reference interpreter."""
    arrays = arrays if arrays is not None else inputs(graph, sizes or {})
    want = run_graph(graph, *arrays)
    got = build(graph, schedule="default", debug=True)(*arrays)
    assert_close(tuple(got), tuple(want), rtol)


def schedule_of(graph: Any) -> tuple[str, str, list[str]]:
    """(trace, scheduled kernel, skipped rules) of the graph's one kernel."""
    (func,) = lower_model(graph, [list(graph.nodes)]).funcs
    sch, report = default_schedule(func, 2)
    return str(sch.trace), str(sch.func), report.skipped


# -- numerics ------------------------------------------------------------------------------


@pytest.mark.parametrize("q,k,v", [
    ((1, 4, 150, 64), (1, 4, 150, 64), (1, 4, 150, 64)),  # 3 blocks of 56: 18 rows repeated
    ((2, 3, 37, 40), (2, 3, 53, 40), (2, 3, 53, 24)),  # one block; 24 lanes: a shifted tail
    ((2, 70, 8), (2, 33, 8), (2, 33, 6)),  # two blocks; 6 lanes: a guarded tail
    ((1, 2, 1, 16), (1, 2, 45, 16), (1, 2, 45, 16)),  # one query row: K read as it is
    ((3, 5, 8), (3, 7, 8), (3, 7, 48)),  # rows fewer than a register tile
])
def test_shapes_and_tails(q: tuple, k: tuple, v: tuple) -> None:
    check(sdpa_graph(q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_bool_mask_causal_and_fully_masked_rows(causal: bool) -> None:
    graph = sdpa_graph((2, 3, 70, 16), (2, 3, 40, 16), (2, 3, 40, 16),
                       mask=((70, 40), DType.bool), is_causal=causal)
    arrays = inputs(graph, {})
    arrays[3][5] = False  # a fully masked row: zeros, not NaN
    arrays[3][66, :3] = False
    check(graph, arrays=arrays)
    got = build(graph, schedule="default")(*arrays)[0]
    assert np.all(got[:, :, 5] == 0)


def test_float_mask_broadcast_and_scale() -> None:
    check(sdpa_graph((2, 3, 66, 8), (2, 3, 41, 8), (2, 3, 41, 8), mask=((3, 1, 41), F32),
                     scale=0.3))


def test_batch_broadcast() -> None:
    """q's heads against one k and v: the panels of K are per K batch, not per output."""
    check(sdpa_graph((2, 3, 20, 8), (1, 40, 8), (3, 40, 12), is_causal=True))


def test_symbolic_batch_rows_and_keys() -> None:
    graph = sdpa_graph((N, 4, L, 32), (N, 4, S, 32), (N, 4, S, 32), is_causal=True)
    for sizes in ({"N": 2, "L": 21, "S": 21}, {"N": 1, "L": 1, "S": 70},
                  {"N": 3, "L": 9, "S": 33}):
        check(graph, sizes)


def test_f16_computes_in_f32() -> None:
    check(sdpa_graph((2, 2, 40, 16), (2, 2, 50, 16), (2, 2, 50, 16), dtype=F16), rtol=1e-2)


def test_row_blocks_are_even_multiples_of_eight() -> None:
    assert row_blocks(const(334))[0] == 56 and int(row_blocks(const(334))[1].value) == 6
    assert row_blocks(const(256))[0] == 64
    assert row_blocks(const(5))[0] == 5 and int(row_blocks(const(5))[1].value) == 1
    assert row_blocks(var("L"))[0] == 8


# -- the schedule --------------------------------------------------------------------------


def uvit_like() -> Any:
    """uvit_bidiffuser's attention: a symbolic batch, 4 heads, 334 tokens of 64."""
    shape = (N, 4, 334, 64)
    return sdpa_graph(shape, shape, shape)


def test_every_stage_runs_in_one_parallel_loop_over_row_blocks() -> None:
    trace, kernel, skipped = schedule_of(uvit_like())
    assert not [s for s in skipped if s.startswith("attention")]
    for stage in ("probs", "sum", "exps", "max", "scores"):
        assert f"compute_at(v0_{stage}, " in trace
    # batch x heads x row blocks fused into the one parallel loop the stages run in
    assert kernel.count("parallel for") == 3  # K's panels, the blocks, the output copy
    header = next(x for x in kernel.splitlines() if "parallel for" in x and "v0_scores" in
                  kernel[kernel.index(x):].split("parallel for")[1])
    assert header.strip().endswith("in 0..N * 24 {")  # 2 x 4 heads x 6 blocks of 56 rows


def test_scores_and_output_get_register_tiles_without_tail_guards() -> None:
    trace, kernel, _ = schedule_of(uvit_like())
    for stage in ("scores", "acc"):
        assert f"cache_write(v0_{stage}, " in trace
        assert f"v0_{stage}_local: f32[8, 2, 16] local" in kernel  # MR=8 x NR=32
    # padded K panels: the scores' lanes need no guard, so no FMA is masked
    assert "< 334" not in kernel.split("v0_max_acc")[0].split("v0_scores_local")[1]
    assert "rfactor(" in trace  # the row max and sum in vector lanes


def test_no_gathers_with_a_symbolic_batch() -> None:
    """Under a tail guard, the broadcast operand's load of a buffer with a symbolic size
    cannot be proved in bounds, and codegen gathers it; the schedule leaves no such guard."""
    graph = uvit_like()
    model = lower_model(graph, [list(graph.nodes)], schedule="default")
    text = str(emit_module(model))
    assert "masked.gather" not in text


def test_not_an_attention_kernel_is_left_to_the_other_rules() -> None:
    from dlc.passes.tensor.schedule_attention import _stages

    assert _stages([("v0_scores", True), ("v0", False)]) is None
    assert _stages([("v0_kpanels", True), ("v0_scores", True), ("v0_max", True),
                    ("v0_exps", True), ("v0_sum", True), ("v0_probs", True),
                    ("v0_acc", True), ("v0", False)]) is not None


# -- the dependence test the parallel block loop needs ---------------------------------------


def _write_then_read(row: Any) -> For:
    """for i: { for j: T[row, j] = X[i, j]; for j2: Y[i, j2] = T[row, 7 - j2] }"""
    i, j, j2 = var("i"), var("j"), var("j2")
    x = Buffer("X", (const(4), const(8)), F32, "global")
    t = Buffer("T", (const(4), const(8)), F32, "global")
    y = Buffer("Y", (const(4), const(8)), F32, "global")
    from dlc.ir.tensor.expr import load

    write = For(j, const(8), Store(t, (row(i), j), load(x, (i, j))))
    read = For(j2, const(8), Store(y, (i, j2), load(t, (row(i), 7 - j2))))
    return For(i, const(4), Seq((write, read)))


def test_accesses_at_other_inner_positions_are_apart_when_outer_dims_pin_the_loop() -> None:
    assert independence_problem(_write_then_read(lambda i: i)) is None
    problem = independence_problem(_write_then_read(lambda i: const(0)))
    assert problem is not None and "several positions" in problem
