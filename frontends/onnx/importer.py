"""Import an ONNX model (a ModelProto or a path) into the dlc graph IR.

    graph = import_onnx("model.onnx")                       # external data read beside it
    graph = import_onnx(model, constant_inputs={"shape": np.array([2, 3])})

Initializers become constants; graph inputs keep their names, and a dynamic dimension
(`dim_param: "batch"`, or no size at all) becomes a size symbol. Every node keeps its ONNX
name as its source location. Op types with no converter are collected first and reported
in one UnsupportedOpError naming each op type, node and opset.

An op type without a converter of its own may still import: ONNX defines many operators
as *functions* of simpler ones (Celu, Range, LayerNormalization's reference body, the loss
functions), and model-local functions are functions too. Those expand in place, their
nodes named `<caller>/<body node>` so errors still point at the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dlc.errors import DLCError, FrontendError, MissingOp, UnsupportedOpError, closest
from dlc.frontends.onnx.builder import (
    DynamicInputError,
    OnnxGraphBuilder,
    OnnxNode,
    UseFunctionBody,
    is_symbolic,
)
from dlc.frontends.onnx.dtypes import UnsupportedDTypeError, from_onnx, tensor_to_numpy
from dlc.frontends.onnx.fold import fold_constant_nodes, fold_symbolic
from dlc.frontends.onnx.functions import FunctionLibrary
from dlc.frontends.onnx.registry import (
    DEFAULT_DOMAIN,
    find_converter,
    known_op_types,
    load_converters,
)
from dlc.ir.graph import Constant, Graph, Location, Value
from dlc.ir.symbolic import symbol
from dlc.ir.types import TensorType

# Ops whose result sizes come from operand values (new size symbols): converters use
# them when a shape operand (axes, pads, k, a shape) is computed at run time.
RUN_TIME_SHAPE_OPS = frozenset({
    "reduce.dynamic_axes", "reduce.scan_dynamic_axis", "reduce.topk_dynamic",
    "shape.pad_dynamic", "shape.reshape_dynamic", "shape.expand_dynamic",
    "shape.tile_dynamic", "shape.slice_dynamic", "shape.unsqueeze_dynamic",
    "shape.squeeze_dynamic", "shape.split_dynamic", "create.full_dynamic", "create.range",
    "image.resize_dynamic"})

# Operands whose type (not data) is all a converter reads: constant folding ignores them.
_TYPE_ONLY_OPERANDS = {"CastLike": (1,), "EyeLike": (0,)}

_HINT = ("Add a converter with @onnx_op(...) in frontends/onnx/convert_<family>.py (and the "
         "registry op it maps to, if it is new) — see docs/adding-an-op.md.")


def load_model(model: Any) -> tuple[Any, Path | None]:
    """A ModelProto and the folder its external data lives in, from a proto or a path."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FrontendError(f"{path}: no such ONNX file")
        try:
            return onnx.load(str(path), load_external_data=False), path.parent
        except Exception as err:  # protobuf's DecodeError and friends
            raise FrontendError(f"{path} is not a readable ONNX model: {err}") from err
    raise FrontendError(f"cannot import a {type(model).__name__} as ONNX: pass a ModelProto "
                        "or the path of an .onnx file")


def import_onnx(model: Any, *, constant_inputs: Mapping[str, Any] | None = None,
                name: str | None = None, base_dir: str | Path | None = None) -> Graph:
    """Convert an ONNX model into a dlc Graph.

    `constant_inputs` binds graph inputs to arrays, which then become constants (a
    compiler specializes on shape, axes or pads given as inputs). `base_dir` is where
    external data files live (default: beside the model file).
    """
    proto, folder = load_model(model)
    return OnnxImporter(proto, Path(base_dir) if base_dir else folder,
                        dict(constant_inputs or {})).run(name)


class OnnxImporter:
    """One import: the model, its opsets, its functions, and the value environment."""

    def __init__(self, model: Any, base_dir: Path | None,
                 constant_inputs: dict[str, Any]) -> None:
        load_converters()
        self.model = model
        self.base_dir = base_dir
        self.constant_inputs = constant_inputs
        self.opsets = _opsets(model.opset_import)
        self.functions = FunctionLibrary(model.functions)
        self.b: OnnxGraphBuilder | None = None
        self.env: dict[str, Value | None] = {}
        # The environment and opsets of the node being converted (a subgraph reads both).
        self._scope_env: dict[str, Value | None] = self.env
        self._scope_opsets: dict[str, int] = self.opsets
        self._unnamed = 0
        # Graph inputs that fed a run-time shape operand (see RUN_TIME_SHAPE_OPS).
        self.dynamic_inputs: frozenset[str] = frozenset()

    # -- the whole model ---------------------------------------------------------------
    def run(self, name: str | None) -> Graph:
        graph = self.model.graph
        self._check_supported(graph.node, self.opsets)
        b = self.b = OnnxGraphBuilder(name or graph.name or "onnx_model")
        b.inline_subgraph = self.inline_subgraph
        for init in graph.initializer:
            self.env[init.name] = Constant.of(
                tensor_to_numpy(init, self.base_dir, f"initializer {init.name!r}"), init.name)
        for sparse in graph.sparse_initializer:  # weights stored sparse become dense
            name = sparse.values.name
            self.env[name] = Constant.of(_sparse_to_numpy(sparse, self.base_dir, name), name)
        for info in graph.input:
            if info.name in self.env:
                continue  # IR < 4 lists initializers as inputs too; they stay constants
            if info.name in self.constant_inputs:
                self.env[info.name] = self._bound_input(info)
            else:
                v = self.env[info.name] = b.input(info.name, self._input_type(info))
                b.input_deps[v] = frozenset([info.name])
        unknown = set(self.constant_inputs) - {i.name for i in graph.input}
        if unknown:
            raise FrontendError(f"constant_inputs names {sorted(unknown)}, which are not "
                                f"inputs of the model ({[i.name for i in graph.input]})")
        for proto in graph.node:
            self.convert(proto, self.opsets, prefix="")
        outputs = []
        for info in graph.output:
            v = self.env.get(info.name)
            if v is None:
                raise FrontendError(f"graph output {info.name!r} is never produced")
            if is_symbolic(v):
                raise FrontendError(f"graph output {info.name!r} is a shape computed from "
                                    f"dynamic dimensions ({list(v.data)}); dlc graphs return "
                                    "tensors computed by kernels")
            outputs.append(v)
        try:
            self._check_no_symbolic(b)
        except FrontendError as err:
            if self.dynamic_inputs:
                raise self._bind_hint(OnnxNode("graph", b.name, "", 0, [], [], []), err) from err
            raise
        return b.build(outputs)

    def _input_type(self, info: Any) -> TensorType:
        kind = info.type.WhichOneof("value")
        if kind != "tensor_type":
            raise UnsupportedOpError("onnx frontend", [MissingOp(
                f"graph input of {kind or 'unknown'} type", f"input {info.name!r}")],
                hint="dlc imports dense tensor inputs (no sequences, maps or optionals).")
        tt = info.type.tensor_type
        dtype = from_onnx(tt.elem_type, f"input {info.name!r}")
        if not tt.HasField("shape"):
            raise FrontendError(f"input {info.name!r} has no shape (not even a rank); "
                                "give the model's inputs a shape")
        dims: list[Any] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(symbol(_symbol_name(d.dim_param or f"{info.name}_{i}")))
        return TensorType(tuple(dims), dtype)

    def _bound_input(self, info: Any) -> Constant:
        array = np.asarray(self.constant_inputs[info.name])
        want = self._input_type(info)
        if array.dtype != want.dtype.numpy or array.ndim != want.rank:
            raise FrontendError(f"constant_inputs[{info.name!r}] is {array.dtype}"
                                f"{list(array.shape)}; the input is {want}")
        return Constant.of(array, info.name)

    # -- one node ----------------------------------------------------------------------
    def convert(self, proto: Any, opsets: dict[str, int], prefix: str,
                env: dict[str, Value | None] | None = None,
                attr_scope: Mapping[str, Any] | None = None) -> None:
        """Convert one NodeProto, writing its outputs into `env` (default: the model's)."""
        env = self.env if env is None else env
        b = self.b
        assert b is not None
        domain = proto.domain or DEFAULT_DOMAIN
        opset = opsets.get(domain, opsets.get("ai.onnx" if domain == "" else domain, 0))
        node_name = f"{prefix}{proto.name or self._auto_name(proto.op_type)}"
        inputs = []
        for n in proto.input:
            if n and n not in env:
                raise FrontendError(f"{proto.op_type} node {node_name!r} reads {n!r}, which "
                                    "no earlier node, input or initializer defines")
            inputs.append(env[n] if n else None)
        node = OnnxNode(proto.op_type, node_name, domain, opset, inputs, list(proto.input),
                        list(proto.output), self._attributes(proto, node_name, attr_scope))
        b.loc = Location(node_name)
        scope = (self._scope_env, self._scope_opsets)
        self._scope_env, self._scope_opsets = env, opsets
        try:
            results = self._dispatch(node, proto, opsets)
        except DynamicInputError:
            raise
        except DLCError as err:
            if self.dynamic_inputs:  # sizes known only at run time may be the cause
                raise self._bind_hint(node, err) from err
            if isinstance(err, (UnsupportedOpError, FrontendError)):
                raise
            # a type rule rejected what the converter built
            raise FrontendError(f"{node.describe()}: {err}") from err
        finally:
            b.loc = None
            self._scope_env, self._scope_opsets = scope
        if not isinstance(results, (tuple, list)):
            results = (results,)
        deps = frozenset().union(*(b.input_deps.get(v, frozenset()) for v in inputs
                                   if v is not None))
        if deps:
            for v in results:
                if isinstance(v, Value) and not isinstance(v, Constant):
                    b.input_deps.setdefault(v, deps)
        for i, out_name in enumerate(proto.output):
            if not out_name:
                continue
            value = results[i] if i < len(results) else None
            if value is None:
                raise FrontendError(f"{node.describe()}: output {i} ({out_name!r}) is used "
                                    "but its converter does not produce it")
            if isinstance(value, Constant) and not value.name:  # name it after its ONNX value
                value = Constant(value.type, out_name, value.data)
            env[out_name] = value

    def _bind_hint(self, node: OnnxNode, err: Exception) -> DynamicInputError:
        """The error for a failure after a shape operand was taken at run time: binding
        the inputs it came from makes the sizes known."""
        names = sorted(self.dynamic_inputs)
        listed = ", ".join(f"{n!r}: array" for n in names)
        return DynamicInputError(
            f"{node.describe()}: {err}\n(earlier ops took shape operands computed at run "
            f"time from input(s) {names}, so their result sizes are unknown symbols; bind "
            f"them as constants: import_onnx(..., constant_inputs={{{listed}}}))", names)

    def _note_run_time_shapes(self, node: OnnxNode, start: int) -> None:
        """Remember the inputs behind shape operands that went to a run-time-shape op."""
        b = self.b
        assert b is not None
        made = {n.op.name for n in b.nodes[start:]} & RUN_TIME_SHAPE_OPS
        if made:
            # Operand 0 is the data, except for ops made only from sizes (a range).
            first = 0 if made <= {"create.full_dynamic", "create.range"} else 1
            for v in node.inputs[first:]:
                if v is not None:
                    self.dynamic_inputs |= b.input_deps.get(v, frozenset())

    def _dispatch(self, node: OnnxNode, proto: Any, opsets: dict[str, int]) -> Any:
        b = self.b
        assert b is not None
        if any(is_symbolic(v) for v in node.inputs):
            folded = fold_symbolic(b, node)
            if folded is not None:
                return folded
        fn = find_converter(node.domain, node.op_type, node.opset)
        start = len(b.nodes)
        if fn is not None:
            try:
                results = fn(b, node)
            except UseFunctionBody:
                del b.nodes[start:]
                fn = None
        if fn is None:
            found = self.functions.body(node, proto)
            if found is None:
                raise UnsupportedOpError("onnx frontend", [self._missing(node)], hint=_HINT)
            return self._expand(node, *found, opsets)
        self._note_run_time_shapes(node, start)
        type_only = _TYPE_ONLY_OPERANDS.get(node.op_type, ())
        if all(v is None or i in type_only or (isinstance(v, Constant) and not is_symbolic(v))
               for i, v in enumerate(node.inputs)):
            results = fold_constant_nodes(b, start, results, node.output_names)
        return results

    def _expand(self, node: OnnxNode, body: Any, defaults: dict[str, Any],
                caller_opsets: dict[str, int]) -> Any:
        """Convert a function body in place of `node` (its formal names are local)."""
        fn_opsets = dict(caller_opsets)
        fn_opsets.update(_opsets(body.opset_import))
        local: dict[str, Value | None] = {}
        for formal, actual in zip(body.input, node.inputs):
            local[formal] = actual
        for formal in list(body.input)[len(node.inputs):]:
            local[formal] = None
        scope = dict(defaults)
        scope.update(node.attrs)
        for inner in body.node:
            self.convert(inner, fn_opsets, prefix=f"{node.name}/", env=local, attr_scope=scope)
        return tuple(local.get(o) for o in body.output)

    def inline_subgraph(self, node: OnnxNode, graph: Any) -> tuple[Value | None, ...]:
        """Convert a subgraph (an If branch) in place; it may read the enclosing values."""
        self._check_supported(graph.node, self._scope_opsets)
        local = dict(self._scope_env)
        opsets = self._scope_opsets
        for init in graph.initializer:
            local[init.name] = Constant.of(tensor_to_numpy(init, self.base_dir), init.name)
        b = self.b
        assert b is not None
        loc = b.loc
        for inner in graph.node:
            self.convert(inner, opsets, prefix=f"{node.name}/", env=local)
        b.loc = loc
        return tuple(local.get(o.name) for o in graph.output)

    def _attributes(self, proto: Any, where: str, scope: Mapping[str, Any] | None
                    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in proto.attribute:
            if a.ref_attr_name:
                if scope is not None and a.ref_attr_name in scope:
                    out[a.name] = scope[a.ref_attr_name]
                continue  # an unset reference means "not given": the default applies
            out[a.name] = decode_attribute(a, self.base_dir, where)
        return out

    def _auto_name(self, op_type: str) -> str:
        self._unnamed += 1
        return f"{op_type}_{self._unnamed - 1}"

    # -- checks ------------------------------------------------------------------------
    def _check_supported(self, nodes: Any, opsets: dict[str, int]) -> None:
        """Collect every op type this model uses that dlc cannot import; raise once."""
        missing: dict[tuple[str, str, int], MissingOp] = {}
        for i, proto in enumerate(nodes):
            domain = proto.domain or DEFAULT_DOMAIN
            opset = opsets.get(domain, 0)
            if find_converter(domain, proto.op_type, opset) is not None:
                continue
            if self.functions.has(domain, proto.op_type, opset):
                continue
            key = (domain, proto.op_type, opset)
            if key not in missing:
                node = OnnxNode(proto.op_type, proto.name or f"{proto.op_type}_{i}", domain,
                                opset, [], list(proto.input), list(proto.output))
                missing[key] = self._missing(node)
        if missing:
            raise UnsupportedOpError("onnx frontend", missing.values(), hint=_HINT)

    def _missing(self, node: OnnxNode) -> MissingOp:
        label = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
        return MissingOp(f"{label} (opset {node.opset})", f"node {node.name!r}",
                         tuple(closest(node.op_type, known_op_types())))

    def _check_no_symbolic(self, b: OnnxGraphBuilder) -> None:
        for n in b.nodes:
            for v in n.inputs:
                if is_symbolic(v):
                    where = n.loc.describe() if n.loc else n.op.name
                    raise FrontendError(
                        f"{n.op.name} at {where} reads a shape tensor computed from dynamic "
                        f"dimensions ({list(v.data)}) as data; dlc cannot compute sizes in "
                        "kernels yet: export the model with static shapes, or bind them")


def _opsets(imports: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in imports:
        domain = DEFAULT_DOMAIN if o.domain in ("", "ai.onnx") else o.domain
        out[domain] = int(o.version)
    return out


def _symbol_name(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name and not name[0].isdigit() else f"d_{name}"


def decode_attribute(a: Any, base_dir: Path | None, where: str) -> Any:
    """An AttributeProto as a Python value: ints, floats, str, lists, NumPy arrays."""
    from onnx import AttributeProto

    t = a.type
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", errors="replace")
    if t == AttributeProto.INTS:
        return [int(x) for x in a.ints]
    if t == AttributeProto.FLOATS:
        return [float(x) for x in a.floats]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in a.strings]
    if t == AttributeProto.TENSOR:
        return tensor_to_numpy(a.t, base_dir, f"attribute {a.name!r} of {where}")
    if t == AttributeProto.TENSORS:
        return [tensor_to_numpy(x, base_dir, where) for x in a.tensors]
    if t == AttributeProto.SPARSE_TENSOR:
        return _sparse_to_numpy(a.sparse_tensor, base_dir, where)
    if t == AttributeProto.TYPE_PROTO:
        return a.tp
    if t in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return a  # control flow: the converter (if any) decides
    raise UnsupportedDTypeError(f"attribute {a.name!r} of {where} has unsupported type {t}")


def _sparse_to_numpy(sp: Any, base_dir: Path | None, where: str) -> np.ndarray:
    values = tensor_to_numpy(sp.values, base_dir, where)
    indices = tensor_to_numpy(sp.indices, base_dir, where).astype(np.int64)
    dense = np.zeros(tuple(sp.dims), dtype=values.dtype)
    if indices.ndim == 1:
        dense.reshape(-1)[indices] = values
    else:
        dense[tuple(indices.T)] = values
    return dense
