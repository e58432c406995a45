"""Import a torch.nn.Module or an ExportedProgram (core ATen) into the dlc graph IR.

    graph = import_module(model, (x,), dynamic_shapes={"x": {0: Dim("N")}})

Parameters and buffers become constants that share memory with the module's tensors.
Every node records where it came from (module path and the user's source line). Every
ATen op without a converter is collected first and reported in one UnsupportedOpError.
"""

from __future__ import annotations

import inspect
import operator
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import FrontendError, MissingOp, UnsupportedOpError, closest
from dlc.frontends.torch.builder import TorchGraphBuilder, torch_dtype
from dlc.frontends.torch.registry import TORCH_OPS, load_converters
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Graph, Location, Value
from dlc.ir.symbolic import Dim, dim, symbol
from dlc.ir.types import SparseTensorType


def import_module(module: Any, example_inputs: Sequence[Any], dynamic_shapes: Any = None,
                  name: str | None = None) -> Graph:
    """Export `module` with torch.export, decompose to core ATen, and import the result."""
    import torch

    from dlc.frontends.torch.decompositions import decomposition_table

    module = module.eval()
    args = tuple(example_inputs)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.13's own pytree raises this FutureWarning from inside export.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            ep = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
            ep = ep.run_decompositions(decomposition_table())
    except Exception as err:  # export failures are the user's to fix: say so plainly
        raise FrontendError(f"torch.export failed on {type(module).__name__}: "
                            f"{type(err).__name__}: {err}") from err
    names = _symbol_names(ep, module, args, dynamic_shapes)
    return import_exported_program(ep, name=name or type(module).__name__.lower(),
                                   symbol_names=names)


def import_exported_program(ep: Any, name: str = "main",
                            symbol_names: dict[str, str] | None = None) -> Graph:
    """Convert an ExportedProgram (already decomposed as wanted) to a graph."""
    load_converters()
    sig = ep.graph_signature
    b = TorchGraphBuilder(name, symbol_names or {})
    _check_supported(ep, b)
    constants = _constant_sources(ep)
    env: dict[Any, Any] = {}
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in constants:
                env[node] = _constant(constants[node.name])
            else:
                env[node] = _input(b, node)
        elif node.op == "call_function":
            b.loc = _location(node)
            env[node] = _convert(b, node, env)
        elif node.op == "output":
            user_outputs = [o.arg.name for o in sig.output_specs if o.kind.name == "USER_OUTPUT"]
            others = [o for o in sig.output_specs if o.kind.name != "USER_OUTPUT"]
            if others:
                raise FrontendError(f"the model mutates state during inference "
                                    f"({', '.join(str(o.target) for o in others)}); call "
                                    "model.eval() or remove the in-place buffer update")
            by_name = {n.name: n for n in ep.graph.nodes}
            outputs = [env[by_name[n]] for n in user_outputs]
            if any(not isinstance(o, Value) for o in outputs):
                raise FrontendError("the model returns a non-tensor value; dlc graphs "
                                    "return tensors only")
            return b.build(outputs)
    raise FrontendError("the exported graph has no output node")


# Run-time assertions torch.export adds about sizes; dlc checks input shapes at the call
# boundary (InputError) instead, so these carry no computation.
IGNORED = frozenset({"aten._assert_scalar.default", "aten.sym_constrain_range_for_size.default",
                     "aten._assert_async.msg", "aten.sym_constrain_range.default"})


def _check_supported(ep: Any, b: TorchGraphBuilder) -> None:
    missing: dict[str, MissingOp] = {}
    for node in ep.graph.nodes:
        if node.op != "call_function" or _is_size_node(node) or node.target is operator.getitem:
            continue
        if _target_name(node) in IGNORED:
            continue
        target = _target_name(node)
        if target not in TORCH_OPS and target not in missing:
            loc = _location(node)
            missing[target] = MissingOp(target, loc.describe() if loc else node.name,
                                        tuple(closest(target, TORCH_OPS)))
    if missing:
        raise UnsupportedOpError(
            "torch frontend", missing.values(),
            hint="Add a converter with @torch_op(...) in frontends/torch/convert_<family>.py "
                 "(and the registry op it maps to, if it is new).")


def _target_name(node: Any) -> str:
    target = node.target
    if hasattr(target, "_schema") or hasattr(target, "overloadpacket"):
        return str(target)  # "aten.relu.default"
    return getattr(target, "__name__", str(target))


def _is_size_node(node: Any) -> bool:
    """A node computing a size (SymInt) rather than a tensor: folded into dimensions.

    Size predicates (SymBool, e.g. `s0 >= 2` feeding an assertion) count too; they only
    feed IGNORED assertions.
    """
    import torch

    val = node.meta.get("val")
    if isinstance(val, torch.SymBool):
        return True
    return isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool)


def _convert(b: TorchGraphBuilder, node: Any, env: dict[Any, Any]) -> Any:
    import torch

    if _target_name(node) in IGNORED:
        return None
    if _is_size_node(node):
        val = node.meta["val"]
        return None if isinstance(val, torch.SymBool) else b.dim_of(val)
    if node.target is operator.getitem:
        source, index = node.args
        result = env[source][index]
        if result is None:
            raise FrontendError(f"output {index} of {_target_name(source)} is used but its "
                                "converter does not produce it")
        return result
    args = _map_args(node.args, env, b)
    kwargs = {k: _map_args(v, env, b) for k, v in node.kwargs.items()}
    return TORCH_OPS[_target_name(node)](b, node, *args, **kwargs)


def _map_args(a: Any, env: dict[Any, Any], b: TorchGraphBuilder) -> Any:
    import torch
    import torch.fx

    if isinstance(a, torch.fx.Node):
        return env[a]
    if isinstance(a, (list, tuple)):
        return type(a)(_map_args(x, env, b) for x in a)
    if isinstance(a, torch.SymInt):
        return b.dim_of(a)
    return a


def _constant_sources(ep: Any) -> dict[str, Any]:
    """Placeholder name -> tensor for parameters, buffers and lifted constants."""
    out: dict[str, Any] = {}
    for spec in ep.graph_signature.input_specs:
        kind = spec.kind.name
        if kind in ("PARAMETER", "BUFFER"):
            tensor = ep.state_dict.get(spec.target)
            if tensor is None:  # non-persistent buffers live in constants
                tensor = ep.constants[spec.target]
            out[spec.arg.name] = (spec.target, tensor)
        elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
            out[spec.arg.name] = (spec.target, ep.constants[spec.target])
    return out


def _constant(source: tuple[str, Any]) -> Constant:
    name, tensor = source
    return Constant.of(tensor_to_numpy(tensor), name)


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A NumPy view of a CPU tensor (bf16 reinterpreted through ml_dtypes, not copied)."""
    import torch

    t = tensor.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(DType.bf16.numpy)
    return t.numpy()


def _input(b: TorchGraphBuilder, node: Any) -> Value:
    import torch

    val = node.meta["val"]
    if val.layout == torch.sparse_coo:
        shape = tuple(b.dim_of(d) for d in val.shape)
        t = SparseTensorType("coo", shape, torch_dtype(val.dtype), symbol(f"nnz_{node.name}"))
        return b.input(node.name, t)
    if val.layout != torch.strided:
        raise FrontendError(f"input {node.name} has layout {val.layout}; dlc takes dense "
                            "tensors and sparse COO matrices")
    return b.input(node.name, b.meta_type(node))


def _location(node: Any) -> Location | None:
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    file, line = _user_frame(node.meta.get("stack_trace") or "")
    if not (path or file):
        return None
    return Location(path.replace("L['self'].", "").replace("L__self__", ""), file, line)


def _user_frame(trace: str) -> tuple[str, int]:
    """The innermost stack frame outside torch itself: the user's line."""
    best = ("", 0)
    for line in trace.splitlines():
        line = line.strip()
        if not line.startswith('File "'):
            continue
        path, _, rest = line[6:].partition('"')
        if f"{os.sep}torch{os.sep}" in path:
            continue
        try:
            lineno = int(rest.split("line", 1)[1].split(",", 1)[0])
        except (IndexError, ValueError):
            continue
        best = (os.path.basename(path), lineno)
    return best


def _symbol_names(ep: Any, module: Any, args: tuple[Any, ...], spec: Any) -> dict[str, str]:
    """Map torch's symbol names (`s0`) to the names of the user's `Dim("N")` objects."""
    if spec is None:
        return {}
    signature = inspect.signature(module.forward).parameters
    params = list(signature)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.values())
    if isinstance(spec, dict):
        per_input = [spec.get(p) for p in params[: len(args)]]
        if variadic and len(per_input) == 1 and isinstance(per_input[0], (list, tuple)):
            per_input = list(per_input[0])
    else:
        per_input = list(spec)
        if variadic and len(per_input) == 1 and isinstance(per_input[0], (list, tuple)) \
                and len(args) != 1:
            per_input = list(per_input[0])  # forward(*xs): torch wants ((spec0, spec1),)
    user_nodes = [n for n in ep.graph.nodes if n.op == "placeholder"
                  and n.name not in _constant_sources(ep)]
    names: dict[str, str] = {}
    for node, dims in zip(user_nodes, per_input):
        if dims is None:
            continue
        items = dims.items() if isinstance(dims, dict) else enumerate(dims)
        for axis, d in items:
            dim_name = getattr(d, "__name__", None)
            size = node.meta["val"].shape[axis]
            expr = getattr(getattr(size, "node", None), "expr", None)
            if dim_name and expr is not None and getattr(expr, "is_Symbol", False):
                names[str(expr)] = dim_name
    return names


def to_dim(value: Any, names: dict[str, str]) -> Dim:
    """Convert an int or SymInt to a dlc dimension, renaming torch's symbols."""
    import torch

    if isinstance(value, int):
        return value
    if isinstance(value, torch.SymInt):
        expr = value.node.expr
        if expr.is_Integer:
            return int(expr)
        try:
            return dim(_from_torch_sympy(expr, names))
        except (TypeError, ValueError) as err:
            raise FrontendError(f"cannot convert the size {expr} to a dimension: {err}") from None
    raise FrontendError(f"cannot convert {value!r} to a dimension")


def _from_torch_sympy(e: Any, names: dict[str, str]) -> Any:
    """Rebuild torch's size expression (FloorDiv, TruncToInt, ToFloat, ...) in plain SymPy.

    Sizes are positive, so truncation and floor agree; floats like the 1.5 of an
    interpolation scale become exact rationals.
    """
    import sympy

    if e.is_Integer:
        return sympy.Integer(int(e))
    if e.is_Symbol:
        return symbol(names.get(e.name, e.name))
    if e.is_Float or e.is_Rational:
        return sympy.Rational(str(e))
    args = [_from_torch_sympy(a, names) for a in e.args]
    kind = type(e).__name__
    if isinstance(e, sympy.Add):
        return sympy.Add(*args)
    if isinstance(e, sympy.Mul):
        return sympy.Mul(*args)
    if isinstance(e, sympy.Pow):
        return sympy.Pow(*args)
    if kind in ("FloorDiv",):
        return sympy.floor(args[0] / args[1])
    if kind in ("CeilDiv",):
        return sympy.ceiling(args[0] / args[1])
    if kind in ("TruncToInt", "FloorToInt", "floor", "RoundToInt"):
        return sympy.floor(args[0]) if kind != "RoundToInt" else sympy.floor(args[0] + sympy.S.Half)
    if kind in ("CeilToInt", "ceiling"):
        return sympy.ceiling(args[0])
    if kind in ("ToFloat", "Identity"):
        return args[0]
    if kind in ("IntTrueDiv", "FloatTrueDiv"):
        return args[0] / args[1]
    if kind in ("Mod", "PythonMod"):
        return sympy.Mod(args[0], args[1])
    if kind == "Max":
        return sympy.Max(*args)
    if kind == "Min":
        return sympy.Min(*args)
    raise TypeError(f"unknown size function {kind}")
