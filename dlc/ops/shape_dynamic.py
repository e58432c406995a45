"""Shape ops whose result sizes are known only at run time (`shape.*_dynamic`).

ONNX passes as operands what usually is an attribute: a reshape's target shape, pads,
slice bounds, split sizes, axes. When such an operand is not a constant the frontend
can fold, the result sizes that depend on it are new size symbols (`fresh_size`), bound
when the op runs. `dynamic_shape_op` declares such an op from a rank rule and a NumPy
function; `create.full_dynamic` and `reduce.topk_dynamic` use it too.

These ops are OPAQUE and have no lowering: the interpreter runs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.ir.symbolic import Dim
from dlc.ir.types import TensorType
from dlc.ops.registry import Attr, FusionKind, OpDef, register_op, tensor

_FRESH = [0]


def fresh_size(prefix: str) -> Dim:
    """A new size symbol for a data-dependent length (`nonzero`'s count, `unique`'s)."""
    from dlc.ir.symbolic import _SYMBOLS, symbol

    _FRESH[0] += 1
    while f"{prefix}{_FRESH[0]}" in _SYMBOLS:  # a parsed graph may already use the name
        _FRESH[0] += 1
    return symbol(f"{prefix}{_FRESH[0]}")


@register_op
class PadDynamic(OpDef):
    """ONNX Pad with `pads` (begins, then ends; negative crops) and the constant `value`
    as run-time operands; every result size is a new symbol."""

    name = "shape.pad_dynamic"
    inputs = ("x", "pads", "value")
    attrs = {"mode": Attr("str", "constant", choices=("constant", "reflect", "edge", "wrap"))}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, x: Any, pads: Any, value: Any, *, mode: str) -> TensorType:
        x = tensor(x, self.name)
        return x.with_shape(tuple(fresh_size("padded") for _ in range(x.rank)))

    def reference(self, x: np.ndarray, pads: np.ndarray, value: np.ndarray, *,
                  mode: str) -> np.ndarray:
        p = [int(v) for v in pads.reshape(-1)]
        r = x.ndim
        widths = [(max(p[i], 0), max(p[i + r], 0)) for i in range(r)]
        if mode == "constant":
            out = np.pad(x, widths, constant_values=np.asarray(value).reshape(-1)[0])
        else:
            out = np.pad(x, widths, mode=mode)
        crop = tuple(slice(-min(p[i], 0), out.shape[i] + min(p[i + r], 0)) for i in range(r))
        return np.ascontiguousarray(out[crop])


def dynamic_shape_op(name: str, inputs: tuple[str, ...], rank: Any, fn: Any, doc: str,
                     attrs: dict[str, Attr] | None = None, dtype: Any = None,
                     outputs: Any = None) -> type[OpDef]:
    """Declare an op whose result sizes come from operand values: every result size is a
    new symbol. `rank(x_type, *operand types, **attrs)` gives the result rank (static,
    from operand lengths), `fn(x, *operands, **attrs)` computes the result; `outputs`
    (a function of the same arguments as `rank`) gives the number of results if not 1,
    `dtype` their dtype (one, or one per result; default the first operand's)."""

    class DynamicShape(OpDef):
        __doc__ = doc
        fusion_kind = FusionKind.OPAQUE

        def infer_type(self, *types: Any, **kw: Any) -> Any:
            types = tuple(tensor(t, self.name) for t in types)
            for t in types[1:]:
                if t.rank > 1 or (t.rank == 1 and not isinstance(t.shape[0], int)):
                    raise self.error(f"shape operands must be scalars or static-length "
                                     f"vectors, got {t}")
            r = rank(*types, **kw)
            count = outputs(*types, **kw) if outputs else 1
            dtypes = dtype(*types, **kw) if dtype else types[0].dtype
            if not isinstance(dtypes, tuple):
                dtypes = (dtypes,) * count
            made = tuple(TensorType(tuple(fresh_size("size") for _ in range(r)), d)
                         for d in dtypes)
            return made if outputs else made[0]

        def reference(self, *arrays: np.ndarray, **kw: Any) -> Any:
            return fn(*arrays, **kw)

    DynamicShape.name = name
    DynamicShape.inputs = inputs
    DynamicShape.attrs = attrs or {}
    DynamicShape.__name__ = DynamicShape.__qualname__ = "".join(
        p.title() for p in name.split(".")[1].split("_"))
    return register_op(DynamicShape)


def as_ints(a: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _reshape_to(x: np.ndarray, shape: np.ndarray, *, allowzero: bool) -> np.ndarray:
    target = as_ints(shape)
    if not allowzero:
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return x.reshape(target)


def _slice_to(x: np.ndarray, starts: np.ndarray, ends: np.ndarray, axes: np.ndarray,
              steps: np.ndarray) -> np.ndarray:
    index = [slice(None)] * x.ndim
    lo, hi = as_ints(starts), as_ints(ends)
    ax = as_ints(axes) if axes.size else list(range(len(lo)))
    st = as_ints(steps) if steps.size else [1] * len(lo)
    for a, s, e, k in zip(ax, lo, hi, st):
        index[a % x.ndim] = slice(s, e, k)
    return x[tuple(index)].copy()


def _unsqueeze_at(x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    rank = x.ndim + axes.size
    out = x
    for a in sorted(v % rank for v in as_ints(axes)):
        out = np.expand_dims(out, a)
    return out


def _split_at(x: np.ndarray, sizes: np.ndarray, *, axis: int) -> tuple[np.ndarray, ...]:
    return tuple(np.split(x, np.cumsum(as_ints(sizes))[:-1], axis=axis))


dynamic_shape_op(
    "shape.reshape_dynamic", ("x", "shape"), lambda x, s, **_: s.shape[0], _reshape_to,
    "ONNX Reshape to a shape known at run time (0 copies the input's size unless "
    "`allowzero`, -1 is inferred).", {"allowzero": Attr("bool", False)})
dynamic_shape_op(
    "shape.expand_dynamic", ("x", "shape"), lambda x, s: max(x.rank, s.shape[0]),
    lambda x, s: np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(as_ints(s)))).copy(),
    "ONNX Expand to a shape known at run time (broadcasting both ways).")
dynamic_shape_op(
    "shape.tile_dynamic", ("x", "repeats"), lambda x, r: x.rank,
    lambda x, r: np.tile(x, as_ints(r)), "ONNX Tile with repeats known at run time.")
dynamic_shape_op(
    "shape.slice_dynamic", ("x", "starts", "ends", "axes", "steps"), lambda x, *_: x.rank,
    _slice_to, "ONNX Slice with bounds known at run time (empty axes or steps: defaults).")
dynamic_shape_op(
    "shape.unsqueeze_dynamic", ("x", "axes"), lambda x, a: x.rank + a.shape[0], _unsqueeze_at,
    "ONNX Unsqueeze with axes known at run time.")
dynamic_shape_op(
    "shape.squeeze_dynamic", ("x", "axes"), lambda x, a: x.rank - a.shape[0],
    lambda x, a: np.squeeze(x, tuple(v % x.ndim for v in as_ints(a))),
    "ONNX Squeeze with axes known at run time.")
dynamic_shape_op(
    "shape.split_dynamic", ("x", "sizes"), lambda x, s, **_: x.rank, _split_at,
    "ONNX Split into pieces whose sizes are known at run time.", {"axis": Attr("int", 0)},
    outputs=lambda x, s, **_: s.shape[0])
