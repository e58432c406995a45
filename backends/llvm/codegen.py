"""Tensor IR -> LLVM IR with llvmlite: one LLVM function per PrimFunc.

A kernel `@name(ptr %A, ..., i64 %N, ...)` returns an i32 status: 0, or 1 when a debug
bounds check failed (generated code never calls back into Python; the caller turns the
status into an exception). Buffers are dense row-major arrays; a load or store computes a
linear offset from the indices. Values are named after the tensor-IR variables so the
emitted IR reads like the loop nest it came from.
"""

from __future__ import annotations

from typing import Any

from dlc.backends.llvm.types import I1, I8, I32, I64, PTR, compute_type, memory_type
from llvmlite import ir

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


class KernelEmitter:
    """Emits one PrimFunc into an llvmlite module."""

    def __init__(self, module: ir.Module, func: PrimFunc, debug: bool = False) -> None:
        self.module = module
        self.func = func
        self.debug = debug
        params = [PTR] * len(func.params) + [I64] * len(func.sizes)
        self.fn = ir.Function(module, ir.FunctionType(I32, params), name=func.name)
        self.fn.attributes.add("nounwind")
        self.buffers: dict[Buffer, ir.Value] = {}
        for arg, buf in zip(self.fn.args, func.params):
            arg.name = buf.name
            arg.add_attribute("noalias")  # the memory planner never aliases kernel operands
            self.buffers[buf] = arg
        self.scalars: dict[str, ir.Value] = {}
        self.memo: dict[Expr, ir.Value] = {}
        for arg, size in zip(self.fn.args[len(func.params):], func.sizes):
            arg.name = size.name
            self.scalars[size.name] = arg
        self.entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.fail_block: ir.Block | None = None
        self.heap: list[ir.Value] = []

    # -- statements ----------------------------------------------------------------------
    def emit(self) -> ir.Function:
        """Emit the body and return the LLVM function."""
        self.stmt(self.func.body)
        self.b.ret(ir.Constant(I32, 0))
        if self.fail_block is not None:
            self.b.position_at_end(self.fail_block)
            self.b.ret(ir.Constant(I32, 1))
        return self.fn

    def stmt(self, s: Stmt) -> None:
        # Values computed for one statement are reused within it (a fused chain reads its
        # input several times); a store or a new block invalidates them.
        self.memo.clear()
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, Store):
            ptr = self.address(s.buffer, s.indices)
            value = self.to_memory(self.expr(s.value), s.buffer.dtype)
            self.b.store(value, ptr)
        elif isinstance(s, IfThenElse):
            cond = self.expr(s.cond)
            if s.otherwise is None:
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
        name = s.var.name
        extent = self.expr(s.extent)
        pre = self.b.block
        header = self.fn.append_basic_block(f"{name}.header")
        body = self.fn.append_basic_block(f"{name}.body")
        exit_ = self.fn.append_basic_block(f"{name}.exit")
        self.b.branch(header)
        self.b.position_at_end(header)
        index = self.b.phi(I64, name=name)
        index.add_incoming(ir.Constant(I64, 0), pre)
        self.b.cbranch(self.b.icmp_signed("<", index, extent, name=f"{name}.cond"), body, exit_)
        self.b.position_at_end(body)
        outer = self.scalars.get(name)
        self.scalars[name] = index
        self.stmt(s.body)
        nxt = self.b.add(index, ir.Constant(I64, 1), name=f"{name}.next", flags=("nuw", "nsw"))
        index.add_incoming(nxt, self.b.block)
        latch = self.b.branch(header)
        if s.kind is LoopKind.UNROLLED:
            latch.set_metadata("llvm.loop", self._loop_md("llvm.loop.unroll.full"))
        self.b.position_at_end(exit_)
        if outer is None:
            del self.scalars[name]
        else:
            self.scalars[name] = outer

    def _loop_md(self, hint: str) -> Any:
        node = self.module.add_metadata([self.module.add_metadata([ir.MetaDataString(
            self.module, hint)])])
        return node

    def allocate(self, s: Allocate) -> None:
        buf = s.buffer
        elem = memory_type(buf.dtype)
        count = self.expr(_numel(buf))
        nbytes = _static_bytes(buf)
        if nbytes is not None and nbytes <= ALLOCA_LIMIT:
            with self.b.goto_block(self.entry):
                self.b.position_at_start(self.entry)
                ptr = self.b.alloca(elem, size=ir.Constant(I64, nbytes // buf.dtype.itemsize),
                                    name=buf.name)
            self.buffers[buf] = ptr
            self.stmt(s.body)
            return
        size = self.b.mul(count, ir.Constant(I64, buf.dtype.itemsize), name=f"{buf.name}.bytes")
        ptr = self.b.call(self._libc("malloc", PTR, [I64]), [size], name=buf.name)
        self.buffers[buf] = ptr
        self.stmt(s.body)
        self.b.call(self._libc("free", ir.VoidType(), [PTR]), [ptr])

    def _intrinsic(self, name: str, ty: ir.Type, nargs: int, extra: tuple = ()) -> ir.Function:
        """Declare an overloaded LLVM intrinsic such as `llvm.maximum.f32` (ty -> ty)."""
        suffix = {"float": "f32", "double": "f64", "half": "f16"}.get(str(ty), str(ty))
        return self._libc(f"{name}.{suffix}", ty, [ty] * nargs + list(extra))

    def _libc(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        existing = self.module.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.module, ir.FunctionType(ret, args), name=name)

    # -- memory --------------------------------------------------------------------------
    def address(self, buf: Buffer, indices: tuple[Expr, ...]) -> ir.Value:
        """Pointer to `buf[indices]` (row-major), bounds-checked in debug mode."""
        if buf not in self.buffers:
            raise CodegenError(f"buffer {buf.name} is used outside its allocation")
        idx = [self.expr(i) for i in indices]
        dims = [self.expr(d) for d in buf.shape]
        if self.debug:
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
        if self.fail_block is None:
            self.fail_block = self.fn.append_basic_block("out_of_bounds")
        cont = self.fn.append_basic_block(f"{buf.name}.in_bounds")
        self.b.cbranch(ok, cont, self.fail_block)
        self.b.position_at_end(cont)

    def to_memory(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype == DType.bool:
            return self.b.zext(v, I8)
        if dtype == DType.bf16:  # f32 -> bf16, round to nearest even
            bits = self.b.bitcast(v, I32)
            lsb = self.b.and_(self.b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
            rounded = self.b.add(bits, self.b.add(lsb, ir.Constant(I32, 0x7FFF)))
            return self.b.trunc(self.b.lshr(rounded, ir.Constant(I32, 16)), ir.IntType(16))
        return v

    def from_memory(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype == DType.bool:
            return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        if dtype == DType.bf16:
            wide = self.b.shl(self.b.zext(v, I32), ir.Constant(I32, 16))
            return self.b.bitcast(wide, ir.FloatType())
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
        if e.lanes != 1:
            raise CodegenError("vector expressions are produced by the vectorizer, "
                               "not emitted directly")
        op = e.op
        if op == "const":
            return _constant(e)
        if op == "var":
            try:
                return self.scalars[e.name]
            except KeyError:
                raise CodegenError(f"{self.func.name}: variable {e.name} is not bound") from None
        if op == "load":
            buf = e.args[0]
            value = self.b.load(self.address(buf, e.args[1:]), typ=memory_type(buf.dtype),
                                name=f"{buf.name}.val")
            return self.from_memory(value, buf.dtype)
        args = [self.expr(a) if isinstance(a, Expr) else a for a in e.args]
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

    def arith(self, op: str, dtype: DType, a: ir.Value, b: ir.Value) -> ir.Value:
        if dtype.is_float:
            fn = {"add": self.b.fadd, "sub": self.b.fsub, "mul": self.b.fmul,
                  "div": self.b.fdiv, "mod": self.b.frem}.get(op)
            if fn is None:
                raise CodegenError(f"{op} on floats")
            return fn(a, b, flags=FLOAT_FLAGS)
        signed = dtype.is_signed
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
        zero = ir.Constant(a.type, 0)
        fix = self.b.and_(self.b.icmp_signed("!=", r, zero),
                          self.b.icmp_signed("!=", self.b.icmp_signed("<", r, zero),
                                             self.b.icmp_signed("<", b, zero)))
        if op == "floordiv":
            return self.b.sub(q, self.b.zext(fix, a.type))
        return self.b.select(fix, self.b.add(r, b), r)

    def minmax(self, op: str, dtype: DType, a: ir.Value, b: ir.Value) -> ir.Value:
        ty = compute_type(dtype)
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
        st, dt = compute_type(src), compute_type(dst)
        if dst == DType.bf16 and src != DType.bf16:
            # registers hold bf16 widened to f32: round to bf16 precision here, so a fused
            # chain rounds where the unfused one would store and reload
            wide = self.convert(v, src, DType.f32)
            return self.from_memory(self.to_memory(wide, DType.bf16), DType.bf16)
        if st == dt:
            return v
        if dst == DType.bool:
            if src.is_float:
                return self.b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
            return self.b.icmp_unsigned("!=", v, ir.Constant(st, 0))
        if src.is_float and dst.is_float:
            wider = _float_bits(dst) > _float_bits(src)
            return self.b.fpext(v, dt) if wider else self.b.fptrunc(v, dt)
        if src.is_float:
            return self.b.fptosi(v, dt) if dst.is_signed else self.b.fptoui(v, dt)
        if dst.is_float:
            if src == DType.bool or not src.is_signed:
                return self.b.uitofp(v, dt)
            return self.b.sitofp(v, dt)
        if dt.width > st.width:
            return self.b.sext(v, dt) if src.is_signed and src != DType.bool else self.b.zext(v, dt)
        return self.b.trunc(v, dt)

    def intrinsic(self, name: str, dtype: DType, arg_dtype: DType, args: list[ir.Value]
                  ) -> ir.Value:
        ty = compute_type(arg_dtype)
        x = args[0]
        if name == "pow" and not arg_dtype.is_float:
            return self.int_pow(x, args[1], arg_dtype.is_signed)
        if name in _BITWISE:
            if arg_dtype.is_float:
                raise CodegenError(f"{name} on {arg_dtype}")
            return getattr(self.b, _BITWISE[name])(*args)
        if name == "signbit":
            if not arg_dtype.is_float:
                return (self.b.icmp_signed("<", x, ir.Constant(ty, 0)) if arg_dtype.is_signed
                        else ir.Constant(I1, 0))
            bits = ir.IntType(_float_bits(arg_dtype))  # bf16 is held as f32
            return self.b.icmp_signed("<", self.b.bitcast(x, bits), ir.Constant(bits, 0))
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
            return self.b.fdiv(ir.Constant(ty, 1.0), root, flags=FLOAT_FLAGS)
        if name == "sigmoid":
            neg = self.b.fneg(x, flags=FLOAT_FLAGS)
            e = self.intrinsic("exp", dtype, arg_dtype, [neg])
            one = ir.Constant(ty, 1.0)
            return self.b.fdiv(one, self.b.fadd(one, e, flags=FLOAT_FLAGS), flags=FLOAT_FLAGS)
        if name == "sign":
            zero = ir.Constant(ty, 0.0 if arg_dtype.is_float else 0)
            one = ir.Constant(ty, 1.0 if arg_dtype.is_float else 1)
            minus = ir.Constant(ty, -1.0 if arg_dtype.is_float else -1)
            gt = self.compare("gt", arg_dtype, x, zero)
            lt = self.compare("lt", arg_dtype, x, zero)
            return self.b.select(gt, one, self.b.select(lt, minus, x))
        if name == "isnan":
            return self.b.fcmp_unordered("uno", x, x)
        if name == "isinf":
            mag = self.b.call(self._intrinsic("llvm.fabs", ty, 1), [x])
            return self.b.fcmp_ordered("==", mag, ir.Constant(ty, float("inf")))
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
