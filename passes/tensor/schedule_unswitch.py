"""unswitch: hoist a select whose condition does not change inside a loop's body into an
if/else around that body, one copy of the body per branch.

A concatenation lowers to `out[.., j, ..] = select(j < n, a[.., j, ..], b[.., j - n, ..])`:
both inputs are loaded for every element (the select needs both operands), and the
vector loop inside reads twice the data it writes. The condition depends only on `j`, so
inside `j`'s body it is fixed: unswitching `j` gives `if j < n { copy a } else { copy b }`,
one load per element. A chain of selects (a concatenation of six) becomes a chain of
ifs, each branch with its own copy of the body. The docstring with Before/After IR lives
on `Schedule.unswitch`.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from dlc.ir.tensor.expr import Expr, children, free_vars, rebuild, var
from dlc.ir.tensor.stmt import For, IfThenElse, PrimFunc, Stmt, walk
from dlc.passes.tensor.schedule_nest import (
    ScheduleError,
    find_loop,
    fresh,
    loads_of,
    map_children,
    map_exprs,
    own_exprs,
    replace,
    substitute_stmt,
    used_names,
)

MAX_COPIES = 8  # copies of the body one unswitch may make


def unswitch(func: PrimFunc, loop: str) -> PrimFunc:
    """Hoist every select whose condition is fixed inside `loop`'s body out of it."""
    node = find_loop(func, loop, "unswitch")
    inside = {s.var.name for s in walk(node.body) if isinstance(s, For)}
    used = used_names(func)
    copies = [0]

    def hoist(body: Stmt) -> Stmt:
        cond = _fixed_condition(body, inside)
        if cond is None:
            copies[0] += 1
            return body
        return IfThenElse(cond, hoist(_take(body, cond, True)), hoist(_take(body, cond, False)))

    if _fixed_condition(node.body, inside) is None:
        raise ScheduleError("unswitch", loop, f"no select in the body of {loop} has a "
                            "condition that stays the same inside it (and reads no memory)")
    body = _renamed(hoist(node.body), used, set())
    if copies[0] > MAX_COPIES:
        raise ScheduleError("unswitch", loop, f"the body would be copied {copies[0]} times "
                            f"(at most {MAX_COPIES})")
    new = For(node.var, node.extent, body, node.kind)
    return dc_replace(func, body=replace(func.body, node, new))


def _fixed_condition(body: Stmt, inside: set[str]) -> Expr | None:
    """The first select condition in `body` that uses no loop of `inside` and no memory."""
    for s in walk(body):
        for e in own_exprs(s):
            stack = [e]
            while stack:
                x = stack.pop()
                if x.op == "select":
                    c = x.args[0]
                    if c.lanes == 1 and not free_vars(c) & inside and not loads_of(c):
                        return c
                stack.extend(children(x))
    return None


def _take(body: Stmt, cond: Expr, branch: bool) -> Stmt:
    """`body` with each `select(cond, a, b)` replaced by `a` (branch True) or `b`."""
    memo: dict[Expr, Expr] = {}

    def go(e: Expr) -> Expr:
        found = memo.get(e)
        if found is not None:
            return found
        if e.op == "select" and e.args[0] is cond:
            out = go(e.args[1] if branch else e.args[2])
        elif e.op in ("var", "const"):
            out = e
        else:
            args = tuple(go(a) if isinstance(a, Expr) else a for a in e.args)
            out = e if all(a is b for a, b in zip(args, e.args)) else rebuild(e, args)
        memo[e] = out
        return out

    return map_exprs(body, go)


def _renamed(s: Stmt, used: set[str], seen: set[str]) -> Stmt:
    """`s` with each loop whose name an earlier loop of `s` has taken renamed (the copies
    of the body: each loop of a kernel has its own name)."""
    if isinstance(s, For):
        name = s.var.name
        body = s.body
        if name in seen:
            new = var(fresh(name, used))
            body = substitute_stmt(body, {s.var: new})
            s = For(new, s.extent, body, s.kind)
        seen.add(s.var.name)
        return dc_replace(s, body=_renamed(body, used, seen))
    return map_children(s, lambda c: _renamed(c, used, seen))
