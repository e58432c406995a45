"""The shared numeric comparison used by every test and benchmark."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """NumPy array from a NumPy array, a torch tensor, or a scalar."""
    if hasattr(x, "detach"):
        from dlc.frontends.torch.importer import tensor_to_numpy

        return tensor_to_numpy(x.contiguous())
    return np.asarray(x)


def assert_close(got: Any, want: Any, rtol: float = 1e-5, exact: bool = False,
                 what: str = "output") -> None:
    """Assert `got` matches `want` with `atol = rtol * max|want|` (tuples compared pairwise).

    Scaling the absolute tolerance by the largest reference magnitude keeps near-zero
    elements from blowing up a relative error. `exact=True` demands bitwise-equal values
    (integer and boolean results). Shapes and dtypes must match too.
    """
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), (
            f"{what}: expected {len(want)} outputs, got "
            f"{len(got) if isinstance(got, (tuple, list)) else 'one'}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, rtol, exact, what=f"{what}[{i}]")
        return
    g, w = to_numpy(got), to_numpy(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != expected {w.shape}"
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != expected {w.dtype}"
    if exact or not np.issubdtype(w.dtype, np.inexact) and w.dtype.kind != "V":
        if w.dtype.kind == "f" or str(w.dtype) == "bfloat16":
            same = (g == w) | (np.isnan(g.astype(np.float64)) & np.isnan(w.astype(np.float64)))
        else:
            same = g == w
        bad = int(np.size(same) - np.count_nonzero(same))
        assert bad == 0, f"{what}: {bad} of {w.size} elements differ (exact comparison)"
        return
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    nan_ok = np.isnan(g64) == np.isnan(w64)
    assert nan_ok.all(), f"{what}: NaNs in different places"
    finite = np.isfinite(w64)
    assert (np.isinf(g64) == np.isinf(w64)).all() and (g64[~finite & ~np.isnan(w64)] ==
                                                       w64[~finite & ~np.isnan(w64)]).all(), \
        f"{what}: infinities differ"
    if not finite.any():
        return
    scale = float(np.abs(w64[finite]).max())
    atol = rtol * scale if scale > 0 else rtol
    err = np.abs(g64[finite] - w64[finite])
    worst = float(err.max()) if err.size else 0.0
    assert worst <= atol, (f"{what}: max abs error {worst:.3g} > atol {atol:.3g} "
                           f"(rtol {rtol:g} x max|want| {scale:.3g}); "
                           f"{int((err > atol).sum())} of {err.size} elements off")


def assert_input_dependent(fn: Any, inputs: tuple[Any, ...], perturb: int = 0) -> None:
    """Check a model's outputs are finite and change when input `perturb` changes."""
    out1 = fn(*inputs)
    outs1 = out1 if isinstance(out1, tuple) else (out1,)
    for o in outs1:
        assert np.isfinite(to_numpy(o).astype(np.float64)).all(), "output is not finite"
    x = to_numpy(inputs[perturb])
    assert np.issubdtype(x.dtype, np.floating), "perturb a floating-point input"
    changed = list(inputs)
    changed[perturb] = (x + np.float32(0.5)).astype(x.dtype)
    out2 = fn(*changed)
    outs2 = out2 if isinstance(out2, tuple) else (out2,)
    assert any(not np.array_equal(to_numpy(a), to_numpy(b)) for a, b in zip(outs1, outs2)), \
        "outputs do not depend on the input"
