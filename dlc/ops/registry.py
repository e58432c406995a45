"""The op registry: one declaration per op, the single source of truth for everything.

An op is a subclass of `OpDef` decorated with `@register_op`. Its declaration gives:

* `name` — `family.op` (`ew.add`, `nn.conv2d`, `linalg.matmul`, `sparse.spmm`);
* `inputs` — operand names; a trailing `?` marks an optional operand (it may be omitted
  from the end), a trailing `*` a variadic one (`concat`'s `xs*`);
* `attrs` — the attribute schema (`Attr(kind, default)`), used by the builder, printer,
  parser and verifier;
* `infer_type` — output type(s) from input types and attributes, symbolic shapes included;
* `reference` — a NumPy implementation; the interpreter is built from these;
* `fusion_kind` — how the fusion pass may group it (TVM's op patterns).

Later stages attach to the same declaration (lowering rules register against the op
object), so no stage keeps its own list of ops.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlc.errors import AttributeError_, MissingOp, TypeInferenceError, UnsupportedOpError, closest
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import Dim, dim
from dlc.ir.types import SparseTensorType, TensorType, ValueType


class FusionKind(enum.Enum):
    """How an op may be fused, from cheapest to most restrictive (TVM's OpPatternKind)."""

    ELEMENTWISE = "elementwise"  # out[i] = f(in[i]) on same-shaped operands
    BROADCAST = "broadcast"  # elementwise with broadcasting of some operand
    INJECTIVE = "injective"  # each output element reads one input element (reshape, slice)
    REDUCTION = "reduction"  # reduces along axes (sum, softmax, norms)
    OUT_FUSABLE = "out_fusable"  # conv, matmul: may absorb an elementwise epilogue
    OPAQUE = "opaque"  # cannot be fused (sort, topk, scatter, sparse ops)


REQUIRED = object()  # sentinel: the attribute has no default


ATTR_KINDS = ("int", "float", "bool", "str", "dtype", "ints", "floats", "dims", "any")


@dataclass(frozen=True)
class Attr:
    """An attribute in an op's schema.

    `kind` is one of: int, float, bool, str, dtype, ints (tuple of int), floats (tuple of
    float), dims (tuple of int-or-symbolic sizes), any (a nested literal). `optional`
    allows `None`. `choices` restricts a str attribute.
    """

    kind: str
    default: Any = REQUIRED
    optional: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        assert self.kind in ATTR_KINDS, f"unknown attribute kind {self.kind!r}"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def coerce(self, op: str, name: str, value: Any) -> Any:
        """Validate and normalize a value (lists become tuples, numpy scalars Python)."""
        if value is None:
            if self.optional or self.default is None:
                return None
            raise AttributeError_(f"{op}: attribute {name!r} may not be none")
        bad = f"{op}: attribute {name!r} expects {self.kind}, got {value!r}"
        kind = self.kind
        if kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise AttributeError_(bad)
            return int(value)
        if kind == "float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise AttributeError_(bad)
            return float(value)
        if kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise AttributeError_(bad)
            return bool(value)
        if kind == "str":
            if not isinstance(value, str):
                raise AttributeError_(bad)
            if self.choices and value not in self.choices:
                raise AttributeError_(f"{op}: attribute {name!r} must be one of {self.choices}, "
                                      f"got {value!r}")
            return value
        if kind == "dtype":
            if isinstance(value, str):
                return DType.parse(value)
            if not isinstance(value, DType):
                raise AttributeError_(bad)
            return value
        if kind in ("ints", "floats", "dims"):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise AttributeError_(bad)
            item = Attr({"ints": "int", "floats": "float", "dims": "int"}[kind])
            if kind == "dims":
                return tuple(dim(v) if not isinstance(v, (int, np.integer)) else int(v)
                             for v in value)
            return tuple(item.coerce(op, name, v) for v in value)
        return _freeze(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class FrozenAttrs(Mapping[str, Any]):
    """An immutable, hashable attribute mapping in schema order."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> None:
        self._items = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple((k, _hashable(v)) for k, v in self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenAttrs({self._items!r})"


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


class OpDef:
    """Base class of op declarations. Subclass, fill the class attributes, decorate."""

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    attrs: ClassVar[dict[str, Attr]] = {}
    fusion_kind: ClassVar[FusionKind] = FusionKind.OPAQUE

    # -- to override -------------------------------------------------------------------
    def infer_type(self, *inputs: ValueType, **attrs: Any) -> ValueType | tuple[ValueType, ...]:
        """Output type(s) from input types and (validated) attributes."""
        raise NotImplementedError(f"{self.name} has no type rule")

    def reference(self, *inputs: Any, **attrs: Any) -> Any:
        """The NumPy reference implementation (the oracle); returns an array or a tuple."""
        raise NotImplementedError(f"{self.name} has no reference implementation")

    # Lowering (optional; an op without it raises UnsupportedOpError in the backends):
    #   compute(ctx, *inputs: Tensor, **attrs) -> Tensor | tuple[Tensor, ...]
    # gives the tensor-IR compute definition (dlc.ir.tensor.compute), TE style, so the
    # lowering can inline it into a fused group. `ctx` (dlc.ir.tensor.context) has the
    # node's output types and a namer.
    compute: Any = None

    @property
    def lowerable(self) -> bool:
        """True when the op declares a tensor-IR compute definition."""
        return self.compute is not None

    # -- derived from the declaration --------------------------------------------------
    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def doc(self) -> str:
        return (type(self).__doc__ or "").strip().split("\n")[0]

    def arity(self) -> tuple[int, int | None]:
        """(minimum, maximum) number of operands; maximum None means variadic."""
        lo, hi = 0, 0
        for spec in self.inputs:
            if spec.endswith("*"):
                return lo, None
            hi += 1
            if not spec.endswith("?"):
                lo = hi
        return lo, hi

    def check_arity(self, n: int) -> None:
        lo, hi = self.arity()
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any'}"
            raise TypeInferenceError(self.name, f"takes {want} operands "
                                     f"({', '.join(self.inputs)}), got {n}")

    def check_attrs(self, attrs: Mapping[str, Any]) -> FrozenAttrs:
        """Validate attributes against the schema, fill defaults, return them frozen."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise AttributeError_(
                f"{self.name}: unknown attribute(s) {', '.join(sorted(unknown))}; "
                f"the schema has: {', '.join(self.attrs) or 'no attributes'}")
        out = {}
        for key, spec in self.attrs.items():
            if key in attrs:
                out[key] = spec.coerce(self.name, key, attrs[key])
            elif spec.required:
                raise AttributeError_(f"{self.name}: missing required attribute {key!r}")
            else:
                out[key] = spec.default if spec.default is None else spec.coerce(
                    self.name, key, spec.default)
        return FrozenAttrs(out)

    def output_types(self, inputs: Sequence[ValueType], attrs: Mapping[str, Any]
                     ) -> tuple[ValueType, ...]:
        """Checked type inference: always a tuple of output types."""
        self.check_arity(len(inputs))
        out = self.infer_type(*inputs, **attrs)
        return out if isinstance(out, tuple) else (out,)

    def error(self, message: str) -> TypeInferenceError:
        """A type error that names this op (for `raise self.error(...)` in rules)."""
        return TypeInferenceError(self.name, message)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


_REGISTRY: dict[str, OpDef] = {}


def register_op(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: instantiate the declaration and add it to the registry."""
    assert cls.name and "." in cls.name, f"{cls.__name__}: op name must be 'family.op'"
    assert cls.name not in _REGISTRY, f"op {cls.name} declared twice"
    _REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str) -> OpDef:
    """The declaration of op `name`; an UnsupportedOpError with close names if unknown."""
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedOpError(
            "registry", [MissingOp(name, nearby=tuple(closest(name, _REGISTRY)))]) from None


def all_ops() -> list[OpDef]:
    """Every registered op, sorted by name."""
    _load_families()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_families() -> None:
    import dlc.ops  # noqa: F401  (importing the package registers every family)


# -- helpers for type rules --------------------------------------------------------------


def tensor(t: ValueType, op: str) -> TensorType:
    """Assert an operand is dense, with a clear error otherwise."""
    if isinstance(t, SparseTensorType):
        raise TypeInferenceError(op, f"expects a dense tensor, got sparse {t}")
    return t


def float_tensor(op: OpDef, t: Any) -> TensorType:
    """A dense floating-point operand, or a type error naming the op."""
    t = tensor(t, op.name)
    if not t.dtype.is_float:
        raise op.error(f"expects a floating-point operand, got {t.dtype}")
    return t


def check_len(op: OpDef, name: str, values: Sequence[Any], n: int) -> None:
    """Per-spatial-axis attributes (stride, padding...) must have one entry per axis."""
    if len(values) != n:
        raise op.error(f"{name}={list(values)} needs {n} entries, one per spatial axis")


def normalize_axis(axis: int, rank: int, op: str, scalar_ok: bool = True) -> int:
    """Map a possibly negative axis into [0, rank).

    A rank-0 operand accepts axis 0 or -1 (as torch's reductions and softmax do) unless
    `scalar_ok` is False: ops that index the axis (concat, split, slice) need a real one.
    """
    if rank == 0 and not scalar_ok:
        raise TypeInferenceError(op, f"axis {axis} needs an operand of rank 1 or more")
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise TypeInferenceError(op, f"axis {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


def normalize_axes(axes: Sequence[int] | None, rank: int, op: str,
                   scalar_ok: bool = True) -> tuple[int, ...]:
    """Normalize a list of axes (None means all), sorted and deduplicated."""
    if axes is None:
        return tuple(range(rank))
    return tuple(sorted({normalize_axis(a, rank, op, scalar_ok) for a in axes}))


def broadcast_shapes(op: str, *shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting of (possibly symbolic) shapes."""
    from dlc.ir.symbolic import dims_equal

    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        d: Dim = 1
        for s in shapes:
            k = i - (rank - len(s))
            if k < 0:
                continue
            e = s[k]
            if e == 1:
                continue
            if d == 1:
                d = e
            elif not dims_equal(d, e):
                raise TypeInferenceError(op, f"shapes {' and '.join(_shape_str(x) for x in shapes)}"
                                         " do not broadcast")
        out.append(d)
    return tuple(out)


def _shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def same_dtype(op: str, *types: TensorType) -> DType:
    """The common dtype of operands that must agree (frontends insert casts)."""
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise TypeInferenceError(op, f"operand dtypes differ: {', '.join(sorted(map(str, dtypes)))}"
                                 "; insert ew.cast")
    return types[0].dtype
