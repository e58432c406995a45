"""Default schedules: rules keyed on the shape of each loop nest of a kernel.

Every kernel is a sequence of loop nests (one per materialized tensor). Each nest is
classified and scheduled with the primitives of `Schedule`, so the result is an ordinary,
printable, replayable trace:

* **reduction nests** (GEMM-like: matmul, linear, conv): the innermost spatial loop is
  split by the vector width and its accumulator becomes a register tile (`cache_write`),
  so the reduction loops run outside a `<16 x float>` inner loop of independent
  accumulators — the FMA-friendly order of every BLAS micro-kernel (schedule_gemm.py);
* **row reductions** (softmax, norms, means: the reduction reads along a contiguous row):
  the reduction loop itself is vectorized with `rfactor`, and a kernel of row statistics
  plus the elementwise nest that reads them becomes one parallel loop over rows
  (`compute_at`; schedule_rows.py);
* **elementwise / injective nests**: the innermost loop is split by the vector width and
  vectorized, and a select whose condition is fixed inside a loop (a concatenation) is
  unswitched there (schedule_injective.py);
* **both**: the outermost loop runs in parallel (fused with the next one when it has
  fewer iterations than threads, as a batch of 1 does); inner loops of extent <= 4 that
  remain serial are unrolled.

A rule that does not apply (its primitive refuses with a ScheduleError) is skipped and
the reason recorded, so a kernel is never made wrong, only left less optimized.

    Before (a conv's nest):          After:
      for n, c, h, w:                  parallel for n_c_fused:
        acc = 0                          for h, w_o:
        for rc, kh, kw: acc += ...         tile[0..16] = 0          (vectorized)
        out[n, c, h, w] = relu(acc)        for rc, kh, kw:
                                             for w_i: tile[w_i] += ...  (vectorized)
                                           out[.., w_o*16 + w_i] = relu(tile[w_i])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlc.ir.tensor.expr import Expr, children, free_vars
from dlc.ir.tensor.stmt import Allocate, For, IfThenElse, PrimFunc, Seq, Stmt, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError

VECTOR_LANES = 16  # float32 lanes of one AVX-512 register
MIN_PARALLEL = 2  # iterations a parallel loop needs to be worth forking for
UNROLL_LIMIT = 4
MIN_PARALLEL_WORK = 1 << 15  # loop iterations a nest needs before forking threads pays
ROW_TILE = 4  # rows of a GEMM register tile (4 x 16 floats = 4 zmm accumulators)


@dataclass
class ScheduleReport:
    """What the rules did to one kernel: the trace, and the rules that did not apply."""

    kernel: str
    skipped: list[str] = field(default_factory=list)


def default_schedule(func: PrimFunc, threads: int = 2,
                     constants: frozenset[str] = frozenset()) -> tuple[Schedule, ScheduleReport]:
    """Schedule every nest of `func` with the default rules.

    `constants` names the parameters bound to graph constants (weights): packing one of
    them costs nothing at run time, since the backend packs it once at compile time.
    """
    from dlc.passes.tensor.schedule_attention import schedule_attention
    from dlc.passes.tensor.schedule_gemm import schedule_gemm
    from dlc.passes.tensor.schedule_injective import schedule_injective
    from dlc.passes.tensor.schedule_rows import schedule_row_reduction, schedule_rows

    sch = Schedule(func)
    report = ScheduleReport(func.name)
    nests = _nests(sch.func)
    if schedule_attention(sch, nests, threads, report) or \
            schedule_rows(sch, nests, threads, report):
        _unroll_small(sch, report)
        return sch, report
    for store_buffer, is_reduction in nests:
        try:
            if is_reduction and schedule_gemm(sch, store_buffer, threads, report, constants):
                _unroll_small(sch, report, store_buffer)
            elif is_reduction and schedule_row_reduction(sch, store_buffer, threads, report):
                _unroll_small(sch, report, store_buffer)
            elif is_reduction:
                _schedule_reduction(sch, store_buffer, threads, report)
            else:
                schedule_injective(sch, store_buffer, threads, report)
        except ScheduleError as err:  # a rule that does not fit this nest: keep going
            report.skipped.append(f"{store_buffer}: {err}")
    return sch, report


def _nests(func: PrimFunc) -> list[tuple[str, bool]]:
    """(buffer written by the nest's final store, whether the nest reduces) per top-level
    loop nest, in order."""
    out: list[tuple[str, bool]] = []
    for nest in _top_level_nests(func.body):
        stores = [s for s in walk(nest) if isinstance(s, Store) and s.buffer.scope != "local"]
        if not stores:
            continue
        reduces = any(isinstance(s, Allocate) and s.buffer.scope == "local"
                      for s in walk(nest))
        if len({s.buffer.name for s in stores}) != 1:
            continue  # a nest writing several buffers (split, an extern): leave it be
        out.append((stores[-1].buffer.name, reduces))
    return out


def _top_level_nests(s: Stmt) -> list[Stmt]:
    if isinstance(s, Seq):
        return [n for x in s.stmts for n in _top_level_nests(x)]
    if isinstance(s, Allocate):
        return _top_level_nests(s.body)
    return [s] if isinstance(s, For) else []


def _extent(sch: Schedule, loop: str) -> int | None:
    for s in walk(sch.func.body):
        if isinstance(s, For) and s.var.name == loop:
            return s.extent.value if s.extent.is_const else None
    return None


def _work(sch: Schedule, loop: str) -> int:
    """Innermost iterations of the nest under `loop` (a symbolic extent counts as large)."""

    def count(s: Stmt) -> int:
        if isinstance(s, For):
            n = s.extent.value if s.extent.is_const else 1 << 20
            return n * max(1, count(s.body))
        return sum(count(c) for c in s.children())

    for s in walk(sch.func.body):
        if isinstance(s, For) and s.var.name == loop:
            return count(s)
    return 0


def _row_reduction(sch: Schedule, inner: str) -> bool:
    """True for a row reduction over a contiguous axis (softmax's sums, a dot product per
    output): the innermost reduction loop reads consecutive elements, no load that
    changes with it is contiguous in the output loop `inner`, and none is shared by all
    outputs (a GEMM's row of A is, and a register tile reuses it). Vectorizing `inner`
    would then gather every element for no reuse; leaving it scalar lets LLVM vectorize
    the reduction loop itself (the float flags allow reassociation)."""
    from dlc.passes.tensor.schedule_analysis import linear_terms

    nest = next((s for s in walk(sch.func.body) if isinstance(s, For) and s.var.name == inner),
                None)
    if nest is None:
        return False
    loops = [s for s in walk(nest.body) if isinstance(s, For)]
    if not loops:
        return False
    innermost = loops[-1]
    update = next((s for s in walk(innermost.body) if isinstance(s, Store)), None)
    if update is None:
        return False
    r, o = innermost.var, nest.var
    along_r = along_o = reused = False
    stack = [update.value]
    while stack:
        e = stack.pop()
        stack.extend(children(e))
        if e.op != "load" or e.args[0].scope == "local":
            continue
        names = free_vars(e)
        if r.name not in names:
            continue  # does not change along the reduction
        if o.name not in names:
            reused = True  # the same for every output of the row: a tile reuses it
            continue
        idx = e.args[1:]
        rc = [linear_terms(i)[0].get(r, 0) for i in idx]
        oc = [linear_terms(i)[0].get(o, 0) for i in idx]
        along_r |= rc[-1] == 1 and not any(rc[:-1])
        along_o |= oc[-1] == 1 and not any(oc[:-1])
    return along_r and not along_o and not reused


def _parallel_outer(sch: Schedule, loops: list[str], threads: int,
                    report: ScheduleReport) -> None:
    if not loops:
        return
    if _work(sch, loops[0]) < MIN_PARALLEL_WORK:
        report.skipped.append(f"parallel({loops[0]}): too little work to fork threads for")
        return
    outer = loops[0]
    extent = _extent(sch, outer)
    if extent is not None and extent < max(threads, MIN_PARALLEL) and len(loops) > 1:
        try:
            outer = sch.fuse(outer, loops[1])
        except ScheduleError as err:
            report.skipped.append(str(err))
    extent = _extent(sch, outer)
    if extent is not None and extent < MIN_PARALLEL:
        return
    sch.parallel(outer)


def _indirect(sch: Schedule, loop: str) -> bool:
    """True when the loop reads through an index loaded from memory (a gather such as
    `x[src[e]]`): such loops stay scalar (lanes would gather anyway)."""
    for s in walk(sch.func.body):
        if isinstance(s, For) and s.var.name == loop:
            for x in walk(s.body):
                exprs = [*x.indices, x.value] if isinstance(x, Store) else []
                if any(_has_indirect_load(e) for e in exprs):
                    return True
    return False


def _has_indirect_load(e: Expr) -> bool:
    stack = [e]
    while stack:
        x = stack.pop()
        if x.op == "load" and any(_loads(i) for i in x.args[1:]):
            return True
        stack.extend(children(x))
    return False


def _loads(e: Expr) -> bool:
    return e.op == "load" or any(_loads(c) for c in children(e))


def _schedule_reduction(sch: Schedule, buffer: str, threads: int,
                        report: ScheduleReport) -> None:
    spatial = sch.loops(buffer)
    if not spatial:
        return
    inner = spatial[-1]
    extent = _extent(sch, inner)
    rows = _extent(sch, spatial[-2]) if len(spatial) > 1 else None
    if extent is not None and extent >= VECTOR_LANES // 2 and not _indirect(sch, inner) \
            and not _row_reduction(sch, inner):
        try:
            row_tile = None
            if extent > VECTOR_LANES and rows is not None and rows >= ROW_TILE:
                # a ROW_TILE x 16 register tile: each vector of B feeds ROW_TILE FMAs
                _, outer, row_tile, inner = sch.tile(spatial[-2], inner, ROW_TILE,
                                                     VECTOR_LANES)
                anchor = outer
            elif extent > VECTOR_LANES:
                outer, inner = sch.split(inner, VECTOR_LANES)
                anchor = outer
            else:
                anchor = spatial[-2] if len(spatial) > 1 else None
            if anchor is not None:
                sch.cache_write(buffer, anchor)
                for name in (inner, f"{inner}_init", f"{inner}_wb"):
                    if _has_loop(sch, name):
                        try:
                            sch.vectorize(name)
                        except ScheduleError as err:
                            report.skipped.append(str(err))
                if row_tile is not None:
                    for name in (row_tile, f"{row_tile}_init", f"{row_tile}_wb"):
                        if _has_loop(sch, name):
                            try:
                                sch.unroll(name)
                            except ScheduleError as err:
                                report.skipped.append(str(err))
        except ScheduleError as err:
            report.skipped.append(str(err))
    outer_loops = sch.loops(buffer)
    _parallel_outer(sch, outer_loops[: max(1, len(outer_loops) - 1)], threads, report)
    _unroll_small(sch, report, buffer)


def _has_loop(sch: Schedule, name: str) -> bool:
    return any(isinstance(s, For) and s.var.name == name for s in walk(sch.func.body))


def _unroll_small(sch: Schedule, report: ScheduleReport, buffer: str | None = None) -> None:
    """Unroll small innermost serial loops: of the nest writing `buffer` when given (the
    nests after it are not scheduled yet, and the GEMM rule reorders their loops, which
    an unrolled loop refuses), else of every nest."""
    from dlc.ir.tensor.stmt import LoopKind

    scope = sch.func.body
    if buffer is not None:
        scope = next((n for n in _top_level_nests(sch.func.body) if any(
            isinstance(x, Store) and x.buffer.name == buffer for x in walk(n))), scope)
    for s in list(walk(scope)):
        if (isinstance(s, For) and s.kind is LoopKind.SERIAL and s.extent.is_const
                and 1 < s.extent.value <= UNROLL_LIMIT
                and not any(isinstance(x, (For, IfThenElse)) for x in walk(s.body))):
            try:
                sch.unroll(s.var.name)
            except ScheduleError as err:
                report.skipped.append(str(err))
