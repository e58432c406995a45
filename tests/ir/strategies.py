"""Hypothesis strategies for random well-typed graphs, built from the op registry.

`random_graphs()` draws inputs with static and symbolic shapes (`N`, `M + 1`, `2*N`),
then appends nodes whose op is any registered op of an elementwise, broadcast, injective
or reduction kind. Operands come from the values built so far or are fresh constants
(scalars, rows, and tensors large enough for the constant table); attributes are drawn by
their schema kind. A candidate node is kept only when the op's type rule accepts it and
its reference runs on the concrete inputs, so the generator picks up new ops without
knowing them, and skips what it cannot build (a string attribute with no choices, an op
whose reference needs index operands in range, ...).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from hypothesis import strategies as st

from dlc.errors import DLCError
from dlc.interpreter import bind_attrs
from dlc.ir import GraphBuilder, Location, symbol
from dlc.ir.dtypes import DType
from dlc.ir.graph import Graph, Node, Value
from dlc.ir.symbolic import Dim, evaluate, floordiv, free_symbols
from dlc.ir.types import SparseTensorType, TensorType
from dlc.ops import FusionKind, OpDef, all_ops
from dlc.sparse import SparseMatrix

KINDS = (FusionKind.ELEMENTWISE, FusionKind.BROADCAST, FusionKind.INJECTIVE,
         FusionKind.REDUCTION)
DTYPES = (DType.f32, DType.f32, DType.f64, DType.f16, DType.bf16, DType.i32, DType.i64,
          DType.u8, DType.bool)
N, M = symbol("N"), symbol("M")
STATIC_DIMS: tuple[Dim, ...] = (1, 2, 3, 5)
SYMBOLIC_DIMS: tuple[Dim, ...] = (N, M, N + 1, 2 * M, floordiv(N, 2) + 1)
LOCATIONS = (None, None, Location("encoder.fc1", "model.py", 12), Location('a "quoted" name'),
             Location("", "dir with space/m.py", 3), Location("x", "<eval_with_key>.0", 0))
MAX_ATTEMPTS = 12


@dataclass
class GraphCase:
    """A random graph, arguments to run it with, and the sizes its symbols take."""

    graph: Graph
    args: list[Any]
    bindings: dict[str, int]

    def __repr__(self) -> str:
        return f"GraphCase(bindings={self.bindings})\n{self.graph}"


def candidate_ops() -> list[OpDef]:
    """The registered ops the generator tries (read at test time: new ops join in)."""
    return [op for op in all_ops() if op.fusion_kind in KINDS]


def _array(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    if dtype is DType.bool:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.is_float:
        return np.asarray(rng.uniform(-2.0, 2.0, shape)).astype(dtype.numpy)
    return np.asarray(rng.integers(0, 4, shape)).astype(dtype.numpy)


def _concrete(shape: tuple[Dim, ...], bindings: dict[str, int]) -> tuple[int, ...]:
    return tuple(evaluate(d, bindings) for d in shape)


@st.composite
def shapes(draw: st.DrawFn, symbolic: bool, max_rank: int = 3) -> tuple[Dim, ...]:
    if not symbolic and draw(st.booleans()):  # big enough for the constant table
        return draw(st.sampled_from([(4, 5), (2, 3, 5), (17,)]))
    pool = STATIC_DIMS + SYMBOLIC_DIMS if symbolic else STATIC_DIMS
    return tuple(draw(st.lists(st.sampled_from(pool), max_size=max_rank)))


def _broadcastable_to(draw: st.DrawFn, shape: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """A suffix of `shape` with some sizes replaced by 1."""
    start = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) and draw(st.booleans()) else d for d in shape[start:])


class _Builder:
    """Draws nodes onto a GraphBuilder, evaluating each on concrete values as it goes."""

    def __init__(self, draw: st.DrawFn, rng: np.random.Generator,
                 bindings: dict[str, int]) -> None:
        self.draw, self.rng, self.bindings = draw, rng, bindings
        self.b = GraphBuilder(draw(st.sampled_from(["main", "f", "my model", "net.block"])))
        self.pool: list[Value] = []
        self.env: dict[Value, Any] = {}
        self.large_constants = 0

    def add_input(self, name: str, type_: TensorType) -> None:
        v = self.b.input(name, type_)
        self.pool.append(v)
        self.env[v] = _array(self.rng, _concrete(type_.shape, self.bindings), type_.dtype)

    def operand(self, like: TensorType | None) -> Value:
        """A value from the pool, or a constant shaped to broadcast against `like`."""
        draw = self.draw
        kind = draw(st.sampled_from(["pool", "pool", "pool", "scalar", "row", "full"]))
        if like is not None and like.is_static and int(np.prod(like.shape)) > 16:
            kind = draw(st.sampled_from(["pool", "full"]))  # exercise the constant table
        if kind == "pool" or like is None:
            if like is not None and draw(st.booleans()):
                same = [v for v in self.pool if v.type.dtype == like.dtype]
                if same:
                    return draw(st.sampled_from(same))
            return draw(st.sampled_from(self.pool))
        shape: tuple[Dim, ...] = ()
        if kind == "row" and like.shape and isinstance(like.shape[-1], int):
            shape = (like.shape[-1],)
        elif kind == "full" and like.is_static:
            shape = like.shape
        data = _array(self.rng, tuple(int(d) for d in shape), like.dtype)
        name = ""
        if data.size > 16:
            name = f"w{self.large_constants}"
            self.large_constants += 1
        c = self.b.const(data, name)
        self.env[c] = data
        return c

    def attrs(self, op: OpDef, operands: list[Value]) -> dict[str, Any] | None:
        """Attributes drawn by schema kind; None when the op needs one we cannot draw."""
        draw = self.draw
        ranks = [v.type.rank for v in operands] or [2]
        rank = max(ranks)
        shape = operands[0].type.shape if operands else ()
        out: dict[str, Any] = {}
        for key, spec in op.attrs.items():
            if not spec.required and draw(st.booleans()):
                continue  # keep the default
            kind = spec.kind
            if kind == "int":
                out[key] = draw(st.integers(-max(rank, 1), max(rank, 3)))
            elif kind == "float":
                out[key] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, 1e-5]))
            elif kind == "bool":
                out[key] = draw(st.booleans())
            elif kind == "dtype":
                out[key] = draw(st.sampled_from(DTYPES))
            elif kind == "str" and spec.choices:
                out[key] = draw(st.sampled_from(spec.choices))
            elif kind == "ints":
                out[key] = draw(_ints_for(rank))
            elif kind == "floats":
                out[key] = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), max_size=rank))
            elif kind == "dims":
                out[key] = draw(_dims_for(shape))
            elif spec.required:
                return None  # a free-form str or an `any` attribute: skip the op
        return out

    def try_node(self, candidates: list[OpDef]) -> bool:
        """Draw one node; keep it if the type rule accepts it and its reference runs."""
        draw = self.draw
        op = draw(st.sampled_from(candidates))
        operands: list[Value] = []
        for _ in range(draw(operand_counts(op))):
            first = operands[0].type if operands else None
            operands.append(self.operand(first if isinstance(first, TensorType) else None))
        if any(isinstance(v.type, SparseTensorType) for v in operands):
            return False
        attrs = self.attrs(op, operands)
        if attrs is None:
            return False
        try:
            frozen = op.check_attrs(attrs)
            op.output_types([v.type for v in operands], frozen)
        except DLCError:
            return False
        except Exception:  # a crashing type rule: test_type_rules_* in test_properties report it
            return False
        loc = draw(st.sampled_from(LOCATIONS))
        node = self.b.node(op, operands, dict(frozen), loc=loc)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                results = evaluate_node(node, [self.env[v] for v in operands], self.bindings)
        except Exception:  # the reference cannot run these operands: drop the node
            self.b.nodes.pop()
            return False
        symbolic = any(v.type.symbols for v in operands) or any(
            not isinstance(d, int) for v in node.outputs for d in v.type.shape)
        if symbolic and shape_mismatch(node, results, self.bindings) is not None:
            # Sizes of a symbolic operand may have to satisfy a run-time condition that the
            # drawn sizes break (split sizes that must add up to N): not a type-rule bug.
            self.b.nodes.pop()
            return False
        self.env.update(zip(node.outputs, results))
        self.pool.extend(node.outputs)
        return True


def evaluate_node(node: Node, args: list[Any], bindings: dict[str, int]) -> tuple[Any, ...]:
    """The node's reference results (dense ones as arrays), with no checks at all."""
    out = node.op.reference(*args, **bind_attrs(node, bindings))
    results = out if isinstance(out, tuple) else (out,)
    return tuple(r if isinstance(r, SparseMatrix) else np.asarray(r) for r in results)


def shape_mismatch(node: Node, results: tuple[Any, ...], bindings: dict[str, int]
                   ) -> str | None:
    """Why `results` do not fit the node's result types under `bindings`, or None.

    A data-dependent size seen for the first time is bound (in place), as the interpreter
    does."""
    if len(results) != len(node.outputs):
        return f"{node.op.name} returned {len(results)} results for {len(node.outputs)} types"
    for value, result in zip(node.outputs, results):
        if not isinstance(value.type, TensorType):
            continue
        if result.dtype != value.type.dtype.numpy:
            return f"{node.op.name} returned {result.dtype}, its type says {value.type}"
        if result.ndim != value.type.rank:
            return f"{node.op.name} returned shape {list(result.shape)}, its type says {value.type}"
        for d, actual in zip(value.type.shape, result.shape):
            if isinstance(d, sympy.Symbol) and d.name not in bindings:
                bindings[d.name] = int(actual)
            if free_symbols(d) <= bindings.keys() and evaluate(d, bindings) != actual:
                return (f"{node.op.name} returned shape {list(result.shape)}, its type says "
                        f"{value.type} with {bindings}")
    return None


def operand_counts(op: OpDef) -> st.SearchStrategy[int]:
    """How many operands to pass: optional ones may be left out, variadic ones get 1 to 3."""
    lo, hi = op.arity()
    return st.integers(lo, hi if hi is not None else max(lo, 1) + 2)


@st.composite
def type_rule_calls(draw: st.DrawFn, op: OpDef) -> tuple[list[Value], dict[str, Any]]:
    """Operands and attributes for `op`, drawn as `random_graphs` draws them, valid or not
    (for checking that type rules reject bad calls with a DLCError)."""
    rng = np.random.default_rng(0)
    builder = _Builder(draw, rng, {"N": 2, "M": 3})
    symbolic = draw(st.booleans())
    base, dtype = draw(shapes(symbolic)), draw(st.sampled_from(DTYPES))
    for k in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:  # mostly operands alike, as valid calls have them
            base, dtype = draw(shapes(symbolic)), draw(st.sampled_from(DTYPES))
        builder.add_input(f"x{k}", TensorType(base, dtype))
    operands = [builder.operand(None) for _ in range(draw(operand_counts(op)))]
    return operands, builder.attrs(op, operands) or {}


def _ints_for(rank: int) -> st.SearchStrategy[list[int]]:
    axes = list(range(rank))
    return st.one_of(
        st.permutations(axes),  # perm
        st.lists(st.sampled_from(axes or [0]), max_size=rank, unique=True).map(sorted),  # axes
        st.lists(st.integers(-rank, max(rank - 1, 0)), max_size=rank, unique=True),
        st.lists(st.integers(1, 3), min_size=rank, max_size=rank),  # repeats, sizes
    )


def _dims_for(shape: tuple[Dim, ...]) -> st.SearchStrategy[list[Dim]]:
    present = list(dict.fromkeys((*shape, 1, 2)))
    return st.one_of(
        st.just(list(shape)),
        st.permutations(list(shape)),
        st.lists(st.sampled_from(present), max_size=len(shape) + 1),
    )


@st.composite
def random_graphs(draw: st.DrawFn, max_nodes: int = 6, symbolic: bool | None = None
                  ) -> GraphCase:
    """A random well-typed graph of registry ops, with arguments to run it on."""
    if symbolic is None:
        symbolic = draw(st.booleans())
    bindings = {"N": draw(st.integers(1, 3)), "M": draw(st.integers(1, 3))}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    builder = _Builder(draw, rng, bindings)
    base = draw(shapes(symbolic))
    dtype = draw(st.sampled_from(DTYPES))
    for k in range(draw(st.integers(1, 3))):
        other = dtype if draw(st.integers(0, 3)) else draw(st.sampled_from(DTYPES))
        shape = _broadcastable_to(draw, base) if k else base
        builder.add_input(f"x{k}" if k else "x", TensorType(shape, other))
    # Every symbol must appear bare in some input so a caller's arguments bind it.
    used: set[str] = set().union(*(v.type.symbols for v in builder.b.inputs))
    bare = {d.name for v in builder.b.inputs for d in v.type.shape if isinstance(d, sympy.Symbol)}
    for name in sorted(used - bare):
        builder.add_input(f"size_{name}", TensorType((symbol(name),), dtype))
    args = [builder.env[v] for v in builder.b.inputs]
    if draw(st.integers(0, 4)) == 0:  # a sparse input: its type must survive the round trip
        fmt = draw(st.sampled_from(["coo", "csr"]))
        rows = N if symbolic else 3
        nnz = bindings["N"] + 1
        builder.b.input("adj", SparseTensorType(fmt, (rows, 4), DType.f32, symbol("E")))
        bindings["E"] = nnz
        n_rows = evaluate(rows, bindings)
        coo = SparseMatrix.coo(np.stack([rng.integers(0, n_rows, nnz), rng.integers(0, 4, nnz)]),
                               rng.standard_normal(nnz).astype(np.float32), (n_rows, 4))
        args.append(coo.to_csr() if fmt == "csr" else coo)
    candidates = candidate_ops()
    for _ in range(draw(st.integers(1, max_nodes))):
        for _attempt in range(MAX_ATTEMPTS):
            if builder.try_node(candidates):
                break
    nodes_out = [v for n in builder.b.nodes for v in n.outputs]
    outputs = [nodes_out[-1]] if nodes_out else []
    outputs += draw(st.lists(st.sampled_from(builder.pool), max_size=2))
    return GraphCase(builder.b.build(outputs or builder.pool[:1]), args, bindings)
