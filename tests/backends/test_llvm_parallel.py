"""Parallel and unrolled loops in the LLVM backend: GOMP_parallel over an outlined body."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator

import numpy as np
import pytest
from llvmlite import ir

import dlc
from dlc import runtime
from dlc.backends.llvm.codegen import KernelEmitter, emit_kernel
from dlc.backends.llvm.jit import jit, optimize, prepare
from dlc.backends.llvm.types import I32, I64
from dlc.ir.dtypes import f32, i64
from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
from dlc.ir.tensor.expr import Expr, call, cast, const, var
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import (
    Allocate,
    Buffer,
    For,
    IfThenElse,
    LoopKind,
    PrimFunc,
    Seq,
    Stmt,
    Store,
)
from dlc.testing import assert_close


def with_kinds(func: PrimFunc, kinds: dict[str, LoopKind]) -> PrimFunc:
    """`func` with the loops named in `kinds` rebuilt with that kind."""

    def visit(s: Stmt) -> Stmt:
        if isinstance(s, For):
            return For(s.var, s.extent, visit(s.body), kinds.get(s.var.name, s.kind))
        if isinstance(s, Seq):
            return Seq(tuple(visit(x) for x in s.stmts))
        if isinstance(s, Allocate):
            return Allocate(s.buffer, visit(s.body))
        if isinstance(s, IfThenElse):
            other = None if s.otherwise is None else visit(s.otherwise)
            return IfThenElse(s.cond, visit(s.then), other)
        return s

    return PrimFunc(func.name, func.params, visit(func.body), func.sizes, func.comment,
                    func.outputs)


def emit_text(func: PrimFunc, debug: bool = False,
              emitter: type[KernelEmitter] = KernelEmitter) -> str:
    """dlc's LLVM IR for `func`, before LLVM optimizes it."""
    module = prepare(ir.Module("test"))
    emitter(module, func, debug).emit()
    return str(module)


def run_text(text: str, func: PrimFunc, arrays: list[np.ndarray],
             sizes: tuple[int, ...] = ()) -> int:
    compiled = jit(optimize(text))
    fn = compiled.function(func.name, [ctypes.c_void_p] * len(arrays) +
                           [ctypes.c_int64] * len(sizes))
    return fn(*[a.ctypes.data for a in arrays], *sizes)


def run_jit(func: PrimFunc, arrays: list[np.ndarray], sizes: tuple[int, ...] = (),
            debug: bool = False) -> int:
    return run_text(emit_text(func, debug), func, arrays, sizes)


@pytest.fixture(autouse=True)
def restore_thread_count() -> Iterator[None]:
    before = dlc.get_num_threads()
    yield
    dlc.set_num_threads(before)


def scale_kernel() -> PrimFunc:
    n = var("N")
    x = placeholder((n, 3), f32, "X")
    out = compute((n, 3), lambda i, j: call("exp", x[i, j]) * 2.0 + x[i, (j + 1) % 3],
                  "Out", axis_names=["i", "j"])
    return with_kinds(lower_tensors("scale", [x], [out]), {"i": LoopKind.PARALLEL})


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 1001])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_parallel_loop_matches_interpreter(n: int, threads: int) -> None:
    dlc.set_num_threads(threads)  # 4 threads with n < 4: one thread per iteration
    func = scale_kernel()
    x = np.linspace(-2, 2, n * 3, dtype=np.float32).reshape(n, 3)
    want = np.zeros((n, 3), np.float32)
    run_func(func, {"X": x, "Out": want}, {"N": n})
    got = np.full((n, 3), np.nan, np.float32)
    assert run_jit(func, [x, got], (n,)) == 0
    assert_close(got, want, rtol=1e-5)


def test_parallel_ir_calls_gomp_with_an_outlined_body() -> None:
    text = emit_text(scale_kernel())
    assert re.search(r'call void @"?GOMP_parallel"?\(', text)
    assert re.search(r'define internal void @"?scale\.i\.par"?\(ptr', text)
    assert re.search(r'define internal i32 @"?scale\.i\.body"?\(ptr noalias %"?X"?, '
                     r'ptr noalias %"?Out"?, i64 %"?N"?, i64 %"?i\.begin"?', text)
    assert "omp_get_thread_num" in text and "dlc_num_threads" in text


def test_parallel_reduction_keeps_scratch_per_thread() -> None:
    # the accumulator is allocated inside the parallel body: each thread has its own
    a, b = placeholder((37, 19), f32, "A"), placeholder((19, 5), f32, "B")
    k = reduce_axis(19, "k")
    c = compute((37, 5), lambda i, j: reduce("sum", a[i, k] * b[k, j], [k]), "C",
                axis_names=["i", "j"])
    func = with_kinds(lower_tensors("mm", [a, b], [c]), {"i": LoopKind.PARALLEL})
    text = emit_text(func)
    body = text[text.index('define internal i32 @"mm.i.body"'):]
    assert "alloca" in body.split("\n}\n")[0]
    dlc.set_num_threads(2)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((37, 19), np.float32), rng.standard_normal((19, 5), np.float32)
    got = np.zeros((37, 5), np.float32)
    assert run_text(text, func, [x, y, got]) == 0
    assert_close(got, x @ y, rtol=1e-5)


def test_only_the_outermost_parallel_loop_forks() -> None:
    x = placeholder((9, 11), f32, "X")
    out = compute((9, 11), lambda i, j: x[i, j] + 1.0, "Out", axis_names=["i", "j"])
    func = with_kinds(lower_tensors("nested", [x], [out]),
                      {"i": LoopKind.PARALLEL, "j": LoopKind.PARALLEL})
    text = emit_text(func)
    assert len(re.findall(r"call void @\"?GOMP_parallel", text)) == 1
    data = np.arange(99, dtype=np.float32).reshape(9, 11)
    got = np.zeros_like(data)
    run_text(text, func, [data, got])
    assert_close(got, data + 1)


def test_parallel_loop_inside_a_serial_loop_captures_the_outer_index() -> None:
    n = var("N")
    x, out = Buffer("X", (4, n), f32), Buffer("Out", (4, n), f32)
    t, i = var("t"), var("i")
    value = x[t, i] * 10.0 + cast_f32(t)
    body = For(t, const(4), For(i, n, Store(out, (t, i), value), LoopKind.PARALLEL))
    func = PrimFunc("rows", (x, out), body, sizes=(n,))
    data = np.arange(4 * 13, dtype=np.float32).reshape(4, 13)
    got = np.zeros_like(data)
    dlc.set_num_threads(2)
    assert run_jit(func, [data, got], (13,)) == 0
    assert_close(got, data * 10 + np.arange(4, dtype=np.float32)[:, None])


def cast_f32(e: Expr) -> Expr:
    return cast(e, f32)


def test_bounds_check_failure_in_a_thread_reaches_the_caller() -> None:
    n = var("N")
    x, out = Buffer("X", (n,), f32), Buffer("Out", (n,), f32)
    i = var("i")
    # reads X[i + 1]: out of bounds in the last iteration only (the last thread's chunk)
    func = PrimFunc("shift", (x, out),
                    For(i, n, Store(out, (i,), x[i + 1]), LoopKind.PARALLEL), sizes=(n,))
    ok = PrimFunc("copy", (x, out),
                  For(i, n, Store(out, (i,), x[i]), LoopKind.PARALLEL), sizes=(n,))
    data = np.arange(100, dtype=np.float32)
    dlc.set_num_threads(2)
    assert run_jit(func, [data, np.zeros(100, np.float32)], (100,), debug=True) == 1
    assert run_jit(ok, [data, np.zeros(100, np.float32)], (100,), debug=True) == 0


class ThreadIdEmitter(KernelEmitter):
    """Binds the variable `tid` to omp_get_thread_num(), to see which thread ran what."""

    def _expr(self, e: Expr) -> ir.Value:
        if e.op == "var" and e.name == "tid":
            fn = self._libc("omp_get_thread_num", I32, [])
            return self.b.sext(self.b.call(fn, []), I64)
        return super()._expr(e)


@pytest.mark.parametrize("threads", [1, 2])
def test_static_schedule_gives_each_thread_a_contiguous_chunk(threads: int) -> None:
    n = 1000
    out, i = Buffer("Out", (n,), i64), var("i")
    func = PrimFunc("who", (out,), For(i, const(n), Store(out, (i,), var("tid")),
                                       LoopKind.PARALLEL))
    text = emit_text(func, emitter=ThreadIdEmitter)
    compiled = jit(optimize(text))
    fn = compiled.function("who", [ctypes.c_void_p])
    dlc.set_num_threads(threads)  # after jit: live modules follow the setting too
    got = np.full(n, -1, np.int64)
    assert fn(got.ctypes.data) == 0
    want = np.repeat(np.arange(threads), n // threads)
    assert got.tolist() == want.tolist()


def test_one_and_two_threads_give_identical_results() -> None:
    a, b = placeholder((64, 33), f32, "A"), placeholder((33, 20), f32, "B")
    k = reduce_axis(33, "k")
    c = compute((64, 20), lambda i, j: reduce("sum", a[i, k] * b[k, j], [k]), "C",
                axis_names=["i", "j"])
    d = compute((64, 20), lambda i, j: call("tanh", c[i, j]), "D", axis_names=["i", "j"])
    func = with_kinds(lower_tensors("mm_tanh", [a, b], [d]), {"i": LoopKind.PARALLEL})
    compiled = jit(optimize(emit_text(func)))
    fn = compiled.function("mm_tanh", [ctypes.c_void_p] * 3)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 33), np.float32), rng.standard_normal((33, 20), np.float32)
    results = []
    for threads in (1, 2):
        dlc.set_num_threads(threads)
        got = np.zeros((64, 20), np.float32)
        assert fn(x.ctypes.data, y.ctypes.data, got.ctypes.data) == 0
        results.append(got)
    assert np.array_equal(results[0], results[1])


def test_thread_count_api() -> None:
    assert dlc.get_num_threads() >= 1
    dlc.set_num_threads(3)
    assert dlc.get_num_threads() == 3
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            dlc.set_num_threads(bad)  # type: ignore[arg-type]
    assert runtime.default_num_threads() >= 1


def test_unrolled_loop_has_a_self_referential_loop_id_and_unrolls() -> None:
    x, out, i = Buffer("X", (64,), f32), Buffer("Out", (64,), f32), var("i")
    body = Store(out, (i,), call("erf", x[i]) * call("atan", x[i]))
    texts = {}
    for kind in (LoopKind.SERIAL, LoopKind.UNROLLED):
        texts[kind] = emit_text(PrimFunc("u", (x, out), For(i, const(64), body, kind)))
    loop_id = re.search(r"!llvm\.loop !(\d+)", texts[LoopKind.UNROLLED])
    assert loop_id
    n = loop_id.group(1)
    option = re.search(rf"!{n} = distinct !{{ !{n}, !(\d+) }}", texts[LoopKind.UNROLLED])
    assert option
    assert f'!{option.group(1)} = !{{ !"llvm.loop.unroll.full" }}' in texts[LoopKind.UNROLLED]
    # 64 calls after full unrolling; the serial loop keeps one call and its back edge
    assert str(optimize(texts[LoopKind.UNROLLED])).count("call float @atanf") == 64
    assert str(optimize(texts[LoopKind.SERIAL])).count("call float @atanf") == 1
    data = np.linspace(-1, 1, 64, dtype=np.float32)
    got = np.zeros(64, np.float32)
    func = PrimFunc("u", (x, out), For(i, const(64), body, LoopKind.UNROLLED))
    run_text(texts[LoopKind.UNROLLED], func, [data, got])
    want = np.zeros(64, np.float32)
    run_func(func, {"X": data, "Out": want})
    assert_close(got, want, rtol=1e-6)


def test_emit_kernel_still_emits_parallel_loops() -> None:
    module = prepare(ir.Module("test"))
    emit_kernel(module, scale_kernel())
    assert "GOMP_parallel" in str(module)


def test_openmp_runtime_is_found() -> None:
    from dlc.backends.llvm.jit import _openmp_candidates, openmp_library

    candidates = _openmp_candidates()
    assert candidates[0] == "libgomp.so.1"  # the system's first, then torch's bundled copy
    assert openmp_library() is not None


def test_parallel_loops_share_a_scratch_buffer_allocated_outside_them() -> None:
    # C (a reduction read by another reduction) is a temporary allocated around both
    # nests; it is too big for the stack, so it is malloc'ed once and passed to each body
    a, b = placeholder((40, 30), f32, "A"), placeholder((30, 50), f32, "B")
    k = reduce_axis(30, "k")
    c = compute((40, 50), lambda i, j: reduce("sum", a[i, k] * b[k, j], [k]), "C",
                axis_names=["i", "j"])
    m = reduce_axis(50, "m")
    d = compute((40,), lambda i: reduce("max", c[i, m], [m]), "D", axis_names=["i"])
    func = with_kinds(lower_tensors("mm_max", [a, b], [d]), {"i": LoopKind.PARALLEL})
    text = emit_text(func)
    assert len(re.findall(r"call void @\"?GOMP_parallel", text)) == 2
    assert "malloc" in text.split('define internal')[0]  # in the kernel, not per thread
    dlc.set_num_threads(2)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 30), np.float32), rng.standard_normal((30, 50), np.float32)
    got = np.zeros(40, np.float32)
    assert run_text(text, func, [x, y, got]) == 0
    assert_close(got, (x @ y).max(axis=1), rtol=1e-5)
