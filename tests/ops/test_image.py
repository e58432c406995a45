"""Image sampling ops: the interpreter against PyTorch.

Nearest-neighbour resizes and grid samples compare exactly: an index off by one is a
wrong pixel, never a rounding error.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tests.ops.cases import TorchCase, case_params, run_case
from tests.ops.test_nn import Lambda, randn

RESIZE, GRID, AFFINE = ("image.resize",), ("image.grid_sample",), ("image.affine_grid",)


def interp(**kw):
    """A module calling F.interpolate(x, **kw)."""
    return lambda: Lambda(lambda x: F.interpolate(x, **kw))


def grid(n, h, w, seed=5):
    """Sample positions in [-1.3, 1.3] (some outside the image), with exact pixel centres
    and half-way points (rounding ties for nearest) in the first row."""
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(n, h, w, 2, generator=g) * 2.6 - 1.3
    out[:, 0, :, 0] = torch.linspace(-1, 1, w)
    out[:, 0, :, 1] = 0.5
    return out


def resize_case(id, shape, exact=False, **kw):
    """An F.interpolate case on one random input of `shape`."""
    return TorchCase(id, interp(**kw), lambda: (randn(*shape),), ops=RESIZE, exact=exact)


def grid_case(mode, padding_mode, align_corners):
    """One F.grid_sample mode / padding / alignment combination."""
    id = f"grid_sample_{mode}_{padding_mode}{'_aligned' if align_corners else ''}"
    fn = lambda x, g: F.grid_sample(x, g, mode=mode, padding_mode=padding_mode,  # noqa: E731
                                    align_corners=align_corners)
    return TorchCase(id, lambda: Lambda(fn), lambda: (randn(2, 3, 5, 6), grid(2, 4, 7)),
                     ops=GRID, exact=mode == "nearest")


CASES = [
    resize_case("resize_nearest_scale2", (1, 2, 4, 5), exact=True, scale_factor=2,
                mode="nearest"),
    resize_case("resize_nearest_size", (2, 3, 5, 7), exact=True, size=(8, 4), mode="nearest"),
    resize_case("resize_nearest_fractional_scale", (1, 2, 5, 7), exact=True,
                scale_factor=(1.1, 2.7), mode="nearest"),
    resize_case("resize_nearest_1d", (2, 3, 7), exact=True, scale_factor=1.7, mode="nearest"),
    resize_case("resize_nearest_exact", (2, 3, 10, 7), exact=True, size=(3, 11),
                mode="nearest-exact"),
    resize_case("resize_nearest_exact_scale", (1, 2, 7, 5), exact=True, scale_factor=2.7,
                mode="nearest-exact"),
    resize_case("resize_nearest_exact_1d", (2, 2, 9), exact=True, size=4, mode="nearest-exact"),
    resize_case("resize_bilinear_size", (2, 3, 5, 6), size=(9, 4), mode="bilinear"),
    resize_case("resize_bilinear_aligned", (2, 3, 5, 6), size=(9, 11), mode="bilinear",
                align_corners=True),
    resize_case("resize_bilinear_scale", (1, 2, 6, 5), scale_factor=1.5, mode="bilinear"),
    resize_case("resize_bilinear_downscale", (1, 2, 9, 8), scale_factor=(0.5, 0.7),
                mode="bilinear"),
    resize_case("resize_linear_1d", (2, 3, 6), size=11, mode="linear"),
    resize_case("resize_linear_1d_aligned", (2, 3, 6), scale_factor=2.5, mode="linear",
                align_corners=True),
    *[grid_case(m, p, a) for m, p, a in itertools.product(
        ("bilinear", "nearest"), ("zeros", "border", "reflection"), (False, True))],
    TorchCase("affine_grid", lambda: Lambda(lambda t: F.affine_grid(
        t, (2, 3, 5, 7), align_corners=False)), lambda: (randn(2, 2, 3),), ops=AFFINE),
    TorchCase("affine_grid_aligned", lambda: Lambda(lambda t: F.affine_grid(
        t, (1, 1, 4, 6), align_corners=True)), lambda: (randn(1, 2, 3),), ops=AFFINE),
    TorchCase("affine_grid_then_sample", lambda: Lambda(lambda x, t: F.grid_sample(
        x, F.affine_grid(t, (2, 3, 6, 6), align_corners=False), align_corners=False)),
        lambda: (randn(2, 3, 8, 8), randn(2, 2, 3, seed=1) * 0.5), ops=AFFINE + GRID),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)
