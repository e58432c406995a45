"""The pass manager: registry, pipelines per opt level, disable, instruments."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from dlc.errors import DLCError, VerificationError
from dlc.ir.graph import Graph, Node
from dlc.passes import (
    LEVEL_OF,
    DumpDir,
    GraphPass,
    PassContext,
    Pipeline,
    PrintAfter,
    Timing,
    UnknownPassError,
    VerifyAfterEach,
    get_pass,
    make_pass,
    registered_passes,
    run_pipeline,
)
from dlc.passes.manager import NAIVE_VARIANTS, register_pass
from tests.passes.helpers import assert_same_results, ir

GRAPH = """
graph @f(%x: f32[4, 8]) -> (f32[4, 8]) {
  %0 = ew.mul(%x, const(1.0) : f32[]) : f32[4, 8]
  %1 = ew.exp(%0) : f32[4, 8]
  %2 = ew.exp(%0) : f32[4, 8]
  %3 = ew.add(%1, %2) : f32[4, 8]
  %4 = ew.relu(%3) : f32[4, 8]
  %5 = ew.neg(%4) : f32[4, 8]
  return %5
}
"""


def test_registered_passes_follow_the_naming_rules() -> None:
    passes = registered_passes()
    assert {"fold-constants", "eliminate-dead-code", "eliminate-common-subexpressions",
            "simplify", "fuse", "plan-memory"} <= set(passes)
    for name, cls in passes.items():
        assert cls.name == name
        assert cls.__name__ == "".join(w.title() for w in name.split("-"))
        assert (cls.__doc__ or "").strip()
        assert name in LEVEL_OF, f"{name} is in no pipeline"


def test_lookup_accepts_underscores() -> None:
    assert get_pass("plan_memory") is get_pass("plan-memory")
    assert get_pass("Eliminate_Dead_Code").name == "eliminate-dead-code"


def test_unknown_pass_name_lists_the_passes() -> None:
    with pytest.raises(UnknownPassError) as err:
        get_pass("fusee")
    message = str(err.value)
    assert "did you mean fuse" in message
    assert "fold-constants" in message and "plan-memory" in message
    assert isinstance(err.value, DLCError)


def test_unknown_name_in_disable_is_an_error() -> None:
    with pytest.raises(UnknownPassError, match="unknown pass 'no-such-pass'"):
        run_pipeline(ir(GRAPH), 3, disable=["no-such-pass"])


def test_bad_options_are_an_error() -> None:
    with pytest.raises(DLCError, match="its options are: naive, max_group_size"):
        make_pass("fuse", bogus=1)


def test_pipelines_per_level() -> None:
    assert str(Pipeline.for_level(0)) == \
        "fuse{naive=true},plan-memory{naive=true},schedule{naive=true}"
    o1 = Pipeline.for_level(1)
    assert o1.names == ["fold-constants", "eliminate-common-subexpressions", "simplify",
                        "eliminate-dead-code", "fuse", "plan-memory", "schedule"]
    assert str(o1).endswith("fuse{naive=true},plan-memory{naive=true},schedule")
    o2 = str(Pipeline.for_level(2))
    assert o2.endswith(",fuse,plan-memory{naive=true},schedule")
    o3 = str(Pipeline.for_level(3))
    assert o3.endswith(",fuse,plan-memory,schedule")
    for level in range(4):  # only registered passes appear: no stubs
        assert set(Pipeline.for_level(level).names) <= set(registered_passes())


def test_opt_level_is_checked() -> None:
    with pytest.raises(DLCError, match="opt_level must be"):
        Pipeline.for_level(4)


def test_disable_by_name_with_either_spelling() -> None:
    a = Pipeline.for_level(3, disable=["eliminate_common_subexpressions", "plan_memory"])
    assert "eliminate-common-subexpressions" not in a.names
    assert str(a).endswith(",fuse,plan-memory{naive=true},schedule")
    b = Pipeline.for_level(3, disable=["fuse"])
    assert str(b).endswith("fuse{naive=true},plan-memory,schedule")
    c = Pipeline.for_level(3, disable=["schedule"])
    assert str(c).endswith(",plan-memory,schedule{naive=true}")


def test_everything_disabled_equals_o0() -> None:
    everything = list(LEVEL_OF)
    assert str(Pipeline.for_level(3, disable=everything)) == str(Pipeline.for_level(0))
    for name in NAIVE_VARIANTS:  # a naive variant always runs: a backend needs its plan
        assert name in Pipeline.for_level(3, disable=everything).names


def test_pipeline_parse_round_trips() -> None:
    text = "fold-constants,simplify{max_rounds=4},fuse{naive=true},plan_memory"
    pipeline = Pipeline.parse(text)
    assert str(pipeline) == "fold-constants,simplify{max_rounds=4},fuse{naive=true},plan-memory"
    assert str(Pipeline.parse(str(pipeline))) == str(pipeline)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_every_level_keeps_the_results_and_leaves_plans(level: int) -> None:
    graph = ir(GRAPH)
    ctx = PassContext(debug=True)
    out = run_pipeline(graph, level, ctx=ctx)
    assert_same_results(graph, out)
    assert ctx.fusion_plan is not None and ctx.memory_plan is not None
    assert ctx.fusion_plan.naive == (level < 2)
    assert ctx.memory_plan.naive == (level < 3)
    if level == 0:
        assert out is graph
    else:
        assert len(out.nodes) == 4  # x*1 gone, the two exps merged


def test_timing_records_each_pass() -> None:
    timing = Timing()
    run_pipeline(ir(GRAPH), 3, ctx=PassContext(instruments=[timing]))
    assert [n for n, _ in timing.records] == Pipeline.for_level(3).names
    assert all(s >= 0 for _, s in timing.records)
    assert "total" in timing.report()


def test_print_after_named_passes() -> None:
    out = io.StringIO()
    run_pipeline(ir(GRAPH), 3, ctx=PassContext(instruments=[PrintAfter("fuse", out)]))
    text = out.getvalue()
    assert text.startswith("// IR after fuse\n")
    assert text.count("// IR after") == 1
    assert "group #0 fused_" in text


def test_print_after_all() -> None:
    out = io.StringIO()
    run_pipeline(ir(GRAPH), 1, ctx=PassContext(instruments=[PrintAfter("all", out)]))
    assert out.getvalue().count("// IR after") == len(Pipeline.for_level(1).passes)


def test_print_after_unknown_pass_is_an_error() -> None:
    with pytest.raises(UnknownPassError):
        PrintAfter("fusion")


def test_dump_dir_writes_only_changed_stages(tmp_path: Path) -> None:
    graph = ir("""
        graph @f(%x: f32[4]) -> (f32[4]) {
          %0 = ew.mul(%x, const(1.0) : f32[]) : f32[4]
          %1 = ew.relu(%0) : f32[4]
          return %1
        }""")
    run_pipeline(graph, 1, ctx=PassContext(instruments=[DumpDir(tmp_path)]))
    files = sorted(p.name for p in tmp_path.iterdir())
    # fold-constants (1), CSE (2) and DCE (4) change nothing; simplify (3) removes x * 1;
    # fuse (5) shows the groups; plan-memory (6) adds the memory plan; schedule (7) notes
    # the loop schedules.
    assert files == ["00_input.ir", "03_simplify.ir", "05_fuse.ir", "06_plan-memory.ir",
                     "07_schedule.ir"]
    assert (tmp_path / "00_input.ir").read_text() == str(graph)
    assert "ew.mul" not in (tmp_path / "03_simplify.ir").read_text()
    assert "memory plan" in (tmp_path / "06_plan-memory.ir").read_text()


@dataclass(frozen=True)
class BreakTypes(GraphPass):
    """A broken pass for the tests: it returns a graph that does not produce its outputs."""

    name: ClassVar[str] = "break-types"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return graph.with_nodes(graph.nodes[1:])


def test_verify_after_each_names_the_broken_pass() -> None:
    graph = ir(GRAPH)
    with pytest.raises(VerificationError, match="after pass break-types"):
        Pipeline((BreakTypes(),)).run(graph, PassContext(instruments=[VerifyAfterEach()]))
    with pytest.raises(VerificationError, match="after pass break-types"):
        Pipeline((BreakTypes(),)).run(graph, PassContext(debug=True))
    Pipeline((BreakTypes(),)).run(graph, PassContext())  # not checked outside debug mode


def test_register_pass_enforces_names() -> None:
    with pytest.raises(AssertionError, match="must be declared as class"):
        @register_pass
        @dataclass(frozen=True)
        class Wrong(GraphPass):
            """Doc."""

            name: ClassVar[str] = "right-name"

    with pytest.raises(AssertionError, match="kebab-case"):
        @register_pass
        @dataclass(frozen=True)
        class Bad_Name(GraphPass):  # noqa: N801
            """Doc."""

            name: ClassVar[str] = "Bad_Name"


def test_passes_log_rule_firings_with_their_pass_name() -> None:
    ctx = PassContext()
    run_pipeline(ir(GRAPH), 1, ctx=ctx)
    firings = ctx.rule_firings("simplify")
    assert [f.rule for f in firings] == ["x * 1 -> x"]
    assert str(firings[0]).startswith('simplify: "x * 1 -> x" on ew.mul at node 0')


def test_nodes_are_reused_not_copied() -> None:
    graph = ir(GRAPH)
    out = run_pipeline(graph, 1)
    old = set(graph.nodes)
    assert out.nodes[-1] in old  # the untouched tail is the same Node object
    assert isinstance(out.nodes[-1], Node)


def test_a_malformed_pipeline_is_an_error() -> None:
    with pytest.raises(DLCError, match="cannot read the pipeline"):
        Pipeline.parse("fold-constants,fuse{naive=true")
    with pytest.raises(DLCError, match="cannot read the pipeline"):
        Pipeline.parse("fold-constants,,fuse")
    with pytest.raises(UnknownPassError):
        Pipeline.parse("fold-constants,fusion")
