"""What the schedule primitives must know about a loop nest before they change it.

* `interval` / `simplify`: integer ranges of index expressions from loop extents, and the
  rewrites they allow (`(i_o * 8 + i_i) // 8 -> i_o` when `0 <= i_i < 8`), so indices stay
  readable after split, fuse and pack.
* `reduction_vars`: which loops a buffer is *reduced* over in a region — the dependence
  test behind reorder, parallel and vectorize. It is conservative: every buffer written in
  the region (and not allocated inside it) must be accessed at one index tuple; a loop
  whose variable is absent from that tuple revisits the same element every iteration (a
  reduction over that loop); a loop whose variable is present must *provably* give each
  iteration its own element (`determined`), else the region is refused as unanalyzable.
* `check_annotations`: parallel, vectorized and unrolled loops still satisfy their
  preconditions (run after every primitive, so compute_at cannot move a race into a
  parallel loop, say).
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.ir.tensor.expr import (
    Expr,
    add,
    children,
    const,
    free_vars,
    mod,
    mul,
    rebuild,
)
from dlc.ir.tensor.stmt import Allocate, Buffer, For, LoopKind, PrimFunc, Stmt, Store, walk
from dlc.passes.tensor.schedule_nest import describe, stmt_loads

Interval = tuple[int, int]


# -- ranges and simplification -----------------------------------------------------------


def interval(e: Expr, ranges: dict[str, int]) -> Interval | None:
    """Bounds `[lo, hi]` of an integer expression, given loop extents; None if unknown."""
    if e.dtype.is_float or e.lanes != 1:
        return None
    op = e.op
    if op == "const":
        return (int(e.value), int(e.value))
    if op == "var":
        n = ranges.get(e.name)
        return (0, n - 1) if n is not None and n > 0 else None
    if op in ("add", "sub", "mul", "min", "max"):
        a, b = (interval(x, ranges) for x in e.args)
        if a is None or b is None:
            return None
        if op == "add":
            return (a[0] + b[0], a[1] + b[1])
        if op == "sub":
            return (a[0] - b[1], a[1] - b[0])
        if op == "min":
            return (min(a[0], b[0]), min(a[1], b[1]))
        if op == "max":
            return (max(a[0], b[0]), max(a[1], b[1]))
        products = [x * y for x in a for y in b]
        return (min(products), max(products))
    if op in ("floordiv", "mod") and e.args[1].is_const and e.args[1].value > 0:
        c = e.args[1].value
        a = interval(e.args[0], ranges)
        if op == "floordiv":
            return None if a is None else (a[0] // c, a[1] // c)
        if a is not None and 0 <= a[0] and a[1] < c:
            return a
        return (0, c - 1)
    return None


def linear_terms(e: Expr) -> tuple[dict[Expr, int], int]:
    """`e` as `sum(coeff * atom) + constant`; an atom is anything but +, - and `* const`."""
    if e.op == "const" and not e.dtype.is_float:
        return {}, int(e.value)
    if e.op in ("add", "sub"):
        ta, ka = linear_terms(e.args[0])
        tb, kb = linear_terms(e.args[1])
        sign = 1 if e.op == "add" else -1
        out = dict(ta)
        for atom, c in tb.items():
            out[atom] = out.get(atom, 0) + sign * c
        return {a: c for a, c in out.items() if c}, ka + sign * kb
    if e.op == "mul" and e.args[1].is_const and not e.dtype.is_float:
        terms, k = linear_terms(e.args[0])
        c = int(e.args[1].value)
        return {a: x * c for a, x in terms.items() if x * c}, k * c
    return {e: 1}, 0


def _from_terms(terms: dict[Expr, int], k: int, like: Expr) -> Expr:
    out: Expr = const(0, like.dtype)
    for atom, c in terms.items():
        out = add(out, mul(atom, c))
    return add(out, k)


def simplify(e: Expr, ranges: dict[str, int]) -> Expr:
    """Fold `x // c` and `x % c` where `x = c*q + r` with `0 <= r < c` provable; else
    pull the whole part out, `(c*q + r) // c -> q + r // c` and `(c*q + r) % c -> r % c`
    (true for every integer q and r: dlc's signed `//` and `%` round toward -inf), so a
    phase split `(l_o*2 + l_i + 1) // 2` reads `l_o + (l_i + 1) // 2`."""
    memo: dict[Expr, Expr] = {}

    def go(x: Expr) -> Expr:
        if x in memo:
            return memo[x]
        if not children(x):
            return x
        y = rebuild(x, tuple(go(a) if isinstance(a, Expr) else a for a in x.args))
        if (y.op in ("floordiv", "mod") and y.args[1].is_const and not y.dtype.is_float
                and y.args[1].value > 0):
            c = y.args[1].value
            terms, k = linear_terms(y.args[0])
            whole = {a: t // c for a, t in terms.items() if t % c == 0}
            rest = {a: t for a, t in terms.items() if t % c}
            qk, rk = divmod(k, c)
            r = _from_terms(rest, rk, y)
            bounds = interval(r, ranges)
            if bounds is not None and bounds[0] >= 0 and bounds[1] < c:
                y = _from_terms(whole, qk, y) if y.op == "floordiv" else r
            elif (whole or qk) and y.dtype.is_signed:  # unsigned `//` would not floor
                part = rebuild(y, (r, y.args[1]))
                y = add(_from_terms(whole, qk, y), part) if y.op == "floordiv" else part
        memo[x] = y
        return y

    return go(e)


# -- dependence ------------------------------------------------------------------------------


class Unanalyzable(Exception):
    """The dependence test cannot prove what a primitive needs; the message says why."""


def determined(idx: Sequence[Expr], varying: dict[str, int | None]) -> set[str]:
    """The `varying` loops (name -> extent, None if symbolic) whose value the index tuple
    `idx` determines: two iterations that reach the same element agree on these loops.

    A dimension `sum(c_k * atom_k)` determines its atoms when the coefficients form a
    mixed radix (each |c_k| exceeds the spread of all smaller terms: `i_o * 16 + i_i` with
    `i_i < 16`), or one loop when its coefficient exceeds the spread of everything else.
    Atoms already determined count as fixed, and once both `x // c` and `x % c` are
    determined, so is `x` (a fused loop read back, even split across two dimensions).
    """
    ranges = {k: n for k, n in varying.items() if n is not None}
    dims = [unshift(i) for i in idx]
    known_vars: set[str] = set()
    known: set[Expr] = set()
    changed = True
    while changed:
        changed = False
        for d in list(dims):
            terms, _ = linear_terms(d)
            terms = {a: c for a, c in terms.items()
                     if a not in known and free_vars(a) & (varying.keys() - known_vars)}
            if not terms:
                continue
            atoms, names = _digits(terms, ranges)
            if atoms - known or names - known_vars:
                known |= atoms
                known_vars |= names
                changed = True
        for a in list(known):
            if a.op == "floordiv" and a.args[1].is_const and mod(a.args[0], a.args[1]) in known \
                    and a.args[0] not in dims:
                dims.append(a.args[0])
                changed = True
    return known_vars


def unshift(e: Expr) -> Expr:
    """`e` with each shifted tail block `min(o * f, n - f)` (a split with
    `tail="shift"`) read as `o * f`: the shifted block recomputes elements of the block
    before it with the same values (split checks the body is pure), so for ordering and
    races its iterations count as owning their unshifted elements."""
    if not children(e):
        return e
    if e.op == "min" and e.args[1].is_const and e.args[0].op == "mul" \
            and e.args[0].args[0].op == "var" and e.args[0].args[1].is_const:
        return e.args[0]
    return rebuild(e, tuple(unshift(a) if isinstance(a, Expr) else a for a in e.args))


def _digits(terms: dict[Expr, int], ranges: dict[str, int]) -> tuple[set[Expr], set[str]]:
    """(atoms, loops) that one dimension `sum(c * atom)` pins down (see `determined`)."""
    width = {a: interval(a, ranges) for a in terms}
    order = sorted(terms, key=lambda a: abs(terms[a]))
    spread = 0
    radix = True
    for k, a in enumerate(order):
        if abs(terms[a]) <= spread:
            radix = False
            break
        if k + 1 < len(order):
            if width[a] is None:
                radix = False
                break
            spread += abs(terms[a]) * (width[a][1] - width[a][0])
    if radix:
        return set(terms), {a.name for a in terms if a.op == "var"}
    for v in terms:
        rest = [a for a in terms if a is not v]
        if v.op != "var" or any(width[a] is None or v.name in free_vars(a) for a in rest):
            continue
        if sum(abs(terms[a]) * (width[a][1] - width[a][0]) for a in rest) < abs(terms[v]):
            return {v}, {v.name}
    return set(), set()


def _index_text(buf: Buffer, idx: Sequence[Expr]) -> str:
    from dlc.ir.tensor.printer import expr_str

    return f"{buf.name}[{', '.join(expr_str(i) for i in idx)}]"


def reduction_vars(region: Stmt, loops: dict[str, int | None]) -> dict[Buffer, set[str]]:
    """For each buffer written in `region`, the loops of `loops` (name -> extent) it is
    reduced over: every iteration of such a loop updates the same element.

    Raises Unanalyzable when a written buffer is accessed at several index tuples (unless
    it is stored at one and dims common to all of them keep the loops apart), at a
    data-dependent index, or at an index that some loop might not keep apart.
    """
    local = {s.buffer for s in walk(region) if isinstance(s, Allocate)}
    varying = dict(loops)
    inner: dict[Expr, Expr] = {}
    for s in walk(region):
        if isinstance(s, For):
            varying[s.var.name] = s.extent.value if s.extent.is_const else None
            inner[s.var] = s.extent
    accesses: dict[Buffer, list[tuple[Expr, ...]]] = {}
    for s in walk(region):
        if isinstance(s, Store) and s.buffer not in local:
            idx = tuple(s.indices)
            if idx not in accesses.setdefault(s.buffer, []):
                accesses[s.buffer].append(idx)
    stored = {buf: len({_renamed_apart(i, inner) for i in idxs}) for buf, idxs in
              accesses.items()}  # positions written (the loads come next)
    for ld in stmt_loads(region):
        buf, idx = ld.args[0], tuple(ld.args[1:])
        if buf in accesses and idx not in accesses[buf]:
            accesses[buf].append(idx)
    for buf, idxs in accesses.items():  # copies of one nest (an unswitched body) count once
        seen: dict[tuple[Expr, ...], tuple[Expr, ...]] = {}
        for idx in idxs:
            seen.setdefault(_renamed_apart(idx, inner), idx)
        accesses[buf] = list(seen.values())
    out: dict[Buffer, set[str]] = {}
    for buf, idxs in accesses.items():
        if len(idxs) > 1 and stored[buf] == 1 and _apart_by_shared_dims(idxs, varying, inner):
            out[buf] = set()
            continue
        if len(idxs) > 1:
            raise Unanalyzable(f"{buf.name} is accessed at several positions "
                               f"({_index_text(buf, idxs[0])} and {_index_text(buf, idxs[1])})")
        idx = idxs[0]
        if any(stmt_loads_in(i) for i in idx):
            raise Unanalyzable(f"{_index_text(buf, idx)} is written at a data-dependent "
                               "position")
        reduced = set()
        pinned = determined(idx, varying)
        for name in loops:
            if not any(name in free_vars(i) for i in idx):
                reduced.add(name)
            elif name not in pinned:
                raise Unanalyzable(f"cannot prove that iterations of {name} write distinct "
                                   f"elements of {_index_text(buf, idx)}")
        out[buf] = reduced
    return out


def _apart_by_shared_dims(idxs: list[tuple[Expr, ...]], varying: dict[str, int | None],
                          inner: dict[Expr, Expr]) -> bool:
    """Do the dims that every access of a buffer indexes alike, with no loop inside the
    region, pin down all the loops asked about? Then different iterations of those loops
    touch different elements, however the accesses differ in their other dims (a block's
    scores written by a GEMM tile, read back by a row reduction, in one iteration).

    Used only for a buffer stored at one position (a temporary moved in by compute_at):
    the same holds for several stores (a CSR SpMM row zeroed, then accumulated), but
    would change the schedules of kernels the rules already handle."""
    names = {v.name for v in inner}
    shared = [i for i, *rest in zip(*idxs)
              if all(r == i for r in rest) and not free_vars(i) & names]
    asked = varying.keys() - names
    return bool(shared) and not any(stmt_loads_in(i) for i in shared) and \
        asked <= determined(shared, varying)


def _renamed_apart(idx: tuple[Expr, ...], inner: dict[Expr, Expr]) -> tuple[Expr, ...]:
    """`idx` with the variables of loops inside the region renamed by their order of first
    use and their extent: two copies of a nest whose loops differ only in name (the
    branches of an unswitch) access the same elements in each iteration around them."""
    from dlc.ir.tensor.expr import subexprs, substitute, var

    mapping: dict[Expr, Expr] = {}
    for i in idx:
        for x in subexprs(i):
            if x.op == "var" and x in inner and x not in mapping:
                mapping[x] = var(f"#{len(mapping)}:{inner[x]}")
    return tuple(substitute(i, mapping) for i in idx) if mapping else idx


def stmt_loads_in(e: Expr) -> bool:
    """Does `e` read memory?"""
    stack = [e]
    while stack:
        x = stack.pop()
        if x.op == "load":
            return True
        stack.extend(children(x))
    return False


def independence_problem(loop: For) -> str | None:
    """Why the iterations of `loop` might not run in any order (None: they can)."""
    name = loop.var.name
    extent = loop.extent.value if loop.extent.is_const else None
    try:
        reduced = reduction_vars(loop.body, {name: extent})
    except Unanalyzable as e:
        return str(e)
    for buf, names in reduced.items():
        if name in names:
            idx = next(s.indices for s in walk(loop.body)
                       if isinstance(s, Store) and s.buffer is buf)
            return (f"every iteration of {name} updates {_index_text(buf, idx)} "
                    f"(a reduction over {name})")
    return None


def check_annotations(func: PrimFunc) -> tuple[str, str] | None:
    """(loop, reason) for the first parallel/vectorized/unrolled loop whose precondition
    no longer holds, or None."""

    def visit(s: Stmt, parallel: str | None) -> tuple[str, str] | None:
        if isinstance(s, For):
            name = s.var.name
            if s.kind is LoopKind.PARALLEL:
                if parallel is not None:
                    return name, f"it would be a parallel loop inside parallel loop {parallel}"
                problem = independence_problem(s)
                if problem:
                    return name, f"its iterations are not independent: {problem}"
                parallel = name
            elif s.kind is LoopKind.VECTORIZED:
                if not s.extent.is_const:
                    return name, f"a vectorized loop needs a constant extent, not {s.extent}"
                inner = next((x for x in walk(s.body) if isinstance(x, For)), None)
                if inner is not None:
                    return name, (f"a vectorized loop must be innermost, and "
                                  f"{describe(inner)} is inside it")
                problem = independence_problem(s)
                if problem:
                    return name, f"its lanes are not independent: {problem}"
            elif s.kind is LoopKind.UNROLLED and not s.extent.is_const:
                return name, f"an unrolled loop needs a constant extent, not {s.extent}"
        for c in s.children():
            found = visit(c, parallel)
            if found:
                return found
        return None

    return visit(func.body, None)
