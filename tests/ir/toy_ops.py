"""Test-only ops for the IR tests: several outputs, a data-dependent size, every attribute
kind. They are registered only while a test asks for the `toy_ops` fixture, so the
registry that other tests see (and the op-coverage test) never contains them."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import floordiv, symbol
from dlc.ir.types import TensorType
from dlc.ops.registry import Attr, FusionKind, OpDef, tensor


class Split2(OpDef):
    """Split the last axis into two halves: two results."""

    name = "toy.split2"
    inputs = ("x",)
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, x: Any) -> tuple[TensorType, TensorType]:
        x = tensor(x, self.name)
        if x.rank == 0:
            raise self.error("expects rank >= 1")
        half = x.with_shape((*x.shape[:-1], floordiv(x.shape[-1], 2)))
        return half, half

    def reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = x.shape[-1] // 2
        return x[..., :h], x[..., h : 2 * h]


_COUNTER = itertools.count()


class Nonzero(OpDef):
    """Indices of the nonzero elements: `i64[K, rank]` with a fresh symbol K per call."""

    name = "toy.nonzero"
    inputs = ("x",)
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any) -> TensorType:
        x = tensor(x, self.name)
        return TensorType((symbol(f"nz{next(_COUNTER)}"), x.rank), DType.i64)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.argwhere(x).astype(np.int64)


class AllAttrs(OpDef):
    """Identity with one attribute of every schema kind."""

    name = "toy.attrs"
    inputs = ("x", "y?")
    attrs = {
        "i": Attr("int", default=0),
        "f": Attr("float", default=1.0),
        "flag": Attr("bool", default=False),
        "mode": Attr("str", default="same", choices=("same", "valid")),
        "label": Attr("str", default=""),
        "dt": Attr("dtype", default=DType.f32),
        "ints": Attr("ints", default=()),
        "floats": Attr("floats", default=()),
        "dims": Attr("dims", default=()),
        "extra": Attr("any", default=None),
        "maybe": Attr("int", default=None, optional=True),
    }
    fusion_kind = FusionKind.ELEMENTWISE

    def infer_type(self, x: Any, y: Any = None, **attrs: Any) -> TensorType:
        return tensor(x, self.name)

    def reference(self, x: np.ndarray, y: Any = None, **attrs: Any) -> np.ndarray:
        return x


class BroadcastTo(OpDef):
    """Broadcast to a shape given as a `dims` attribute (symbolic sizes allowed)."""

    name = "toy.broadcast_to"
    inputs = ("x",)
    attrs = {"shape": Attr("dims")}
    fusion_kind = FusionKind.BROADCAST

    def infer_type(self, x: Any, *, shape: tuple) -> TensorType:
        return tensor(x, self.name).with_shape(shape)


class Cat(OpDef):
    """Concatenate along axis 0 (variadic operands)."""

    name = "toy.cat"
    inputs = ("xs*",)
    fusion_kind = FusionKind.INJECTIVE

    def infer_type(self, *xs: Any) -> TensorType:
        first = tensor(xs[0], self.name)
        rows = sum((tensor(x, self.name).shape[0] for x in xs[1:]), first.shape[0])
        return first.with_shape((rows, *first.shape[1:]))

    def reference(self, *xs: np.ndarray) -> np.ndarray:
        return np.concatenate(xs)


TOY_OPS = [Split2(), Nonzero(), AllAttrs(), BroadcastTo(), Cat()]
