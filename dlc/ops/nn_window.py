"""Sliding windows over spatial axes: what convolutions (`nn_conv`) and pools (`nn_pool`)
share — the layout test, torch's nested floor division of output sizes, and the NumPy
window view their references gather with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view

from dlc.ir.symbolic import Dim, dim, floordiv


def channels_last(layout: str) -> bool:
    """The layout keeps channels on the last axis (`NHWC`, `NWC`)."""
    return layout in ("NHWC", "NWC")


def floordiv_nested(a: Dim, s: int) -> Dim:
    """`floor(a / s)`, folding `floor(floor(u) / s)` into `floor(u / s)` (exact for a positive
    integer `s`), as torch's FloorDiv simplification does: a pool after a stride-2 conv
    then reads `floor((H - 1)/4) + 1` in both, and the converters' type checks match."""
    if isinstance(a, int):
        return a // s
    if isinstance(a, sympy.floor):
        return dim(sympy.floor(a.args[0] / s))
    return floordiv(a, s)


def windows(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
            dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """A strided view `[..., *out, *kernel]` of the windows of the trailing axes of `xp`
    (already padded so every window lies inside it); no data is copied."""
    k = len(kernel)
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(kernel, dilation))
    axes = tuple(range(xp.ndim - k, xp.ndim))
    view = sliding_window_view(xp, span, axis=axes)
    lead = (slice(None),) * (xp.ndim - k)
    positions = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[lead + positions + taps]
