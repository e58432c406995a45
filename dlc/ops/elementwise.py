"""Elementwise ops (`ew.*`): math, activations, comparisons, select and cast.

Unary and binary ops are declared with the `unary` / `binary` factories: one line per op
is its whole declaration (name, reference, result dtype rule, fusion kind). Binary ops
broadcast like NumPy and require equal operand dtypes: frontends insert `ew.cast` where
the source framework promotes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    register_op,
    same_dtype,
    tensor,
)


def _float_only(op: OpDef, t: TensorType) -> None:
    if not t.dtype.is_float:
        raise op.error(f"expects a floating-point operand, got {t.dtype}")


def unary(name: str, fn: Callable[..., np.ndarray], doc: str, *, float_only: bool = True,
          attrs: dict[str, Attr] | None = None) -> type[OpDef]:
    """Declare and register a unary elementwise op `name` computing `fn(x, **attrs)`."""

    class Unary(OpDef):
        __doc__ = doc
        inputs = ("x",)
        fusion_kind = FusionKind.ELEMENTWISE

        def infer_type(self, x: Any, **attrs: Any) -> TensorType:
            x = tensor(x, self.name)
            if float_only:
                _float_only(self, x)
            return x

        def reference(self, x: np.ndarray, **attrs: Any) -> np.ndarray:
            return np.asarray(fn(x, **attrs)).astype(x.dtype, copy=False)

    Unary.name = name
    Unary.attrs = attrs or {}
    Unary.__name__ = Unary.__qualname__ = "".join(p.title() for p in name.split(".")[1].split("_"))
    return register_op(Unary)


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str, *,
           result: DType | None = None, float_only: bool = False) -> type[OpDef]:
    """Declare and register a broadcasting binary op; `result` fixes the output dtype
    (bool for comparisons), otherwise it is the operands' dtype."""

    class Binary(OpDef):
        __doc__ = doc
        inputs = ("a", "b")
        fusion_kind = FusionKind.BROADCAST

        def infer_type(self, a: Any, b: Any) -> TensorType:
            a, b = tensor(a, self.name), tensor(b, self.name)
            dtype = same_dtype(self.name, a, b)
            if float_only:
                _float_only(self, a)
            return TensorType(broadcast_shapes(self.name, a.shape, b.shape), result or dtype)

        def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            out = np.asarray(fn(a, b))
            return out.astype(result.numpy if result else a.dtype, copy=False)

    Binary.name = name
    Binary.__name__ = Binary.__qualname__ = "".join(p.title() for p in name.split(".")[1].split("_"))
    return register_op(Binary)


# -- arithmetic ------------------------------------------------------------------------
binary("ew.add", np.add, "a + b, broadcasting.")
binary("ew.sub", np.subtract, "a - b, broadcasting.")
binary("ew.mul", np.multiply, "a * b, broadcasting.")
unary("ew.exp", np.exp, "e ** x.")
unary("ew.relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), "max(x, 0).",
      float_only=False)


@register_op
class Cast(OpDef):
    """Convert the element type (C semantics: floats truncate toward zero into integers)."""

    name = "ew.cast"
    inputs = ("x",)
    attrs = {"dtype": Attr("dtype")}
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, *, dtype: DType) -> TensorType:
        return tensor(x, self.name).with_dtype(dtype)

    def reference(self, x: np.ndarray, *, dtype: DType) -> np.ndarray:
        return x.astype(dtype.numpy)
