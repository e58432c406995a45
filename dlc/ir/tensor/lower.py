"""Lower compute definitions to a loop nest: one PrimFunc per fused group.

Elementwise and injective producers are inlined into their consumers (their bodies are
substituted at each load), so a fused group reads its inputs and writes its outputs
once. Reductions and the group's outputs are materialized: each gets a loop nest, and a
reduction gets a local accumulator.

    C = compute((M, N), lambda i, j: reduce("sum", A[i, k] * B[k, j], [k]))
    D = compute((M, N), lambda i, j: max(C[i, j], 0.0))      # inlined? no: C is a
                                                              # reduction, D reads it
    ->
    for i in 0..M { for j in 0..N {
      C_acc: f32[1] local
      C_acc[0] = 0.0
      for k in 0..K { C_acc[0] = C_acc[0] + A[i, k] * B[k, j] }
      C[i, j] = C_acc[0] } }
    for i in 0..M { for j in 0..N { D[i, j] = max(C[i, j], 0.0) } }
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.ir.dtypes import DType
from dlc.ir.tensor.compute import Reduce, Tensor, identity
from dlc.ir.tensor.expr import (
    Expr,
    cast,
    children,
    compare,
    const,
    free_vars,
    load,
    loaded_buffers,
    max_,
    min_,
    rebuild,
    select,
    substitute,
    var,
)
from dlc.ir.tensor.stmt import (
    Allocate,
    Buffer,
    For,
    IfThenElse,
    PrimFunc,
    Stmt,
    Store,
    seq,
    walk,
)


def lower_tensors(name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                  comment: str = "", materialize: Sequence[Tensor] = ()) -> PrimFunc:
    """A PrimFunc computing `outputs` from `inputs` (placeholders)."""
    order = _topological(outputs)
    by_buffer = {t.buffer: t for t in order}
    for t in inputs:
        by_buffer.setdefault(t.buffer, t)
    keep = {t.buffer for t in outputs} | {t.buffer for t in materialize}
    for t in order:
        if t.extern is not None:  # an imperative nest reads real buffers, not expressions
            keep |= {i.buffer for i in t.inputs} | {o.buffer for o in t.extern.outputs}
    inline = {t.buffer for t in order if not t.is_placeholder and not t.is_reduction
              and t.extern is None and t.buffer not in keep}
    missing = [t.name for t in order if t.is_placeholder and t.buffer not in
               {i.buffer for i in inputs}]
    if missing:
        raise ValueError(f"{name}: tensors {missing} are read but are not kernel inputs")
    expander = _Inliner(by_buffer, inline)
    epilogues = _epilogues(order, inline, keep, expander)
    fused_into = {r: o for o, r in epilogues.items()}
    nests: list[Stmt] = []
    temps: list[Buffer] = []
    emitted_externs: set[int] = set()
    output_buffers = {o.buffer for o in outputs}
    for t in order:
        if t.extern is not None:
            if id(t.extern) not in emitted_externs:
                emitted_externs.add(id(t.extern))
                ext = t.extern
                nests.append(ext.build([i.buffer for i in ext.inputs],
                                       [o.buffer for o in ext.outputs]))
                temps.extend(o.buffer for o in ext.outputs if o.buffer not in output_buffers)
            continue
        if t.is_placeholder or t.buffer in inline or t.buffer in epilogues:
            continue
        epilogue = by_buffer[fused_into[t.buffer]] if t.buffer in fused_into else None
        nests.append(_loop_nest(t, expander, epilogue))
        if t.buffer not in {o.buffer for o in outputs} and t.buffer not in fused_into:
            temps.append(t.buffer)
    body = seq(*nests)
    for buf in reversed(temps):
        body = Allocate(buf, body)
    params = tuple(t.buffer for t in inputs) + tuple(t.buffer for t in outputs)
    return PrimFunc(name, params, body, sizes=_size_vars(params, body), comment=comment,
                    outputs=tuple(t.buffer for t in outputs))


def _size_vars(params: Sequence[Buffer], body: Stmt) -> tuple[Expr, ...]:
    """Size symbols the kernel needs: those in parameter shapes, and any other free
    variable of the body (a symbol that only sized an inlined intermediate)."""
    names = {n for b in params for d in b.shape for n in free_vars(d)}
    loop_vars: set[str] = set()
    used: set[str] = set()
    for s in walk(body):
        exprs: list[Expr] = []
        if isinstance(s, For):
            loop_vars.add(s.var.name)
            exprs.append(s.extent)
        elif isinstance(s, Store):
            exprs.extend((*s.indices, s.value))
        elif isinstance(s, IfThenElse):
            exprs.append(s.cond)
        elif isinstance(s, Allocate):
            exprs.extend(s.buffer.shape)
        for e in exprs:
            used |= free_vars(e)
    names |= used - loop_vars
    return tuple(var(n) for n in sorted(names))


def _topological(outputs: Sequence[Tensor]) -> list[Tensor]:
    """All tensors the outputs depend on, producers first."""
    order: list[Tensor] = []
    state: dict[Buffer, int] = {}

    def visit(t: Tensor) -> None:
        if state.get(t.buffer) == 2:
            return
        if state.get(t.buffer) == 1:
            raise ValueError(f"cycle through tensor {t.name}")
        state[t.buffer] = 1
        for d in t.inputs:
            visit(d)
        state[t.buffer] = 2
        order.append(t)

    for t in outputs:
        visit(t)
    return order


class _Inliner:
    """Substitutes inlined tensors' bodies at their loads, memoized per expression."""

    def __init__(self, by_buffer: dict[Buffer, Tensor], inline: set[Buffer]) -> None:
        self.by_buffer = by_buffer
        self.inline = inline
        self.memo: dict[Expr, Expr] = {}

    def __call__(self, e: Expr) -> Expr:
        if e in self.memo:
            return self.memo[e]
        if not children(e) and e.op != "load":  # a rank-0 load is a leaf that may inline
            return e
        args = tuple(self(a) if isinstance(a, Expr) else a for a in e.args)
        if e.op == "load" and args[0] in self.inline:
            t = self.by_buffer[args[0]]
            assert isinstance(t.body, Expr)
            out = self(substitute(t.body, dict(zip(t.axes, args[1:]))))
        else:
            out = rebuild(e, args)
        self.memo[e] = out
        return out


def _epilogues(order: list[Tensor], inline: set[Buffer], keep: set[Buffer],
               expand: _Inliner) -> dict[Buffer, Buffer]:
    """Elementwise tensors that can be computed at their reduction's write.

    `O[i, j] = relu(R[i, j] + b[j])` where `R` is a reduction of the same shape that only
    `O` reads, at `O`'s own position: the epilogue is applied to the accumulator as it is
    stored, so `R` never touches memory (the conv-bias-relu / matmul-bias-gelu pattern).
    Returns {epilogue buffer: reduction buffer}.
    """
    readers: dict[Buffer, list[Tensor]] = {}
    for t in order:
        if t.is_placeholder or t.extern is not None or t.buffer in inline:
            continue
        for buf in loaded_buffers(_expanded(t, expand)):
            readers.setdefault(buf, []).append(t)
    out: dict[Buffer, Buffer] = {}
    for t in order:
        if t.is_placeholder or t.is_reduction or t.extern is not None or t.buffer in inline:
            continue
        sources = [b for b in loaded_buffers(_expanded(t, expand))
                   if b in readers and _tensor_of(order, b) is not None
                   and _tensor_of(order, b).is_reduction]
        if len(sources) != 1:
            continue
        r = _tensor_of(order, sources[0])
        assert r is not None
        if r.buffer in keep or r.buffer in out.values() or readers[r.buffer] != [t]:
            continue
        if len(r.shape) != len(t.shape) or any(a is not b for a, b in zip(r.shape, t.shape)):
            continue
        body = _expanded(t, expand)
        probe = load(Buffer("probe", (1,), r.dtype, "local"), (const(0),))
        own = {p: probe for p in _own_positions(r.buffer, t.axes)}
        if r.buffer in loaded_buffers(substitute(body, own)):
            continue  # read at another position too: cannot fuse at the write
        out[t.buffer] = r.buffer
    return out


def _own_positions(buf: Buffer, axes: tuple[Expr, ...]) -> list[Expr]:
    """The loads that read `buf` at the position `axes`: `buf[i, j]`, and, where a dim has
    extent 1, the broadcast form that reads index 0 there (`buf[0, j]` for a batch of 1)."""
    exact = load(buf, axes)
    zeroed = tuple(const(0) if d.is_const and d.value == 1 else a
                   for a, d in zip(axes, buf.shape))
    return [exact] if zeroed == axes else [exact, load(buf, zeroed)]


def _tensor_of(order: list[Tensor], buf: Buffer) -> Tensor | None:
    for t in order:
        if t.buffer is buf:
            return t
    return None


def _expanded(t: Tensor, expand: _Inliner) -> Expr:
    """The body with inlined producers substituted (a reduction's reduced expression)."""
    if isinstance(t.body, Reduce):
        return expand(t.body.body)
    assert t.body is not None
    return expand(t.body)




def _loop_nest(t: Tensor, expand: _Inliner, epilogue: Tensor | None = None) -> Stmt:
    """Loops over `t`'s axes storing its (expanded) body; reductions use an accumulator.

    With an `epilogue` (an elementwise tensor reading `t` at the same position), the
    reduction's result goes through the epilogue straight into the epilogue's buffer.
    """
    body = t.body
    if isinstance(body, Reduce):
        inner = _reduction(t, body, expand, epilogue)
    else:
        assert body is not None
        inner = Store(t.buffer, t.axes, cast(expand(body), t.dtype))
    for axis, extent in reversed(list(zip(t.axes, t.shape))):
        inner = For(axis, extent, inner)
    return inner


def _reduction(t: Tensor, r: Reduce, expand: _Inliner, epilogue: Tensor | None) -> Stmt:
    value = expand(r.body)
    zero = const(0)
    if r.combiner in ("argmax", "argmin"):
        best = Buffer(f"{t.name}_best", (1,), value.dtype, "local")
        index = Buffer(f"{t.name}_index", (1,), DType.i64, "local")
        linear: Expr = const(0)
        for ax in r.axes:
            linear = linear * ax.extent + ax.var
        better = compare("gt" if r.combiner == "argmax" else "lt", value, load(best, (zero,)))
        update = seq(Store(index, (zero,), select(better, linear, load(index, (zero,)))),
                     Store(best, (zero,), select(better, value, load(best, (zero,)))))
        loops: Stmt = update
        for ax in reversed(r.axes):
            loops = For(ax.var, ax.extent, loops)
        init = seq(Store(best, (zero,), identity(r.combiner, value.dtype)),
                   Store(index, (zero,), const(0)))
        write = _write(t, load(index, (zero,)), expand, epilogue)
        return Allocate(best, Allocate(index, seq(init, loops, write)))
    acc = Buffer(f"{t.name}_acc", (1,), value.dtype, "local")
    current = load(acc, (zero,))
    combined = {"sum": lambda a, b: a + b, "prod": lambda a, b: a * b,
                "max": max_, "min": min_}[r.combiner](current, value)
    loops = Store(acc, (zero,), combined)
    for ax in reversed(r.axes):
        loops = For(ax.var, ax.extent, loops)
    start = expand(r.init) if r.init is not None else identity(r.combiner, value.dtype)
    write = _write(t, cast(current, t.dtype), expand, epilogue)
    return Allocate(acc, seq(Store(acc, (zero,), start), loops, write))


def _write(t: Tensor, result: Expr, expand: _Inliner, epilogue: Tensor | None) -> Stmt:
    """Store a reduction's result, through its epilogue when it has one."""
    if epilogue is None:
        return Store(t.buffer, t.axes, result)
    body = substitute(_expanded(epilogue, expand), dict(zip(epilogue.axes, t.axes)))
    body = substitute(body, {p: result for p in _own_positions(t.buffer, t.axes)})
    return Store(epilogue.buffer, t.axes, cast(body, epilogue.dtype))
