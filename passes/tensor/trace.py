"""A schedule's trace: the primitives applied, by loop and buffer name, replayable.

    split(v0_i, 4) -> v0_i_o, v0_i_i
    reorder(v0_j, v0_i_i)
    pack(w, "1/8,0,1%8") -> w_packed

One line per primitive: its arguments (names bare, numbers bare, other strings quoted),
and after `->` the names of the loops or buffers it created. `Trace.apply(func)` replays
the trace on a fresh lowering of the same group and checks that every primitive creates
the names it created when recorded, so a trace in a tuning log either reproduces the
schedule exactly or fails loudly. Traces round-trip through this text and through JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlc.ir.tensor.stmt import PrimFunc
from dlc.passes.tensor.schedule_nest import ScheduleError, is_identifier

PRIMITIVES = ("split", "reorder", "fuse", "tile", "vectorize", "unroll", "parallel",
              "compute_at", "inline", "cache_write", "pack", "rfactor",
              "unswitch")

Arg = str | int


@dataclass(frozen=True)
class Instruction:
    """One primitive call: name, arguments (loop/buffer names, numbers, layouts), and the
    names of the loops or buffers it created."""

    primitive: str
    args: tuple[Arg, ...]
    outputs: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.primitive}({', '.join(_arg_text(a) for a in self.args)})"
        return f"{text} -> {', '.join(self.outputs)}" if self.outputs else text

    def to_json(self) -> dict[str, Any]:
        return {"primitive": self.primitive, "args": list(self.args),
                "outputs": list(self.outputs)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Instruction:
        return Instruction(_known(data["primitive"]), tuple(data.get("args", ())),
                           tuple(data.get("outputs", ())))


def _arg_text(a: Arg) -> str:
    if isinstance(a, bool) or not isinstance(a, (int, str)):
        raise TypeError(f"trace arguments are names, integers or strings, not {a!r}")
    if isinstance(a, int) or is_identifier(a):
        return str(a)
    return json.dumps(a)


def _known(primitive: str) -> str:
    if primitive not in PRIMITIVES:
        raise ValueError(f"unknown schedule primitive {primitive!r}; known: "
                         f"{', '.join(PRIMITIVES)}")
    return primitive


_LINE = re.compile(r"\s*(\w+)\s*\((.*)\)\s*(?:->\s*(.*?))?\s*\Z")
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(-?\d+)|([A-Za-z_]\w*))\s*(,|\Z)')


def _parse_args(text: str) -> tuple[Arg, ...]:
    args: list[Arg] = []
    pos = 0
    while pos < len(text) and text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot read the trace arguments {text!r} at {text[pos:]!r}")
        quoted, number, name = m.group(1), m.group(2), m.group(3)
        args.append(json.loads(quoted) if quoted else int(number) if number else name)
        pos = m.end()
    return tuple(args)


class Trace:
    """The primitives applied to a kernel, in order."""

    def __init__(self, instructions: Iterable[Instruction] = ()) -> None:
        self.instructions: list[Instruction] = list(instructions)

    def record(self, primitive: str, args: Sequence[Arg], outputs: Sequence[str] = ()) -> None:
        self.instructions.append(Instruction(_known(primitive), tuple(args), tuple(outputs)))

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self.instructions == other.instructions

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.instructions)

    def __repr__(self) -> str:
        return f"Trace({len(self)} primitives)"

    @staticmethod
    def parse(text: str) -> Trace:
        """The trace printed by `str(trace)` (blank lines and `#` comments are skipped)."""
        out = Trace()
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                raise ValueError(f"trace line {n} is not `primitive(args) -> outputs`: {line!r}")
            outputs = tuple(o.strip() for o in (m.group(3) or "").split(",") if o.strip())
            out.record(m.group(1), _parse_args(m.group(2)), outputs)
        return out

    def to_json(self) -> str:
        return json.dumps({"version": 1, "trace": [i.to_json() for i in self.instructions]},
                          indent=1)

    @staticmethod
    def from_json(text: str) -> Trace:
        data = json.loads(text)
        return Trace(Instruction.from_json(d) for d in data["trace"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @staticmethod
    def load(path: str | Path) -> Trace:
        return Trace.from_json(Path(path).read_text())

    def apply(self, func: PrimFunc) -> PrimFunc:
        """Replay on `func` (a fresh lowering of the same group); the scheduled kernel."""
        from dlc.passes.tensor.schedule import Schedule

        sch = Schedule(func)
        for ins in self.instructions:
            result = getattr(sch, _known(ins.primitive))(*ins.args)
            made = _names(result)
            if ins.outputs and made != ins.outputs:
                raise ScheduleError(ins.primitive, ", ".join(map(str, ins.args)),
                                    f"replay created {', '.join(made)} where the trace "
                                    f"recorded {', '.join(ins.outputs)}; the kernel differs "
                                    "from the one the trace was recorded on")
        return sch.func


def _names(result: Any) -> tuple[str, ...]:
    if result is None:
        return ()
    if isinstance(result, str):
        return (result,)
    return tuple(result)
