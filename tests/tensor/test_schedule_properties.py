"""Property: any sequence of primitives the scheduler accepts keeps the kernel's results.

Random small kernels (elementwise, matmul with an epilogue, softmax, a kept intermediate,
a symbolic extent) get random primitives with random arguments drawn from the current loop
and buffer names. Refused ones must leave the schedule unchanged; accepted ones must give
the same outputs as the unscheduled kernel, and the trace must replay to the same text.
Parallel and vectorized loops are also run under a race checker: no iteration may touch
an element another iteration of the same loop writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc.ir.tensor.interpreter import _eval
from dlc.ir.tensor.stmt import (
    Allocate,
    For,
    IfThenElse,
    LoopKind,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    walk,
)
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_nest import (
    chain_of,
    loads_of,
    own_exprs,
    stmt_list,
    stmt_loads,
    stores_to,
)
from dlc.passes.tensor.trace import Trace
from dlc.testing import assert_close
from tests.tensor.test_schedule import (
    concat_rows,
    elementwise_2d,
    matmul,
    matmul_then_scale,
    scale_add,
    scaled_matmul,
    softmax,
    symbolic_2d,
)

# -- an interpreter that also checks parallel and vectorized loops for races --------------


class RaceError(AssertionError):
    pass


class _Frame:
    """Accesses made by the iterations of one running parallel/vectorized loop."""

    def __init__(self, loop: str) -> None:
        self.loop = loop
        self.iteration = 0
        self.private: set[int] = set()  # buffers allocated inside the current iteration
        self.writer: dict[tuple, int] = {}
        self.readers: dict[tuple, set[int]] = {}

    def access(self, buf: Any, idx: tuple[int, ...], write: bool) -> None:
        if id(buf) in self.private:
            return
        key = (id(buf), idx)
        it = self.iteration
        w = self.writer.get(key)
        if w is not None and w != it:
            raise RaceError(f"{self.loop}: iterations {w} and {it} both touch "
                            f"{buf.name}{list(idx)}, and {w} writes it")
        if write:
            if any(r != it for r in self.readers.get(key, ())):
                raise RaceError(f"{self.loop}: iteration {it} writes {buf.name}{list(idx)}, "
                                "which another iteration reads")
            self.writer[key] = it
        else:
            self.readers.setdefault(key, set()).add(it)


def run_checked(func: PrimFunc, arrays: Mapping[str, np.ndarray],
                sizes: Mapping[str, int]) -> None:
    env: dict[Any, Any] = {b: arrays[b.name] for b in func.params}
    _exec(func.body, env, dict(sizes), [])


def _reads(s: Stmt, env: dict, scalars: dict, frames: list[_Frame]) -> None:
    if not frames:
        return
    for e in own_exprs(s) if not isinstance(s, (For, Allocate)) else ():
        for ld in loads_of(e):
            idx = tuple(int(_eval(i, env, scalars)) for i in ld.args[1:])
            for f in frames:
                f.access(ld.args[0], idx, write=False)


def _exec(s: Stmt, env: dict, scalars: dict, frames: list[_Frame]) -> None:
    if isinstance(s, Seq):
        for x in s.stmts:
            _exec(x, env, scalars, frames)
    elif isinstance(s, For):
        extent = int(_eval(s.extent, env, scalars))
        checked = s.kind in (LoopKind.PARALLEL, LoopKind.VECTORIZED)
        frame = _Frame(s.var.name)
        for i in range(extent):
            scalars[s.var.name] = i
            if checked:
                frame.iteration = i
                frame.private.clear()
                _exec(s.body, env, scalars, [*frames, frame])
            else:
                _exec(s.body, env, scalars, frames)
        scalars.pop(s.var.name, None)
    elif isinstance(s, Store):
        _reads(s, env, scalars, frames)
        idx = tuple(int(_eval(i, env, scalars)) for i in s.indices)
        for f in frames:
            f.access(s.buffer, idx, write=True)
        env[s.buffer][idx] = _eval(s.value, env, scalars)
    elif isinstance(s, IfThenElse):
        _reads(s, env, scalars, frames)
        if _eval(s.cond, env, scalars):
            _exec(s.then, env, scalars, frames)
        elif s.otherwise is not None:
            _exec(s.otherwise, env, scalars, frames)
    elif isinstance(s, Allocate):
        shape = tuple(int(_eval(d, env, scalars)) for d in s.buffer.shape)
        env[s.buffer] = np.full(shape, np.nan, dtype=s.buffer.dtype.numpy) \
            if s.buffer.dtype.is_float else np.zeros(shape, s.buffer.dtype.numpy)
        for f in frames:
            f.private.add(id(s.buffer))
        _exec(s.body, env, scalars, frames)
        del env[s.buffer]
    else:
        raise TypeError(type(s).__name__)


def outputs(func: PrimFunc, seed: int, sizes: Mapping[str, int]) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for b in func.params:
        shape = tuple(int(d.value) if d.is_const else sizes[d.name] for d in b.shape)
        arrays[b.name] = rng.standard_normal(shape).astype(b.dtype.numpy)
    for b in func.outputs:
        arrays[b.name][...] = 0
    run_checked(func, arrays, sizes)
    return tuple(arrays[b.name] for b in func.outputs)


def test_race_checker_catches_a_parallel_reduction() -> None:
    from dataclasses import replace

    func = matmul(2, 3, 2)
    k = next(s for s in walk(func.body) if isinstance(s, For) and s.var.name == "k")
    from dlc.passes.tensor.schedule_nest import replace as replace_stmt

    racy = replace(func, body=replace_stmt(func.body, k, For(k.var, k.extent, k.body,
                                                              LoopKind.PARALLEL)))
    try:
        outputs(racy, 0, {})
    except RaceError as e:
        assert "C_acc[0]" in str(e)
    else:
        raise AssertionError("the race checker missed a parallel reduction")


# -- random kernels and random schedules -------------------------------------------------


@st.composite
def kernels(draw: st.DrawFn) -> tuple[PrimFunc, dict[str, int]]:
    kind = draw(st.sampled_from(["elementwise", "matmul", "matmul_relu", "softmax",
                                 "kept", "inline", "symbolic", "matmul_scale", "concat"]))
    m, n, k = (draw(st.integers(1, 5)) for _ in range(3))
    if kind == "elementwise":
        return elementwise_2d(m, n), {}
    if kind in ("matmul", "matmul_relu"):
        return matmul(m, k, n, relu=kind == "matmul_relu"), {}
    if kind == "softmax":
        return softmax(m, n), {}
    if kind == "kept":
        return scale_add(n), {}
    if kind == "inline":
        return scaled_matmul(m, k, n), {}
    if kind == "matmul_scale":
        return matmul_then_scale(m, k, n), {}
    if kind == "concat":
        return concat_rows(n), {}
    return symbolic_2d(n), {"N": draw(st.integers(1, 6))}


def _choices(func: PrimFunc) -> dict[str, list]:
    """Arguments likely to be accepted (plus the loops and buffers at random)."""
    loops = [s for s in walk(func.body) if isinstance(s, For)]
    pairs = []
    for lp in loops:
        chain = chain_of(lp).loops
        if len(chain) > 1:
            pairs.append((lp.var.name, chain[1].var.name))
    allocated = [s.buffer for s in walk(func.body) if isinstance(s, Allocate)]
    written = {s.buffer.name for s in walk(func.body) if isinstance(s, Store)}
    compute_at = [(b.name, lp.var.name) for b in allocated for lp in loops
                  if stmt_loads(lp.body, b) and not stores_to(lp, b)]
    cache_write = []
    for lp in loops:
        below = chain_of(lp.body)
        if below.loops and isinstance(below.body, Allocate):
            last = stmt_list(below.body.body)[-1]
            if isinstance(last, Store):
                cache_write.append((last.buffer.name, lp.var.name))
    return {
        "compute_at": compute_at,
        "cache_write": cache_write,
        "loops": [lp.var.name for lp in loops],
        "pairs": pairs or [(loops[0].var.name, loops[0].var.name)],
        "intermediates": [b.name for b in allocated if b.scope != "local"] or ["A"],
        "inputs": [b.name for b in func.params if b.name not in written],
        "buffers": [b.name for b in func.params] + [b.name for b in allocated],
    }


def _step(draw: st.DrawFn, sch: Schedule) -> tuple[str, tuple]:
    c = _choices(sch.func)
    loops = c["loops"]
    loop = st.sampled_from(loops)
    factor = st.integers(1, 5)
    prim = draw(st.sampled_from(["split", "split", "reorder", "reorder", "fuse", "tile",
                                 "vectorize", "unroll", "parallel", "compute_at", "inline",
                                 "cache_write", "pack", "rfactor", "unswitch"]))
    any_buffer = draw(st.sampled_from(c["buffers"]))
    wild = draw(st.integers(0, 4)) == 0  # sometimes arguments at random, to be refused
    if prim == "split":
        return prim, (draw(loop), draw(factor))
    if prim == "rfactor":
        return prim, (draw(loop), draw(factor))
    if prim == "reorder":
        if len(loops) < 2:
            return prim, tuple(loops)  # refused: reorder needs two loops
        if not wild:
            return prim, tuple(reversed(draw(st.sampled_from(c["pairs"]))))
        count = draw(st.integers(2, min(3, len(loops))))
        return prim, tuple(draw(st.permutations(loops))[:count])
    if prim == "fuse":
        return prim, (draw(loop), draw(loop)) if wild else draw(st.sampled_from(c["pairs"]))
    if prim == "tile":
        x, y = (draw(loop), draw(loop)) if wild else draw(st.sampled_from(c["pairs"]))
        return prim, (x, y, draw(factor), draw(factor))
    if prim in ("vectorize", "unroll", "parallel", "unswitch"):
        return prim, (draw(loop),)
    if prim in ("compute_at", "cache_write"):
        if wild or not c[prim]:
            return prim, (any_buffer, draw(loop))
        return prim, draw(st.sampled_from(c[prim]))
    if prim == "inline":
        return prim, (any_buffer if wild else draw(st.sampled_from(c["intermediates"])),)
    layouts = ["1,0", "0/2,1,0%2", "1/2,0,1%2", "1/3,0,1%3", "0,1", "0%2,0/2"]
    buf = any_buffer if wild or not c["inputs"] else draw(st.sampled_from(c["inputs"]))
    return prim, (buf, draw(st.sampled_from(layouts)))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_accepted_primitives_preserve_results(data: st.DataObject) -> None:
    func, sizes = data.draw(kernels())
    want = outputs(func, 0, sizes)
    sch = Schedule(func)
    for _ in range(data.draw(st.integers(1, 8))):
        prim, args = _step(data.draw, sch)
        before, steps = str(sch.func), len(sch.trace)
        try:
            getattr(sch, prim)(*args)
        except ScheduleError:
            assert str(sch.func) == before and len(sch.trace) == steps
    names = [s.var.name for s in walk(sch.func.body) if isinstance(s, For)]
    assert len(names) == len(set(names)), names
    got = outputs(sch.func, 0, sizes)
    assert_close(got, want, rtol=1e-5, what=str(sch.trace))
    assert str(Trace.parse(str(sch.trace)).apply(func)) == str(sch.func)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), m=st.integers(1, 6), n=st.integers(1, 6), k=st.integers(1, 4),
       fx=st.integers(1, 4), fy=st.integers(1, 4))
def test_gemm_schedules_preserve_results(data: st.DataObject, m: int, n: int, k: int,
                                         fx: int, fy: int) -> None:
    """The GEMM recipe with random tile sizes: tile, cache_write, then random annotations."""
    func = matmul(m, k, n, relu=data.draw(st.booleans()))
    out = func.outputs[0].name
    want = outputs(func, 1, {})
    sch = Schedule(func)
    io, jo, ii, ji = sch.tile("i", "j", fx, fy)
    sch.cache_write(out, jo)
    if data.draw(st.booleans()):
        sch.pack("B", f"1/{fy},0,1%{fy}")
    for prim, loop in data.draw(st.lists(st.tuples(
            st.sampled_from(["vectorize", "unroll", "parallel", "split"]),
            st.sampled_from([io, jo, ii, ji, "k", f"{ii}_init", f"{ji}_wb"])), max_size=4)):
        try:
            if prim == "split":
                sch.split(loop, 2)
            else:
                getattr(sch, prim)(loop)
        except ScheduleError:
            pass
    assert_close(outputs(sch.func, 1, {}), want, rtol=1e-5, what=str(sch.trace))
