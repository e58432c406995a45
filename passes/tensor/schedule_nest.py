"""Loop-nest surgery for the schedule primitives: finding, replacing and rewriting statements.

Statements are immutable and compared by identity, so a primitive finds the nodes it
changes (`find_loop`, `path_to`), builds their replacements, and rebuilds the spine above
them (`replace`). Loops are named by their variable; `Schedule` keeps those names unique
(`unique_loop_names`), so a name is a stable handle that a trace can record.

A *chain* is a loop and the loops perfectly nested in it: each loop's body is the next
loop, or a guard `if c { ... }` with no else (a split's tail check) around it. Guards
commute with the loops below them (a condition has no side effects and only reads
variables bound above it), so `build_chain` always puts them at the bottom, which keeps
the loops of a chain free to reorder and fuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import replace as dc_replace

from dlc.errors import DLCError, closest
from dlc.ir.tensor.expr import Expr, children, const, logical, rebuild, substitute, var
from dlc.ir.tensor.stmt import (
    Allocate,
    Buffer,
    For,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    seq,
    walk,
)


class ScheduleError(DLCError):
    """A schedule primitive refused: `primitive(target): reason`, where target is the loop
    or buffer it was applied to."""

    def __init__(self, primitive: str, loop: str, reason: str) -> None:
        super().__init__(f"{primitive}({loop}): {reason}")
        self.primitive = primitive
        self.loop = loop
        self.reason = reason


# -- names ---------------------------------------------------------------------------------


def loop_names(root: Stmt) -> list[str]:
    """Every loop variable in pre-order."""
    return [s.var.name for s in walk(root) if isinstance(s, For)]


def used_names(func: PrimFunc) -> set[str]:
    """Names a new loop or buffer must avoid: loops, size symbols and buffers."""
    names = set(loop_names(func.body)) | {v.name for v in func.sizes}
    names |= {b.name for b in func.params}
    names |= {s.buffer.name for s in walk(func.body) if isinstance(s, Allocate)}
    return names


def fresh(base: str, used: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : the first not in `used` (which it joins)."""
    name, k = base, 1
    while name in used:
        name = f"{base}_{k}"
        k += 1
    used.add(name)
    return name


def unique_loop_names(func: PrimFunc) -> PrimFunc:
    """`func` with every loop variable distinct: a repeated `v2_i` becomes `v2_i_1`, ...

    Lowering reuses axis names across the nests of one kernel (softmax's three row loops
    are all `v2_i`); a schedule refers to loops by name, so each needs its own.
    """
    used = {v.name for v in func.sizes}
    seen: set[str] = set()

    def visit(s: Stmt) -> Stmt:
        if isinstance(s, For):
            name = s.var.name
            body = s.body
            if name in seen or name in used:
                new = var(fresh(name, used | seen))
                body = substitute_stmt(body, {s.var: new})
                s = For(new, s.extent, body, s.kind)
            seen.add(s.var.name)
            return dc_replace(s, body=visit(s.body))
        return map_children(s, visit)

    return dc_replace(func, body=visit(func.body))


# -- finding and replacing ---------------------------------------------------------------


def find_loop(func: PrimFunc, name: str, primitive: str) -> For:
    """The loop whose variable is `name`, or a ScheduleError listing the loops."""
    for s in walk(func.body):
        if isinstance(s, For) and s.var.name == name:
            return s
    names = loop_names(func.body)
    near = closest(name, names, 1)
    hint = f"; did you mean {near[0]}?" if near else ""
    raise ScheduleError(primitive, name, f"no loop named {name!r} in kernel @{func.name}"
                        f"{hint} (loops: {', '.join(names) or 'none'})")


def find_buffer(func: PrimFunc, name: str, primitive: str) -> Buffer:
    """The parameter or Allocate'd buffer called `name`."""
    buffers = list(func.params) + [s.buffer for s in walk(func.body) if isinstance(s, Allocate)]
    for b in buffers:
        if b.name == name:
            return b
    near = closest(name, [b.name for b in buffers], 1)
    hint = f"; did you mean {near[0]}?" if near else ""
    raise ScheduleError(primitive, name, f"no buffer named {name!r} in kernel @{func.name}"
                        f"{hint}")


def path_to(root: Stmt, target: Stmt) -> list[Stmt]:
    """The statements from `root` down to `target` (inclusive); [] if absent."""
    if root is target:
        return [root]
    for c in root.children():
        below = path_to(c, target)
        if below:
            return [root, *below]
    return []


def map_children(s: Stmt, fn: Callable[[Stmt], Stmt | None]) -> Stmt:
    """`s` with `fn` applied to each child statement (None drops a Seq element)."""
    if isinstance(s, (For, Allocate)):
        body = fn(s.body) or seq()
        return s if body is s.body else dc_replace(s, body=body)
    if isinstance(s, IfThenElse):
        then = fn(s.then) or seq()
        other = fn(s.otherwise) if s.otherwise is not None else None
        if then is s.then and other is s.otherwise:
            return s
        return IfThenElse(s.cond, then, other)
    if isinstance(s, Seq):
        new = [fn(x) for x in s.stmts]
        if all(a is b for a, b in zip(new, s.stmts)):
            return s
        return seq(*new)
    return s


def replace(root: Stmt, old: Stmt, new: Stmt | None) -> Stmt:
    """`root` with the statement `old` (by identity) replaced by `new` (None: removed)."""
    if root is old:
        return new if new is not None else seq()
    path = path_to(root, old)
    if not path:
        raise ValueError("statement to replace is not in the tree")

    def visit(s: Stmt) -> Stmt | None:
        if s is old:
            return new
        if any(s is p for p in path):
            return map_children(s, visit)
        return s

    return visit(root) or seq()


def stmt_list(s: Stmt) -> list[Stmt]:
    """A statement as a list of the statements run in order."""
    return list(s.stmts) if isinstance(s, Seq) else [s]


# -- expressions in statements -------------------------------------------------------------


def own_exprs(s: Stmt) -> list[Expr]:
    """The expressions a statement holds itself (not those of its children)."""
    if isinstance(s, For):
        return [s.extent]
    if isinstance(s, Store):
        return [*s.indices, s.value]
    if isinstance(s, IfThenElse):
        return [s.cond]
    if isinstance(s, Allocate):
        return list(s.buffer.shape)
    return []


def map_exprs(s: Stmt, fn: Callable[[Expr], Expr]) -> Stmt:
    """`s` with every expression (extents, indices, values, conditions) mapped by `fn`."""
    if isinstance(s, Store):
        idx = tuple(fn(i) for i in s.indices)
        value = fn(s.value)
        if value is s.value and all(a is b for a, b in zip(idx, s.indices)):
            return s
        return Store(s.buffer, idx, value)
    if isinstance(s, For):
        extent = fn(s.extent)
        body = map_exprs(s.body, fn)
        if extent is s.extent and body is s.body:
            return s
        return For(s.var, extent, body, s.kind)
    if isinstance(s, IfThenElse):
        cond = fn(s.cond)
        then = map_exprs(s.then, fn)
        other = map_exprs(s.otherwise, fn) if s.otherwise is not None else None
        if cond is s.cond and then is s.then and other is s.otherwise:
            return s
        return IfThenElse(cond, then, other)
    return map_children(s, lambda c: map_exprs(c, fn))


def substitute_stmt(s: Stmt, mapping: dict[Expr, Expr],
                    simplify: Callable[[Expr, dict[str, int]], Expr] | None = None,
                    ranges: dict[str, int] | None = None) -> Stmt:
    """`s` with variables replaced, respecting loops that rebind a mapped variable.

    With `simplify`, each rewritten expression is simplified knowing the constant extent of
    every loop around it (`ranges`: loop variable -> extent, for the loops above `s`).
    """
    ranges = dict(ranges or {})
    memo: dict[Expr, Expr] = {}

    def expr(e: Expr, env: dict[Expr, Expr], rng: dict[str, int]) -> Expr:
        out = substitute(e, env, memo if env is mapping else {})
        return simplify(out, rng) if simplify is not None and out is not e else out

    def visit(s: Stmt, env: dict[Expr, Expr], rng: dict[str, int]) -> Stmt:
        if not env:
            return s
        if isinstance(s, For):
            inner_env = {k: v for k, v in env.items() if k is not s.var}
            inner_rng = dict(rng)
            if s.extent.is_const:
                inner_rng[s.var.name] = s.extent.value
            body = visit(s.body, inner_env, inner_rng)
            extent = expr(s.extent, env, rng)
            if body is s.body and extent is s.extent:
                return s
            return For(s.var, extent, body, s.kind)
        if isinstance(s, Store):
            idx = tuple(expr(i, env, rng) for i in s.indices)
            value = expr(s.value, env, rng)
            if value is s.value and all(a is b for a, b in zip(idx, s.indices)):
                return s
            return Store(s.buffer, idx, value)
        if isinstance(s, IfThenElse):
            cond = expr(s.cond, env, rng)
            then = visit(s.then, env, rng)
            other = visit(s.otherwise, env, rng) if s.otherwise is not None else None
            if cond is s.cond and then is s.then and other is s.otherwise:
                return s
            return IfThenElse(cond, then, other)
        return map_children(s, lambda c: visit(c, env, rng))

    return visit(s, mapping, ranges)


def map_exprs_scoped(s: Stmt, fn: Callable[[Expr, dict[str, int]], Expr],
                     ranges: dict[str, int]) -> Stmt:
    """Like `map_exprs`, with `fn` also given the constant extents of the loops in scope."""
    if isinstance(s, For):
        inner = dict(ranges)
        if s.extent.is_const:
            inner[s.var.name] = s.extent.value
        extent = fn(s.extent, ranges)
        body = map_exprs_scoped(s.body, fn, inner)
        if extent is s.extent and body is s.body:
            return s
        return For(s.var, extent, body, s.kind)
    if isinstance(s, Store):
        return map_exprs(s, lambda e: fn(e, ranges))
    if isinstance(s, IfThenElse):
        cond = fn(s.cond, ranges)
        then = map_exprs_scoped(s.then, fn, ranges)
        other = map_exprs_scoped(s.otherwise, fn, ranges) if s.otherwise is not None else None
        if cond is s.cond and then is s.then and other is s.otherwise:
            return s
        return IfThenElse(cond, then, other)
    return map_children(s, lambda c: map_exprs_scoped(c, fn, ranges))


def loads_of(e: Expr, buf: Buffer | None = None) -> list[Expr]:
    """The load expressions in `e` (of `buf` only, when given), each once."""
    found: list[Expr] = []
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.op == "load" and (buf is None or x.args[0] is buf) and x not in found:
            found.append(x)
        stack.extend(children(x))
    return found


def stmt_loads(s: Stmt, buf: Buffer | None = None) -> list[Expr]:
    """Every load in a statement tree (of `buf` only, when given)."""
    out: list[Expr] = []
    for x in walk(s):
        for e in own_exprs(x):
            out.extend(ld for ld in loads_of(e, buf) if ld not in out)
    return out


def stores_to(s: Stmt, buf: Buffer) -> list[Store]:
    return [x for x in walk(s) if isinstance(x, Store) and x.buffer is buf]


def written_buffers(s: Stmt) -> set[Buffer]:
    """Buffers stored to in `s` that are not allocated inside it."""
    local = {x.buffer for x in walk(s) if isinstance(x, Allocate)}
    return {x.buffer for x in walk(s) if isinstance(x, Store)} - local


def read_buffers(s: Stmt) -> set[Buffer]:
    """Buffers loaded in `s` that are not allocated inside it."""
    local = {x.buffer for x in walk(s) if isinstance(x, Allocate)}
    return {ld.args[0] for ld in stmt_loads(s)} - local


def rewrite_loads(e: Expr, buf: Buffer, fn: Callable[[tuple[Expr, ...]], Expr],
                  memo: dict[Expr, Expr] | None = None) -> Expr:
    """`e` with each load `buf[idx]` replaced by `fn(idx)` (indices rewritten first)."""
    memo = {} if memo is None else memo
    if e in memo:
        return memo[e]
    if not children(e):
        return e
    args = tuple(rewrite_loads(a, buf, fn, memo) if isinstance(a, Expr) else a for a in e.args)
    out = fn(args[1:]) if e.op == "load" and args[0] is buf else rebuild(e, args)
    memo[e] = out
    return out


def describe(s: Stmt) -> str:
    """A one-line description of a statement for error messages."""
    from dlc.ir.tensor.printer import stmt_lines

    first = stmt_lines(s)[0].strip()
    return first.rstrip(" {")


# -- chains of perfectly nested loops --------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """Perfectly nested loops (outermost first), the guards among them, and the body."""

    loops: tuple[For, ...]
    guards: tuple[Expr, ...]
    body: Stmt

    @property
    def names(self) -> list[str]:
        return [lp.var.name for lp in self.loops]


def chain_of(start: Stmt) -> Chain:
    """`start` (a loop, or any statement) and the loops perfectly nested below it.

    The chain stops at a statement other than a loop or an else-less guard, and at a loop
    whose extent reads memory (a guard must not move below it: the read could go out of
    bounds on a tail iteration).
    """
    loops: list[For] = []
    guards: list[Expr] = []
    s = start
    if isinstance(s, For):
        loops.append(s)
        s = s.body
    while True:
        if isinstance(s, For) and not loads_of(s.extent):
            loops.append(s)
            s = s.body
        elif isinstance(s, IfThenElse) and s.otherwise is None:
            guards.append(s.cond)
            s = s.then
        else:
            break
    return Chain(tuple(loops), tuple(guards), s)


def build_chain(loops: Iterable[For], guards: Iterable[Expr], body: Stmt) -> Stmt:
    """Loops around `body`, with the guards right around the body, outermost first.

    Neighbouring guards that read no memory become one `&&` condition; a guard that loads
    stays a separate `if` so that the guards before it still protect its reads.
    """
    merged: list[Expr] = []
    for g in guards:
        if merged and not loads_of(g) and not loads_of(merged[-1]):
            merged[-1] = logical("and", merged[-1], g)
        else:
            merged.append(g)
    s = body
    for g in reversed(merged):
        s = IfThenElse(g, s)
    for lp in reversed(list(loops)):
        s = For(lp.var, lp.extent, s, lp.kind)
    return s


def const_extent(loop: For) -> int | None:
    return loop.extent.value if loop.extent.is_const else None


def enclosing_ranges(func: PrimFunc, target: Stmt) -> dict[str, int]:
    """Constant extents of the loops around `target` (loop variable -> extent)."""
    out: dict[str, int] = {}
    for s in path_to(func.body, target)[:-1]:
        if isinstance(s, For) and s.extent.is_const:
            out[s.var.name] = s.extent.value
    return out


def zero() -> Expr:
    return const(0)


_IDENT = re.compile(r"[A-Za-z_]\w*\Z")


def is_identifier(text: str) -> bool:
    return bool(_IDENT.match(text))
