"""Row reductions: softmax, layer/group/RMS norms, means — statistics of contiguous rows.

A reduction whose innermost reduction loop walks consecutive elements (a row) is not a
GEMM: no operand is reused across outputs, so a register tile has nothing to reuse and
vectorizing an output loop would gather every element. Instead the reduction loop itself
is vectorized with `rfactor`: sixteen partial accumulators, one per lane, combined after
the row. LLVM's own vectorizer does not do this reliably (it fully unrolls a short inner
row first, then vectorizes the loop around it with gathers).

A norm or a softmax is several nests in one kernel: the row statistics (max, sum; mean,
variance) into intermediates, then an elementwise nest that reads them. `schedule_rows`
moves the statistics' nests into the elementwise nest's row loop (`compute_at`), so one
parallel loop over rows computes a row's statistics while the row is in cache and then
writes it — one fork instead of one per nest, one pass over memory instead of three:

    Before (layer norm over 512):           After:
      for i, j: mean[i, j] = sum(x[i, j, :])    parallel for i_j_fused:
      for i, j: var[i, j] = sum((x - mean)^2)     mean_rf[16] += x[.., r_o*16 + r_i]  (vector)
      for i, j, k: y = (x - mean) / ..            mean = sum(mean_rf)
                                                  var_rf[16] += (x - mean)^2          (vector)
                                                  var = sum(var_rf)
                                                  for k_o: y[.., k_o*16 + k_i] = ..   (vector)

A group norm's statistics are read at `c // G`; its channel loop is split by G first, so
each group's statistics are computed once.
"""

from __future__ import annotations

from dlc.ir.tensor.expr import Expr, free_vars
from dlc.ir.tensor.stmt import Allocate, For, LoopKind, PrimFunc, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_analysis import linear_terms
from dlc.passes.tensor.schedule_injective import parallel_outer
from dlc.passes.tensor.schedule_nest import chain_of, find_loop, loads_of, path_to, stmt_loads

LANES = 16  # float32 lanes of one AVX-512 register
MIN_ROW = 8  # shorter reduction loops stay scalar (most lanes would be masked off)


def schedule_rows(sch: Schedule, nests: list[tuple[str, bool]], threads: int,
                  report: object) -> bool:
    """Schedule a kernel of row statistics followed by the elementwise nest that reads
    them as one parallel loop over rows; False (the schedule untouched) if it is not one."""
    if len(nests) < 2 or nests[-1][1] or not all(reduces for _, reduces in nests[:-1]):
        return False
    final = nests[-1][0]
    stats = [name for name, _ in nests[:-1]]
    allocated = {s.buffer.name for s in walk(sch.func.body)
                 if isinstance(s, Allocate) and s.buffer.scope != "local"}
    if not set(stats) <= allocated:
        return False
    saved = (sch.func, len(sch.trace.instructions))
    try:
        row = _row_loop(sch, final, stats)
        if row is None:
            raise ScheduleError("rows", final, "its statistics are not read one row per "
                                "iteration of its outer loops")
        for name in reversed(stats):
            sch.compute_at(name, row)
    except ScheduleError as err:
        sch.func = saved[0]
        del sch.trace.instructions[saved[1]:]
        _skip(report, f"rows({final}): {err}")
        return False
    for loop in _reduction_loops(sch.func, find_loop(sch.func, row, "rows")):
        vectorize_reduction(sch, loop, report)
    loops = sch.loops(final)
    if loops[-1] != row:
        _vectorize_row(sch, loops[-1], report)
    parallel_outer(sch, loops[:loops.index(row) + 1], threads, report)
    return True


def schedule_row_reduction(sch: Schedule, buffer: str, threads: int, report: object) -> bool:
    """One reduction nest over contiguous rows (a mean, a sum of squares, argmax):
    rfactor its innermost reduction loop into vector lanes and run the rows in parallel.
    False if the nest's innermost reduction does not read along a row."""
    spatial = sch.loops(buffer)
    top = find_loop(sch.func, spatial[0], "rows")
    reductions = _reduction_loops(sch.func, top)
    if not reductions or not all(_along_row(sch.func, r) and _long(sch.func, r)
                                 for r in reductions):
        return False
    if _contiguous_outputs(sch.func, spatial[-1]):
        return False  # a depthwise conv, a pool: vectorizing the outputs reads rows too
    for loop in reductions:
        vectorize_reduction(sch, loop, report)
    parallel_outer(sch, spatial, threads, report)
    return True


def vectorize_reduction(sch: Schedule, loop: str, report: object) -> str | None:
    """rfactor the reduction loop `loop` by the vector width and vectorize its lanes, when
    it reads along a row; the lane loop's name, or None."""
    node = find_loop(sch.func, loop, "rfactor")
    extent = node.extent.value if node.extent.is_const else None
    if (extent is not None and extent < MIN_ROW) or not _along_row(sch.func, loop):
        return None
    try:
        _, lane, _ = sch.rfactor(loop, _partials(extent, _reduced_elements(sch.func, loop)))
        sch.vectorize(lane)
        sch.vectorize(f"{lane}_init")
    except ScheduleError as err:
        _skip(report, str(err))
        return None
    return lane


def _partials(extent: int | None, total: int) -> int:
    """Lanes of partial results for a reduction loop of `extent` (None: symbolic) in a
    reduction of `total` elements: up to four vectors, so that the adds of a long
    reduction form independent chains (an add's latency is four cycles, and two issue
    per cycle), without leaving most lanes of a short row masked off."""
    n = 1 << 20 if extent is None else extent
    for lanes in (4 * LANES, 2 * LANES):
        if (n % lanes == 0 or n >= 3 * lanes) and total >= 8 * lanes:
            return lanes
    return LANES


# -- analysis ------------------------------------------------------------------------------


def _row_loop(sch: Schedule, final: str, stats: list[str]) -> str | None:
    """The innermost loop of the final nest that indexes a statistic (after splitting a
    channel loop read as `c // G` by G), or None when the statistics are not per row."""
    for _ in range(4):
        loops = sch.loops(final)
        loads = [ld for ld in stmt_loads(find_loop(sch.func, loops[0], "rows"))
                 if ld.args[0].name in stats]
        split = _grouped_index(sch, loads, loops)
        if split is None:
            break
        sch.split(*split)
    else:
        return None
    used = set().union(*(free_vars(i) for ld in loads for i in ld.args[1:]))
    at = [k for k, name in enumerate(loops) if name in used]
    if not at or any(loads_of(i) for ld in loads for i in ld.args[1:]):
        return None
    if any(name not in used for name in loops[:max(at)]):
        return None  # a loop around the row that the statistics ignore (softmax over C of
        # NCHW): computing them inside it would repeat them for each of its iterations
    return loops[max(at)]


def _grouped_index(sch: Schedule, loads: list[Expr], loops: list[str]
                   ) -> tuple[str, int] | None:
    """(loop, G) for a statistic read at `loop // G` where G divides the loop's extent."""
    for ld in loads:
        for i in ld.args[1:]:
            if i.op == "floordiv" and i.args[0].op == "var" and i.args[1].is_const:
                name, g = i.args[0].name, int(i.args[1].value)
                node = find_loop(sch.func, name, "rows") if name in loops else None
                if (node is not None and node.extent.is_const and g > 1
                        and node.extent.value % g == 0):
                    return name, g
    return None


def _reduction_loops(func: PrimFunc, top: For) -> list[str]:
    """Innermost loops under `top` whose body is one update of a local accumulator."""
    out = []
    for s in walk(top):
        if isinstance(s, For) and s.kind is LoopKind.SERIAL:
            ch = chain_of(s)
            body = ch.body
            if (len(ch.loops) == 1 and isinstance(body, Store) and body.buffer.scope == "local"
                    and loads_of(body.value, body.buffer)):
                out.append(s.var.name)
    return out


def _long(func: PrimFunc, loop: str) -> bool:
    node = find_loop(func, loop, "rows")
    return not node.extent.is_const or node.extent.value >= MIN_ROW


def _contiguous_outputs(func: PrimFunc, loop: str) -> bool:
    """Does the innermost output loop `loop` (of extent 8 or more) read some operand
    along its rows? Then lanes over the outputs load vectors, as a register tile does."""
    node = find_loop(func, loop, "rows")
    if node.extent.is_const and node.extent.value < MIN_ROW:
        return False
    o = node.var
    for ld in stmt_loads(node.body):
        if ld.args[0].scope == "local" or o.name not in free_vars(ld):
            continue
        coeffs = [linear_terms(i)[0].get(o, 0) for i in ld.args[1:]]
        if coeffs[-1] == 1 and not any(coeffs[:-1]):
            return True
    return False


def _along_row(func: PrimFunc, loop: str) -> bool:
    """Every non-local load in the reduction loop's update that changes with the loop reads
    consecutive elements along it (and at least one does)."""
    node = find_loop(func, loop, "rows")
    update = chain_of(node).body
    if not isinstance(update, Store):
        return False
    r = node.var
    seen = False
    for ld in loads_of(update.value):
        if ld.args[0].scope == "local" or r.name not in free_vars(ld):
            continue
        coeffs = [linear_terms(i)[0].get(r, 0) for i in ld.args[1:]]
        if coeffs[-1] != 1 or any(coeffs[:-1]) or any(
                r.name in free_vars(a) for i in ld.args[1:] for a in linear_terms(i)[0]
                if a is not r):
            return False
        seen = True
    return seen


def _reduced_elements(func: PrimFunc, loop: str) -> int:
    """Iterations of the reduction nest around the innermost reduction loop `loop`: the
    loops between its accumulator's allocation and the loop (a symbolic extent: large)."""
    node = find_loop(func, loop, "rows")
    acc = chain_of(node).body.buffer  # type: ignore[attr-defined]
    path = path_to(func.body, node)
    alloc = max(k for k, s in enumerate(path) if isinstance(s, Allocate) and s.buffer is acc)
    total = 1
    for s in path[alloc:]:
        if isinstance(s, For):
            total *= s.extent.value if s.extent.is_const else 1 << 20
    return total


def _vectorize_row(sch: Schedule, loop: str, report: object) -> None:
    """Split the final nest's innermost loop by the vector width and vectorize it."""
    node = find_loop(sch.func, loop, "rows")
    if not node.extent.is_const or node.extent.value < MIN_ROW:
        return
    try:
        if node.extent.value <= LANES:
            sch.vectorize(loop)
            return
        tail = "guard" if node.extent.value % LANES == 0 else "shift"
        _, inner = sch.split(loop, LANES, tail)
        sch.vectorize(inner)
    except ScheduleError as err:
        _skip(report, str(err))


def _skip(report: object, reason: str) -> None:
    report.skipped.append(reason)  # type: ignore[attr-defined]
