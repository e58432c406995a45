"""One error hierarchy for dlc: every message says what failed, where, and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class DLCError(Exception):
    """Base class of every error dlc raises on purpose."""


class IRError(DLCError):
    """The IR is malformed (a verifier failure, a bad attribute, an unknown symbol)."""


class ParseError(IRError):
    """The textual IR could not be parsed; the message points at line and column."""

    def __init__(self, message: str, text: str = "", pos: int = 0) -> None:
        if text:
            line_no = text.count("\n", 0, pos) + 1
            line_start = text.rfind("\n", 0, pos) + 1
            line_end = text.find("\n", pos)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            col = pos - line_start
            message = f"{message} (line {line_no}, column {col + 1})\n  {line}\n  {' ' * col}^"
        super().__init__(message)


class VerificationError(IRError):
    """The verifier found a broken invariant (types, SSA, topological order)."""


class TypeInferenceError(IRError):
    """An op's type rule rejected its operands or attributes."""

    def __init__(self, op: str, message: str) -> None:
        super().__init__(f"{op}: {message}")
        self.op = op


class AttributeError_(IRError):
    """An attribute is missing, unknown, or of the wrong type for its op."""


_OVERLOADS = {"default", "Tensor", "Scalar", "int", "dim", "vec", "self", "out"}


def _core(name: str) -> str:
    """The op's own name: `aten._fft_r2c.default` -> `fft_r2c`, `nn.conv2d` -> `conv2d`."""
    parts = name.split(".")
    if parts and parts[0] in ("aten", "prims", "torch"):
        parts = parts[1:]
    if len(parts) > 1 and (parts[-1] in _OVERLOADS or parts[-1][:1].isupper()
                           or "_" in parts[-1] and parts[-1].split("_")[0] in _OVERLOADS):
        parts = parts[:-1]
    if len(parts) > 1 and "." in name and name.split(".")[0] not in ("aten", "prims"):
        parts = parts[1:]  # a registry family prefix: ew.relu -> relu
    return parts[-1].strip("_").lower() if parts else name.lower()


def closest(name: str, candidates: Iterable[str], n: int = 3,
            cutoff: float = 0.7) -> list[str]:
    """The `n` candidates that look most like `name` (for "did you mean" hints), compared
    on the op's own name, not on a shared prefix or overload (`aten.X.default`)."""
    candidates = list(candidates)
    core = _core(name)
    by_core: dict[str, list[str]] = {}
    for c in candidates:
        by_core.setdefault(_core(c), []).append(c)
    found: list[str] = []
    for match in difflib.get_close_matches(core, list(by_core), n=n, cutoff=cutoff):
        found.extend(c for c in by_core[match] if c not in found)
    if len(found) < n and len(core) >= 3:
        for c in candidates:  # a shared stem: aten.relu_ -> ew.relu
            if c not in found and (core in _core(c) or _core(c) in core) and len(_core(c)) >= 3:
                found.append(c)
            if len(found) >= n:
                break
    return found[:n]


@dataclass(frozen=True)
class MissingOp:
    """One op that a frontend or backend cannot handle, with where it was seen."""

    op: str
    where: str = ""  # source location or node name
    nearby: tuple[str, ...] = ()


class UnsupportedOpError(DLCError):
    """Ops with no conversion or lowering, collected and reported all at once."""

    def __init__(
        self,
        component: str,
        missing: Iterable[MissingOp],
        hint: str = "",
    ) -> None:
        self.component = component
        self.missing = tuple(missing)
        lines = [f"{component}: {len(self.missing)} unsupported op(s):"]
        for m in self.missing:
            where = f" at {m.where}" if m.where else ""
            near = f" (supported ops with similar names: {', '.join(m.nearby)})" if m.nearby else ""
            lines.append(f"  - {m.op}{where}{near}")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    @property
    def ops(self) -> list[str]:
        return [m.op for m in self.missing]


class InputError(DLCError):
    """A compiled model was called with inputs of the wrong number, shape or dtype."""


class AOTError(DLCError):
    """A model cannot be written as a library, or the C toolchain failed."""


class FrontendError(DLCError):
    """A frontend could not import a model for a reason other than a missing op."""


def describe_attrs(attrs: Mapping[str, object]) -> str:
    """Short `k=v` rendering of attributes for error messages."""
    return ", ".join(f"{k}={v!r}" for k, v in attrs.items())
