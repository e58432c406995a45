"""Prepacking and the shifted tail: `pack_array` lays a weight out exactly as the kernel's
`pack` copy would, and `split(..., tail="shift")` keeps results equal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc.ir.dtypes import f32
from dlc.ir.graph import Constant
from dlc.ir.tensor.compute import compute, placeholder
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.passes.tensor.lower_group import LoweredGroup
from dlc.passes.tensor.prepack import fold_constant_packs, pack_array
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from tests.tensor.test_schedule import elementwise_2d, matmul


def copy_kernel(shape: tuple[int, ...]):
    a = placeholder(shape, f32, "A")
    b = compute(shape, lambda *i: a[i] + 0.0, "B")
    return lower_tensors("copy", [a], [b])


@st.composite
def shapes_and_layouts(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 7)) for _ in range(rank))
    blocked = draw(st.integers(0, rank - 1))
    factor = draw(st.integers(1, 4))
    others = [str(d) for d in range(rank) if d != blocked]
    order = draw(st.permutations([f"{blocked}/{factor}", *others]))
    return shape, ",".join([*order, f"{blocked}%{factor}"])


@settings(max_examples=60, deadline=None)
@given(shapes_and_layouts())
def test_pack_array_matches_the_kernels_pack(case) -> None:
    shape, layout = case
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sch = Schedule(copy_kernel(shape))
    sch.pack("A", layout)
    const = Constant.of(data, "A")
    out = Constant.of(np.zeros(shape, np.float32), "B")  # stands in for the output value
    group = LoweredGroup(sch.func, (const,), (out,), ())
    folded = fold_constant_packs(group, sch.trace, {})
    packed = folded.inputs[-1]
    assert isinstance(packed, Constant) and packed.name == "A_packed"
    assert "A_p0" not in str(folded.func)  # the copy loop is gone
    arrays = {"A": data, "A_packed": packed.data, "B": np.zeros(shape, np.float32)}
    run_func(folded.func, arrays)
    np.testing.assert_array_equal(arrays["B"], data)


def test_pack_array_pads_partial_blocks_with_zeros() -> None:
    w = np.arange(10, dtype=np.float32).reshape(5, 2)
    packed = pack_array(w, "0/4,1,0%4")
    assert packed.shape == (2, 2, 4)
    np.testing.assert_array_equal(packed[1, :, 0], w[4])
    assert not packed[1, :, 1:].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(1, 9), st.integers(1, 9), st.sampled_from([0, 1]))
def test_shifted_split_keeps_results(m: int, n: int, factor: int, axis: int) -> None:
    func = elementwise_2d(m, n)
    extent = (m, n)[axis]
    sch = Schedule(func)
    loop = sch.loops("B")[axis]
    if factor > extent:
        with pytest.raises(ScheduleError, match="at least"):
            sch.split(loop, factor, tail="shift")
        return
    sch.split(loop, factor, tail="shift")
    assert "if " not in str(sch.func)  # no tail guard
    a = np.random.default_rng(1).standard_normal((m, n)).astype(np.float32)
    arrays = {"A": a, "B": np.zeros((m, n), np.float32)}
    run_func(sch.func, arrays)
    np.testing.assert_array_equal(arrays["B"], a + 1.0)


def test_shifted_split_refuses_a_body_that_reads_what_it_writes() -> None:
    sch = Schedule(matmul(2, 5, 2))
    with pytest.raises(ScheduleError, match="also writes"):
        sch.split("k", 2, tail="shift")


def test_shifted_tail_replays_from_its_trace() -> None:
    sch = Schedule(elementwise_2d(5, 3))
    sch.split(sch.loops("B")[0], 2, tail="shift")
    assert "split(i, 2, shift)" in str(sch.trace)
    assert str(sch.trace.apply(elementwise_2d(5, 3))) == str(sch.func)
