"""The line budget (STYLE.md): no source file over 600 code lines without a reason.

Only code counts: blank lines, comment lines and docstrings (module, class and function)
are free, so explanations are never squeezed out to make room. A file that must be
bigger goes in `ALLOWED` with the reason; an entry that is no longer needed fails too,
so the list only ever holds files that are really over.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("dlc", "passes", "backends", "frontends")
BUDGET = 600

# path (relative to the repository root) -> why the file may exceed the budget
ALLOWED: dict[str, str] = {}

_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
             tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING}


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers of the module, class and function docstrings in `tree`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
            continue
        first = node.body[0] if node.body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> int:
    """Lines holding a token of code, docstrings excluded."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstring_lines(ast.parse(source)))


def source_files() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))


def budget_table() -> dict[str, int]:
    """Code lines of every source file, by path relative to the repository root."""
    return {p.relative_to(ROOT).as_posix(): code_lines(p.read_text(encoding="utf-8"))
            for p in source_files()}


def test_code_lines_skip_blanks_comments_and_docstrings() -> None:
    source = '''"""Module docstring,
over two lines."""

# a comment
import os  # a trailing comment does not hide the code


def f(x):
    """A docstring."""

    text = """a string that is not a docstring
    counts on each of its lines"""
    return (x +
            1)


class C:
    """Class docstring."""

    attr = 1
'''
    # import, def, text (2 lines), return (2 lines), class, attr
    assert code_lines(source) == 8


def test_source_files_are_found() -> None:
    paths = budget_table()
    assert "dlc/ops/registry.py" in paths and "frontends/onnx/importer.py" in paths


def test_no_file_over_the_budget() -> None:
    over = {path: n for path, n in budget_table().items() if n > BUDGET and path not in ALLOWED}
    assert not over, (
        f"files over {BUDGET} code lines: {over}. Split them by concept (one op family, "
        "one pass, one converter family per file), or add an entry to ALLOWED in "
        "tests/test_code_budget.py saying why the file must be this big.")


def test_allow_list_entries_are_needed() -> None:
    table = budget_table()
    for path, reason in ALLOWED.items():
        assert path in table, f"{path} is allow-listed but does not exist"
        assert table[path] > BUDGET, (
            f"{path} has {table[path]} code lines, within the budget: remove its entry")
        assert reason.strip(), f"{path} needs a reason"
