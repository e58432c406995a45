"""Tensor IR -> LLVM IR with llvmlite: one LLVM function per PrimFunc.

A kernel `@name(ptr %A, ..., i64 %N, ...)` returns an i32 status: 0, or 1 when a debug
bounds check failed (generated code never calls back into Python; the caller turns the
status into an exception). Buffers are dense row-major arrays; a load or store computes a
linear offset from the indices. Values are named after the tensor-IR variables so the
emitted IR reads like the loop nest it came from.

Loop kinds: SERIAL is a plain loop; UNROLLED carries `llvm.loop.unroll.full`; PARALLEL
forks a libgomp thread team over an outlined body (parallel.py); VECTORIZED with a
constant extent runs once on vector lanes (vector.py). Expression emitters here are
lane-polymorphic: an operand may be a scalar or an `<L x T>` vector, and constants take
the shape of their operands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir

from dlc.backends.llvm import vmath
from dlc.backends.llvm.parallel import emit_parallel
from dlc.backends.llvm.types import I1, I8, I32, I64, PTR, compute_type, memory_type
from dlc.backends.llvm.vector import (
    VectorLowering,
    is_vector,
    shaped,
    splat,
    type_suffix,
    vector_lanes,
)
from dlc.errors import DLCError
from dlc.ir.dtypes import DType
from dlc.ir.tensor.expr import Expr
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
)

# Fast-math flags for float arithmetic: reassociation lets LLVM vectorize reductions and
# contraction gives FMAs; no `nnan`/`ninf`, so NaN and infinity behave as in the oracle.
FLOAT_FLAGS = ("reassoc", "contract", "nsz")

_LLVM_INTRINSIC = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt",
                   "sin": "llvm.sin", "cos": "llvm.cos", "floor": "llvm.floor",
                   "ceil": "llvm.ceil", "round": "llvm.roundeven", "trunc": "llvm.trunc",
                   "pow": "llvm.pow", "tanh": "llvm.tanh", "exp2": "llvm.exp2",
                   "log2": "llvm.log2", "log10": "llvm.log10"}
_LIBM = {"erf": "erf", "log1p": "log1p", "expm1": "expm1", "tan": "tan", "asin": "asin",
         "acos": "acos", "atan": "atan", "atan2": "atan2", "sinh": "sinh", "cosh": "cosh",
         "asinh": "asinh", "acosh": "acosh", "atanh": "atanh"}
_BITWISE = {"bitwise_and": "and_", "bitwise_or": "or_", "bitwise_xor": "xor"}

ALLOCA_LIMIT = 4096  # bytes; larger or symbolic scratch buffers are heap-allocated


class CodegenError(DLCError):
    """The LLVM backend met a tensor-IR construct it cannot emit."""


class KernelEmitter(VectorLowering):
    """Emits one PrimFunc into an llvmlite module.

    The function takes the PrimFunc's buffers and size symbols, unless `buffers` and
    `scalars` (names of i64 arguments) say otherwise: an outlined parallel body is a
    function of the buffers and values it captures.
    """

    def __init__(self, module: ir.Module, func: PrimFunc, debug: bool = False, *,
                 name: str | None = None, buffers: Sequence[Buffer] | None = None,
                 scalars: Sequence[str] | None = None) -> None:
        self.module = module
        self.func = func
        self.debug = debug
        buffers = tuple(func.params) if buffers is None else tuple(buffers)
        scalars = [s.name for s in func.sizes] if scalars is None else list(scalars)
        params = [PTR] * len(buffers) + [I64] * len(scalars)
        self.fn = ir.Function(module, ir.FunctionType(I32, params), name=name or func.name)
        self.fn.attributes.add("nounwind")
        self.buffers: dict[Buffer, ir.Value] = {}
        for arg, buf in zip(self.fn.args, buffers):
            arg.name = buf.name
            arg.add_attribute("noalias")  # the memory planner never aliases kernel operands
            self.buffers[buf] = arg
        self.scalars: dict[str, ir.Value] = {}
        self.memo: dict[Expr, ir.Value] = {}
        self.ranges: dict[str, int] = {}  # loop variable -> constant extent (names are unique)
        for arg, size in zip(self.fn.args[len(buffers):], scalars):
            arg.name = size
            self.scalars[size] = arg
        self.entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.fail_block: ir.Block | None = None
        self.in_parallel = False  # inside an outlined parallel body: nested ones run serially
        self.lanes = 0  # the lane count while emitting a vectorized loop's body
        self.vector_var: Expr | None = None
        self.vector_locals: set[Buffer] = set()  # scratch allocated inside that body
        self.mask: ir.Value | None = None  # active lanes under a per-lane `if`
        self.splats: dict[int, ir.Value] = {}

    # -- statements ----------------------------------------------------------------------
    def emit(self) -> ir.Function:
        """Emit the body and return the LLVM function."""
        self.stmt(self.func.body)
        return self.finish()

    def finish(self) -> ir.Function:
        """Return 0 at the current position; the fail block (if any) returns 1."""
        self.b.ret(ir.Constant(I32, 0))
        return self.fn

    def branch_if_ok(self, ok: ir.Value, label: str) -> None:
        """Continue when `ok`, else return status 1 (a failed debug check)."""
        if self.fail_block is None:
            self.fail_block = self.fn.append_basic_block("out_of_bounds")
            ir.IRBuilder(self.fail_block).ret(ir.Constant(I32, 1))
        cont = self.fn.append_basic_block(f"{label}.ok")
        self.b.cbranch(ok, cont, self.fail_block)
        self.b.position_at_end(cont)

    def stmt(self, s: Stmt) -> None:
        # Values computed for one statement are reused within it (a fused chain reads its
        # input several times); a store or a new block invalidates them.
        self.memo.clear()
        self.splats.clear()
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, Store) and self.lanes:
            self.store_lanes(s)
        elif isinstance(s, Store):
            ptr = self.address(s.buffer, s.indices)
            value = self.to_memory(self.expr(s.value), s.buffer.dtype)
            self.b.store(value, ptr)
        elif isinstance(s, IfThenElse):
            cond = self.expr(s.cond)
            if is_vector(cond):
                self.if_lanes(s, cond)
            elif s.otherwise is None:
                with self.b.if_then(cond):
                    self.stmt(s.then)
            else:
                with self.b.if_else(cond) as (then, otherwise):
                    with then:
                        self.stmt(s.then)
                    with otherwise:
                        self.stmt(s.otherwise)
        elif isinstance(s, Allocate):
            self.allocate(s)
        else:
            raise CodegenError(f"cannot emit statement {type(s).__name__}")

    def loop(self, s: For) -> None:
        if s.kind not in (LoopKind.SERIAL, LoopKind.UNROLLED, LoopKind.VECTORIZED,
                          LoopKind.PARALLEL):
            raise CodegenError(f"unknown loop kind {s.kind}")
        if s.extent.is_const:
            self.ranges[s.var.name] = s.extent.value
        if s.kind is LoopKind.PARALLEL and not self.in_parallel and not self.lanes:
            emit_parallel(self, s)
            return
        lanes = vector_lanes(s) if s.kind is LoopKind.VECTORIZED and not self.lanes else 0
        if lanes:
            self.vector_loop(s, lanes)
            return
        extent = self.expr(s.extent)
        if is_vector(extent):
            raise CodegenError(f"{self.func.name}: the extent of loop {s.var.name} varies "
                               f"across the lanes of vectorized loop {self.vector_var}")
        hint = {LoopKind.UNROLLED: "llvm.loop.unroll.full",
                LoopKind.VECTORIZED: "llvm.loop.vectorize.enable"}.get(s.kind)
        self.serial_loop(s.var.name, ir.Constant(I64, 0), extent, s.body, hint)

    def serial_loop(self, name: str, start: ir.Value, stop: ir.Value, body: Stmt,
                    hint: str | None = None) -> None:
        """`for name in start..stop { body }`, with an optional `llvm.loop` hint."""
        pre = self.b.block
        header = self.fn.append_basic_block(f"{name}.header")
        block = self.fn.append_basic_block(f"{name}.body")
        exit_ = self.fn.append_basic_block(f"{name}.exit")
        self.b.branch(header)
        self.b.position_at_end(header)
        index = self.b.phi(I64, name=name)
        index.add_incoming(start, pre)
        self.b.cbranch(self.b.icmp_signed("<", index, stop, name=f"{name}.cond"), block, exit_)
        self.b.position_at_end(block)
        outer = self.scalars.get(name)
        self.scalars[name] = index
        self.stmt(body)
        nxt = self.b.add(index, ir.Constant(I64, 1), name=f"{name}.next", flags=("nuw", "nsw"))
        index.add_incoming(nxt, self.b.block)
        latch = self.b.branch(header)
        if hint is not None:
            latch.set_metadata("llvm.loop", self._loop_md(hint))
        self.b.position_at_end(exit_)
        if outer is None:
            del self.scalars[name]
        else:
            self.scalars[name] = outer

    def _loop_md(self, hint: str) -> Any:
        """A loop ID: a distinct node whose first operand is itself (LLVM's convention),
        then the hint, e.g. `!7 = distinct !{!7, !8}  !8 = !{!"llvm.loop.unroll.full"}`."""
        option = self.module.add_metadata([ir.MetaDataString(self.module, hint)])
        return _LoopID(self.module, option)

    def allocate(self, s: Allocate) -> None:
        buf = s.buffer
        if self.lanes:
            self.vector_locals.add(buf)
        elem = memory_type(buf.dtype)
        count = self.expr(_numel(buf))
        nbytes = _static_bytes(buf)
        if nbytes is not None and nbytes <= ALLOCA_LIMIT:
            with self.b.goto_block(self.entry):
                self.b.position_at_start(self.entry)
                ptr = self.b.alloca(elem, size=ir.Constant(I64, nbytes // buf.dtype.itemsize),
                                    name=buf.name)
            ptr.type = PTR  # llvmlite types an alloca `T*`; vector accesses need `ptr`
            self.buffers[buf] = ptr
            self.stmt(s.body)
            return
        size = self.b.mul(count, ir.Constant(I64, buf.dtype.itemsize), name=f"{buf.name}.bytes")
        ptr = self.b.call(self._libc("malloc", PTR, [I64]), [size], name=buf.name)
        self.buffers[buf] = ptr
        self.stmt(s.body)
        self.b.call(self._libc("free", ir.VoidType(), [PTR]), [ptr])

    def _intrinsic(self, name: str, ty: ir.Type, nargs: int, extra: tuple = ()) -> ir.Function:
        """Declare an overloaded LLVM intrinsic such as `llvm.maximum.f32` or
        `llvm.exp.v16f32` (ty -> ty)."""
        return self._libc(f"{name}.{type_suffix(ty)}", ty, [ty] * nargs + list(extra))

    def _libc(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        existing = self.module.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.module, ir.FunctionType(ret, args), name=name)

    # -- memory --------------------------------------------------------------------------
    def address(self, buf: Buffer, indices: Sequence[Expr], check: bool = True) -> ir.Value:
        """Pointer to `buf[indices]` (row-major), bounds-checked in debug mode."""
        if buf not in self.buffers:
            raise CodegenError(f"buffer {buf.name} is used outside its allocation")
        idx = [self.expr(i) for i in indices]
        dims = [self.expr(d) for d in buf.shape]
        if self.debug and check:
            self.bounds_check(buf, idx, dims)
        offset: ir.Value = ir.Constant(I64, 0)
        for i, (x, d) in enumerate(zip(idx, dims)):
            offset = x if i == 0 else self.b.add(self.b.mul(offset, d), x)
        return self.b.gep(self.buffers[buf], [offset], source_etype=memory_type(buf.dtype),
                          inbounds=True, name=f"{buf.name}.ptr")

    def bounds_check(self, buf: Buffer, idx: list[ir.Value], dims: list[ir.Value]) -> None:
        ok: ir.Value = ir.Constant(I1, 1)
        for x, d in zip(idx, dims):
            inside = self.b.and_(self.b.icmp_signed(">=", x, ir.Constant(I64, 0)),
                                 self.b.icmp_signed("<", x, d))
            ok = self.b.and_(ok, inside)
        self.branch_if_ok(ok, f"{buf.name}.in_bounds")

    def to_memory(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype == DType.bool:
            return self.b.zext(v, shaped(I8, v))
        if dtype == DType.bf16:  # f32 -> bf16, round to nearest even
            i32 = shaped(I32, v)
            bits = self.b.bitcast(v, i32)
            lsb = self.b.and_(self.b.lshr(bits, splat(i32, 16)), splat(i32, 1))
            rounded = self.b.add(bits, self.b.add(lsb, splat(i32, 0x7FFF)))
            return self.b.trunc(self.b.lshr(rounded, splat(i32, 16)),
                                shaped(ir.IntType(16), v))
        return v

    def from_memory(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype == DType.bool:
            return self.b.icmp_unsigned("!=", v, splat(v.type, 0))
        if dtype == DType.bf16:
            i32 = shaped(I32, v)
            wide = self.b.shl(self.b.zext(v, i32), splat(i32, 16))
            return self.b.bitcast(wide, shaped(ir.FloatType(), v))
        return v

    # -- expressions -----------------------------------------------------------------------
    def expr(self, e: Expr) -> ir.Value:
        """The LLVM value of a scalar expression (each distinct sub-expression once)."""
        found = self.memo.get(e)
        if found is not None:
            return found
        value = self._expr(e)
        self.memo[e] = value
        return value

    def _expr(self, e: Expr) -> ir.Value:
        if e.lanes != 1 and not self.lanes:
            raise CodegenError("vector expressions (ramp, broadcast) are only emitted inside "
                               "a vectorized loop")
        op = e.op
        if op == "const":
            return _constant(e)
        if op == "var":
            try:
                return self.scalars[e.name]
            except KeyError:
                raise CodegenError(f"{self.func.name}: variable {e.name} is not bound") from None
        if op == "load":
            if self.lanes:
                return self.load_lanes(e)
            return self.scalar_load(e.args[0], e.args[1:])
        if op in ("ramp", "broadcast"):
            return self.lane_expr(e)
        if self.lanes and op == "add" and e.dtype.is_float:
            fused = self.fused_multiply_add(e)
            if fused is not None:
                return fused
        args = [self.expr(a) if isinstance(a, Expr) else a for a in e.args]
        if self.lanes and any(is_vector(a) for a in args if isinstance(a, ir.Value)):
            args = [self.widen(a) if isinstance(a, ir.Value) else a for a in args]
        if op in ("add", "sub", "mul", "div", "floordiv", "mod"):
            return self.arith(op, e.args[0].dtype, *args)
        if op in ("min", "max"):
            return self.minmax(op, e.dtype, *args)
        if op in ("lt", "le", "eq", "ne", "gt", "ge"):
            return self.compare(op, e.args[0].dtype, *args)
        if op == "and":
            return self.b.and_(*args)
        if op == "or":
            return self.b.or_(*args)
        if op == "not":
            return self.b.not_(args[0])
        if op == "select":
            return self.b.select(*args)
        if op == "cast":
            return self.convert(args[0], e.args[0].dtype, e.dtype)
        if op == "call":
            return self.intrinsic(args[0], e.dtype, e.args[1].dtype, args[1:])
        raise CodegenError(f"cannot emit expression {op}")

    def scalar_load(self, buf: Buffer, indices: Sequence[Expr]) -> ir.Value:
        value = self.b.load(self.address(buf, indices), typ=memory_type(buf.dtype),
                            name=f"{buf.name}.val")
        return self.from_memory(value, buf.dtype)

    def fused_multiply_add(self, e: Expr) -> ir.Value | None:
        """`a * b + c` on vectors as `llvm.fmuladd.v16f32` (None: not that pattern, or
        scalar: LLVM contracts scalar code itself)."""
        x, y = e.args
        product, addend = (y, x) if y.op == "mul" else (x, y)
        if product.op != "mul":
            return None
        a, b, c = (self.expr(v) for v in (*product.args, addend))
        if not any(is_vector(v) for v in (a, b, c)):
            return None
        a, b, c = (self.widen(v) for v in (a, b, c))
        return self.b.call(self._intrinsic("llvm.fmuladd", a.type, 3), [a, b, c],
                           fastmath=FLOAT_FLAGS, name="fma")

    def arith(self, op: str, dtype: DType, a: ir.Value, b: ir.Value) -> ir.Value:
        if dtype.is_float:
            fn = {"add": self.b.fadd, "sub": self.b.fsub, "mul": self.b.fmul,
                  "div": self.b.fdiv, "mod": self.b.frem}.get(op)
            if fn is None:
                raise CodegenError(f"{op} on floats")
            return fn(a, b, flags=FLOAT_FLAGS)
        signed = dtype.is_signed
        if op in ("div", "floordiv", "mod"):
            b = self.safe_divisor(b)
        if op == "add":
            return self.b.add(a, b)
        if op == "sub":
            return self.b.sub(a, b)
        if op == "mul":
            return self.b.mul(a, b)
        if op == "div":
            return self.b.sdiv(a, b) if signed else self.b.udiv(a, b)
        if not signed:
            return self.b.udiv(a, b) if op == "floordiv" else self.b.urem(a, b)
        # Python semantics: round toward -inf; adjust C's truncating division.
        q, r = self.b.sdiv(a, b), self.b.srem(a, b)
        zero = splat(a.type, 0)
        fix = self.b.and_(self.b.icmp_signed("!=", r, zero),
                          self.b.icmp_signed("!=", self.b.icmp_signed("<", r, zero),
                                             self.b.icmp_signed("<", b, zero)))
        if op == "floordiv":
            return self.b.sub(q, self.b.zext(fix, a.type))
        return self.b.select(fix, self.b.add(r, b), r)

    def minmax(self, op: str, dtype: DType, a: ir.Value, b: ir.Value) -> ir.Value:
        ty = a.type
        if dtype.is_float:
            # llvm.maximum/minimum propagate NaN, like torch.maximum and relu
            name = "llvm.maximum" if op == "max" else "llvm.minimum"
        else:
            prefix = "s" if dtype.is_signed else "u"
            name = f"llvm.{prefix}{op}"
        return self.b.call(self._intrinsic(name, ty, 2), [a, b])

    def compare(self, op: str, dtype: DType, a: ir.Value, b: ir.Value) -> ir.Value:
        sym = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}[op]
        if dtype.is_float:
            return (self.b.fcmp_unordered(sym, a, b) if op == "ne"
                    else self.b.fcmp_ordered(sym, a, b))
        if dtype.is_signed:
            return self.b.icmp_signed(sym, a, b)
        return self.b.icmp_unsigned(sym, a, b)

    def convert(self, v: ir.Value, src: DType, dst: DType) -> ir.Value:
        """C-style conversion (floats truncate toward zero into integers)."""
        st, dt = v.type, shaped(compute_type(dst), v)
        if dst == DType.bf16 and src != DType.bf16:
            # registers hold bf16 widened to f32: round to bf16 precision here, so a fused
            # chain rounds where the unfused one would store and reload
            wide = self.convert(v, src, DType.f32)
            return self.from_memory(self.to_memory(wide, DType.bf16), DType.bf16)
        if st == dt:
            return v
        if dst == DType.bool:
            if src.is_float:
                return self.b.fcmp_unordered("!=", v, splat(st, 0.0))
            return self.b.icmp_unsigned("!=", v, splat(st, 0))
        if src.is_float and dst.is_float:
            wider = _float_bits(dst) > _float_bits(src)
            return self.b.fpext(v, dt) if wider else self.b.fptrunc(v, dt)
        if src.is_float:
            return self.b.fptosi(v, dt) if dst.is_signed else self.b.fptoui(v, dt)
        if dst.is_float:
            if src == DType.bool or not src.is_signed:
                return self.b.uitofp(v, dt)
            return self.b.sitofp(v, dt)
        if compute_type(dst).width > compute_type(src).width:
            return self.b.sext(v, dt) if src.is_signed and src != DType.bool else self.b.zext(v, dt)
        return self.b.trunc(v, dt)

    def intrinsic(self, name: str, dtype: DType, arg_dtype: DType, args: list[ir.Value]
                  ) -> ir.Value:
        x = args[0]
        ty = shaped(compute_type(arg_dtype), x)
        if name == "pow" and not arg_dtype.is_float:
            if is_vector(x):
                return self.per_lane(lambda b, n: self.int_pow(b, n, arg_dtype.is_signed),
                                     args)
            return self.int_pow(x, args[1], arg_dtype.is_signed)
        if name in _BITWISE:
            if arg_dtype.is_float:
                raise CodegenError(f"{name} on {arg_dtype}")
            return getattr(self.b, _BITWISE[name])(*args)
        if name == "signbit":
            if not arg_dtype.is_float:
                return (self.b.icmp_signed("<", x, splat(ty, 0)) if arg_dtype.is_signed
                        else splat(shaped(I1, x), 0))
            bits = shaped(ir.IntType(_float_bits(arg_dtype)), x)  # bf16 is held as f32
            return self.b.icmp_signed("<", self.b.bitcast(x, bits), splat(bits, 0))
        fast = vmath.emit(self.b, name, args)  # f32 exp, tanh, erf, ...: inline polynomials
        if fast is not None:
            return fast
        if name in _LLVM_INTRINSIC:
            fn = self._intrinsic(_LLVM_INTRINSIC[name], ty, len(args))
            return self.b.call(fn, args, fastmath=FLOAT_FLAGS)
        if name == "abs":
            if arg_dtype.is_float:
                return self.b.call(self._intrinsic("llvm.fabs", ty, 1), [x])
            fn = self._intrinsic("llvm.abs", ty, 1, (I1,))
            return self.b.call(fn, [x, ir.Constant(I1, 0)])
        if name == "rsqrt":
            root = self.intrinsic("sqrt", dtype, arg_dtype, [x])
            return self.b.fdiv(splat(ty, 1.0), root, flags=FLOAT_FLAGS)
        if name == "sigmoid":
            neg = self.b.fneg(x, flags=FLOAT_FLAGS)
            e = self.intrinsic("exp", dtype, arg_dtype, [neg])
            one = splat(ty, 1.0)
            return self.b.fdiv(one, self.b.fadd(one, e, flags=FLOAT_FLAGS), flags=FLOAT_FLAGS)
        if name == "sign":
            zero = splat(ty, 0.0 if arg_dtype.is_float else 0)
            one = splat(ty, 1.0 if arg_dtype.is_float else 1)
            minus = splat(ty, -1.0 if arg_dtype.is_float else -1)
            gt = self.compare("gt", arg_dtype, x, zero)
            lt = self.compare("lt", arg_dtype, x, zero)
            return self.b.select(gt, one, self.b.select(lt, minus, x))
        if name == "isnan":
            return self.b.fcmp_unordered("uno", x, x)
        if name == "isinf":
            mag = self.b.call(self._intrinsic("llvm.fabs", ty, 1), [x])
            return self.b.fcmp_ordered("==", mag, splat(ty, float("inf")))
        if name in _LIBM and is_vector(x):  # no vector libm here: one call per lane
            return self.per_lane(lambda *xs: self.intrinsic(name, dtype, arg_dtype, list(xs)),
                                 args)
        if name in _LIBM:
            if ty == ir.HalfType():  # libm has no f16 functions: compute in f32, round once
                wide = [self.b.fpext(a, ir.FloatType()) for a in args]
                return self.b.fptrunc(self.intrinsic(name, DType.f32, DType.f32, wide), ty)
            suffix = "f" if ty == ir.FloatType() else ""
            if ty not in (ir.FloatType(), ir.DoubleType()):
                raise CodegenError(f"{name} on {arg_dtype}")
            fn = self._libc(_LIBM[name] + suffix, ty, [ty] * len(args))
            return self.b.call(fn, args)
        raise CodegenError(f"no lowering for intrinsic {name}")

    def int_pow(self, base: ir.Value, exp: ir.Value, signed: bool) -> ir.Value:
        """base ** exp on integers by squaring, wrapping like NumPy; a negative exponent
        gives torch's answer (1 for base 1, +-1 for base -1, else 0)."""
        ty = base.type
        one, zero = ir.Constant(ty, 1), ir.Constant(ty, 0)
        pre = self.b.block
        header = self.fn.append_basic_block("ipow.header")
        body = self.fn.append_basic_block("ipow.body")
        done = self.fn.append_basic_block("ipow.exit")
        self.b.branch(header)
        self.b.position_at_end(header)
        result, power, rest = (self.b.phi(ty, name=n) for n in ("ipow.r", "ipow.p", "ipow.e"))
        for phi, start in ((result, one), (power, base), (rest, exp)):
            phi.add_incoming(start, pre)
        more = (self.b.icmp_signed(">", rest, zero) if signed
                else self.b.icmp_unsigned("!=", rest, zero))
        self.b.cbranch(more, body, done)
        self.b.position_at_end(body)
        odd = self.b.trunc(rest, I1) if ty != I1 else rest
        result.add_incoming(self.b.select(odd, self.b.mul(result, power), result), body)
        power.add_incoming(self.b.mul(power, power), body)
        rest.add_incoming(self.b.lshr(rest, one) if ty != I1 else zero, body)
        self.b.branch(header)
        self.b.position_at_end(done)
        if not signed:
            return result
        minus = ir.Constant(ty, -1)
        odd = self.b.trunc(exp, I1)
        unit = self.b.select(self.b.icmp_signed("==", base, one), one, self.b.select(
            self.b.icmp_signed("==", base, minus), self.b.select(odd, minus, one), zero))
        return self.b.select(self.b.icmp_signed("<", exp, zero), unit, result)


class _LoopID(ir.values.MDValue):
    """A self-referential `distinct` metadata node, as `llvm.loop` requires."""

    def __init__(self, module: ir.Module, *options: ir.values.MDValue) -> None:
        super().__init__(module, [], name=str(len(module.metadata)))
        self.operands = (self, *options)

    def descr(self, buf: list[str]) -> None:
        refs = ", ".join(op.get_reference() for op in self.operands)
        buf += (f"distinct !{{ {refs} }}", "\n")

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


def _float_bits(d: DType) -> int:
    return {DType.f16: 16, DType.bf16: 32, DType.f32: 32, DType.f64: 64}[d]


def _constant(e: Expr) -> ir.Constant:
    ty = compute_type(e.dtype)
    v = e.value
    if e.dtype == DType.bool:
        return ir.Constant(I1, int(bool(v)))
    return ir.Constant(ty, float(v) if e.dtype.is_float else int(v))


def _numel(buf: Buffer) -> Expr:
    out: Any = 1
    for d in buf.shape:
        out = d * out if not isinstance(out, int) else (d if out == 1 else d * out)
    from dlc.ir.tensor.expr import as_expr

    return as_expr(out)


def _static_bytes(buf: Buffer) -> int | None:
    n = 1
    for d in buf.shape:
        if not d.is_const:
            return None
        n *= d.value
    return n * buf.dtype.itemsize


def emit_kernel(module: ir.Module, func: PrimFunc, debug: bool = False) -> ir.Function:
    """Emit `func` into `module` (a bounds check on every access when `debug`)."""
    return KernelEmitter(module, func, debug).emit()
