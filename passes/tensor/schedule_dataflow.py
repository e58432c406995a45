"""Dataflow primitives: compute_at, inline, cache_write and pack.

These move or create whole loop nests and buffers, so each checks that every value still
reaches its readers: the moved or inlined computation must read the same data as before
(nothing it reads is written in between), and a buffer's readers must all be rewritten.
The docstrings with Before/After IR live on the `Schedule` methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace as dc_replace

from dlc.ir.tensor.expr import Expr, floordiv, free_vars, load, substitute, var
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
    walk,
)
from dlc.passes.tensor.schedule_analysis import interval, simplify, stmt_loads_in
from dlc.passes.tensor.schedule_nest import (
    ScheduleError,
    build_chain,
    chain_of,
    describe,
    enclosing_ranges,
    find_buffer,
    find_loop,
    fresh,
    loads_of,
    map_children,
    map_exprs,
    map_exprs_scoped,
    own_exprs,
    path_to,
    read_buffers,
    replace,
    rewrite_loads,
    seq,
    stmt_list,
    stmt_loads,
    stores_to,
    substitute_stmt,
    used_names,
    written_buffers,
    zero,
)


def _intermediate(func: PrimFunc, name: str, primitive: str) -> Buffer:
    buf = find_buffer(func, name, primitive)
    if buf in func.params:
        raise ScheduleError(primitive, name, f"{name} is a kernel parameter; {primitive} "
                            "applies to an intermediate buffer (one the kernel allocates)")
    return buf


def _with_body(func: PrimFunc, body: Stmt) -> PrimFunc:
    return dc_replace(func, body=body)


# -- compute_at ------------------------------------------------------------------------------


def compute_at(func: PrimFunc, producer: str, loop: str) -> PrimFunc:
    """Move the nest writing `producer` into `loop`, computing only what one iteration reads."""
    label = f"{producer}, {loop}"

    def refuse(reason: str) -> ScheduleError:
        return ScheduleError("compute_at", label, reason)

    buf = _intermediate(func, producer, "compute_at")
    consumer = find_loop(func, loop, "compute_at")
    path = path_to(func.body, consumer)
    nest, parent, child = _producer_nest(path, buf)
    if nest is None or parent is None or child is None:
        raise refuse(f"no loop nest writing {producer} runs before {loop} in the same sequence "
                     "of statements")
    if len(stores_to(func.body, buf)) != len(stores_to(nest, buf)):
        raise refuse(f"{producer} is also written outside its nest")
    if written_buffers(nest) - {buf}:
        others = ", ".join(sorted(b.name for b in written_buffers(nest) - {buf}))
        raise refuse(f"the nest writing {producer} also writes {others}")
    if stmt_loads(nest, buf):
        raise refuse(f"the nest writing {producer} reads it too")
    if not stmt_loads(consumer.body, buf):
        raise refuse(f"{loop} does not read {producer}")
    inside = {id(s) for s in walk(consumer.body)}
    for s in walk(func.body):
        if id(s) not in inside and not isinstance(s, (Seq, Allocate)) and \
                _own_loads(s, buf):
            raise refuse(f"{producer} is also read outside {loop}, by `{describe(s)}` "
                         f"(compute_at that reader's nest into {loop} first)")
    fixed = _fixed_region(consumer, buf)
    if not any(loop in free_vars(e) for e in fixed.values()):
        raise refuse(f"the part of {producer} that one iteration of {loop} reads does not "
                     f"depend on {loop}; compute it at a loop whose variable indexes "
                     f"{producer}")
    ranges = enclosing_ranges(func, consumer)
    if consumer.extent.is_const:
        ranges[consumer.var.name] = consumer.extent.value
    moved = _restrict(nest, buf, fixed, ranges, refuse)
    reads = read_buffers(moved)
    _check_unchanged_inputs(path, parent, nest, child, consumer, reads, buf, refuse)
    levels, body, at = _insertion_point(consumer, buf)
    before = [x for lv in levels for x in lv[0]] + body[:at]
    after = body[at:] + [x for lv in levels for x in lv[2]]
    _check_body_writes(func, before, after, moved, reads, refuse)
    _check_guarded_reads(body[at:], buf, fixed, ranges, refuse)
    inner = seq(*body[:at], moved, *body[at:])
    for pre, guard, post in reversed(levels):
        inner = seq(*pre, IfThenElse(guard.cond, inner), *post)
    new_loop = For(consumer.var, consumer.extent, inner, consumer.kind)
    new_body = replace(replace(func.body, consumer, new_loop), nest, None)
    return _with_body(func, new_body)


def _insertion_point(consumer: For, buf: Buffer) -> tuple[list, list[Stmt], int]:
    """Where the moved nest goes: before the first statement of the loop body that reads
    `buf`, inside the else-less guards around that read (a split's tail check), so the
    nest runs exactly when its result is read. Returns the guard levels
    [(statements before, guard, statements after)], the innermost statement list, and
    the position in it."""
    levels = []
    body = stmt_list(consumer.body)
    while True:
        at = next(k for k, s in enumerate(body) if stmt_loads(s, buf))
        s = body[at]
        if not (isinstance(s, IfThenElse) and s.otherwise is None
                and not loads_of(s.cond, buf)):
            return levels, body, at
        levels.append((body[:at], s, body[at + 1:]))
        body = stmt_list(s.then)


def _check_guarded_reads(after: list[Stmt], buf: Buffer, fixed: dict[int, Expr],
                         ranges: dict[str, int], refuse: Callable[[str], ScheduleError]
                         ) -> None:
    """A read of `buf` under a condition may be skipped exactly when its index is out of
    bounds; the moved nest runs unconditionally, so its region must be provably in bounds."""
    guarded = any(isinstance(x, IfThenElse) and stmt_loads(x, buf)
                  for top in after for x in walk(top))
    if not guarded:
        return
    for d, e in fixed.items():
        size = buf.shape[d]
        bounds = interval(e, ranges)
        if not (size.is_const and bounds is not None and 0 <= bounds[0]
                and bounds[1] < size.value):
            raise refuse(f"{buf.name} is read under a condition and index {e} of its "
                         f"dimension {d} may be out of bounds when the condition is false; "
                         "compute_at a loop inside the condition")


def _own_loads(s: Stmt, buf: Buffer) -> bool:
    return any(loads_of(e, buf) for e in own_exprs(s))


def _producer_nest(path: list[Stmt], buf: Buffer) -> tuple[Stmt | None, Seq | None,
                                                            Stmt | None]:
    """(nest, the Seq holding it, the sibling on the way to the consumer)."""
    for k in range(len(path) - 2, -1, -1):
        s = path[k]
        if isinstance(s, Seq):
            child = path[k + 1]
            pos = next(j for j, x in enumerate(s.stmts) if x is child)
            writers = [x for x in s.stmts[:pos] if stores_to(x, buf)]
            if writers:
                return writers[-1], s, child
    return None, None, None


def _fixed_region(consumer: For, buf: Buffer) -> dict[int, Expr]:
    """Dims of `buf` that one iteration of `consumer` reads at a single index: dim -> index.

    A dim is fixed when every load in the loop body uses the same index there and that
    index uses no loop inside the body (nor memory); other dims are needed whole.
    """
    inner = {s.var.name for s in walk(consumer.body) if isinstance(s, For)}
    loads = stmt_loads(consumer.body, buf)
    fixed: dict[int, Expr] = {}
    for d in range(len(buf.shape)):
        at = {ld.args[1 + d] for ld in loads}
        if len(at) == 1:
            e = next(iter(at))
            if not free_vars(e) & inner and not stmt_loads_in(e):
                fixed[d] = e
    return fixed


def _restrict(nest: Stmt, buf: Buffer, fixed: dict[int, Expr], ranges: dict[str, int],
              refuse: Callable[[str], ScheduleError]) -> Stmt:
    """The nest with the loop over each fixed dim removed and its variable replaced."""
    stores = stores_to(nest, buf)
    loops = {s.var: s for s in walk(nest) if isinstance(s, For)}
    drop: dict[int, Expr] = {}
    mapping: dict[Expr, Expr] = {}
    for d, e in fixed.items():
        at = {st.indices[d] for st in stores}
        v = next(iter(at))
        if len(at) != 1 or v.op != "var" or v not in loops:
            raise refuse(f"dimension {d} of {buf.name} is not indexed by one loop of its nest; "
                         "compute_at before splitting or fusing the producer's loops")
        lp = loops[v]
        if v in mapping:
            raise refuse(f"loop {v.name} indexes two dimensions of {buf.name}")
        if lp.extent is not buf.shape[d]:
            raise refuse(f"loop {v.name} covers 0..{lp.extent} of dimension {d} of {buf.name}, "
                         f"which has size {buf.shape[d]}")
        mapping[v] = e
        drop[id(lp)] = e

    def visit(s: Stmt) -> Stmt:
        if isinstance(s, For) and id(s) in drop:
            return visit(s.body)
        return map_children(s, visit)

    return substitute_stmt(visit(nest), mapping, simplify, ranges)


def _check_unchanged_inputs(path: list[Stmt], parent: Seq, nest: Stmt, child: Stmt,
                            consumer: For, reads: set[Buffer], buf: Buffer,
                            refuse: Callable[[str], ScheduleError]) -> None:
    """Nothing between the nest's old place and `consumer`'s body writes what it reads."""
    start = next(j for j, x in enumerate(parent.stmts) if x is nest)
    end = next(j for j, x in enumerate(parent.stmts) if x is child)
    between = list(parent.stmts[start + 1:end])
    k = next(j for j, x in enumerate(path) if x is child)
    for anc, nxt in zip(path[k:-1], path[k + 1:]):
        if isinstance(anc, Seq):
            between += [x for x in anc.stmts if x is not nxt]
    for s in between:
        clash = written_buffers(s) & (reads | {buf})
        if clash:
            names = ", ".join(sorted(b.name for b in clash))
            raise refuse(f"`{describe(s)}` writes {names}, which the moved nest reads; it "
                         f"would read different values inside {consumer.var.name}")


def _check_body_writes(func: PrimFunc, before: list[Stmt], after: list[Stmt], moved: Stmt,
                       reads: set[Buffer], refuse: Callable[[str], ScheduleError]) -> None:
    """Writes in the consumer's body to what the moved nest reads must come earlier in the
    same iteration, to an intermediate written nowhere else, at the very index it reads
    (an earlier compute_at into the same loop)."""
    for s in after:
        clash = written_buffers(s) & reads
        if clash:
            names = ", ".join(sorted(b.name for b in clash))
            raise refuse(f"`{describe(s)}` in the consumer loop writes {names}, which the "
                         "moved nest reads")
    for s in before:
        for b in written_buffers(s) & reads:
            stores = {tuple(st.indices) for st in stores_to(s, b)}
            wanted = {tuple(ld.args[1:]) for ld in stmt_loads(moved, b)}
            ok = (b not in func.params and len(stores) == 1 and wanted == stores
                  and len(stores_to(func.body, b)) == len(stores_to(s, b)))
            if not ok:
                raise refuse(f"`{describe(s)}` in the consumer loop writes {b.name}, which "
                             "the moved nest reads, at other positions")


# -- inline ------------------------------------------------------------------------------------


def inline(func: PrimFunc, name: str) -> PrimFunc:
    """Replace loads of an elementwise intermediate by its stored expression."""
    buf = _intermediate(func, name, "inline")

    def refuse(reason: str) -> ScheduleError:
        return ScheduleError("inline", name, reason)

    stores = stores_to(func.body, buf)
    if len(stores) != 1:
        raise refuse(f"{name} is written by {len(stores)} stores; inline needs exactly one "
                     "(a reduction or a multi-part nest cannot be inlined)")
    (store,) = stores
    path = path_to(func.body, store)
    idx = tuple(store.indices)
    if len(set(idx)) != len(idx) or any(i.op != "var" for i in idx):
        raise refuse(f"{name} is not stored at its own loop variables "
                     f"(`{describe(store)}`); inline before splitting or fusing its loops")
    k = len(path) - 2
    loops: list[For] = []
    while k >= 0 and isinstance(path[k], For) and path[k].body is path[k + 1] \
            and path[k].var in idx:
        loops.insert(0, path[k])
        k -= 1
    nest = path[k + 1]
    if len(loops) != len(idx):
        raise refuse(f"`{describe(store)}` is not alone in a nest of loops over its indices "
                     "(a reduction, or a nest with other statements, cannot be inlined)")
    if any(not isinstance(s, (Seq, Allocate)) for s in path[:k + 1]):
        raise refuse(f"the nest writing {name} is inside a loop or a condition; inline before "
                     "compute_at")
    for d, i in enumerate(idx):
        extent = next(lp.extent for lp in loops if lp.var is i)
        if extent is not buf.shape[d]:
            raise refuse(f"loop {i.name} covers 0..{extent} of dimension {d} of {name}, "
                         f"which has size {buf.shape[d]}")
    value = store.value
    if loads_of(value, buf):
        raise refuse(f"{name} reads itself")
    reads = {ld.args[0] for ld in loads_of(value)}
    for later in _later_statements(path[:k + 2]):
        clash = written_buffers(later) & reads
        if clash:
            names = ", ".join(sorted(b.name for b in clash))
            raise refuse(f"`{describe(later)}` writes {names} after {name} is computed; its "
                         "readers would see the new values")
    body = replace(func.body, nest, None)
    alloc = next(s for s in walk(body) if isinstance(s, Allocate) and s.buffer is buf)
    body = replace(body, alloc, alloc.body)
    memo: dict[Expr, Expr] = {}

    def expand(at: tuple[Expr, ...]) -> Expr:
        return substitute(value, dict(zip(idx, at)))

    body = map_exprs(body, lambda e: rewrite_loads(e, buf, expand, memo))
    return _with_body(func, body)


def _later_statements(path: list[Stmt]) -> list[Stmt]:
    """Statements that run after the last element of `path` (its later siblings, and
    theirs up the tree)."""
    out: list[Stmt] = []
    for anc, nxt in zip(path, path[1:]):
        if isinstance(anc, Seq):
            pos = next(j for j, x in enumerate(anc.stmts) if x is nxt)
            out += anc.stmts[pos + 1:]
    return out


# -- cache_write -----------------------------------------------------------------------------


def cache_write(func: PrimFunc, name: str, loop: str) -> tuple[PrimFunc, str]:
    """Accumulate a reduction's tile under `loop` in a local buffer, then write it back."""
    label = f"{name}, {loop}"

    def refuse(reason: str) -> ScheduleError:
        return ScheduleError("cache_write", label, reason)

    buf = find_buffer(func, name, "cache_write")
    anchor = find_loop(func, loop, "cache_write")
    ch = chain_of(anchor.body)
    if not ch.loops:
        raise refuse(f"no loops between {loop} and the statement below it "
                     f"(`{describe(anchor.body)}`); pick a loop further out")
    for lp in ch.loops:
        if not lp.extent.is_const:
            raise refuse(f"loop {lp.var.name} has extent {lp.extent}; a local tile needs "
                         "constant extents (split it first)")
        if lp.kind is not LoopKind.SERIAL:
            raise refuse(f"loop {lp.var.name} is already {lp.kind.value}; cache_write before "
                         "annotating the tile's loops")
    acc_alloc = ch.body
    parts = stmt_list(acc_alloc.body) if isinstance(acc_alloc, Allocate) else []
    acc = acc_alloc.buffer if isinstance(acc_alloc, Allocate) else None
    shape_ok = acc is not None and len(acc.shape) == 1 and acc.shape[0].is_const \
        and acc.shape[0].value == 1
    if not shape_ok or len(parts) < 3 or not _is_acc_store(parts[0], acc) \
            or not isinstance(parts[-1], Store) or parts[-1].buffer is not buf:
        raise refuse(f"the statement under the loops inside {loop} is not a reduction into "
                     f"{name} through a one-element accumulator (init; update loops; write)")
    init, write, update = parts[0], parts[-1], parts[1:-1]
    tile_vars = {lp.var.name for lp in ch.loops}
    _check_update(update, acc, buf, tile_vars, refuse)
    if loads_of(init.value, acc) or loads_of(init.value, buf) or loads_of(write.value, buf):
        raise refuse(f"the accumulator's init or write reads {acc.name} or {name} "
                     "unexpectedly")
    if any(tuple(ld.args[1:]) != (zero(),) for ld in loads_of(write.value, acc)):
        raise refuse(f"{acc.name} is read at an index other than 0")
    used = used_names(func)
    local = Buffer(fresh(f"{name}_local", used), tuple(lp.extent for lp in ch.loops),
                   acc.dtype, "local")
    tile = tuple(lp.var for lp in ch.loops)

    def phase(suffix: str, body: Stmt) -> Stmt:
        loops = [For(var(fresh(f"{lp.var.name}_{suffix}", used)), lp.extent, seq())
                 for lp in ch.loops]
        mapping = {lp.var: new.var for lp, new in zip(ch.loops, loops)}
        return substitute_stmt(build_chain(loops, ch.guards, body), mapping)

    def to_local(e: Expr) -> Expr:
        return rewrite_loads(e, acc, lambda _: load(local, tile))

    init_phase = phase("init", Store(local, tile, init.value))

    def visit(s: Stmt) -> Stmt:
        if isinstance(s, Store) and s.buffer is acc:
            return build_chain(ch.loops, ch.guards, Store(local, tile, to_local(s.value)))
        return map_children(s, visit)

    update_phase = [visit(s) for s in update]
    write_phase = phase("wb", Store(buf, write.indices, to_local(write.value)))
    new_body = Allocate(local, seq(init_phase, *update_phase, write_phase))
    new_loop = For(anchor.var, anchor.extent, new_body, anchor.kind)
    return _with_body(func, replace(func.body, anchor, new_loop)), local.name


def _is_acc_store(s: Stmt, acc: Buffer | None) -> bool:
    return isinstance(s, Store) and s.buffer is acc and tuple(s.indices) == (zero(),)


def _check_update(update: list[Stmt], acc: Buffer, buf: Buffer, tile_vars: set[str],
                  refuse: Callable[[str], ScheduleError]) -> None:
    """The update part may only accumulate into acc[0], with control flow that does not
    depend on the tile's loops (it runs once for the whole tile after the rewrite)."""
    for top in update:
        for s in walk(top):
            if isinstance(s, Store):
                if not _is_acc_store(s, acc):
                    raise refuse(f"the reduction also writes `{describe(s)}`")
                for ld in loads_of(s.value, acc):
                    if tuple(ld.args[1:]) != (zero(),):
                        raise refuse(f"{acc.name} is read at an index other than 0")
                if loads_of(s.value, buf):
                    raise refuse(f"the reduction reads {buf.name} while computing it")
            elif isinstance(s, Allocate):
                raise refuse(f"the reduction allocates {s.buffer.name}; only a single "
                             "accumulator is supported")
            elif isinstance(s, (For, IfThenElse)):
                for e in own_exprs(s):
                    if free_vars(e) & tile_vars or loads_of(e, acc):
                        raise refuse(f"`{describe(s)}` depends on the tile's loops")


# -- pack ------------------------------------------------------------------------------------

_AXIS = re.compile(r"\s*(\d+)\s*(?:([/%])\s*(\d+))?\s*\Z")


def parse_layout(layout: str, rank: int) -> list[tuple[int, str, int]]:
    """`"1/8, 0, 1%8"` -> [(1, "/", 8), (0, "", 0), (1, "%", 8)], validated for `rank`.

    Each axis of the packed buffer is an original dim `d` whole, its block index `d/f`
    (`i_d // f`), or its offset in the block `d%f` (`i_d % f`); every dim appears whole
    once, or as one `/f` and one `%f` with the same factor.
    """
    axes = []
    for part in layout.split(","):
        m = _AXIS.match(part)
        if not m:
            raise ValueError(f"cannot read layout axis {part.strip()!r}: write `d`, `d/f` or "
                             "`d%f` with d a dimension number and f a block size")
        d, op, f = int(m.group(1)), m.group(2) or "", int(m.group(3) or 0)
        if d >= rank:
            raise ValueError(f"dimension {d} does not exist (the buffer has rank {rank})")
        if op and f < 1:
            raise ValueError(f"block size must be positive in {part.strip()!r}")
        axes.append((d, op, f))
    for d in range(rank):
        mine = sorted((op, f) for dd, op, f in axes if dd == d)
        whole = [("", 0)]
        blocked = len(mine) == 2 and mine[0][0] == "%" and mine[1][0] == "/" \
            and mine[0][1] == mine[1][1]
        if mine != whole and not blocked:
            raise ValueError(f"dimension {d} must appear once whole (`{d}`) or as a pair "
                             f"`{d}/f` and `{d}%f`")
    return axes


def pack(func: PrimFunc, name: str, layout: str) -> tuple[PrimFunc, str]:
    """Copy a read-only operand into a blocked layout and read the copy instead."""
    buf = find_buffer(func, name, "pack")

    def refuse(reason: str) -> ScheduleError:
        return ScheduleError("pack", f"{name}, {layout!r}", reason)

    if stores_to(func.body, buf):
        raise refuse(f"the kernel writes {name}; pack re-lays out read-only operands")
    try:
        axes = parse_layout(layout, len(buf.shape))
    except ValueError as e:
        raise refuse(str(e)) from None
    shape = []
    for d, op, f in axes:
        n = buf.shape[d]
        shape.append(n if not op else floordiv(n + (f - 1), f) if op == "/" else f)
    used = used_names(func)
    packed = Buffer(fresh(f"{name}_packed", used), tuple(shape), buf.dtype, "global")

    def index(at: tuple[Expr, ...]) -> tuple[Expr, ...]:
        return tuple(at[d] if not op else floordiv(at[d], f) if op == "/" else at[d] % f
                     for d, op, f in axes)

    copy_vars = [var(fresh(f"{name}_p{d}", used)) for d in range(len(buf.shape))]
    copy = build_chain([For(v, n, seq()) for v, n in zip(copy_vars, buf.shape)], (),
                       Store(packed, index(tuple(copy_vars)), load(buf, tuple(copy_vars))))
    if not stmt_loads(func.body, buf):
        raise refuse(f"the kernel does not read {name}")

    def reroute(e: Expr, ranges: dict[str, int]) -> Expr:
        return rewrite_loads(e, buf, lambda at: load(packed, tuple(
            simplify(i, ranges) for i in index(at))))

    body = map_exprs_scoped(func.body, reroute, {})
    return _with_body(func, Allocate(packed, seq(copy, body))), packed.name
