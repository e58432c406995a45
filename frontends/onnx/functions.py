"""ONNX functions: model-local FunctionProtos and the function bodies of standard ops.

ONNX defines many operators as functions of simpler ones, either with a fixed body
(`Softsign`, `HardSwish`, `MeanVarianceNormalization`) or with a body built for the node's
attributes and input types (`Celu`, `Range`, `NegativeLogLikelihoodLoss`; "context
dependent"). The importer expands such a body in place of a node whose op type has no
converter, so a new operator defined this way imports before anyone writes a converter
for it. Converters take precedence: a function body is the fallback, not the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dlc.frontends.onnx.builder import OnnxNode
from dlc.frontends.onnx.dtypes import to_onnx
from dlc.frontends.onnx.registry import DEFAULT_DOMAIN
from dlc.ir.graph import Value
from dlc.ir.types import TensorType


class FunctionLibrary:
    """Looks up a function body for a node: model-local first, then the op's schema."""

    def __init__(self, local_functions: Iterable[Any]) -> None:
        self.local = {(_domain(f.domain), f.name): f for f in local_functions}

    def has(self, domain: str, op_type: str, opset: int) -> bool:
        """True when `op_type` can be expanded from a function body."""
        if (_domain(domain), op_type) in self.local:
            return True
        schema = _schema(op_type, opset, domain)
        return schema is not None and (schema.has_function or
                                       schema.has_context_dependent_function)

    def body(self, node: OnnxNode, proto: Any) -> tuple[Any, dict[str, Any]] | None:
        """The FunctionProto to expand for `node` and its attributes' default values, or
        None when there is none."""
        fn = self._body(node, proto)
        if fn is None:
            return None
        defaults = self.attribute_defaults(fn)
        schema = _schema(node.op_type, node.opset, node.domain)
        if (_domain(node.domain), node.op_type) not in self.local and schema is not None:
            from dlc.frontends.onnx.importer import decode_attribute

            for name, attr in schema.attributes.items():
                if attr.default_value.name:  # set when the schema gives a default
                    defaults.setdefault(name, decode_attribute(attr.default_value, None,
                                                               node.describe()))
        return fn, defaults

    def _body(self, node: OnnxNode, proto: Any) -> Any | None:
        import onnx

        local = self.local.get((_domain(node.domain), node.op_type))
        if local is not None:
            return local
        schema = _schema(node.op_type, node.opset, node.domain)
        if schema is None:
            return None
        if schema.has_function:
            versions = sorted(schema.function_opset_versions)
            usable = [v for v in versions if v <= node.opset] or versions
            data = schema.get_function_with_opset_version(usable[-1]) if usable else b""
            if data:
                fn = onnx.FunctionProto()
                fn.ParseFromString(data)
                return fn
            return schema.function_body if len(schema.function_body.node) else None
        if schema.has_context_dependent_function:
            versions = sorted(schema.context_dependent_function_opset_versions)
            usable = [v for v in versions if v <= node.opset] or versions
            types = [_type_proto(v).SerializeToString() for v in node.inputs]
            data = schema.get_context_dependent_function_with_opset_version(
                usable[-1], _resolved(proto, node).SerializeToString(), types)
            if not data:
                return None
            fn = onnx.FunctionProto()
            fn.ParseFromString(data)
            return fn
        return None

    @staticmethod
    def attribute_defaults(fn: Any) -> dict[str, Any]:
        """Default values of a function's attributes (`attribute_proto`)."""
        from dlc.frontends.onnx.importer import decode_attribute

        return {a.name: decode_attribute(a, None, f"function {fn.name}")
                for a in fn.attribute_proto}


def _resolved(proto: Any, node: OnnxNode) -> Any:
    """`proto` with attribute references (`@alpha` inside a function) replaced by the
    values the node resolved, as the schema's function builder reads plain attributes."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    if not any(a.ref_attr_name for a in proto.attribute):
        return proto
    out = onnx.NodeProto()
    out.CopyFrom(proto)
    del out.attribute[:]
    for name, value in node.attrs.items():
        if isinstance(value, np.ndarray):
            value = numpy_helper.from_array(value)
        out.attribute.append(onnx.helper.make_attribute(name, value))
    return out


def _domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", "ai.onnx") else domain


def _schema(op_type: str, opset: int, domain: str) -> Any | None:
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def _type_proto(v: Value | None) -> Any:
    """The TypeProto of an operand (an empty one for an omitted optional operand)."""
    import onnx

    if v is None or not isinstance(v.type, TensorType):
        return onnx.TypeProto()
    t = v.tensor_type
    shape = [d if isinstance(d, int) else str(d) for d in t.shape]
    return onnx.helper.make_tensor_type_proto(to_onnx(t.dtype), shape)
