"""Vectorized loops: a loop of constant extent L runs once, its variable holding L lanes.

    for j in 0..16 vectorized { C[i, j] = C[i, j] + A[i, k] * B[k, j] }
    ->
    %A.val = load float, ptr %A.ptr                       ; invariant in j: scalar + splat
    %B.vec = load <16 x float>, ptr %B.ptr, align 4       ; B[k, j]: contiguous in j
    %C.vec = load <16 x float>, ptr %C.ptr, align 4
    %r = call <16 x float> @llvm.fmuladd.v16f32(<16 x float> %A.splat, %B.vec, %C.vec)
    store <16 x float> %r, ptr %C.ptr, align 4

The rules, per access (`coefficient` decides how an index moves with the lane):
  * innermost index `j + c` (stride 1), outer indices invariant -> one vector load/store;
  * every index invariant -> a scalar load, splat where it meets a vector;
  * anything else (strided, indirect) -> `llvm.masked.gather` / `llvm.masked.scatter`.
A store to an address invariant in the lane of a value that varies by lane (or that reads
the buffer it writes, `acc = acc + x`) is a reduction across lanes: a CodegenError, since
the schedule never vectorizes a reduction axis. An `if` whose condition varies by lane
becomes a mask: stores and loads under it are masked, so a tail guard
`if (jo * 16 + j < N)` neither writes nor reads past the end. f32 exp, tanh, erf, log
and kin are inline polynomials on the lanes (vmath.py); other math intrinsics use their
vector overloads (`llvm.sqrt.v16f32`); libm calls and integer `pow` run per lane.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llvmlite import ir

from dlc.backends.llvm.types import I1, I32, I64, PTR, memory_type
from dlc.ir.tensor.expr import Expr, children, const, free_vars, loaded_buffers, substitute
from dlc.ir.tensor.stmt import Buffer, For, IfThenElse, Store

if TYPE_CHECKING:
    from dlc.backends.llvm.codegen import KernelEmitter

MAX_LANES = 64  # wider constant loops stay serial loops (with a vectorize hint for LLVM)


def is_vector(v: ir.Value) -> bool:
    return isinstance(v.type, ir.VectorType)


def shaped(ty: ir.Type, like: ir.Value | ir.Type) -> ir.Type:
    """`ty`, or a vector of `ty` with as many lanes as `like` when `like` is a vector."""
    lt = like if isinstance(like, ir.Type) else like.type
    return ir.VectorType(ty, lt.count) if isinstance(lt, ir.VectorType) else ty


def splat(ty: ir.Type, value: Any) -> ir.Constant:
    """The constant `value` of type `ty` (every lane, for a vector type)."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def type_suffix(ty: ir.Type) -> str:
    """The overload suffix of an intrinsic: `f32`, `i64`, `v16f32`."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if isinstance(ty, ir.PointerType):
        return "p0"
    return {"float": "f32", "double": "f64", "half": "f16"}.get(str(ty), str(ty))


def vector_lanes(s: For) -> int:
    """The lane count of a VECTORIZED loop, or 0 when it must stay a serial loop."""
    if not s.extent.is_const or not 1 < s.extent.value <= MAX_LANES:
        return 0
    return int(s.extent.value)


def coefficient(e: Expr, v: Expr) -> int | None:
    """c when lane k of `e` is `c * k + (lane 0's value)`, else None: `e` is affine in the
    vectorized variable `v` (a `ramp` counts as its stride; other lane-free terms, 0)."""
    if e is v:
        return 1
    if e.op == "ramp":
        c = coefficient(e.args[0], v)
        return None if c is None else c + e.args[1]
    if e.op == "broadcast":
        return coefficient(e.args[0], v)
    if e.lanes == 1 and v.name not in free_vars(e):
        return 0
    if e.op in ("add", "sub"):
        a, b = coefficient(e.args[0], v), coefficient(e.args[1], v)
        if a is None or b is None:
            return None
        return a + b if e.op == "add" else a - b
    if e.op == "mul":
        for x, k in ((e.args[0], e.args[1]), (e.args[1], e.args[0])):
            if k.is_const and not k.dtype.is_float:
                c = coefficient(x, v)
                return None if c is None else c * int(k.value)
    return None


def lane_zero(e: Expr, v: Expr) -> Expr:
    """`e` in lane 0: `v` -> 0, `ramp(base, s)` -> base, `broadcast(x)` -> x."""
    mapping: dict[Expr, Expr] = {v: const(0)}
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.op in ("ramp", "broadcast"):
            mapping[x] = lane_zero(x.args[0], v)
        else:
            stack.extend(children(x))
    return substitute(e, mapping)




class VectorLowering:
    """The vector half of KernelEmitter: lanes, masks, vector memory access."""

    # set by KernelEmitter.__init__
    b: ir.IRBuilder
    module: ir.Module
    debug: bool
    lanes: int
    vector_var: Expr | None
    vector_locals: set[Buffer]
    mask: ir.Value | None
    splats: dict[int, ir.Value]
    scalars: dict[str, ir.Value]
    buffers: dict[Buffer, ir.Value]

    def vector_loop(self: KernelEmitter, s: For, lanes: int) -> None:
        """Emit the body once with `s.var` = <0, 1, ..., lanes-1>."""
        name = s.var.name
        outer = self.scalars.get(name)
        self.scalars[name] = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
        self.lanes, self.vector_var = lanes, s.var
        try:
            self.stmt(s.body)
        finally:
            self.lanes, self.vector_var, self.mask = 0, None, None
            self.vector_locals.clear()
            if outer is None:
                del self.scalars[name]
            else:
                self.scalars[name] = outer

    # -- lanes -------------------------------------------------------------------------------
    def widen(self: KernelEmitter, v: ir.Value) -> ir.Value:
        """`v` in every lane (a vector stays itself)."""
        if is_vector(v):
            return v
        vt = ir.VectorType(v.type, self.lanes)
        if isinstance(v, ir.Constant):
            return ir.Constant(vt, [v] * self.lanes)
        found = self.splats.get(id(v))
        if found is not None:
            return found
        one = self.b.insert_element(ir.Constant(vt, None), v, ir.Constant(I32, 0))
        out = self.b.shuffle_vector(one, ir.Constant(vt, None),
                                    ir.Constant(ir.VectorType(I32, self.lanes), None),
                                    name=f"{v.name}.splat" if v.name else "")
        self.splats[id(v)] = out
        return out

    def per_lane(self: KernelEmitter, fn: Callable[..., ir.Value],
                 args: Sequence[ir.Value]) -> ir.Value:
        """Apply a scalar emitter to each lane (libm calls, integer pow)."""
        args = [self.widen(a) for a in args]
        out: ir.Value | None = None
        for k in range(self.lanes):
            lane = ir.Constant(I32, k)
            r = fn(*[self.b.extract_element(a, lane) for a in args])
            if out is None:
                out = ir.Constant(ir.VectorType(r.type, self.lanes), None)
            out = self.b.insert_element(out, r, lane)
        assert out is not None
        return out

    def lane_expr(self: KernelEmitter, e: Expr) -> ir.Value:
        """`ramp` and `broadcast` nodes (built by a vectorizing pass) inside a vector loop."""
        if e.lanes != self.lanes:
            from dlc.backends.llvm.codegen import CodegenError

            raise CodegenError(f"a {e.lanes}-lane {e.op} inside a {self.lanes}-lane loop")
        if e.op == "broadcast":
            return self.widen(self.expr(e.args[0]))
        base, stride = e.args
        step = ir.Constant(ir.VectorType(I64, self.lanes),
                           [k * stride for k in range(self.lanes)])
        return self.b.add(self.widen(self.expr(base)), step)

    # -- memory ------------------------------------------------------------------------------
    def contiguous(self: KernelEmitter, buf: Buffer, indices: Sequence[Expr]
                   ) -> tuple[Expr, ...] | None:
        """Lane 0's indices when the lanes touch consecutive elements of `buf`, else None.

        An index read from memory under a mask (`x[idx[e], j]` in a guarded tail) is
        loaded per lane, so its lanes cannot be assumed equal: such an access gathers."""
        v = self.vector_var
        assert v is not None
        coeffs = [coefficient(i, v) for i in indices]
        if not coeffs or coeffs[-1] != 1 or any(c != 0 for c in coeffs[:-1]):
            return None
        first = tuple(lane_zero(i, v) for i in indices)
        if self.mask is not None and any(is_vector(self.expr(i)) for i in first):
            return None
        return first

    def load_lanes(self: KernelEmitter, e: Expr) -> ir.Value:
        buf, indices = e.args[0], e.args[1:]
        first = self.contiguous(buf, indices)
        if first is None and (self.mask is None or self.provably_inside(buf, indices)):
            # one address for every lane: a scalar load (then a broadcast); under a mask
            # only when the address is valid even for lanes the mask turns off
            idx = [self.expr(i) for i in indices]
            if not any(is_vector(x) for x in idx):
                return self.scalar_load(buf, indices)
        if self.debug:
            self.check_lanes(buf, indices)
        elem = memory_type(buf.dtype)
        vt = ir.VectorType(elem, self.lanes)
        align = buf.dtype.itemsize
        zero = ir.Constant(vt, None)
        if first is not None:
            ptr = self.address(buf, first, check=False)
            if self.mask is None or self.whole_local_row(buf, first):
                value = self.b.load(ptr, typ=vt, name=f"{buf.name}.vec", align=align)
            else:
                fn = self._libc(f"llvm.masked.load.{type_suffix(vt)}.p0", vt,
                                [PTR, self.mask.type, vt])
                value = self._aligned_call(fn, [ptr, self.mask, zero], align,
                                           f"{buf.name}.vec")
        else:
            ptrs = self.lane_pointers(buf, indices)
            fn = self._libc(f"llvm.masked.gather.{type_suffix(vt)}.{type_suffix(ptrs.type)}",
                            vt, [ptrs.type, ir.VectorType(I1, self.lanes), vt])
            value = self._aligned_call(fn, [ptrs, self.lane_mask(), zero], align,
                                       f"{buf.name}.gather")
        return self.from_memory(value, buf.dtype)

    def store_lanes(self: KernelEmitter, s: Store) -> None:
        from dlc.backends.llvm.codegen import CodegenError

        buf = s.buffer
        value = self.expr(s.value)
        first = self.contiguous(buf, s.indices)
        if first is None and not any(is_vector(self.expr(i)) for i in s.indices):
            # one address for every lane: only a value the lanes agree on may go there
            if is_vector(value) or (buf in loaded_buffers(s.value)
                                    and buf not in self.vector_locals):
                raise CodegenError(
                    f"{self.func.name}: the vectorized loop over {self.vector_var} stores "
                    f"into {buf.name} at an address that does not depend on it (a reduction "
                    "across lanes); vectorize a spatial loop, or keep this one serial")
            if self.mask is None:
                ptr = self.address(buf, s.indices)
                self.b.store(self.to_memory(value, buf.dtype), ptr)
                return
        if self.debug:
            self.check_lanes(buf, s.indices)
        data = self.to_memory(self.widen(value), buf.dtype)
        align = buf.dtype.itemsize
        if first is not None:
            ptr = self.address(buf, first, check=False)
            if self.mask is not None and self.whole_local_row(buf, first):
                old = self.b.load(ptr, typ=data.type, align=align)
                data = self.b.select(self.mask, data, old)
            elif self.mask is not None:
                fn = self._libc(f"llvm.masked.store.{type_suffix(data.type)}.p0",
                                ir.VoidType(), [data.type, PTR, self.mask.type])
                self._aligned_call(fn, [data, ptr, self.mask], align, "", arg=1)
                return
            self.b.store(data, ptr, align=align)
            return
        ptrs = self.lane_pointers(buf, s.indices)
        fn = self._libc(f"llvm.masked.scatter.{type_suffix(data.type)}."
                        f"{type_suffix(ptrs.type)}", ir.VoidType(),
                        [data.type, ptrs.type, ir.VectorType(I1, self.lanes)])
        self._aligned_call(fn, [data, ptrs, self.lane_mask()], align, "", arg=1)

    def lane_pointers(self: KernelEmitter, buf: Buffer, indices: Sequence[Expr]) -> ir.Value:
        """<L x ptr>: the address of each lane's element (row-major)."""
        idx = [self.widen(self.expr(i)) for i in indices]
        dims = [self.widen(self.expr(d)) for d in buf.shape]
        offset = idx[0] if idx else ir.Constant(ir.VectorType(I64, self.lanes), None)
        for x, d in zip(idx[1:], dims[1:]):
            offset = self.b.add(self.b.mul(offset, d), x)
        gep = self.b.gep(self.buffers[buf], [offset], source_etype=memory_type(buf.dtype),
                         inbounds=True, name=f"{buf.name}.ptrs")
        gep.type = ir.VectorType(PTR, self.lanes)  # a vector index gives a vector of pointers
        return gep

    def provably_inside(self: KernelEmitter, buf: Buffer, indices: Sequence[Expr]) -> bool:
        """Every index lies inside `buf` for all values of the enclosing loops, guards or
        not (a GEMM's broadcast row element under a column tail guard)."""
        from dlc.passes.tensor.schedule_analysis import interval

        for i, d in zip(indices, buf.shape):
            bounds = interval(i, self.ranges)
            if not d.is_const or bounds is None or bounds[0] < 0 or bounds[1] >= d.value:
                return False
        return True

    def whole_local_row(self: KernelEmitter, buf: Buffer, first: Sequence[Expr]) -> bool:
        """A local tile's full row of lanes (index 0.. of a last dim of exactly `lanes`):
        every lane is inside the allocation, so a masked access may touch all of them —
        plain loads and a blended store keep the tile promotable to registers, where
        masked intrinsics on a stack slot would pin it in memory."""
        last = buf.shape[-1] if buf.shape else None
        return (buf.scope == "local" and last is not None and last.is_const
                and last.value == self.lanes and first[-1].is_const and first[-1].value == 0)

    def lane_mask(self) -> ir.Value:
        if self.mask is not None:
            return self.mask
        return ir.Constant(ir.VectorType(I1, self.lanes), [1] * self.lanes)

    def _aligned_call(self: KernelEmitter, fn: ir.Function, args: list[ir.Value],
                      align: int, name: str, arg: int = 0) -> ir.Value:
        """Call a masked memory intrinsic; its alignment is the pointer operand's `align`."""
        call = self.b.call(fn, args, name=name, arg_attrs={arg: ()})
        call.arg_attributes[arg].align = align
        return call

    def check_lanes(self: KernelEmitter, buf: Buffer, indices: Sequence[Expr]) -> None:
        """Debug: every active lane's indices lie inside `buf`."""
        vb = ir.VectorType(I1, self.lanes)
        ok: ir.Value = ir.Constant(vb, [1] * self.lanes)
        for i, d in zip(indices, buf.shape):
            x, n = self.widen(self.expr(i)), self.widen(self.expr(d))
            inside = self.b.and_(self.b.icmp_signed(">=", x, splat(x.type, 0)),
                                 self.b.icmp_signed("<", x, n))
            ok = self.b.and_(ok, inside)
        if self.mask is not None:
            ok = self.b.or_(ok, self.b.not_(self.mask))
        fn = self._libc(f"llvm.vector.reduce.and.{type_suffix(vb)}", I1, [vb])
        self.branch_if_ok(self.b.call(fn, [ok]), buf.name)

    # -- control -----------------------------------------------------------------------------
    def if_lanes(self: KernelEmitter, s: IfThenElse, cond: ir.Value) -> None:
        """`if` on a per-lane condition: run both arms under masks."""
        outer = self.mask
        self.mask = cond if outer is None else self.b.and_(outer, cond)
        self.stmt(s.then)
        if s.otherwise is not None:
            other = self.b.not_(cond)
            self.mask = other if outer is None else self.b.and_(outer, other)
            self.stmt(s.otherwise)
        self.mask = outer

    def safe_divisor(self: KernelEmitter, d: ir.Value) -> ir.Value:
        """Integer division under a mask: inactive lanes divide by 1, never by a zero that
        a masked load left there (x86 traps on integer division by zero)."""
        if self.mask is None or not is_vector(d):
            return d
        return self.b.select(self.mask, d, splat(d.type, 1))
