"""Elementwise and injective nests: activations, broadcasts, copies, concatenations, slices,
transposes — one store per output element, no reduction.

* the innermost loop becomes vector lanes (split by the vector width; a tail that does
  not fill a vector is shifted inwards when the body reads nothing it writes, so every
  vector is full and unmasked);
* the outer loops are fused until there are enough iterations to balance the threads,
  then run in parallel (a nest with too little work stays on one thread);
* a select whose condition is fixed inside a loop (a concatenation's `j < n`, a KV
  cache's `k < S`) is unswitched there: each branch copies one input, instead of loading
  every input for every element.

    Before (concat of two NCHW tensors on C):     After:
      for n, c, h, w:                               parallel for n_c_fused:
        out = select(c < 128, a[n, c, h, w],          if n_c_fused % 192 < 128:
                     b[n, c - 128, h, w])               for h, w_o: vectorized w_i: out = a[..]
                                                      else:
                                                        for h, w_o: vectorized w_i: out = b[..]
"""

from __future__ import annotations

from dlc.ir.tensor.expr import Expr, children, free_vars, subexprs
from dlc.ir.tensor.stmt import For, LoopKind, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_nest import find_loop, loads_of

LANES = 16  # float32 lanes of one AVX-512 register
MIN_PARALLEL_WORK = 1 << 15  # innermost iterations a nest needs before forking pays
ITERATIONS_PER_THREAD = 8  # parallel iterations per thread wanted for load balance


def schedule_injective(sch: Schedule, buffer: str, threads: int, report: object) -> None:
    """Vectorize, parallelize and unswitch the nest writing `buffer`."""
    loops = sch.loops(buffer)
    if not loops:
        return
    try:
        vectorize_inner(sch, loops[-1], report)
    except ScheduleError as err:
        _skip(report, str(err))
    loops = sch.loops(buffer)
    serial = [lp for lp in loops if find_loop(sch.func, lp, "parallel").kind is LoopKind.SERIAL]
    parallel_outer(sch, serial[: max(1, len(serial) - 1)] if len(serial) > 1 else serial,
                   threads, report)
    unswitch_selects(sch, buffer, report)


def vectorize_inner(sch: Schedule, loop: str, report: object) -> str | None:
    """Split the innermost loop by the vector width and vectorize the lanes; the lane
    loop's name, or None when it stays scalar (short, or reading through loaded indices)."""
    from dlc.passes.tensor.schedule_rules import _extent

    if _gathers_along(sch, loop):
        _skip(report, f"vectorize({loop}): reads through indices loaded along it")
        return None
    node = find_loop(sch.func, loop, "vectorize")
    extent = _extent(sch, loop)
    if extent is not None and extent < LANES // 2:
        return None
    if extent is None and _strided_along(node):
        # every vector of a symbolic extent is masked (its tail guard is in the body):
        # masked gathers ran at half the speed of the scalar loop (a K^T copy)
        _skip(report, f"vectorize({loop}): strided accesses along a symbolic extent")
        return None
    if extent is not None and extent <= LANES:
        sch.vectorize(loop)
        return loop
    tail = "shift" if extent is not None and extent % LANES else "guard"
    try:
        _, inner = sch.split(loop, LANES, tail)
    except ScheduleError as err:  # a body that reads what it writes: guard the tail
        _skip(report, str(err))
        _, inner = sch.split(node.var.name, LANES)
    sch.vectorize(inner)
    return inner


def _strided_along(node: For) -> bool:
    """Does a load or store in the loop's body move along the loop by other than one
    element of its last dimension (a transpose's gather)?"""
    from dlc.passes.tensor.schedule_analysis import linear_terms

    v = node.var
    for s in walk(node.body):
        if not isinstance(s, Store):
            continue
        accesses = [tuple(s.indices)] + [tuple(ld.args[1:]) for e in (s.value, *s.indices)
                                         for ld in loads_of(e)]
        for idx in accesses:
            if not any(v.name in free_vars(i) for i in idx):
                continue
            coeffs = [linear_terms(i)[0].get(v, 0) for i in idx]
            if coeffs[-1] != 1 or any(coeffs[:-1]):
                return True
    return False


def _gathers_along(sch: Schedule, loop: str) -> bool:
    """Does the nest read through an index loaded from memory that changes with `loop`
    (`x[src[e]]` along e)? Such loops stay scalar. An index loaded once for every
    iteration of `loop` (an embedding row, `table[ids[i], k]` along k) is fine: the row
    is contiguous."""
    node = find_loop(sch.func, loop, "vectorize")
    for s in walk(node.body):
        if not isinstance(s, Store):
            continue
        for e in (*s.indices, s.value):
            for x in subexprs(e):
                if x.op == "load" and any(ld is not x and loop in free_vars(ld)
                                          for i in x.args[1:] for ld in loads_of(i)):
                    return True
    return False


def unswitch_selects(sch: Schedule, buffer: str, report: object) -> None:
    """Unswitch each select of the nest's store whose condition is fixed inside a loop of
    the nest, at the innermost loop its condition uses (innermost first)."""
    for loop in reversed(_select_loops(sch, buffer)):
        try:
            sch.unswitch(loop)
        except ScheduleError as err:
            _skip(report, str(err))


def _select_loops(sch: Schedule, buffer: str) -> list[str]:
    """Loops of the nest (outermost first) that are the innermost loop some select's
    condition uses, not counting vector lanes; conditions that read memory do not count."""
    loops = sch.loops(buffer)
    kinds = {lp: find_loop(sch.func, lp, "unswitch").kind for lp in loops}
    top = find_loop(sch.func, loops[0], "unswitch")
    found: set[str] = set()
    for s in walk(top):
        if not isinstance(s, Store):
            continue
        for e in (s.value, *s.indices):
            for cond in _select_conditions(e):
                names = free_vars(cond)
                at = [lp for lp in loops if lp in names]
                if at and not loads_of(cond) and kinds[at[-1]] is not LoopKind.VECTORIZED:
                    found.add(at[-1])
    return [lp for lp in loops if lp in found]


def _select_conditions(e: Expr) -> list[Expr]:
    out: list[Expr] = []
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.op == "select" and x.args[0].lanes == 1:
            out.append(x.args[0])
        stack.extend(children(x))
    return out


def parallel_outer(sch: Schedule, loops: list[str], threads: int, report: object) -> None:
    """Fuse the perfectly nested `loops` (outermost first) until they have
    ITERATIONS_PER_THREAD per thread, or the next has a symbolic extent, and run the fused
    loop in parallel, when the nest has work enough to fork threads for."""
    from dlc.passes.tensor.schedule_rules import _extent, _work

    if not loops:
        return
    if _work(sch, loops[0]) < MIN_PARALLEL_WORK:
        _skip(report, f"parallel({loops[0]}): too little work to fork threads for")
        return
    while len(loops) > 1 and _extent(sch, loops[0]) == 1:
        loops = loops[1:]  # a batch of one: the loop inside it runs in parallel
    outer = loops[0]
    known = _extent(sch, outer) or 1  # a symbolic extent (a batch) may be 1
    for nxt in loops[1:]:
        if known >= ITERATIONS_PER_THREAD * max(threads, 1):
            break
        inner = _extent(sch, nxt)
        if inner is None:
            break  # `f % S` of a symbolic S: the race check cannot prove the split
        try:
            outer = sch.fuse(outer, nxt)
        except ScheduleError as err:
            _skip(report, str(err))
            break
        known *= inner
    extent = _extent(sch, outer)
    if extent is not None and extent < 2:
        return
    try:
        sch.parallel(outer)
    except ScheduleError as err:
        _skip(report, str(err))


def _skip(report: object, reason: str) -> None:
    report.skipped.append(reason)  # type: ignore[attr-defined]
