"""The import cache: a model exported once is not exported again in a later process.

torch.export and its decompositions are the slowest part of compiling a PyTorch model
(seconds to tens of seconds for the zoo's bench sizes). The imported graph is stored as
its textual IR plus the constant table, keyed by everything the import depends on:
the source files of every module class in the model, the weights' bytes, the example
inputs' shapes, dtypes and layouts, `dynamic_shapes`, the torch and dlc versions and the
list of ops kept whole. On a hit the graph is parsed back (the round trip is exact), and
constants that are the module's own parameters and buffers are re-pointed at the
module's tensors, so weights are shared, not copied, exactly as on a miss.

The cache lives in `$DLC_CACHE_DIR/graphs` (default `~/.cache/dlc/graphs`); setting
`DLC_NO_CACHE` turns it off.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlc.ir.graph import Graph


def cache_root() -> Path | None:
    """The graph cache folder, or None when caching is off."""
    if os.environ.get("DLC_NO_CACHE"):
        return None
    return Path(os.environ.get("DLC_CACHE_DIR", Path.home() / ".cache" / "dlc")) / "graphs"


def import_key(module: Any, inputs: Sequence[Any], dynamic_shapes: Any) -> str | None:
    """The key of an import, or None when the model cannot be keyed (inputs that are not
    tensors, modules defined without a source file)."""
    import torch

    from dlc import __version__
    from dlc.frontends.torch.decompositions import PRESERVED
    from dlc.frontends.torch.importer import tensor_to_numpy

    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{__version__}|{PRESERVED}|{dynamic_shapes!r}".encode())
    sources = set()
    for m in module.modules():
        try:
            sources.add(inspect.getsourcefile(type(m)) or "")
        except (TypeError, OSError):  # a class defined in an exec'd string or the REPL
            return None
        state = _attribute_key(m)
        if state is None:
            return None  # a function or an object we cannot fingerprint: never guess
        h.update(f"{type(m).__module__}.{type(m).__qualname__}|{state}".encode())
    for path in sorted(sources):
        if not path or not os.path.isfile(path):
            return None
        h.update(path.encode())
        h.update(Path(path).read_bytes())
    for x in inputs:
        if not isinstance(x, torch.Tensor):
            return None
        h.update(f"{tuple(x.shape)}|{x.dtype}|{x.layout}".encode())
    for name, t in module.state_dict(keep_vars=False).items():
        h.update(name.encode())
        h.update(f"{tuple(t.shape)}|{t.dtype}".encode())
        h.update(np.ascontiguousarray(tensor_to_numpy(t)).view(np.uint8).tobytes())
    return h.hexdigest()


_PLAIN = (int, float, str, bool, type(None))


def _attribute_key(m: Any) -> str | None:
    """A fingerprint of a module's own settings (`in_features`, `eps`, a custom `scale`),
    or None when it holds something else (a function, an arbitrary object) or has hooks:
    two modules that differ only there must never share a cache entry."""
    import torch

    parts = []
    for name, value in sorted(vars(m).items()):
        if name.endswith("hooks") or name.endswith("hooks_with_kwargs"):
            if value:
                return None
            continue
        if name.startswith("_") or name == "training":
            continue  # parameters, buffers, children keyed separately; import runs eval()
        if isinstance(value, _PLAIN) or isinstance(value, (torch.dtype, torch.Size)):
            parts.append(f"{name}={value!r}")
        elif isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value):
            parts.append(f"{name}={tuple(value)!r}")
        elif isinstance(value, torch.Tensor):
            digest = hashlib.sha256(value.detach().cpu().numpy().tobytes()).hexdigest()
            parts.append(f"{name}={digest}")
        else:
            return None
    return ";".join(parts)


def load(key: str, module: Any) -> Graph | None:
    """The cached graph of `key`, with the module's weights shared, or None."""
    from dlc.frontends.torch.importer import tensor_to_numpy
    from dlc.ir.parser import parse_graph

    root = cache_root()
    if root is None or not (root / key / "graph.ir").is_file():
        return None
    folder = root / key
    with np.load(folder / "constants.npz", allow_pickle=False) as stored:
        table = {name: stored[name] for name in stored.files}
    state = {name: tensor_to_numpy(t) for name, t in module.state_dict().items()}
    for name, array in table.items():
        own = state.get(name)
        if own is not None and own.shape == array.shape and own.dtype == array.dtype:
            table[name] = own  # the module's own tensor: shared, as a fresh import does
    return parse_graph((folder / "graph.ir").read_text(), table)


def store(key: str, graph: Graph) -> None:
    """Write the graph's text and constant table under `key` (atomically)."""
    from dlc.ir.printer import constant_table, print_graph

    root = cache_root()
    if root is None:
        return
    folder = root / key
    tmp = root / f"{key}.{os.getpid()}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "graph.ir").write_text(print_graph(graph))
    np.savez(tmp / "constants.npz", **constant_table(graph))
    if folder.exists():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(folder)
