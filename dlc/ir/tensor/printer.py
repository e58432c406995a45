"""Readable text for tensor-IR expressions and kernels (TVMScript-like)."""

from __future__ import annotations

from dlc.ir.tensor.expr import Expr
from dlc.ir.tensor.stmt import Allocate, For, IfThenElse, LoopKind, PrimFunc, Seq, Stmt, Store

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
          "lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">=",
          "and": "&&", "or": "||"}
_PRECEDENCE = {"or": 1, "and": 2, "lt": 3, "le": 3, "eq": 3, "ne": 3, "gt": 3, "ge": 3,
               "add": 4, "sub": 4, "mul": 5, "div": 5, "floordiv": 5, "mod": 5}


def expr_str(e: Expr, parent: int = 0) -> str:
    """Infix text with the fewest parentheses that keep the meaning."""
    op = e.op
    if op == "var":
        return e.name
    if op == "const":
        v = e.value
        if isinstance(v, bool):
            return "true" if v else "false"
        text = repr(v)
        return text if e.dtype.value in ("f32", "i64", "bool") else f"{e.dtype}({text})"
    if op == "add" and e.args[1].is_const and not isinstance(e.args[1].value, bool) \
            and e.args[1].value < 0:  # i + -1 reads better as i - 1
        prec = _PRECEDENCE["sub"]
        text = f"{expr_str(e.args[0], prec)} - {expr_str(const_abs(e.args[1]), prec + 1)}"
        return f"({text})" if prec < parent else text
    if op in _INFIX:
        prec = _PRECEDENCE[op]
        a, b = e.args
        # right operand of a non-commutative op needs parentheses at equal precedence
        text = f"{expr_str(a, prec)} {_INFIX[op]} {expr_str(b, prec + 1)}"
        return f"({text})" if prec < parent else text
    if op == "not":
        return f"!{expr_str(e.args[0], 6)}"
    if op in ("min", "max"):
        return f"{op}({expr_str(e.args[0])}, {expr_str(e.args[1])})"
    if op == "select":
        c, a, b = e.args
        return f"select({expr_str(c)}, {expr_str(a)}, {expr_str(b)})"
    if op == "cast":
        return f"{e.dtype}({expr_str(e.args[0])})"
    if op == "call":
        return f"{e.args[0]}({', '.join(expr_str(a) for a in e.args[1:])})"
    if op == "load":
        buf = e.args[0]
        return f"{buf.name}[{', '.join(expr_str(i) for i in e.args[1:])}]"
    if op == "ramp":
        base, stride = e.args
        return f"ramp({expr_str(base)}, {stride}, {e.lanes})"
    if op == "broadcast":
        return f"x{e.lanes}({expr_str(e.args[0])})"
    return f"{op}({', '.join(map(str, e.args))})"


def const_abs(e: Expr) -> Expr:
    """|c| for a negative constant (printing helper)."""
    from dlc.ir.tensor.expr import const

    return const(-e.value, e.dtype)


def stmt_lines(s: Stmt, indent: int = 0) -> list[str]:
    """The lines of a statement at an indentation depth."""
    pad = "  " * indent
    if isinstance(s, For):
        kind = "" if s.kind is LoopKind.SERIAL else f"{s.kind.value} "
        head = f"{pad}{kind}for {s.var.name} in 0..{expr_str(s.extent)} {{"
        return [head, *stmt_lines(s.body, indent + 1), f"{pad}}}"]
    if isinstance(s, Store):
        idx = ", ".join(expr_str(i) for i in s.indices)
        return [f"{pad}{s.buffer.name}[{idx}] = {expr_str(s.value)}"]
    if isinstance(s, Seq):
        return [line for x in s.stmts for line in stmt_lines(x, indent)]
    if isinstance(s, IfThenElse):
        out = [f"{pad}if {expr_str(s.cond)} {{", *stmt_lines(s.then, indent + 1)]
        if s.otherwise is not None:
            out += [f"{pad}}} else {{", *stmt_lines(s.otherwise, indent + 1)]
        return [*out, f"{pad}}}"]
    if isinstance(s, Allocate):
        b = s.buffer
        shape = ", ".join(expr_str(d) for d in b.shape)
        return [f"{pad}{b.name}: {b.dtype}[{shape}] {b.scope}", *stmt_lines(s.body, indent)]
    raise TypeError(f"unknown statement {type(s).__name__}")


def print_func(f: PrimFunc) -> str:
    """A kernel's text, with its provenance comment."""
    params = ", ".join(
        f"{b.name}: {b.dtype}[{', '.join(expr_str(d) for d in b.shape)}]" for b in f.params)
    sizes = "".join(f", {v.name}: i64" for v in f.sizes)
    lines = [f"# {line}" for line in f.comment.splitlines()]
    lines.append(f"kernel @{f.name}({params}{sizes}) {{")
    lines += stmt_lines(f.body, 1)
    lines.append("}")
    return "\n".join(lines) + "\n"
