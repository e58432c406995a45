"""Parallel loops: outline the body, run it on libgomp's thread team (GOMP_parallel).

    parallel for i in 0..N { Out[i] = X[i] * 2.0 }
    ->
    define internal i32 @k.i.body(ptr noalias %X, ptr noalias %Out, i64 %N,
                                  i64 %i.begin, i64 %i.end)     ; the loop over a chunk
    define internal void @k.i.par(ptr %closure)                 ; one call per thread:
        ; unpack the closure, take chunk omp_get_thread_num() of omp_get_num_threads()
        ; (static schedule: contiguous, sizes differing by at most one), call the body,
        ; and record a failed bounds check in the closure's status field
    ; in the kernel:
    %i.closure = alloca { ptr, ptr, i64, i64, i32 }    ; buffers, scalars, extent, status
    call void @GOMP_parallel(ptr @k.i.par, ptr %i.closure, i32 %nthreads, i32 0)
    ; status != 0 -> the kernel returns 1

The closure holds the buffers the body touches, then the values of the outer loop
variables and size symbols it reads, then the extent and an i32 status. The body is a
function of its own whose buffer arguments are `noalias`, as in the kernel: LLVM keeps
that knowledge when it inlines the body into the thread entry. Scratch buffers allocated
inside the body are allocated in the body function, so each thread has its own.

Thread count: the module defines `i32 @dlc_num_threads` (external, so LLVM cannot fold
it). `dlc.set_num_threads` writes it in every JIT-ed module; a C caller of an AOT library
may set it too. 0 means libgomp's default (`omp_get_max_threads()`); a loop never starts
more threads than it has iterations. Only the outermost parallel loop forks: parallel loops
inside a parallel body, or inside a vectorized loop, run serially.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from dlc.backends.llvm.types import I32, I64, PTR
from dlc.ir.tensor.expr import Expr, children
from dlc.ir.tensor.stmt import Allocate, Buffer, For, IfThenElse, Store, walk
from dlc.runtime import NUM_THREADS_SYMBOL

if TYPE_CHECKING:
    from dlc.backends.llvm.codegen import KernelEmitter

NUM_THREADS = NUM_THREADS_SYMBOL  # the global the thread count is read from
VOID = ir.VoidType()


def emit_parallel(em: KernelEmitter, s: For) -> None:
    """Emit `s` (a PARALLEL loop) as a GOMP_parallel call at the emitter's position."""
    from dlc.backends.llvm.codegen import CodegenError

    used, names = captures(s)
    missing = [b.name for b in used if b not in em.buffers]
    if missing:
        raise CodegenError(f"{em.func.name}: buffers {missing} are used outside their "
                           "allocation")
    buffers = [b for b in em.buffers if b in used]  # kernel parameter order
    names = [n for n in names if n in em.scalars and n != s.var.name]
    var = s.var.name
    fields = [PTR] * len(buffers) + [I64] * len(names) + [I64, I32]
    closure_ty = ir.LiteralStructType(fields)
    with em.b.goto_block(em.entry):
        em.b.position_at_start(em.entry)
        closure = em.b.alloca(closure_ty, name=f"{var}.closure")
    closure.type = PTR  # llvmlite types an alloca `T*`; it is an opaque `ptr` in the IR
    extent = em.expr(s.extent)
    values = [em.buffers[b] for b in buffers] + [em.scalars[n] for n in names]
    for k, v in enumerate([*values, extent, ir.Constant(I32, 0)]):
        em.b.store(v, _field(em.b, closure, closure_ty, k))
    body = _outline_body(em, s, buffers, names)
    entry = _thread_entry(em, s, closure_ty, body, len(values))
    gomp = _declare(em.module, "GOMP_parallel", VOID, [PTR, PTR, I32, I32])
    em.b.call(gomp, [entry, closure, team_size(em, extent), ir.Constant(I32, 0)])
    status = em.b.load(_field(em.b, closure, closure_ty, len(values) + 1), typ=I32,
                       name=f"{var}.status")
    em.branch_if_ok(em.b.icmp_signed("==", status, ir.Constant(I32, 0)), f"{var}.parallel")


def team_size(em: KernelEmitter, extent: ir.Value) -> ir.Value:
    """min(dlc_num_threads or libgomp's default, extent), at least 1."""
    b = em.b
    requested = b.load(num_threads_global(em.module), typ=I32, name="nthreads")
    default = b.call(_declare(em.module, "omp_get_max_threads", I32, []), [])
    chosen = b.select(b.icmp_signed(">", requested, ir.Constant(I32, 0)), requested, default)
    wide = b.sext(chosen, I64)
    limit = b.select(b.icmp_signed("<", extent, wide), extent, wide)
    limit = b.select(b.icmp_signed("<", limit, ir.Constant(I64, 1)), ir.Constant(I64, 1), limit)
    return b.trunc(limit, I32, name="team")


def num_threads_global(module: ir.Module) -> ir.GlobalVariable:
    found = module.globals.get(NUM_THREADS)
    if found is not None:
        return found
    g = ir.GlobalVariable(module, I32, NUM_THREADS)
    g.initializer = ir.Constant(I32, 0)
    g.align = 4
    return g


def captures(s: For) -> tuple[list[Buffer], list[str]]:
    """The buffers the loop body uses (not allocated inside it) and the names it reads."""
    buffers: dict[Buffer, None] = {}
    local: set[Buffer] = set()
    exprs: list[Expr] = [s.extent]
    for x in walk(s.body):
        if isinstance(x, For):
            exprs.append(x.extent)
        elif isinstance(x, Store):
            buffers[x.buffer] = None
            exprs.extend((*x.indices, x.value))
        elif isinstance(x, IfThenElse):
            exprs.append(x.cond)
        elif isinstance(x, Allocate):
            local.add(x.buffer)
            exprs.extend(x.buffer.shape)
    names: set[str] = set()
    stack, seen = list(exprs), set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if e.op == "var":
            names.add(e.name)
        elif e.op == "load":
            buffers[e.args[0]] = None
        stack.extend(children(e))
    for buf in buffers:
        for d in buf.shape:
            stack.append(d)
    while stack:
        e = stack.pop()
        if e.op == "var":
            names.add(e.name)
        stack.extend(children(e))
    return [b for b in buffers if b not in local], sorted(names)


def _outline_body(em: KernelEmitter, s: For, buffers: list[Buffer], names: list[str]
                  ) -> ir.Function:
    """`i32 @<kernel>.<var>.body(buffers..., scalars..., begin, end)`: the loop over one
    chunk, emitted by a fresh emitter (its own entry block, allocas and fail block)."""
    var = s.var.name
    name = em.module.get_unique_name(f"{em.func.name}.{var}.body")
    child = type(em)(em.module, em.func, em.debug, name=name, buffers=buffers,
                     scalars=[*names, f"{var}.begin", f"{var}.end"])
    child.fn.linkage = "internal"
    child.in_parallel = True
    child.ranges = em.ranges  # the chunk's loop variable keeps the loop's range
    child.serial_loop(s.var.name, child.scalars[f"{var}.begin"], child.scalars[f"{var}.end"],
                      s.body)
    child.finish()
    return child.fn


def _thread_entry(em: KernelEmitter, s: For, closure_ty: ir.Type, body: ir.Function,
                  nvalues: int) -> ir.Function:
    """`void @<kernel>.<var>.par(ptr %closure)`: this thread's chunk of the loop."""
    var = s.var.name
    fn = ir.Function(em.module, ir.FunctionType(VOID, [PTR]),
                     name=em.module.get_unique_name(f"{em.func.name}.{var}.par"))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    closure = fn.args[0]
    closure.name = "closure"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    values = [b.load(_field(b, closure, closure_ty, k), typ=closure_ty.elements[k],
                     name=arg.name) for k, arg in enumerate(body.args[:nvalues])]
    n = b.load(_field(b, closure, closure_ty, nvalues), typ=I64, name="extent")
    tid = b.sext(b.call(_declare(em.module, "omp_get_thread_num", I32, []), []), I64,
                 name="tid")
    team = b.sext(b.call(_declare(em.module, "omp_get_num_threads", I32, []), []), I64,
                  name="nthreads")
    n = b.select(b.icmp_signed("<", n, ir.Constant(I64, 0)), ir.Constant(I64, 0), n)
    # static schedule: thread t takes q (+1 for the first r threads) iterations
    q, r = b.sdiv(n, team, name="q"), b.srem(n, team, name="r")
    extra = b.select(b.icmp_signed("<", tid, r), tid, r)
    begin = b.add(b.mul(tid, q), extra, name=f"{var}.begin")
    more = b.zext(b.icmp_signed("<", tid, r), I64)
    end = b.add(begin, b.add(q, more), name=f"{var}.end")
    status = b.call(body, [*values, begin, end], name="status")
    with b.if_then(b.icmp_signed("!=", status, ir.Constant(I32, 0)), likely=False):
        # llvmlite's store_atomic predates opaque pointers: build the instruction
        flag = _field(b, closure, closure_ty, nvalues + 1)
        b._insert(ir.instructions.StoreAtomicInstr(b.block, ir.Constant(I32, 1), flag,
                                                   "monotonic", 4))
    b.ret_void()
    return fn


def _field(b: ir.IRBuilder, closure: ir.Value, ty: ir.Type, k: int) -> ir.Value:
    return b.gep(closure, [ir.Constant(I32, 0), ir.Constant(I32, k)], source_etype=ty,
                 inbounds=True)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    found = module.globals.get(name)
    if found is not None:
        return found
    fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    fn.attributes.add("nounwind")
    return fn
