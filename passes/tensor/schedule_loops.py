"""Loop primitives: split, reorder, fuse, and the loop annotations (parallel, vectorize,
unroll). Each is a function `(func, names...) -> (func, new names)`; `Schedule` records
them in its trace. The docstrings with Before/After IR live on the `Schedule` methods.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from dlc.ir.tensor.expr import Expr, compare, const, floordiv, free_vars, min_, substitute, var
from dlc.ir.tensor.stmt import Allocate, Buffer, For, LoopKind, PrimFunc, Stmt, Store, seq, walk
from dlc.passes.tensor.schedule_analysis import (
    Unanalyzable,
    independence_problem,
    reduction_vars,
    simplify,
)
from dlc.passes.tensor.schedule_nest import (
    Chain,
    ScheduleError,
    build_chain,
    chain_of,
    describe,
    enclosing_ranges,
    find_loop,
    fresh,
    loads_of,
    path_to,
    read_buffers,
    replace,
    substitute_stmt,
    used_names,
    written_buffers,
)


def _serial(primitive: str, loop: For, what: str = "") -> None:
    if loop.kind is not LoopKind.SERIAL:
        kind = loop.kind.value
        raise ScheduleError(primitive, loop.var.name,
                            f"{what or loop.var.name} is already {kind}; {primitive} loops "
                            "before marking them parallel, vectorized or unrolled")


def _header(name: str, extent: Expr, kind: LoopKind = LoopKind.SERIAL) -> For:
    """A loop header for `build_chain` (its body is supplied there)."""
    return For(var(name), extent, seq(), kind)


TAILS = ("guard", "shift")


def split(func: PrimFunc, loop: str, factor: int, tail_strategy: str = "guard"
          ) -> tuple[PrimFunc, tuple[str, str]]:
    """`loop` -> `loop_o` (ceil(n / factor)) around `loop_i` (factor), with a tail guard,
    or with the last block shifted inwards (`tail_strategy="shift"`)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ScheduleError("split", loop, f"factor must be a positive integer, not {factor!r}")
    if tail_strategy not in TAILS:
        raise ScheduleError("split", loop, f"tail strategy must be one of {', '.join(TAILS)}, "
                            f"not {tail_strategy!r}")
    node = find_loop(func, loop, "split")
    _serial("split", node)
    ch = chain_of(node)
    used = used_names(func)
    outer, inner = fresh(f"{loop}_o", used), fresh(f"{loop}_i", used)
    n = node.extent
    if n.is_const:
        outer_extent, exact = const(-(-n.value // factor)), n.value % factor == 0
    else:
        outer_extent, exact = floordiv(n + (factor - 1), factor), False
    joined = var(outer) * factor + var(inner)
    tail = () if exact else (compare("lt", joined, n),)
    if tail_strategy == "shift" and not exact:
        _check_shift(node, factor)
        joined = min_(var(outer) * factor, n.value - factor) + var(inner)
        tail = ()
    head = (_header(outer, outer_extent), _header(inner, const(factor)))
    new = _rechain(func, node, ch, head, 1, {node.var: joined}, tail)
    return _with_body(func, replace(func.body, node, new)), (outer, inner)


def _check_shift(node: For, factor: int) -> None:
    """A shifted last block recomputes iterations of the block before it: allowed when
    the extent holds a whole block and the loop body reads nothing it writes (outside
    scratch buffers it allocates), so running an iteration twice stores the same values."""
    if not node.extent.is_const or node.extent.value < factor:
        raise ScheduleError("split", node.var.name, f"a shifted tail needs a constant extent "
                            f"of at least {factor}, not {node.extent}")
    local = {s.buffer for s in walk(node.body) if isinstance(s, Allocate)}
    clash = (written_buffers(node.body) & read_buffers(node.body)) - local
    if clash:
        names = ", ".join(sorted(b.name for b in clash))
        raise ScheduleError("split", node.var.name, f"the loop body reads {names}, which it "
                            "also writes: recomputing the shifted tail would change it")


def _rechain(func: PrimFunc, node: For, ch: Chain, head: tuple[For, ...], drop: int,
             mapping: dict[Expr, Expr], first_guards: tuple[Expr, ...] = ()) -> Stmt:
    """The chain `ch` with its first `drop` loops replaced by the `head` loops and their
    variables by `mapping`, guards at the bottom (`first_guards` outermost)."""
    ranges = enclosing_ranges(func, node)
    for lp in head:
        if lp.extent.is_const:
            ranges[lp.var.name] = lp.extent.value
    rest = []
    for lp in ch.loops[drop:]:
        extent = simplify(substitute(lp.extent, mapping), ranges)
        rest.append(_header(lp.var.name, extent, lp.kind))
        if extent.is_const:
            ranges[lp.var.name] = extent.value
    guards = [*first_guards, *(simplify(substitute(g, mapping), ranges) for g in ch.guards)]
    body = substitute_stmt(ch.body, mapping, simplify, ranges)
    return build_chain((*head, *rest), guards, body)


def _with_body(func: PrimFunc, body: Stmt) -> PrimFunc:
    return dc_replace(func, body=body)


def reorder(func: PrimFunc, loops: tuple[str, ...]) -> PrimFunc:
    """Permute perfectly nested loops: the listed loops take each other's positions."""
    label = ", ".join(loops)
    if len(loops) < 2:
        raise ScheduleError("reorder", label, "give at least two loops")
    if len(set(loops)) != len(loops):
        raise ScheduleError("reorder", label, "a loop is listed twice")
    nodes = {name: find_loop(func, name, "reorder") for name in loops}
    depth = {name: len(path_to(func.body, node)) for name, node in nodes.items()}
    top = min(loops, key=lambda n: depth[n])
    ch = chain_of(nodes[top])
    names = ch.names
    for name in loops:
        if name not in names:
            ends = describe(ch.body)
            raise ScheduleError("reorder", label,
                                f"{name} is not perfectly nested under {top}: the loops "
                                f"nested in {top} end at `{ends}` (reorder needs loops with "
                                "no statement between them)")
    positions = sorted(names.index(n) for n in loops)
    for lp in ch.loops[positions[0]:positions[-1] + 1]:
        _serial("reorder", lp)
    new_loops = list(ch.loops)
    for pos, name in zip(positions, loops):
        new_loops[pos] = nodes[name]
    for p, lp in enumerate(new_loops):
        inside = {x.var.name for x in new_loops[p:]} - {lp.var.name}
        if free_vars(lp.extent) & inside:
            raise ScheduleError("reorder", label,
                                f"the extent of {lp.var.name} ({lp.extent}) uses a loop that "
                                "would be inside it")
    extents = {lp.var.name: (lp.extent.value if lp.extent.is_const else None)
               for lp in ch.loops}
    try:
        reduced = reduction_vars(ch.body, extents)
    except Unanalyzable as e:
        raise ScheduleError("reorder", label, f"cannot prove the reorder is safe: {e}") from None
    new_names = [lp.var.name for lp in new_loops]
    for buf, over in reduced.items():
        before = [n for n in names if n in over]
        after = [n for n in new_names if n in over]
        if before != after and not _commutative_updates(ch.body, buf):
            raise ScheduleError("reorder", label,
                                f"{buf.name} is updated in order over {', '.join(before)}; "
                                "reordering those loops would change its result")
    new = build_chain(new_loops, ch.guards, ch.body)
    return _with_body(func, replace(func.body, ch.loops[0], new))


def _commutative_updates(body: Stmt, buf: Buffer) -> bool:
    """Is every store to `buf` `buf[x] = buf[x] op e` with op in +, *, max, min (e not
    reading buf)? Then the update order only reassociates the combiner."""
    for s in walk(body):
        if isinstance(s, Store) and s.buffer is buf:
            v = s.value
            if v.op not in ("add", "mul", "max", "min"):
                return False
            current = v.args[0]
            if not (current.op == "load" and current.args[0] is buf
                    and tuple(current.args[1:]) == tuple(s.indices)):
                return False
            if loads_of(v.args[1], buf):
                return False
    return True


def fuse(func: PrimFunc, outer: str, inner: str) -> tuple[PrimFunc, str]:
    """Two perfectly nested loops -> one over the product of their extents."""
    label = f"{outer}, {inner}"
    o = find_loop(func, outer, "fuse")
    i = find_loop(func, inner, "fuse")
    ch = chain_of(o)
    if len(ch.loops) < 2 or ch.loops[1] is not i:
        below = ch.loops[1].var.name if len(ch.loops) > 1 else f"`{describe(ch.body)}`"
        raise ScheduleError("fuse", label, f"{inner} is not the loop directly inside {outer} "
                            f"(inside {outer} is {below})")
    _serial("fuse", o)
    _serial("fuse", i)
    if outer in free_vars(i.extent):
        raise ScheduleError("fuse", label, f"the extent of {inner} ({i.extent}) depends on "
                            f"{outer}")
    used = used_names(func)
    name = fresh(_fused_name(outer, inner), used)
    fused = var(name)
    mapping = {o.var: floordiv(fused, i.extent), i.var: fused % i.extent}
    new = _rechain(func, o, ch, (_header(name, o.extent * i.extent),), 2, mapping)
    return _with_body(func, replace(func.body, o, new)), name


def _fused_name(outer: str, inner: str) -> str:
    """`v0_i` + `v0_j` -> `v0_i_j_fused`; `i_o` + `j_o` -> `i_o_j_o_fused`."""
    cut = 0
    for k, (a, b) in enumerate(zip(outer, inner)):
        if a != b:
            break
        if a == "_":
            cut = k + 1
    return f"{outer}_{inner[cut:]}_fused"


def annotate(func: PrimFunc, loop: str, kind: LoopKind, primitive: str) -> PrimFunc:
    """Mark `loop` parallel, vectorized or unrolled after checking its precondition."""
    node = find_loop(func, loop, primitive)
    if node.kind is not LoopKind.SERIAL:
        raise ScheduleError(primitive, loop, f"{loop} is already {node.kind.value}")
    if kind in (LoopKind.VECTORIZED, LoopKind.UNROLLED) and not node.extent.is_const:
        raise ScheduleError(primitive, loop, f"the extent {node.extent} is not a constant; "
                            f"split {loop} by a constant factor and {primitive} the inner loop")
    if kind is LoopKind.VECTORIZED:
        inner = next((s for s in walk(node.body) if isinstance(s, For)), None)
        if inner is not None:
            raise ScheduleError(primitive, loop, f"{loop} is not an innermost loop "
                                f"({describe(inner)} is inside it)")
    if kind is LoopKind.PARALLEL:
        around = [s for s in path_to(func.body, node)[:-1]
                  if isinstance(s, For) and s.kind is LoopKind.PARALLEL]
        inside = [s for s in walk(node.body) if isinstance(s, For) and s.kind is
                  LoopKind.PARALLEL]
        for other in around + inside:
            where = "inside" if other in around else "around"
            raise ScheduleError(primitive, loop, f"parallel loop {other.var.name} is already "
                                f"{where} it (nested parallelism is not supported)")
    if kind in (LoopKind.VECTORIZED, LoopKind.PARALLEL):
        problem = independence_problem(node)
        if problem:
            what = "lanes" if kind is LoopKind.VECTORIZED else "iterations"
            raise ScheduleError(primitive, loop, f"its {what} are not independent: {problem}")
    new = For(node.var, node.extent, node.body, kind)
    return _with_body(func, replace(func.body, node, new))
