"""rfactor: give each lane of a reduction loop its own partial accumulator.

A row reduction (softmax's sums, a norm's statistics, a mean) updates one scalar
accumulator in every iteration, so its loop cannot run as vector lanes. rfactor splits the
loop by `factor` and accumulates into `factor` partials, one per position of the inner
loop; the inner loop then writes each lane's own element and can be vectorized, and a
short loop after the reduction combines the partials. The docstring with Before/After IR
lives on `Schedule.rfactor`.
"""

from __future__ import annotations

from dlc.ir.tensor.compute import identity
from dlc.ir.tensor.expr import Expr, compare, const, floordiv, free_vars, load, max_, min_, var
from dlc.ir.tensor.stmt import (
    Allocate,
    Buffer,
    For,
    LoopKind,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    seq,
    walk,
)
from dlc.passes.tensor import schedule_loops as loops_
from dlc.passes.tensor.schedule_nest import (
    ScheduleError,
    chain_of,
    describe,
    find_loop,
    fresh,
    loads_of,
    path_to,
    replace,
    stmt_list,
    stmt_loads,
    stores_to,
    used_names,
)

# the combiner an update `acc = op(acc, x)` uses, by its expression op
_COMBINERS = {"add": "sum", "mul": "prod", "max": "max", "min": "min"}


def _combine(op: str, a: Expr, b: Expr) -> Expr:
    if op == "max":
        return max_(a, b)
    if op == "min":
        return min_(a, b)
    return a + b if op == "add" else a * b


def rfactor(func: PrimFunc, loop: str, factor: int) -> tuple[PrimFunc, tuple[str, str, str]]:
    """Split the innermost reduction loop `loop` by `factor` into per-lane partials."""

    def refuse(reason: str) -> ScheduleError:
        return ScheduleError("rfactor", loop, reason)

    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise refuse(f"factor must be an integer of at least 2, not {factor!r}")
    node = find_loop(func, loop, "rfactor")
    if node.kind is not LoopKind.SERIAL:
        raise refuse(f"{loop} is already {node.kind.value}")
    ch = chain_of(node)
    update = ch.body
    if len(ch.loops) != 1 or not isinstance(update, Store):
        raise refuse(f"{loop} is not an innermost loop around a single accumulator update")
    acc, value = update.buffer, update.value
    current = load(acc, tuple(update.indices))
    operands = value.args if value.op in _COMBINERS else (None, None)
    other = operands[1] if operands[0] is current else operands[0]
    if (acc.scope != "local" or current not in operands or other is None
            or loads_of(other, acc)):
        raise refuse(f"`{describe(update)}` is not an update `acc = acc op x` of a local "
                     "accumulator (op: +, *, max, min)")
    path = path_to(func.body, node)
    alloc = next((s for s in reversed(path) if isinstance(s, Allocate) and s.buffer is acc),
                 None)
    if alloc is None:
        raise refuse(f"{acc.name} is not allocated around {loop}")
    inner = path[path.index(alloc) + 1:]
    if isinstance(inner[0], Seq):
        inner = inner[1:]  # alloc.body: the statement of it holding `loop` comes next
    top = inner[0]
    if not any(s is top for s in stmt_list(alloc.body)):
        raise refuse(f"{loop} is not directly in the body of {acc.name}'s allocation")
    between = [s for s in inner if isinstance(s, For)]
    idx_vars = set().union(*(free_vars(i) for i in update.indices))
    for lp in between:
        if lp.var.name in idx_vars:
            raise refuse(f"{acc.name} is indexed by loop {lp.var.name}: each of its "
                         "iterations has its own accumulator, not one reduction")
        if lp.kind is not LoopKind.SERIAL and lp is not node:
            raise refuse(f"loop {lp.var.name} around the reduction is {lp.kind.value}")
    if len(stores_to(top, acc)) != 1 or len(stmt_loads(top, acc)) != 1:
        raise refuse(f"the reduction nest reads or writes {acc.name} elsewhere too")

    used = used_names(func)
    outer, lane = fresh(f"{loop}_o", used), fresh(f"{loop}_i", used)
    init_name, red_name = fresh(f"{lane}_init", used), fresh(f"{lane}_red", used)
    rf = Buffer(fresh(f"{acc.name}_rf", used), (const(factor),), acc.dtype, "local")
    n = node.extent
    if n.is_const:
        outer_extent, exact = const(-(-n.value // factor)), n.value % factor == 0
    else:
        outer_extent, exact = floordiv(n + (factor - 1), factor), False
    joined = var(outer) * factor + var(lane)
    tail = () if exact else (compare("lt", joined, n),)
    head = (For(var(outer), outer_extent, seq()), For(var(lane), const(factor), seq()))
    split = loops_._rechain(func, node, ch, head, 1, {node.var: joined}, tail)
    old = next(s for s in walk(split) if isinstance(s, Store) and s.buffer is acc)
    moved = old.value.args[1] if old.value.args[0] is current else old.value.args[0]
    part = load(rf, (var(lane),))
    new = replace(split, old, Store(rf, (var(lane),), _combine(value.op, part, moved)))
    start = identity(_COMBINERS[value.op], acc.dtype)
    init = For(var(init_name), const(factor), Store(rf, (var(init_name),), start))
    combine = For(var(red_name), const(factor),
                  Store(acc, tuple(update.indices),
                        _combine(value.op, current, load(rf, (var(red_name),)))))
    body: Stmt = replace(top, node, new)
    body = Allocate(rf, seq(init, body, combine))
    return loops_._with_body(func, replace(func.body, top, body)), (outer, lane, rf.name)
