"""Lower one fused group of graph nodes to one PrimFunc.

Each node's op supplies its compute definition (`op.compute`, declared with the op).
Group inputs become placeholders, the group's outputs are materialized, and everything
in between is inlined where it is elementwise or injective (see dlc.ir.tensor.lower), so
a fused group reads and writes memory once.

A sparse value crosses a group boundary as its component buffers (`dlc.sparse`): a CSR
input `%a` becomes the placeholders `a_indptr`, `a_indices`, `a_values`, the op's compute
receives them bundled as a `SparseTensor`, and a sparse result is written to its
components, each a kernel parameter of its own:

    %2 = sparse.coo_to_csr(%1) : csr<f32>[6, 6, nnz=E]
    ->
    kernel @k1_coo_to_csr(v1_indices: i64[2, E], v1_values: f32[E],
                          v2_indptr: i64[7], v2_indices: i64[E], v2_values: f32[E])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dlc.errors import MissingOp, UnsupportedOpError
from dlc.ir.graph import Graph, Node, Value
from dlc.ir.tensor.compute import Tensor, placeholder
from dlc.ir.tensor.context import LowerContext
from dlc.ir.tensor.expr import as_expr, from_sympy
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import PrimFunc
from dlc.ir.types import SparseTensorType, TensorType
from dlc.sparse import SparseComponent, SparseTensor, buffer_keys


@dataclass(frozen=True)
class LoweredGroup:
    """A kernel and the buffers bound to its parameters (inputs, then outputs): a dense
    graph value each, or one component of a sparse one (`dlc.sparse.buffer_keys`)."""

    func: PrimFunc
    inputs: tuple[Value | SparseComponent, ...]
    outputs: tuple[Value | SparseComponent, ...]
    nodes: tuple[Node, ...]


def group_boundary(graph: Graph, nodes: Sequence[Node]) -> tuple[list[Value], list[Value]]:
    """The values a group reads from outside, and the values it must write out."""
    inside = {v for n in nodes for v in n.outputs}
    members = set(map(id, nodes))
    inputs: list[Value] = []
    for n in nodes:
        for v in n.inputs:
            if v not in inside and v not in inputs:
                inputs.append(v)
    graph_outputs = set(graph.outputs)
    outputs = [v for n in nodes for v in n.outputs
               if v in graph_outputs or any(id(u) not in members for u in graph.users.get(v, []))]
    return inputs, outputs


def check_lowerable(graph: Graph, backend: str) -> None:
    """Raise one UnsupportedOpError listing every op without a compute definition."""
    missing: dict[str, MissingOp] = {}
    for n in graph.nodes:
        if not n.op.lowerable and n.op.name not in missing:
            near = tuple(sorted(o.name for o in _family_ops(n.op.family) if o.lowerable))[:6]
            missing[n.op.name] = MissingOp(n.op.name, n.loc.describe() if n.loc else "", near)
    if missing:
        raise UnsupportedOpError(f"{backend} backend", missing.values(),
                                 hint="Declare `compute` on the op (dlc/ops/<family>.py); "
                                      "see docs/adding-an-op.md.")


def _family_ops(family: str) -> list:
    from dlc.ops.registry import all_ops

    return [o for o in all_ops() if o.family == family]


def lower_group(graph: Graph, nodes: Sequence[Node], name: str,
                names: dict[Value, str]) -> LoweredGroup:
    """The PrimFunc of a group; `names` gives each graph value its buffer name."""
    inputs, outputs = group_boundary(graph, nodes)
    tensors: dict[Value, Tensor | SparseTensor] = {}
    for v in inputs:
        if isinstance(v.type, SparseTensorType):
            tensors[v] = SparseTensor.placeholder(v.type, names[v])
        else:
            tensors[v] = placeholder(_shape(v.type), v.type.dtype, names[v])
    for node in nodes:
        ctx = LowerContext(tuple(v.type for v in node.outputs), names[node.outputs[0]])
        result = node.op.compute(ctx, *(tensors[v] for v in node.inputs), **node.attrs)
        results = result if isinstance(result, tuple) else (result,)
        for v, t in zip(node.outputs, results):
            for part in _buffers(t):
                part.tag = node.op.name
            tensors[v] = t
    comment = "graph nodes: " + ", ".join(
        f"%{names[n.outputs[0]]} {n.op.name}" + (f" ({n.loc.describe()})" if n.loc else "")
        for n in nodes)
    placeholders = [t for v in inputs for t in _buffers(tensors[v])]
    results = [t for v in outputs for t in _buffers(tensors[v])]
    func = lower_tensors(name, placeholders, results, comment=comment)
    return LoweredGroup(func, tuple(k for v in inputs for k in buffer_keys(v)),
                        tuple(k for v in outputs for k in buffer_keys(v)), tuple(nodes))


def _buffers(t: Tensor | SparseTensor) -> list[Tensor]:
    """A value's tensors in parameter order: itself, or a sparse value's components."""
    return t.tensors() if isinstance(t, SparseTensor) else [t]


def _shape(t: TensorType) -> tuple:
    return tuple(as_expr(d) if isinstance(d, int) else from_sympy(d) for d in t.shape)
