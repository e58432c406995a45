"""Packaging: the wheel maps the root folders into the dlc namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"dlc": "dlc", "frontends": "dlc.frontends", "passes": "dlc.passes",
          "backends": "dlc.backends", "survey_bench": "survey_bench"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {found - listed}"
    assert listed - found == set(), f"listed but missing on disk: {listed - found}"


def test_wheel_imports_from_outside_the_repository(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist")],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("dlc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlc/frontends/torch/importer.py" in names
    assert not any(n.startswith(("tests/", "frontends/", "passes/")) for n in names), \
        "generic top-level folders must not land in site-packages"
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import dlc, dlc.frontends.torch, dlc.passes, dlc.backends, survey_bench; "
            "print(dlc.frontends.torch.__file__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env,
                         capture_output=True, text=True).stdout
    assert out.strip().startswith(str(site)), out
