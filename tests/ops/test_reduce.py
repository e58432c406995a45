"""Reductions, scans and topk: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.cases import TorchCase, case_params, run_case
from tests.ops.test_elementwise import DYN0, fn, fn1, randint, randn, special


def x34():
    """One f32[3, 4] input."""
    return (randn(3, 4),)


def x345():
    """One f32[3, 4, 5] input."""
    return (randn(3, 4, 5),)


def f16():
    """One f16[4, 64] input: long enough rows for accumulation precision to matter."""
    return (randn(4, 64, dtype=torch.float16),)


def ties():
    """Integers with repeated extremes along both axes (first-index tie-breaking)."""
    return (torch.tensor([[3, 1, 3, 0, 2, 0], [2, 2, 1, 1, 0, 2], [5, 5, 5, 5, 5, 5]]),)


def no_ties():
    """NaN and infinities but no tied values (torch's order of ties is unspecified)."""
    return (torch.tensor([[0.0, 7.0, 1.5, -2.5], [float("inf"), -float("inf"), float("nan"), 0.5],
                          [3.7, -3.7, 1e-30, -1e30]]),)


CASES = [
    # -- sum ---------------------------------------------------------------------------
    TorchCase("sum_all", fn(lambda x: x.sum()), x345, ops=("reduce.sum",)),
    TorchCase("sum_axis_keepdims", fn(lambda x: x.sum(-1, keepdim=True)), x345,
              ops=("reduce.sum",)),
    TorchCase("sum_neg_axes", fn(lambda x: x.sum((-1, -3))), x345, ops=("reduce.sum",)),
    TorchCase("sum_int", fn(lambda x: x.sum(0)), lambda: (randint(-99, 99, 3, 4),),
              ops=("reduce.sum",), exact=True),
    TorchCase("sum_int32_to_i64", fn(lambda x: x.sum(1)),
              lambda: (randint(-99, 99, 3, 4, dtype=torch.int32),), ops=("reduce.sum", "ew.cast"),
              exact=True),
    TorchCase("sum_bool", fn(lambda x: (x > 0).sum(1, keepdim=True)), x34,
              ops=("reduce.sum", "ew.cast"), exact=True),
    TorchCase("count_nonzero", fn(lambda x: torch.count_nonzero(x, 1)),
              lambda: (randint(0, 3, 3, 5),), ops=("reduce.sum", "ew.ne"), exact=True),
    TorchCase("sum_dtype_f64", fn(lambda x: x.sum(1, dtype=torch.float64)), x34,
              ops=("reduce.sum", "ew.cast"), rtol=1e-12),
    TorchCase("sum_f64", fn(lambda x: x.sum(0)), lambda: (randn(40, 3, dtype=torch.float64),),
              ops=("reduce.sum",), rtol=1e-12),
    TorchCase("sum_f16", fn(lambda x: x.sum(1)), f16, ops=("reduce.sum",), rtol=1e-3),
    TorchCase("sum_bf16", fn(lambda x: x.sum(1)), lambda: (randn(4, 64, dtype=torch.bfloat16),),
              ops=("reduce.sum",), rtol=1e-2),
    TorchCase("sum_dynamic_axis", fn1(lambda x: x.sum(0)), x34, ops=("reduce.sum",),
              dynamic_shapes=DYN0),
    TorchCase("sum_dynamic_keep", fn1(lambda x: x.sum(-1, keepdim=True)), x34,
              ops=("reduce.sum",), dynamic_shapes=DYN0),
    # -- mean --------------------------------------------------------------------------
    TorchCase("mean_all", fn(lambda x: x.mean()), x345, ops=("reduce.mean",)),
    TorchCase("mean_axes", fn(lambda x: x.mean((0, 2))), x345, ops=("reduce.mean",)),
    TorchCase("mean_keepdims", fn(lambda x: x.mean(-1, keepdim=True)), x345,
              ops=("reduce.mean",)),
    TorchCase("mean_f16", fn(lambda x: x.mean(-1)), f16, ops=("reduce.mean",), rtol=1e-3),
    TorchCase("mean_int_dtype", fn(lambda x: x.mean(1, dtype=torch.float32)),
              lambda: (randint(-9, 9, 3, 4),), ops=("reduce.mean", "ew.cast")),
    TorchCase("mean_dynamic", fn1(lambda x: x.mean(0, keepdim=True)), x34, ops=("reduce.mean",),
              dynamic_shapes=DYN0),
    # -- prod --------------------------------------------------------------------------
    TorchCase("prod_all", fn(lambda x: x.prod()), x34, ops=("reduce.prod",)),
    TorchCase("prod_axis", fn(lambda x: x.prod(1, keepdim=True)), x34, ops=("reduce.prod",)),
    TorchCase("prod_int", fn(lambda x: x.prod(0)), lambda: (randint(-5, 5, 4, 3),),
              ops=("reduce.prod",), exact=True),
    # -- max / min ---------------------------------------------------------------------
    TorchCase("max_all", fn(lambda x: x.max()), x345, ops=("reduce.max",)),
    TorchCase("min_all_int", fn(lambda x: x.min()), lambda: (randint(-99, 99, 3, 4),),
              ops=("reduce.min",), exact=True),
    TorchCase("max_nan", fn(lambda x: x.max(1).values), lambda: (special(),),
              ops=("reduce.max",)),
    TorchCase("amax", fn(lambda x: x.amax((0, 1))), x345, ops=("reduce.max",)),
    TorchCase("amin_keepdims", fn(lambda x: x.amin(-1, keepdim=True)), x345,
              ops=("reduce.min",)),
    TorchCase("max_dim", fn(lambda x: tuple(x.max(1))), x34, ops=("reduce.max", "reduce.argmax")),
    TorchCase("max_dim_ties", fn(lambda x: tuple(x.max(1))), ties,
              ops=("reduce.max", "reduce.argmax"), exact=True),
    TorchCase("min_dim_keepdims", fn(lambda x: tuple(x.min(0, keepdim=True))), ties,
              ops=("reduce.min", "reduce.argmin"), exact=True),
    TorchCase("max_dim_nan", fn(lambda x: tuple(x.max(1))), lambda: (special(),),
              ops=("reduce.max", "reduce.argmax")),
    TorchCase("max_dim_dynamic", fn1(lambda x: tuple(x.max(-1))), x34,
              ops=("reduce.max", "reduce.argmax"), dynamic_shapes=DYN0),
    # -- argmax / argmin ---------------------------------------------------------------
    TorchCase("argmax", fn(lambda x: x.argmax(1)), x34, ops=("reduce.argmax",), exact=True),
    TorchCase("argmax_flat", fn(lambda x: x.argmax()), x345, ops=("reduce.argmax",), exact=True),
    TorchCase("argmax_flat_keepdims", fn(lambda x: x.argmax(keepdim=True)), x345,
              ops=("reduce.argmax",), exact=True),
    TorchCase("argmax_ties", fn(lambda x: x.argmax(-1)), ties, ops=("reduce.argmax",),
              exact=True),
    TorchCase("argmin_keepdims", fn(lambda x: x.argmin(0, keepdim=True)), ties,
              ops=("reduce.argmin",), exact=True),
    TorchCase("argmin_dynamic", fn1(lambda x: x.argmin(0)), x34, ops=("reduce.argmin",),
              exact=True, dynamic_shapes=DYN0),
    # -- any / all ---------------------------------------------------------------------
    TorchCase("any_axis", fn(lambda x: x.any(1)), lambda: (randn(3, 4) > 1,),
              ops=("reduce.any",), exact=True),
    TorchCase("any_all_float", fn(lambda x: (x > 2).any()), x34, ops=("reduce.any",),
              exact=True),
    TorchCase("any_int", fn(lambda x: x.any(0, keepdim=True)), lambda: (randint(0, 2, 3, 4),),
              ops=("reduce.any",), exact=True),
    TorchCase("all", fn(lambda x: (x > -2).all()), x34, ops=("reduce.any", "ew.logical_not"),
              exact=True),
    # -- var, std, norms ---------------------------------------------------------------
    TorchCase("var", fn(lambda x: x.var(1)), x34, ops=("reduce.var",)),
    TorchCase("var_all", fn(lambda x: x.var()), x345, ops=("reduce.var",)),
    TorchCase("std_keepdims", fn(lambda x: x.std(-1, keepdim=True)), x345,
              ops=("reduce.var", "ew.sqrt")),
    TorchCase("var_unbiased_false", fn(lambda x: x.var((0, 2), unbiased=False)), x345,
              ops=("reduce.var",)),
    TorchCase("var_mean", fn(lambda x: torch.var_mean(x, 1, correction=0)), x34,
              ops=("reduce.var", "reduce.mean")),
    TorchCase("std_mean", fn(lambda x: torch.std_mean(x, -1, keepdim=True)), x345,
              ops=("reduce.var", "reduce.mean")),
    TorchCase("var_f16", fn(lambda x: x.var(-1)), f16, ops=("reduce.var",), rtol=1e-3),
    TorchCase("var_dynamic", fn1(lambda x: x.var(0)), x34, ops=("reduce.var",),
              dynamic_shapes=DYN0),
    TorchCase("normalize", fn(lambda x: F.normalize(x, dim=-1)), x34,
              ops=("reduce.norm", "ew.clamp", "ew.div")),
    TorchCase("norm_all", fn(lambda x: torch.norm(x)), x345, ops=("reduce.norm",)),
    TorchCase("norm_l1", fn(lambda x: x.norm(p=1, dim=1)), x34, ops=("reduce.norm",)),
    TorchCase("norm_inf", fn(lambda x: torch.linalg.vector_norm(x, float("inf"), dim=(0, 1))),
              x345, ops=("reduce.norm",)),
    TorchCase("norm_neg_inf", fn(lambda x: torch.linalg.vector_norm(x, -float("inf"), dim=0)),
              x34, ops=("reduce.norm",)),
    TorchCase("norm_0", fn(lambda x: torch.linalg.vector_norm(x.relu(), 0, dim=1)), x34,
              ops=("reduce.norm",)),
    TorchCase("norm_3", fn(lambda x: torch.linalg.vector_norm(x, 3, dim=-1, keepdim=True)), x345,
              ops=("reduce.norm",)),
    # -- scans -------------------------------------------------------------------------
    TorchCase("cumsum", fn(lambda x: x.cumsum(1)), x34, ops=("reduce.cumsum",)),
    TorchCase("cumsum_neg_axis", fn(lambda x: x.cumsum(-3)), x345, ops=("reduce.cumsum",)),
    TorchCase("cumsum_int", fn(lambda x: x.cumsum(0)),
              lambda: (randint(-9, 9, 3, 4, dtype=torch.int32),), ops=("reduce.cumsum", "ew.cast"),
              exact=True),
    TorchCase("cumsum_bool", fn(lambda x: (x > 0).cumsum(1)), x34,
              ops=("reduce.cumsum", "ew.cast"), exact=True),
    TorchCase("cumsum_dtype", fn(lambda x: x.cumsum(0, dtype=torch.float32)),
              lambda: (randint(-9, 9, 3, 4),), ops=("reduce.cumsum", "ew.cast")),
    TorchCase("cumsum_f16", fn(lambda x: x.cumsum(-1)), f16, ops=("reduce.cumsum",), rtol=1e-3),
    TorchCase("cumsum_dynamic", fn1(lambda x: x.cumsum(0)), x34, ops=("reduce.cumsum",),
              dynamic_shapes=DYN0),
    TorchCase("cumprod", fn(lambda x: x.cumprod(1)), x34, ops=("reduce.cumprod",)),
    TorchCase("cumprod_int", fn(lambda x: x.cumprod(1)), lambda: (randint(-3, 4, 3, 5),),
              ops=("reduce.cumprod",), exact=True),
    # -- topk --------------------------------------------------------------------------
    TorchCase("topk", fn(lambda x: tuple(x.topk(3))), lambda: (randn(4, 10),),
              ops=("reduce.topk",)),
    TorchCase("topk_smallest_axis0", fn(lambda x: tuple(x.topk(2, 0, largest=False))), x345,
              ops=("reduce.topk",)),
    # torch orders tied values as its partial sort leaves them: compare values only.
    TorchCase("topk_ties", fn(lambda x: x.topk(2, -1).values), ties, ops=("reduce.topk",),
              exact=True),
    TorchCase("topk_smallest_ties", fn(lambda x: x.topk(3, -1, largest=False).values), ties,
              ops=("reduce.topk",), exact=True),
    TorchCase("topk_nan", fn(lambda x: tuple(x.topk(3, -1))), no_ties, ops=("reduce.topk",)),
    TorchCase("topk_smallest_nan", fn(lambda x: tuple(x.topk(3, -1, largest=False))), no_ties,
              ops=("reduce.topk",)),
    TorchCase("topk_f16", fn(lambda x: tuple(x.topk(5))), f16, ops=("reduce.topk",), exact=True),
    TorchCase("topk_dynamic", fn1(lambda x: tuple(x.topk(2, -1))), x34, ops=("reduce.topk",),
              dynamic_shapes=DYN0),
]

@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)
