"""The runner interface every compiler in the comparison implements.

A runner turns a zoo model into something callable (`prepare`, timed as compile time),
runs it on the model's example inputs (`run`, timed by the harness), and releases what it
holds (`cleanup`). A runner whose package is missing says so in `unavailable()`: the
report shows the reason instead of silently dropping the column.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any


class Unavailable(Exception):
    """Raised by `prepare` when this runner cannot run this model here (the message says why).

    For reasons that depend on the model, which `unavailable()` cannot see: a model that
    cannot be exported to ONNX, a tuned runner with no tuning log for the model.
    """


@dataclass
class Prepared:
    """What `prepare` hands to the timing loop."""

    call: Any  # callable on the converted inputs
    inputs: tuple[Any, ...]  # the inputs in the form `call` wants
    to_numpy: Any  # outputs -> tuple of NumPy arrays (for the error check)
    notes: str = ""  # e.g. tuning trials and time
    describe: Any = None  # () -> str, called after the timed runs (untimed): more notes


class Runner:
    """Base class: subclasses set `name`/`label` and implement `prepare`."""

    name: str = ""
    label: str = ""
    packages: tuple[str, ...] = ()
    size: str = ""  # the zoo size being measured; the harness sets it before `prepare`

    def unavailable(self) -> str | None:
        """Why this runner cannot run here (a missing package), or None."""
        for package in self.packages:
            if importlib.util.find_spec(package) is None:
                return f"package {package!r} is not installed"
        return None

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        """Compile or load the model; the harness times this call."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Release compiled artefacts (optional)."""


def numpy_outputs(out: Any) -> tuple[Any, ...]:
    """Tuple of NumPy arrays from a tensor, an array or a tuple of them."""
    import numpy as np

    from dlc.testing import to_numpy

    items = out if isinstance(out, (tuple, list)) else (out,)
    return tuple(np.asarray(to_numpy(x)) for x in items)
