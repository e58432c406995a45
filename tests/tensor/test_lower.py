"""Lowering compute definitions to loop nests, checked with the loop-nest interpreter."""

from __future__ import annotations

import numpy as np

from dlc.ir.dtypes import f32
from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
from dlc.ir.tensor.expr import call, const, max_
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.testing import assert_close


def matmul_relu(m: int, k: int, n: int):
    a, b = placeholder((m, k), f32, "A"), placeholder((k, n), f32, "B")
    r = reduce_axis(k, "k")
    c = compute((m, n), lambda i, j: reduce("sum", a[i, r] * b[r, j], [r]), "C",
                axis_names=("i", "j"))
    out = compute((m, n), lambda i, j: max_(c[i, j], const(0.0)), "Out", axis_names=("i", "j"))
    return a, b, c, out


def test_epilogue_is_applied_at_the_reductions_write() -> None:
    a, b, _, out = matmul_relu(4, 3, 5)
    func = lower_tensors("matmul_relu", [a, b], [out])
    assert str(func) == """\
kernel @matmul_relu(A: f32[4, 3], B: f32[3, 5], Out: f32[4, 5]) {
  for i in 0..4 {
    for j in 0..5 {
      C_acc: f32[1] local
      C_acc[0] = 0.0
      for k in 0..3 {
        C_acc[0] = C_acc[0] + A[i, k] * B[k, j]
      }
      Out[i, j] = max(C_acc[0], 0.0)
    }
  }
}
"""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3), np.float32), rng.standard_normal((3, 5), np.float32)
    got = np.zeros((4, 5), np.float32)
    run_func(func, {"A": x, "B": y, "Out": got})
    assert_close(got, np.maximum(x @ y, 0))


def test_inlined_consumers_share_the_accumulator() -> None:
    a, b, c, out = matmul_relu(2, 3, 2)
    twice = compute((2, 2), lambda i, j: c[i, j] + out[i, j], "Twice", axis_names=("i", "j"))
    func = lower_tensors("one_reader", [a, b], [twice])
    assert "Twice[i, j] = C_acc[0] + max(C_acc[0], 0.0)" in str(func)


def test_reduction_read_by_two_materialized_tensors_is_materialized() -> None:
    a, b, c, out = matmul_relu(2, 3, 2)
    twice = compute((2, 2), lambda i, j: c[i, j] * 2.0, "Twice", axis_names=("i", "j"))
    func = lower_tensors("two_readers", [a, b], [out, twice])
    assert "C: f32[2, 2] global" in str(func)  # both outputs read C
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 3), np.float32), rng.standard_normal((3, 2), np.float32)
    got, got2 = np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)
    run_func(func, {"A": x, "B": y, "Out": got, "Twice": got2})
    assert_close((got, got2), (np.maximum(x @ y, 0), x @ y * 2))


def test_softmax_rows_with_max_and_sum_reductions() -> None:
    x = placeholder((3, 5), f32, "X")
    j1, j2 = reduce_axis(5, "j1"), reduce_axis(5, "j2")
    mx = compute((3,), lambda i: reduce("max", x[i, j1], [j1]), "Max", axis_names=("i",))
    e = compute((3, 5), lambda i, j: call("exp", x[i, j] - mx[i]), "E", axis_names=("i", "j"))
    s = compute((3,), lambda i: reduce("sum", e[i, j2], [j2]), "Sum", axis_names=("i",))
    out = compute((3, 5), lambda i, j: e[i, j] / s[i], "Out", axis_names=("i", "j"))
    func = lower_tensors("softmax", [x], [out])
    data = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    got = np.zeros((3, 5), np.float32)
    run_func(func, {"X": data, "Out": got})
    want = np.exp(data - data.max(1, keepdims=True))
    assert_close(got, want / want.sum(1, keepdims=True))


def test_argmax_is_first_wins() -> None:
    x = placeholder((2, 4), f32, "X")
    r = reduce_axis(4, "r")
    arg = compute((2,), lambda i: reduce("argmax", x[i, r], [r]), "Arg", axis_names=("i",))
    func = lower_tensors("argmax", [x], [arg])
    data = np.array([[1, 3, 3, 0], [-1, -1, -2, -1]], np.float32)
    got = np.zeros(2, np.int64)
    run_func(func, {"X": data, "Arg": got})
    assert got.tolist() == [1, 0]


def test_extern_loop_nest_reads_materialized_inputs() -> None:
    from dlc.ir.tensor.compute import extern
    from dlc.ir.tensor.expr import var
    from dlc.ir.tensor.stmt import For, Store, seq

    x = placeholder((6,), f32, "X")
    doubled = compute((6,), lambda i: x[i] * 2.0, "D", axis_names=("i",))

    def cumsum(ins, outs):
        (src,), (dst,) = ins, outs
        i = var("c")
        first = Store(dst, (const(0),), src[const(0)])
        rest = For(i, const(5), Store(dst, (i + 1,), dst[i] + src[i + 1]))
        return seq(first, rest)

    (out,) = extern("Cum", [doubled], [((6,), f32)], cumsum)
    func = lower_tensors("cumsum", [x], [out])
    assert "D: f32[6] global" in str(func)  # the extern's input is materialized
    data = np.arange(6, dtype=np.float32)
    got = np.zeros(6, np.float32)
    run_func(func, {"X": data, "Cum": got})
    assert_close(got, np.cumsum(data * 2))
