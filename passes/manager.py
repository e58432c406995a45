"""The pass manager: graph passes, their registry, the pass context, instruments, pipelines.

A graph pass is a named, documented function `Graph -> Graph`. Its class is a frozen
dataclass whose fields are the pass's options; its `name` is kebab-case (`fold-constants`)
and its class name the same words in CamelCase (`FoldConstants`):

    @register_pass
    @dataclass(frozen=True)
    class EliminateDeadCode(GraphPass):
        '''Remove nodes whose results nobody reads.'''

        name: ClassVar[str] = "eliminate-dead-code"

        def run(self, graph: Graph, ctx: PassContext) -> Graph: ...

A `Pipeline` is a list of configured passes; `Pipeline.for_level(opt_level, disable)`
builds the pipeline of an optimization level (see `LEVEL_OF`), and `run_pipeline` runs it.
A `PassContext` travels through every pass: it holds the instruments (verify, time, print,
dump), the log of rule firings and fusion refusals, and the annotations later stages read
(`fusion_plan`, `memory_plan`).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from dlc.errors import DLCError, VerificationError, closest
from dlc.ir.graph import Graph, Node
from dlc.ir.printer import print_graph

if TYPE_CHECKING:
    from dlc.passes.graph.fusion_plan import FusionPlan
    from dlc.passes.graph.plan_memory import MemoryPlan


class UnknownPassError(DLCError):
    """A pass name that no registered or planned pass has."""


# -- passes and their registry ---------------------------------------------------------


class GraphPass:
    """Base of graph passes: a named function `Graph -> Graph` with a docstring.

    Subclasses are `@dataclass(frozen=True)`; their fields are the options, so a configured
    pass prints as `fuse{naive=true}` and parses back from a pipeline string.
    """

    name: ClassVar[str] = ""

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        """Transform `graph`; return a new graph (or the same one when nothing changed)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run")

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return self.run(graph, ctx if ctx is not None else PassContext())

    def show(self, graph: Graph, ctx: PassContext) -> str:
        """The text of this pass's result, for `PrintAfter` and `DumpDir`.

        The graph's textual IR by default; passes that annotate rather than rewrite
        (fusion, memory planning) show their annotation too.
        """
        return print_graph(graph)

    @property
    def options(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        if not dataclasses.is_dataclass(self):
            return {}
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if value != default:
                out[f.name] = value
        return out

    def __str__(self) -> str:
        opts = self.options
        if not opts:
            return self.name
        text = ",".join(f"{k}={_option_text(v)}" for k, v in opts.items())
        return f"{self.name}{{{text}}}"


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PASSES: dict[str, type[GraphPass]] = {}


def camel_case(name: str) -> str:
    """`eliminate-dead-code` -> `EliminateDeadCode` (the class name a pass must have)."""
    return "".join(part.title() for part in name.split("-"))


def register_pass(cls: type[GraphPass]) -> type[GraphPass]:
    """Class decorator: add a graph pass to the registry under its kebab-case `name`."""
    name = cls.name
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), \
        f"{cls.__name__}: pass name {name!r} must be kebab-case"
    assert cls.__name__ == camel_case(name), \
        f"pass {name!r} must be declared as class {camel_case(name)}, not {cls.__name__}"
    assert name not in _PASSES or _PASSES[name] is cls, f"pass {name} registered twice"
    assert (cls.__doc__ or "").strip(), f"pass {name} needs a docstring"
    _PASSES[name] = cls
    return cls


def normalize_pass_name(name: str) -> str:
    """Pass names are kebab-case; the CLI also accepts `_` (`plan_memory`)."""
    return name.strip().replace("_", "-").lower()


def registered_passes() -> dict[str, type[GraphPass]]:
    """Every registered pass class by name (importing the pass modules first)."""
    _load_passes()
    return dict(sorted(_PASSES.items()))


def get_pass(name: str) -> type[GraphPass]:
    """The pass class called `name` (`_` accepted for `-`); UnknownPassError otherwise."""
    _load_passes()
    key = normalize_pass_name(name)
    if key in _PASSES:
        return _PASSES[key]
    raise _unknown(name)


def make_pass(name: str, **options: Any) -> GraphPass:
    """A configured pass: `make_pass("fuse", naive=True)`."""
    cls = get_pass(name)
    try:
        return cls(**options)
    except TypeError as err:
        fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        raise DLCError(f"pass {cls.name}: bad options {options}: {err}; its options are: "
                       f"{', '.join(fields) or 'none'}") from None


def _unknown(name: str) -> UnknownPassError:
    known = sorted(set(_PASSES) | set(LEVEL_OF))
    near = closest(normalize_pass_name(name), known)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return UnknownPassError(f"unknown pass {name!r}{hint}; the passes are: {', '.join(known)}")


def _load_passes() -> None:
    import dlc.passes.graph  # noqa: F401  (importing the package registers every pass)


# -- the pass context and its log ------------------------------------------------------


@dataclass(frozen=True)
class RuleFiring:
    """One application of a rewrite rule: which pass, which rule, on which node."""

    pass_name: str
    rule: str
    node: Node
    index: int  # the node's position in the graph the round started from

    def __str__(self) -> str:
        where = self.node.loc.describe() if self.node.loc else f"node {self.index}"
        return f'{self.pass_name}: "{self.rule}" on {self.node.op.name} at {where}'


@dataclass(frozen=True)
class FusionRefusal:
    """An edge producer -> consumer that fusion left between two groups, and why."""

    producer: Node
    consumer: Node
    reason: str
    message: str  # `cannot fuse %3 nn.conv2d with %4 nn.softmax: <reason>`

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Note:
    """Anything else a pass wants the user to be able to read (a skipped fold, a cap hit)."""

    pass_name: str
    message: str

    def __str__(self) -> str:
        return f"{self.pass_name}: {self.message}"


LogEntry = RuleFiring | FusionRefusal | Note


@dataclass
class PassContext:
    """What travels through a pipeline: instruments, the debug flag, the log, annotations.

    `debug=True` verifies the graph after every pass (as if `VerifyAfterEach()` were an
    instrument). `fusion_plan` and `memory_plan` are set by `fuse` and `plan-memory`
    (their naive variants included), for the lowering stage to read.
    """

    instruments: list[PassInstrument] = field(default_factory=list)
    debug: bool = False
    log: list[LogEntry] = field(default_factory=list)
    fusion_plan: FusionPlan | None = None
    memory_plan: MemoryPlan | None = None
    schedule: str = "naive"  # "default": the backend schedules each kernel by rules
    current_pass: str = ""

    def record_rewrite(self, rule: str, node: Node, index: int) -> None:
        """Log one rule firing (the rewrite engine calls this)."""
        self.log.append(RuleFiring(self.current_pass, rule, node, index))

    def record_refusal(self, refusal: FusionRefusal) -> None:
        """Log one edge that fusion refused (for `--why-not-fused`)."""
        self.log.append(refusal)

    def note(self, message: str) -> None:
        """Log a free-form note from the current pass."""
        self.log.append(Note(self.current_pass, message))

    def rule_firings(self, pass_name: str | None = None) -> list[RuleFiring]:
        """The rule firings, optionally of one pass only."""
        return [e for e in self.log if isinstance(e, RuleFiring)
                and (pass_name is None or e.pass_name == pass_name)]

    def fusion_refusals(self) -> list[FusionRefusal]:
        """The refused fusion edges of the last `fuse` run."""
        return [e for e in self.log if isinstance(e, FusionRefusal)]

    def notes(self) -> list[Note]:
        return [e for e in self.log if isinstance(e, Note)]


# -- instruments -----------------------------------------------------------------------


class PassInstrument:
    """Hooks around every pass of a pipeline (TVM's pass instruments). Override any."""

    def enter_pipeline(self, pipeline: Pipeline, graph: Graph, ctx: PassContext) -> None:
        """Called once before the first pass."""

    def before_pass(self, index: int, pass_: GraphPass, graph: Graph, ctx: PassContext) -> None:
        """Called before pass number `index` (1-based) runs."""

    def after_pass(self, index: int, pass_: GraphPass, before: Graph, after: Graph,
                   ctx: PassContext) -> None:
        """Called after pass number `index` returned `after`."""

    def exit_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        """Called once after the last pass."""


class VerifyAfterEach(PassInstrument):
    """Run the IR verifier (`dlc.ir.verifier.verify_graph`) on the input and after each pass.

    A failure names the pass that broke the graph. Without a verifier module (an early
    build) it checks nothing.
    """

    def enter_pipeline(self, pipeline: Pipeline, graph: Graph, ctx: PassContext) -> None:
        _verify(graph, "the pipeline's input")

    def after_pass(self, index: int, pass_: GraphPass, before: Graph, after: Graph,
                   ctx: PassContext) -> None:
        _verify(after, f"pass {pass_.name}")


def _verify(graph: Graph, where: str) -> None:
    try:
        from dlc.ir.verifier import verify_graph
    except ImportError:
        return
    try:
        verify_graph(graph)
    except DLCError as err:
        raise VerificationError(f"the graph is broken after {where}: {err}") from err


class Timing(PassInstrument):
    """Measure each pass's wall time; `records` holds `(pass name, seconds)` in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float]] = []
        self._start = 0.0

    def before_pass(self, index: int, pass_: GraphPass, graph: Graph, ctx: PassContext) -> None:
        self._start = time.perf_counter()

    def after_pass(self, index: int, pass_: GraphPass, before: Graph, after: Graph,
                   ctx: PassContext) -> None:
        self.records.append((pass_.name, time.perf_counter() - self._start))

    @property
    def total(self) -> float:
        return sum(s for _, s in self.records)

    def report(self) -> str:
        """A small table: one line per pass, then the total."""
        width = max([len(n) for n, _ in self.records] + [5])
        lines = [f"{name:<{width}}  {seconds * 1e3:9.3f} ms" for name, seconds in self.records]
        lines.append(f"{'total':<{width}}  {self.total * 1e3:9.3f} ms")
        return "\n".join(lines)


class PrintAfter(PassInstrument):
    """Print the IR after the named passes (`PrintAfter("fuse")`) or after all of them.

    `names` is a pass name, several names, or "all"; `_` is accepted for `-`.
    """

    def __init__(self, names: str | Iterable[str] = "all", stream: TextIO | None = None) -> None:
        if isinstance(names, str):
            names = [names]
        self.names = {normalize_pass_name(n) for n in names}
        for n in self.names - {"all"}:
            if n not in _PASSES and n not in LEVEL_OF:
                _load_passes()
                if n not in _PASSES:
                    raise _unknown(n)
        self.stream = stream

    def after_pass(self, index: int, pass_: GraphPass, before: Graph, after: Graph,
                   ctx: PassContext) -> None:
        if "all" in self.names or pass_.name in self.names:
            out = self.stream or sys.stdout
            out.write(f"// IR after {pass_}\n{pass_.show(after, ctx)}")


class DumpDir(PassInstrument):
    """Write `00_input.ir`, then `NN_<pass>.ir` after pass number NN when its text changed.

    The text is the pass's `show` (so `fuse` dumps the fused groups). A pass whose output
    prints the same as the last dump writes nothing (TVM #4067's idea): the files in the
    folder are exactly the stages that did something.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last = ""

    def enter_pipeline(self, pipeline: Pipeline, graph: Graph, ctx: PassContext) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._last = print_graph(graph)
        (self.path / "00_input.ir").write_text(self._last)

    def after_pass(self, index: int, pass_: GraphPass, before: Graph, after: Graph,
                   ctx: PassContext) -> None:
        text = pass_.show(after, ctx)
        if text != self._last:
            (self.path / f"{index:02d}_{pass_.name}.ir").write_text(text)
            self._last = text


# -- pipelines -------------------------------------------------------------------------

LEVEL_OF: dict[str, int] = {
    "fold-constants": 1,
    "eliminate-common-subexpressions": 1,
    "simplify": 1,
    "fold-batchnorm": 2,
    "reparameterize": 2,
    "recognize-spmm": 3,
    "sink-transposes": 2,
    "transform-layout": 2,
    "eliminate-dead-code": 1,
    "fuse": 2,
    "plan-memory": 3,
    "schedule": 1,
}
"""The planned graph passes in pipeline order, each with the lowest opt level that runs it.

O0 runs no optimization; O1 the cleanups (fold, CSE, simplify, DCE); O2 adds the
model-level rewrites (batch-norm folding, re-parameterization, transpose sinking, the
channels-last layout) and operator fusion; O3 adds sparse recognition and memory reuse.
A name whose pass is not registered (its module is absent from `passes/graph/`, as in a
trimmed build) is skipped, never stubbed; every pass listed here exists today.
"""

NAIVE_VARIANTS: tuple[str, ...] = ("fuse", "plan-memory", "schedule")
"""Stages a backend always needs: below their level, or when disabled, they run with
`naive=True` (one group per op; one buffer per intermediate), so "everything disabled"
is exactly O0 and an ablation switches off one optimization at a time."""


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of configured graph passes."""

    passes: tuple[GraphPass, ...]

    @staticmethod
    def for_level(opt_level: int, disable: Iterable[str] = ()) -> Pipeline:
        """The pipeline of `opt_level` (0-3) without the passes named in `disable`."""
        if opt_level not in (0, 1, 2, 3):
            raise DLCError(f"opt_level must be 0, 1, 2 or 3, not {opt_level!r}")
        off = check_pass_names(disable)
        available = registered_passes()
        passes: list[GraphPass] = []
        for name, level in LEVEL_OF.items():
            if name not in available:
                continue
            on = level <= opt_level and name not in off
            if on:
                passes.append(available[name]())
            elif name in NAIVE_VARIANTS:
                passes.append(available[name](naive=True))  # type: ignore[call-arg]
        return Pipeline(tuple(passes))

    @staticmethod
    def parse(text: str) -> Pipeline:
        """`"fold-constants,simplify{max_rounds=4},fuse"` -> a Pipeline."""
        passes = []
        entry = re.compile(r"\s*([A-Za-z0-9_-]+)\s*(?:\{([^}]*)\})?\s*(?:,|$)")
        pos = 0
        while pos < len(text.rstrip()):
            match = entry.match(text, pos)
            if match is None or match.end() == pos:
                raise DLCError(f"cannot read the pipeline {text!r} at character {pos + 1}: "
                               "write `name`, or `name{option=value,...}`, separated by commas")
            pos = match.end()
            options = {}
            for item in filter(None, (s.strip() for s in (match.group(2) or "").split(","))):
                key, _, value = item.partition("=")
                options[key.strip()] = _parse_option(value.strip())
            passes.append(make_pass(match.group(1), **options))
        return Pipeline(tuple(passes))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        """Run every pass in order under `ctx` (a fresh context if None)."""
        ctx = ctx if ctx is not None else PassContext()
        instruments = list(ctx.instruments)
        if ctx.debug and not any(isinstance(i, VerifyAfterEach) for i in instruments):
            instruments.insert(0, VerifyAfterEach())
        for inst in instruments:
            inst.enter_pipeline(self, graph, ctx)
        for index, pass_ in enumerate(self.passes, start=1):
            for inst in instruments:
                inst.before_pass(index, pass_, graph, ctx)
            ctx.current_pass = pass_.name
            try:
                after = pass_.run(graph, ctx)
            finally:
                ctx.current_pass = ""
            for inst in instruments:
                inst.after_pass(index, pass_, graph, after, ctx)
            graph = after
        for inst in instruments:
            inst.exit_pipeline(graph, ctx)
        return graph

    def __str__(self) -> str:
        return ",".join(str(p) for p in self.passes)


def _parse_option(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip("\"'")


def check_pass_names(names: Iterable[str]) -> set[str]:
    """Normalize pass names (`_` -> `-`); UnknownPassError for a name no pass has.

    Planned passes that this build does not have yet are accepted (disabling them is a
    no-op), so a command line written for a fuller build still runs.
    """
    _load_passes()
    out = set()
    for name in names:
        key = normalize_pass_name(name)
        if key not in _PASSES and key not in LEVEL_OF:
            raise _unknown(name)
        out.add(key)
    return out


def run_pipeline(graph: Graph, opt_level: int = 3, disable: Sequence[str] = (),
                 ctx: PassContext | None = None) -> Graph:
    """Optimize `graph` with the pipeline of `opt_level`, minus the passes in `disable`.

    The fusion and memory plans are left in `ctx` (`ctx.fusion_plan`, `ctx.memory_plan`).
    """
    return Pipeline.for_level(opt_level, disable).run(graph, ctx)
