"""Every tiny zoo model compiles to native code with the LLVM backend and matches eager.

At O3 with bounds checks on (debug), and at O0 (one kernel per op, no buffer reuse), so
both the optimizing pipeline and the naive one are checked against PyTorch.
"""

from __future__ import annotations

import pytest
import torch

import dlc
from dlc.testing import assert_close, to_numpy
from survey_bench import zoo


def eager(module, inputs):
    with torch.no_grad():
        out = module(*inputs)
    return tuple(to_numpy(o) for o in (out if isinstance(out, (tuple, list)) else (out,)))


@pytest.mark.parametrize("opt_level", [3, 0])
@pytest.mark.parametrize("name", zoo.names())
def test_tiny_model_compiles_and_matches(name: str, opt_level: int) -> None:
    module, inputs = zoo.get(name, "tiny")
    compiled = dlc.compile(module, inputs, zoo.dynamic_shapes(name), target="llvm",
                           opt_level=opt_level, debug=True)
    got = compiled(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    assert_close(got, eager(module, inputs), rtol=1e-4, what=f"{name} O{opt_level}")
