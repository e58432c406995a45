"""docs/tutorial.md stays true: its code runs, and prints what the page says it prints.

The tutorial's fenced blocks are read in order:

* a ```python block runs; all of them run one after another in one namespace, in a fresh
  Python process whose working directory is a temporary folder, with torch and the
  generated code on one thread;
* the block after an `<!-- file: NAME -->` comment is written to NAME in that folder
  instead of running (the reader saves it, as `smallnet.py`);
* a ```text block right after a code block is that block's expected stdout, compared
  with doctest's ELLIPSIS rule: `...` stands for any text, several lines included;
  `<!-- output varies -->` before it shows real output that is not compared (timings,
  LLVM IR that the code generator's authors are still changing);
* `<!-- skip -->` before a code block leaves it out;
* ```sh blocks run too, in the slow tier (`test_tutorial_shell_commands`): each block is
  one bash script with the test's Python environment first on PATH.

Run `python tests/test_docs.py` to print what every block prints today (to update the
page after a deliberate change), or `python tests/test_docs.py --check` for a diff-style
report without pytest.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MARKER = re.compile(r"<!--\s*(skip|output varies|file:\s*(\S+))\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block and what the page says about it."""

    lang: str  # python, sh, text, ...
    code: str
    line: int  # 1-based line of the opening fence
    marker: str = ""  # "skip", "output varies", "file"
    filename: str = ""
    expected: str | None = None  # the ```text block that follows, if any
    checked: bool = True  # False when the expected output is marked as varying


def read_blocks(text: str) -> list[Block]:
    """The page's code blocks, each with its marker and its expected output."""
    blocks: list[Block] = []
    previous_end = 0
    for match in _FENCE.finditer(text):
        between = text[previous_end:match.start()]
        marker = filename = ""
        tail = [ln for ln in between.strip().splitlines() if ln.strip()]
        if tail:
            found = _MARKER.search(tail[-1].strip())
            if found:
                marker = "file" if found.group(2) else found.group(1)
                filename = found.group(2) or ""
        lang, code = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        follows_code = blocks and blocks[-1].lang != "text" and not between.strip(" \n") \
            .replace("<!-- output varies -->", "")
        if lang == "text" and follows_code and blocks[-1].expected is None:
            blocks[-1].expected = code
            blocks[-1].checked = marker != "output varies"
        blocks.append(Block(lang, code, line, marker, filename))
        previous_end = match.end()
    return blocks


def _runnable(blocks: list[Block], langs: tuple[str, ...]) -> list[Block]:
    return [b for b in blocks if b.marker != "skip" and (b.marker == "file" or b.lang in langs)]


# The child process: runs the blocks in one namespace, one stdout capture per block.
_CHILD = r"""
import contextlib, io, json, subprocess, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
results = []
for b in blocks:
    if b["marker"] == "file":
        open(b["filename"], "w").write(b["code"])
        results.append({"out": "", "error": None})
        continue
    out = io.StringIO()
    error = None
    try:
        if b["lang"] == "python":
            code = compile(b["code"], f"<tutorial.md line {b['line']}>", "exec")
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        else:
            run = subprocess.run(["bash", "-e", "-c", b["code"]], capture_output=True, text=True)
            out.write(run.stdout)
            if run.returncode:
                error = f"exit status {run.returncode}\n{run.stderr[-3000:]}"
    except BaseException:
        error = traceback.format_exc()
    results.append({"out": out.getvalue(), "error": error})
    if error:
        break
json.dump(results, open(sys.argv[2], "w"))
"""


def run_blocks(blocks: list[Block], workdir: Path, timeout: float = 600) -> list[dict]:
    """Run `blocks` in a fresh process in `workdir`; one {"out", "error"} per block run."""
    spec = workdir / "blocks.json"
    spec.write_text(json.dumps([{"lang": b.lang, "code": b.code, "line": b.line,
                                 "marker": b.marker, "filename": b.filename} for b in blocks]))
    result = workdir / "results.json"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"  # torch and dlc's generated code: one thread each
    env["DLC_CACHE_DIR"] = str(workdir / "dlc-cache")  # compile from scratch, leave no trace
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(spec), str(result)], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if not result.exists():
        raise AssertionError(f"the tutorial's runner died (exit {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
    return json.loads(result.read_text())


_CHECKER = doctest.OutputChecker()


def output_matches(expected: str, got: str) -> bool:
    """doctest's ELLIPSIS comparison, ignoring trailing spaces and blank lines at the end."""
    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.rstrip().splitlines()) + "\n"

    return _CHECKER.check_output(norm(expected), norm(got), doctest.ELLIPSIS)


def failures(blocks: list[Block], results: list[dict]) -> list[str]:
    """One message per block that failed or printed something other than the page says."""
    out = []
    for block, result in zip(blocks, results):
        where = f"docs/tutorial.md line {block.line} ({block.lang} block)"
        if result["error"]:
            out.append(f"{where} failed:\n{result['error']}")
        elif block.expected is not None and block.checked and \
                not output_matches(block.expected, result["out"]):
            out.append(f"{where} printed something else.\n--- the page shows:\n"
                       f"{block.expected}--- the code prints:\n{result['out']}")
    if len(results) < len(blocks) and not any(r["error"] for r in results):
        out.append(f"only {len(results)} of {len(blocks)} blocks ran")
    return out


def test_tutorial_blocks_are_well_formed() -> None:
    blocks = read_blocks(TUTORIAL.read_text())
    python = _runnable(blocks, ("python",))
    assert len(python) >= 10, "the tutorial lost its code blocks"
    for b in blocks:
        assert b.lang, f"docs/tutorial.md line {b.line}: give the block a language"
        assert not (b.marker == "file" and not b.filename), b.line


def test_tutorial_python_blocks_run_and_print_what_the_page_shows(tmp_path: Path) -> None:
    blocks = _runnable(read_blocks(TUTORIAL.read_text()), ("python",))
    problems = failures(blocks, run_blocks(blocks, tmp_path))
    assert not problems, "\n\n".join(problems)


@pytest.mark.slow
def test_tutorial_shell_commands(tmp_path: Path) -> None:
    """The `dlc` and `survey_bench` commands (one worker process per benchmark cell)."""
    blocks = _runnable(read_blocks(TUTORIAL.read_text()), ("sh",))
    assert any(b.lang == "sh" for b in blocks)
    problems = failures(blocks, run_blocks(blocks, tmp_path))
    assert not problems, "\n\n".join(problems)


def _main(argv: list[str]) -> int:
    import tempfile

    langs = ("python", "sh") if "--sh" in argv else ("python",)
    blocks = _runnable(read_blocks(TUTORIAL.read_text()), langs)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_blocks(blocks, Path(tmp))
    if "--check" in argv:
        problems = failures(blocks, results)
        print("\n\n".join(problems) or "the tutorial is true")
        return 1 if problems else 0
    for block, result in zip(blocks, results):
        print(f"==== line {block.line} ({block.lang}){' [file]' if block.marker == 'file' else ''}")
        print(result["error"] or result["out"], end="")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
