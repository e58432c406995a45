"""Export zoo models to ONNX with torch.onnx's dynamo exporter, cached on disk.

    path = export_onnx("mobileclip", "tiny")   # ~/.cache/dlc/onnx/mobileclip-tiny-<hash>/model.onnx

The cache lives under `$DLC_CACHE_DIR/onnx` (default `~/.cache/dlc/onnx`), one folder per
(name, size, source hash): the hash covers the model's source file and the torch version,
so editing a model re-exports it instead of serving a stale file. A folder is written under
a temporary name and renamed into place, so an interrupted export never leaves a broken
entry. Large models may keep their weights in an external-data file beside `model.onnx`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
from pathlib import Path

import torch

from survey_bench import zoo

MODEL_FILE = "model.onnx"


class OnnxExportError(RuntimeError):
    """A zoo model that cannot be exported to ONNX, or an export that fails its check."""


def cache_dir() -> Path:
    """The folder holding exported models: `$DLC_CACHE_DIR/onnx` or `~/.cache/dlc/onnx`."""
    root = os.environ.get("DLC_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "dlc"
    return base / "onnx"


def _source_hash(name: str) -> str:
    """A short hash of the model's source file and torch's version (the cache key's tail)."""
    factory = zoo.info(name).factory
    source_file = inspect.getsourcefile(factory)
    digest = hashlib.sha256(torch.__version__.encode())
    if source_file is not None:
        digest.update(Path(source_file).read_bytes())
    return digest.hexdigest()[:12]


def cached_path(name: str, size: str) -> Path:
    """Where the export of (name, size) lives, whether or not it exists yet."""
    folder = f"{name}-{size}-{_source_hash(name)}"
    return cache_dir() / folder / MODEL_FILE


def export_onnx(name: str, size: str = "tiny", *, refresh: bool = False) -> Path:
    """The ONNX file of zoo model `name` at `size`, exported on first use and checked.

    Raises OnnxExportError for models registered with `onnx_exportable=False` (the sparse
    COO GCNs) and for exports that onnx.checker rejects.
    """
    entry = zoo.info(name)
    if not entry.onnx_exportable:
        reason = f" ({entry.notes})" if entry.notes else ""
        raise OnnxExportError(f"zoo model {name!r} cannot be exported to ONNX{reason}; "
                              "its edge-list form can (e.g. 'gcn' for 'gcn_sparse')")
    path = cached_path(name, size)
    if path.exists() and not refresh:
        return path
    module, inputs = zoo.get(name, size)
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.parent.name}-", dir=path.parent.parent))
    try:
        program = torch.onnx.export(
            module, inputs, dynamo=True, dynamic_shapes=zoo.dynamic_shapes(name),
            input_names=list(entry.input_names) or None, verbose=False)
        if program is None:
            raise OnnxExportError(f"torch.onnx.export returned nothing for {name!r}")
        program.save(staging / MODEL_FILE)
        check_onnx(staging / MODEL_FILE)
        if path.parent.exists():
            shutil.rmtree(path.parent)
        staging.rename(path.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def check_onnx(path: Path) -> None:
    """Load `path` and run onnx.checker on it (with any external data); raise if it fails."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:  # the checker raises several unrelated types
        raise OnnxExportError(f"{path} fails onnx.checker: {err}") from err
