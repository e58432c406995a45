"""The parser of the textual graph IR: `parse_graph(print_graph(g))` rebuilds `g`.

A textbook recursive-descent parser in two steps. `tokenize` turns the text into tokens
(`%x`, `@w`, identifiers, numbers, strings, punctuation, and a whole `loc(...)` as one
token); `Parser` reads them with one method per grammar rule:

    graph     := 'graph' '@'name '(' [param {',' param}] ')' '->' results '{' {node} return '}'
    param     := '%'name ':' type
    results   := '(' [type {',' type}] ')' | type
    node      := '%'name {',' '%'name} '=' op-name '(' [arg {',' arg}] ')' ':' type {',' type} [loc]
    arg       := operand | name '=' attr-value          (operands first, then attributes)
    operand   := '%'name | '@'name | 'const' '(' literal ')' ':' type
    return    := 'return' [operand {',' operand}]
    type      := dtype '[' [dim {',' dim}] ']'
               | ('coo'|'csr') '<' dtype '>' '[' {dim ','} 'nnz' '=' dim ']'
    literal   := number | '-' number | 'nan' | 'inf' | '-' 'inf' | 'true' | 'false' | 'none'
               | string | dtype | '[' [literal {',' literal}] ']'

Line breaks are whitespace; `#` and `//` start comments that run to the end of the line.
A dimension is any run of tokens up to a comma or bracket at its own nesting level, handed
to `parse_dim` (SymPy), so `S + 1`, `2*H` and `Max(1, N)` all read back. Attributes are
read by their schema kind and re-validated; each node's result types are re-inferred by
its op's type rule and must agree with the written ones.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from dlc.errors import DLCError, ParseError, closest
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Location, Node, Value
from dlc.ir.symbolic import Dim, parse_dim
from dlc.ir.types import SPARSE_FORMATS, SparseTensorType, TensorType, ValueType
from dlc.ir.verifier import attr_symbols, match_types
from dlc.ops.registry import OpDef, all_ops, get_op

# -- tokens ------------------------------------------------------------------------------


class TokenKind(enum.Enum):
    """Token kinds."""

    IDENT = "identifier"  # graph, return, const, op names, dtypes, symbols, true, nan, ...
    INT = "integer"
    FLOAT = "float"
    STRING = "string"
    VALUE = "%name"
    CONST = "@name"
    LOC = "loc(...)"
    PUNCT = "punctuation"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int  # offset of the first character in the source text
    value: Any = None  # the decoded string of a STRING, the Location of a LOC

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def describe(self) -> str:
        return "end of input" if self.kind is TokenKind.EOF else repr(self.text)


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>(?:\#|//)[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<value>%[A-Za-z0-9_.]+)
  | (?P<const>@[A-Za-z0-9_.]+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>->|\*\*|[()\[\]{}<>,:=+\-*/])
    """,
    re.VERBOSE,
)
_KINDS = {"string": TokenKind.STRING, "float": TokenKind.FLOAT, "int": TokenKind.INT,
          "value": TokenKind.VALUE, "const": TokenKind.CONST, "ident": TokenKind.IDENT,
          "punct": TokenKind.PUNCT}
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, ending with an EOF token; raises ParseError."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text.startswith("loc(", pos) and _starts_word(text, pos):
            token = _scan_location(text, pos)
        else:
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                raise ParseError(f"unexpected character {text[pos]!r}", text, pos)
            if m.lastgroup in ("space", "comment"):
                pos = m.end()
                continue
            kind = _KINDS[m.lastgroup or ""]
            value = _unescape(m.group(), text, pos) if kind is TokenKind.STRING else None
            token = Token(kind, m.group(), pos, value)
        tokens.append(token)
        pos = token.end
    tokens.append(Token(TokenKind.EOF, "", len(text)))
    return tokens


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_.%@")


def _unescape(quoted: str, text: str, pos: int) -> str:
    out, i = [], 1
    while i < len(quoted) - 1:
        ch = quoted[i]
        if ch == "\\":
            esc = quoted[i + 1]
            if esc not in _ESCAPES:
                raise ParseError(f"unknown escape \\{esc} in a string", text, pos + i)
            out.append(_ESCAPES[esc])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"')
_LINE_SUFFIX_RE = re.compile(r":(-?\d+)$")


_LINE_RE = re.compile(r":(-?\d+)")


def _scan_location(text: str, start: int) -> Token:
    """`loc("name" file.py:12)`, read as one token: the file part is free text up to `)`
    (the printer quotes a file name that contains `)`, spaces or quotes)."""
    pos = start + len("loc(")

    def skip_space(p: int) -> int:
        while p < len(text) and text[p] in " \t":
            p += 1
        return p

    def string_at(p: int) -> tuple[str, int] | None:
        m = _STRING_RE.match(text, p)
        return (_unescape(m.group(), text, p), m.end()) if m else None

    name, file, line = "", "", 0
    pos = skip_space(pos)
    if (found := string_at(pos)) is not None:
        name, pos = found
        pos = skip_space(pos)
        if (found := string_at(pos)) is not None:  # a quoted file name
            file, pos = found
            if m := _LINE_RE.match(text, pos):
                line, pos = int(m.group(1)), m.end()
            pos = skip_space(pos)
    end = text.find(")", pos)
    newline = text.find("\n", pos)
    if end < 0 or 0 <= newline < end:
        raise ParseError("unterminated loc(...): expected ')' on the same line", text, start)
    raw = text[pos:end].strip()
    if raw:
        if file:
            raise ParseError(f"unexpected {raw!r} after the file name in loc(...)", text, pos)
        m = _LINE_SUFFIX_RE.search(raw)
        file, line = (raw[: m.start()], int(m.group(1))) if m else (raw, 0)
    return Token(TokenKind.LOC, text[start : end + 1], start, Location(name, file, line))


# -- the parser --------------------------------------------------------------------------


def parse_graph(text: str, constants: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Parse the textual form of a graph; `@name` operands are looked up in `constants`.

    Raises ParseError (with line, column and a caret) for malformed text, unknown ops,
    undefined values, missing constants, bad attributes and result types that disagree
    with the op's type rule.
    """
    return Parser(text, constants or {}).parse_graph()


@functools.lru_cache(maxsize=4096)
def _cached_dim(text: str) -> Dim:
    return parse_dim(text)


_NODE_OUTPUT_NAME = re.compile(r"\d+")
_DTYPE_NAMES = frozenset(d.value for d in DType)
_DIM_PUNCT = frozenset({"(", ")", "+", "-", "*", "/", "**"})
_RESERVED = {"true": True, "false": False, "none": None, "nan": float("nan"), "inf": float("inf")}


class Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, constants: Mapping[str, Any]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.constants = constants
        self.values: dict[str, Value] = {}  # printed name -> Value, in definition order
        self.table: dict[str, Constant] = {}  # @name -> Constant, one per name

    # -- token helpers -------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def at(self, text: str, kind: TokenKind | None = None) -> bool:
        """Is the current token `text` (a punctuation or keyword)?"""
        t = self.token
        if t.kind is TokenKind.STRING or (kind is not None and t.kind is not kind):
            return False
        return t.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.advance()
            return True
        return False

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            self.fail(f"expected {text!r}{' ' + what if what else ''}, "
                      f"found {self.token.describe()}")
        return self.advance()

    def expect_kind(self, kind: TokenKind, what: str) -> Token:
        if self.token.kind is not kind:
            self.fail(f"expected {what}, found {self.token.describe()}")
        return self.advance()

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        raise ParseError(message, self.text, (token or self.token).pos)

    # -- graph -------------------------------------------------------------------------
    def parse_graph(self) -> Graph:
        self.check_constants()
        self.expect("graph", "at the start of a graph")
        name = self.expect_kind(TokenKind.CONST, "the graph name (@name)").text[1:]
        inputs = self.parse_params()
        self.expect("->", "before the result types")
        results = self.parse_results()
        self.expect("{")
        nodes: list[Node] = []
        while not self.at("return", TokenKind.IDENT):
            if self.token.kind is not TokenKind.VALUE:
                self.fail(f"expected a node (%name = op(...)) or 'return', "
                          f"found {self.token.describe()}")
            nodes.append(self.parse_node())
        outputs = self.parse_return(results)
        self.expect("}", "after the return")
        if self.token.kind is not TokenKind.EOF:
            self.fail(f"unexpected {self.token.describe()} after the graph")
        return Graph(name, tuple(inputs), tuple(nodes), tuple(outputs))

    def check_constants(self) -> None:
        """Fail once, naming every `@name` the constant table lacks."""
        refs = [t for i, t in enumerate(self.tokens) if t.kind is TokenKind.CONST
                and not (i > 0 and self.tokens[i - 1].text == "graph")]
        missing = [t for t in refs if t.text[1:] not in self.constants]
        if missing:
            names = ", ".join(dict.fromkeys(t.text for t in missing))
            have = ", ".join(f"@{k}" for k in self.constants)
            have = f"it has {have}" if have else "it is empty"
            self.fail(f"constant(s) {names} not in the constant table ({have}); "
                      "pass constants=constant_table(graph) with the text", missing[0])

    def parse_params(self) -> list[Value]:
        self.expect("(", "after the graph name")
        inputs: list[Value] = []
        while not self.at(")"):
            if inputs:
                self.expect(",", "between inputs")
            token = self.expect_kind(TokenKind.VALUE, "an input (%name: type)")
            self.expect(":", "after the input name")
            value = Value(self.parse_type(), token.text[1:])
            self.define(token, value)
            inputs.append(value)
        self.advance()
        return inputs

    def parse_results(self) -> list[tuple[ValueType, Token]]:
        if not self.at("("):
            start = self.token
            return [(self.parse_type(), start)]
        self.advance()
        results = []
        while not self.at(")"):
            if results:
                self.expect(",", "between result types")
            start = self.token
            results.append((self.parse_type(), start))
        self.advance()
        return results

    def parse_return(self, results: list[tuple[ValueType, Token]]) -> list[Value]:
        self.expect("return")
        outputs: list[tuple[Value, Token]] = []
        while not self.at("}"):
            if outputs:
                self.expect(",", "between returned values")
            start = self.token
            outputs.append((self.parse_operand(), start))
        if len(outputs) != len(results):
            self.fail(f"the graph returns {len(outputs)} value(s) but its header declares "
                      f"{len(results)} result type(s)")
        for (value, _), (declared, where) in zip(outputs, results):
            if not (value.type == declared or value.type.same_as(declared)):
                self.fail(f"the header declares result type {declared} but the returned "
                          f"value has type {value.type}", where)
        return [v for v, _ in outputs]

    def define(self, token: Token, value: Value) -> None:
        name = token.text[1:]
        if name in self.values:
            self.fail(f"%{name} is defined twice (values are SSA: give it a new name)", token)
        self.values[name] = value

    # -- nodes -------------------------------------------------------------------------
    def parse_node(self) -> Node:
        start = self.token
        names = [self.expect_kind(TokenKind.VALUE, "a result name")]
        while self.accept(","):
            names.append(self.expect_kind(TokenKind.VALUE, "a result name"))
        self.expect("=", "after the result names")
        op_token = self.expect_kind(TokenKind.IDENT, "an op name")
        op = self.lookup_op(op_token)
        operands, attrs = self.parse_arguments(op)
        self.expect(":", "before the result types")
        types_start = self.token
        types = [self.parse_type()]
        while self.accept(","):
            types.append(self.parse_type())
        loc = self.advance().value if self.token.kind is TokenKind.LOC else None
        if len(types) != len(names):
            self.fail(f"{len(names)} result name(s) but {len(types)} result type(s)", start)
        self.check_types(op, operands, attrs, types, op_token, types_start)
        outputs = []
        for token, type_ in zip(names, types):
            name = token.text[1:]
            value = Value(type_, "" if _NODE_OUTPUT_NAME.fullmatch(name) else name)
            self.define(token, value)
            outputs.append(value)
        return Node(op, tuple(operands), attrs, tuple(outputs), loc)

    def lookup_op(self, token: Token) -> OpDef:
        try:
            return get_op(token.text)
        except DLCError:
            near = closest(token.text, [op.name for op in all_ops()])
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            self.fail(f"unknown op {token.text!r}{hint}", token)

    def parse_arguments(self, op: OpDef) -> tuple[list[Value], Any]:
        self.expect("(", f"after {op.name}")
        operands: list[Value] = []
        attrs: dict[str, Any] = {}
        while not self.at(")"):
            if operands or attrs:
                self.expect(",", "between arguments")
            if self.token.kind is TokenKind.IDENT and self.peek().text == "=":
                key, value = self.parse_attribute(op, attrs)
                attrs[key] = value
            elif attrs:
                self.fail(f"operand after the attributes of {op.name}: operands come first")
            else:
                operands.append(self.parse_operand())
        close = self.advance()
        try:
            frozen = op.check_attrs(attrs)  # fills defaults, catches missing required ones
        except DLCError as err:
            self.fail(str(err), close)
        return operands, frozen

    def parse_attribute(self, op: OpDef, seen: dict[str, Any]) -> tuple[str, Any]:
        key_token = self.advance()
        key = key_token.text
        if key not in op.attrs:
            schema = ", ".join(op.attrs) or "no attributes"
            self.fail(f"{op.name} has no attribute {key!r} (its schema has: {schema})",
                      key_token)
        if key in seen:
            self.fail(f"attribute {key!r} is given twice", key_token)
        self.expect("=")
        spec = op.attrs[key]
        value_token = self.token
        if self.at("none", TokenKind.IDENT):
            self.advance()
            value = None
        elif spec.kind == "dims":
            value = self.parse_dim_list()
        elif spec.kind == "dtype":
            value = self.parse_dtype()
        else:
            value = self.parse_literal()
        try:
            return key, spec.coerce(op.name, key, value)
        except DLCError as err:
            self.fail(str(err), value_token)

    def check_types(self, op: OpDef, operands: list[Value], attrs: Any,
                    written: list[ValueType], op_token: Token, types_token: Token) -> None:
        """Re-infer the result types and compare them with the written ones."""
        try:
            inferred = op.output_types([v.type for v in operands], attrs)
        except DLCError as err:
            self.fail(f"{op.name}: {_strip_op(str(err), op.name)}", op_token)
        except Exception as err:  # a bug in the rule; still name the line
            self.fail(f"{op.name}: the type rule crashed ({type(err).__name__}: {err}); "
                      "a rule must reject bad operands with op.error(...)", op_token)
        bound: set[str] = attr_symbols(attrs)
        for v in operands:
            bound |= v.type.symbols
        if match_types(written, inferred, bound) is None:
            got = ", ".join(map(str, written))
            want = ", ".join(map(str, inferred))
            self.fail(f"{op.name}: the written result type {got} differs from the type "
                      f"rule's {want}", types_token)

    # -- operands ----------------------------------------------------------------------
    def parse_operand(self) -> Value:
        token = self.token
        if token.kind is TokenKind.VALUE:
            self.advance()
            if token.text[1:] not in self.values:
                near = closest(token.text[1:], self.values, cutoff=0.5)  # short names
                hint = f" (did you mean {', '.join('%' + n for n in near)}?)" if near else ""
                self.fail(f"undefined value {token.text}{hint}", token)
            return self.values[token.text[1:]]
        if token.kind is TokenKind.CONST:
            self.advance()
            return self.table_constant(token)
        if self.at("const", TokenKind.IDENT):
            return self.parse_inline_constant()
        self.fail(f"expected an operand (%value, @constant or const(...)), "
                  f"found {token.describe()}")

    def table_constant(self, token: Token) -> Constant:
        name = token.text[1:]
        if name not in self.table:
            try:
                self.table[name] = Constant.of(np.asarray(self.constants[name]), name)
            except DLCError as err:
                self.fail(f"constant {token.text}: {err}", token)
        return self.table[name]

    def parse_inline_constant(self) -> Constant:
        self.advance()
        self.expect("(", "after const")
        literal_token = self.token
        literal = self.parse_literal()
        self.expect(")", "after the constant's value")
        self.expect(":", "before the constant's type")
        type_token = self.token
        type_ = self.parse_type()
        if not isinstance(type_, TensorType) or not type_.is_static:
            self.fail(f"an inline constant needs a static dense type, not {type_}", type_token)
        dtype = type_.dtype
        for leaf in _leaves(literal):
            if not _fits(leaf, dtype):
                self.fail(f"{_show(leaf)} is not a valid {dtype} value", literal_token)
        try:
            array = np.array(literal, dtype=dtype.numpy)
        except (OverflowError, ValueError, TypeError) as err:
            self.fail(f"cannot make a {type_} constant from this literal: {err}", literal_token)
        if array.shape != type_.shape:
            if array.size == 0 and int(np.prod(type_.shape)) == 0:
                array = array.reshape(type_.shape)
            else:
                self.fail(f"the constant's value has shape {list(array.shape)} but its type "
                          f"is {type_}", literal_token)
        return Constant(type_, "", array)

    # -- literals ----------------------------------------------------------------------
    def parse_literal(self) -> Any:
        token = self.advance()
        if token.text == "[" and token.kind is TokenKind.PUNCT:
            items = []
            while not self.at("]"):
                if items:
                    self.expect(",", "between list items")
                items.append(self.parse_literal())
            self.advance()
            return items
        if token.text == "-" and token.kind is TokenKind.PUNCT:
            number = self.advance()
            if number.kind in (TokenKind.INT, TokenKind.FLOAT) or number.text == "inf":
                return -_number(number)
            self.fail(f"expected a number after '-', found {number.describe()}", number)
        if token.kind in (TokenKind.INT, TokenKind.FLOAT):
            return _number(token)
        if token.kind is TokenKind.STRING:
            return token.value
        if token.kind is TokenKind.IDENT:
            if token.text in _RESERVED:
                return _RESERVED[token.text]
            if token.text in _DTYPE_NAMES:
                return DType(token.text)
        self.fail(f"expected a literal (number, true, false, string, dtype or list), "
                  f"found {token.describe()}", token)

    # -- types -------------------------------------------------------------------------
    def parse_type(self) -> ValueType:
        start = self.token
        if start.text in SPARSE_FORMATS and self.peek().text == "<":
            return self.parse_sparse_type()
        dtype = self.parse_dtype()
        return TensorType(tuple(self.parse_dim_list()), dtype)

    def parse_sparse_type(self) -> SparseTensorType:
        """`csr<f32>[N, N, nnz=E]`: the format, element type, dense shape, stored count."""
        fmt = self.advance().text
        self.advance()
        dtype = self.parse_dtype()
        self.expect(">", "after the sparse element type")
        self.expect("[")
        dims: list[Dim] = []
        while not (self.at("nnz") and self.peek().text == "="):
            if self.token.kind is TokenKind.EOF or self.at("]"):
                self.fail("a sparse type ends with 'nnz=<size>]'")
            dims.append(self.parse_dim())
            self.expect(",", "after a sparse dimension")
        self.advance()
        self.advance()
        nnz = self.parse_dim()
        self.expect("]", "after the nnz size")
        return SparseTensorType(fmt, tuple(dims), dtype, nnz)

    def parse_dtype(self) -> DType:
        token = self.token
        if token.kind is not TokenKind.IDENT or token.text not in _DTYPE_NAMES:
            known = ", ".join(d.value for d in DType)
            self.fail(f"expected a dtype ({known}) or a sparse type (coo<..>, csr<..>), "
                      f"found {token.describe()}")
        self.advance()
        return DType(token.text)

    def parse_dim_list(self) -> list[Dim]:
        """`[d0, d1, ...]`: a dense type's shape or a `dims` attribute."""
        self.expect("[")
        dims: list[Dim] = []
        while not self.at("]"):
            if dims:
                self.expect(",", "between dimensions")
            dims.append(self.parse_dim())
        self.advance()
        return dims

    def parse_dim(self) -> Dim:
        """One dimension: the tokens up to a `,` or `]` outside parentheses, read by SymPy."""
        first = self.token
        depth, count = 0, 0
        while not (self.token.kind is TokenKind.EOF
                   or depth == 0 and self.token.text in (",", "]")):
            t = self.token
            if t.kind not in (TokenKind.IDENT, TokenKind.INT) and not (
                    t.kind is TokenKind.PUNCT and (t.text in _DIM_PUNCT or t.text == ",")):
                self.fail(f"unexpected {t.describe()} in a dimension")
            depth += {"(": 1, ")": -1}.get(t.text, 0)
            if depth < 0:
                self.fail("unbalanced ')' in a dimension")
            self.advance()
            count += 1
        if count == 0:
            self.fail(f"expected a dimension, found {self.token.describe()}")
        source = self.text[first.pos : self.tokens[self.index - 1].end]
        try:
            return _cached_dim(source)
        except DLCError as err:
            self.fail(str(err), first)


def _number(token: Token) -> int | float:
    if token.kind is TokenKind.INT:
        return int(token.text)
    return float(token.text)


def _leaves(literal: Any) -> Iterator[Any]:
    if isinstance(literal, list):
        for item in literal:
            yield from _leaves(item)
    else:
        yield literal


def _fits(leaf: Any, dtype: DType) -> bool:
    """May `leaf` be an element of a `dtype` constant? (no silent float -> int truncation)"""
    if dtype is DType.bool:
        return isinstance(leaf, bool)
    if isinstance(leaf, bool):
        return False
    return isinstance(leaf, (int, float)) if dtype.is_float else isinstance(leaf, int)


def _show(leaf: Any) -> str:
    from dlc.ir.printer import format_literal

    try:
        return format_literal(leaf)
    except TypeError:
        return repr(leaf)


def _strip_op(message: str, op: str) -> str:
    prefix = f"{op}: "
    return message[len(prefix):] if message.startswith(prefix) else message
