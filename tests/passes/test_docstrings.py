"""Every graph pass documents itself with a Before/After example that really holds."""

from __future__ import annotations

import textwrap

import pytest

from dlc.passes import PassContext, registered_passes
from tests.passes.helpers import assert_prints, ir


def _examples(doc: str) -> tuple[str, str]:
    """The indented blocks under `Before:` and `After...:` in a docstring."""
    lines = textwrap.dedent("\n".join(doc.splitlines()[1:])).splitlines()
    blocks: dict[str, list[str]] = {}
    current = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("Before", "After")) and not line.startswith(" "):
            current = stripped.split()[0].rstrip(":")
            blocks[current] = []
        elif current and (line.startswith(" ") or not stripped):
            blocks[current].append(line)
        else:
            current = None
    before = textwrap.dedent("\n".join(blocks["Before"])).strip()
    after = textwrap.dedent("\n".join(blocks["After"])).strip()
    return before, after


@pytest.mark.parametrize("name", sorted(registered_passes()))
def test_pass_docstring_example_holds(name: str) -> None:
    cls = registered_passes()[name]
    doc = cls.__doc__ or ""
    assert "Before" in doc and "After" in doc, f"{name}: the docstring needs Before/After IR"
    before, after = _examples(doc)
    graph = ir(before)
    ctx = PassContext()
    p = cls()
    result = p.run(graph, ctx)
    shown = p.show(result, ctx)
    if after.startswith("graph"):
        assert_prints(shown, after)
    else:  # an annotation: the graph is unchanged and `show` appends the annotation
        assert result is graph
        assert shown.endswith(after + "\n"), shown
