"""Elementwise and injective nests: unswitch, and the rules of schedule_injective.

A concatenation is the case that matters: lowered, it is a select between its inputs on
the concatenated index, so every element would load every input. The rules unswitch
the select at the loop whose index it tests; the kernel then loads one input per element.
"""

from __future__ import annotations

import pytest
import torch

import dlc
from dlc.ir.dtypes import f32
from dlc.ir.tensor.compute import compute, placeholder
from dlc.ir.tensor.expr import compare, max_, min_, select, var
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import For, IfThenElse, LoopKind, PrimFunc, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_rules import default_schedule
from dlc.testing import assert_close
from tests.tensor.test_schedule import body_text, concat_rows, run
from tests.tensor.test_schedule_llvm import run_jit


def kv_append(d: int = 20) -> PrimFunc:
    """out[h, k, :] = cache[h, k, :] for k < S, new[h, :] at k = S (a KV-cache append;
    the output's length T is S + 1, a size symbol of its own for the test runner)."""
    s, t = var("S"), var("T")
    cache, new = placeholder((3, s, d), f32, "Cache"), placeholder((3, d), f32, "New")
    out = compute((3, t, d), lambda h, k, c: select(
        compare("lt", k, s), cache[h, min_(k, s - 1), c], new[h, c]), "Out",
        axis_names=("h", "k", "c"))
    return lower_tensors("kv_append", [cache, new], [out])


def test_unswitch_leaves_one_load_per_branch() -> None:
    func = concat_rows(5)
    sch = Schedule(func)
    sch.unswitch("i")
    stores = [s for s in walk(sch.func.body) if isinstance(s, Store)]
    assert len(stores) == 2 and all(s.value.op == "load" for s in stores)
    assert_close(run(sch.func)["C"], run(func)["C"])


def test_unswitched_symbolic_append_through_llvm() -> None:
    func = kv_append()
    sch = Schedule(func)
    _, lane = sch.split("c", 16)
    sch.vectorize(lane)
    sch.unswitch("k")
    sch.parallel("h")  # the two copies of the body write one pattern of elements
    assert "if k < S {" in body_text(sch.func)
    for size in (1, 7):
        assert_close(run_jit(sch.func, S=size, T=size + 1), run_jit(func, S=size, T=size + 1))


def test_unswitch_refusals_say_why() -> None:
    sch = Schedule(kv_append())
    with pytest.raises(ScheduleError, match="no select in the body of h has a condition"):
        sch.unswitch("h")  # the condition k < S changes inside h


def test_parallel_still_refuses_copies_that_write_different_elements() -> None:
    from dataclasses import replace

    func = concat_rows(4)
    sch = Schedule(func)
    sch.unswitch("i")
    # make the else-copy write row 0 in every iteration of i: a race between iterations
    other = next(s for s in walk(sch.func.body) if isinstance(s, IfThenElse)).otherwise
    store = next(s for s in walk(other) if isinstance(s, Store))
    from dlc.ir.tensor.expr import const
    from dlc.passes.tensor.schedule_nest import replace as replace_stmt

    racy = Store(store.buffer, (const(0), store.indices[1]), store.value)
    sch.func = replace(sch.func, body=replace_stmt(sch.func.body, store, racy))
    with pytest.raises(ScheduleError, match="not independent"):
        sch.parallel("i")


def test_default_rules_unswitch_a_concatenation() -> None:
    sch, _ = default_schedule(kv_append(64), threads=2)
    assert any(ins.primitive == "unswitch" for ins in sch.trace)
    ifs = [s for s in walk(sch.func.body) if isinstance(s, IfThenElse)]
    assert any(s.otherwise is not None for s in ifs)
    vectors = [s for s in walk(sch.func.body) if isinstance(s, For)
               and s.kind is LoopKind.VECTORIZED]
    assert len(vectors) == 2  # one vector loop in each copy


class Concat(torch.nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.cat(xs, dim=1)) + torch.stack(xs).sum(0).repeat(1, 3, 1, 1)


def test_concat_kernels_match_torch_and_load_one_input_per_element() -> None:
    torch.manual_seed(0)
    xs = tuple(torch.randn(2, 8, 5, 37) for _ in range(3))
    compiled = dlc.compile(Concat().eval(), xs, target="llvm")
    with torch.no_grad():
        want = Concat()(*xs).numpy()
    assert_close(compiled(*xs), want, rtol=1e-6)
    trace = compiled.show("tensor", schedule=True)
    assert "unswitch(" in trace


def _vectorized(func: PrimFunc) -> bool:
    sch, _ = default_schedule(func, threads=2)
    return any(isinstance(s, For) and s.kind is LoopKind.VECTORIZED
               for s in walk(sch.func.body))


def test_rows_of_a_table_vectorize_but_gathers_along_the_loop_do_not() -> None:
    from dlc.ir.dtypes import DType

    table, ids = placeholder((50, 64), f32, "T"), placeholder((30,), DType.i64, "Ids")
    rows = compute((30, 64), lambda i, k: table[max_(min_(ids[i], 49), 0), k], "Rows",
                   axis_names=("i", "k"))
    assert _vectorized(lower_tensors("embedding", [table, ids], [rows]))
    cols = compute((64, 30), lambda k, i: table[max_(min_(ids[i], 49), 0), k], "Cols",
                   axis_names=("k", "i"))
    assert not _vectorized(lower_tensors("gather", [table, ids], [cols]))


def test_a_transpose_of_symbolic_length_stays_scalar() -> None:
    n = var("N")
    x = placeholder((n, 64), f32, "X")
    t = compute((64, n), lambda i, j: x[j, i], "T", axis_names=("i", "j"))
    assert not _vectorized(lower_tensors("transpose", [x], [t]))
    y = placeholder((64, n), f32, "Y")
    copy = compute((64, n), lambda i, j: y[i, j] * 2.0, "Copy", axis_names=("i", "j"))
    assert _vectorized(lower_tensors("scale", [y], [copy]))
