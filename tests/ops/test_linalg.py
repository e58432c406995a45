"""Linear-algebra ops: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlc.errors import IRError
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from tests.ops.cases import DirectCase, TorchCase, case_params, run_case
from tests.ops.test_shape import (
    Fn,
    N,
    PreservedCase,
    ints,
    np_inputs,
    one_op,
    randn,
    run_preserved_case,
)

T = TorchCase
CASES = [
    T("mm", lambda: Fn(lambda x, y: x @ y), lambda: (randn(3, 4), randn(4, 5, seed=1)),
      ops=("linalg.matmul",)),
    T("mm_int64", lambda: Fn(lambda x, y: x @ y), lambda: (ints(3, 4), ints(4, 2, seed=1)),
      ops=("linalg.matmul",), exact=True),
    T("mm_bf16", lambda: Fn(lambda x, y: x @ y),
      lambda: (randn(3, 16, dtype=torch.bfloat16), randn(16, 5, seed=1, dtype=torch.bfloat16)),
      ops=("linalg.matmul",), rtol=1e-2),
    T("matmul_batched_2d", lambda: Fn(lambda x, y: x @ y),
      lambda: (randn(2, 3, 4), randn(4, 5, seed=1)), ops=("linalg.matmul", "shape.reshape")),
    T("matmul_broadcast", lambda: Fn(lambda x, y: x @ y),
      lambda: (randn(2, 1, 3, 4), randn(3, 4, 5, seed=1)),
      ops=("linalg.batch_matmul", "shape.expand")),
    T("matmul_vector_matrix", lambda: Fn(lambda x, y: x @ y),
      lambda: (randn(4), randn(4, 5, seed=1)), ops=("linalg.matmul",)),
    T("matmul_dynamic", lambda: Fn(lambda x, y: x @ y),
      lambda: (randn(5, 3, 4), randn(4, 6, seed=1)), ops=("linalg.matmul", "shape.reshape"),
      dynamic_shapes=({0: N}, None)),
    T("bmm", lambda: Fn(torch.bmm), lambda: (randn(2, 3, 4), randn(2, 4, 5, seed=1)),
      ops=("linalg.batch_matmul",)),
    T("bmm_dynamic", lambda: Fn(torch.bmm), lambda: (randn(3, 3, 4), randn(3, 4, 5, seed=1)),
      ops=("linalg.batch_matmul",), dynamic_shapes=({0: N}, {0: N})),
    # nn.Linear is kept whole (PRESERVED in frontends/torch/decompositions.py)
    T("linear_module", lambda: torch.nn.Linear(4, 5), lambda: (randn(2, 3, 4),),
      ops=("linalg.linear",)),
    T("linear_no_bias", lambda: torch.nn.Linear(4, 5, bias=False), lambda: (randn(3, 4),),
      ops=("linalg.linear",)),
    T("linear_dynamic", lambda: torch.nn.Linear(4, 5), lambda: (randn(3, 4),),
      ops=("linalg.linear",), dynamic_shapes=({0: N},)),
    T("linear_as_addmm", lambda: Fn(lambda x, w, b: torch.addmm(b, x, w.t())),
      lambda: (randn(3, 4), randn(5, 4, seed=1), randn(5, seed=2)),
      ops=("linalg.matmul", "ew.add", "shape.permute")),
    T("addmm_scaled", lambda: Fn(lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0)),
      lambda: (randn(5), randn(3, 4, seed=1), randn(4, 5, seed=2)),
      ops=("linalg.matmul", "ew.mul", "ew.add")),
    T("baddbmm", lambda: Fn(lambda b, x, y: torch.baddbmm(b, x, y, alpha=0.5)),
      lambda: (randn(2, 3, 5), randn(2, 3, 4, seed=1), randn(2, 4, 5, seed=2)),
      ops=("linalg.batch_matmul", "ew.add")),
    T("einsum_as_bmm", lambda: Fn(lambda x, y: torch.einsum("bij,bkj->bik", x, y)),
      lambda: (randn(2, 3, 4), randn(2, 5, 4, seed=1)), ops=("linalg.batch_matmul",)),
    DirectCase("linear_direct", one_op("linalg.linear"),
               np_inputs(randn(2, 3, 4), randn(5, 4, seed=1), randn(5, seed=2)), F.linear,
               ops=("linalg.linear",)),
    DirectCase("linear_direct_no_bias", one_op("linalg.linear"),
               np_inputs(randn(3, 4), randn(5, 4, seed=1)), F.linear, ops=("linalg.linear",)),
    DirectCase("matmul_direct_vectors", one_op("linalg.matmul"),
               np_inputs(randn(4), randn(4, seed=1)), torch.matmul, ops=("linalg.matmul",)),
    DirectCase("matmul_direct_batch_vector", one_op("linalg.matmul"),
               np_inputs(randn(2, 3, 4), randn(4, seed=1)), torch.matmul,
               ops=("linalg.matmul",)),
    DirectCase("einsum_bmm", one_op("linalg.einsum", equation="bij,bjk->bik"),
               np_inputs(randn(2, 3, 4), randn(2, 4, 5, seed=1)),
               lambda x, y: torch.einsum("bij,bjk->bik", x, y), ops=("linalg.einsum",)),
    DirectCase("einsum_attention", one_op("linalg.einsum", equation="bhqd,bhkd->bhqk"),
               np_inputs(randn(2, 3, 4, 8), randn(2, 3, 5, 8, seed=1)),
               lambda x, y: torch.einsum("bhqd,bhkd->bhqk", x, y), ops=("linalg.einsum",)),
    DirectCase("einsum_implicit", one_op("linalg.einsum", equation="ij,kj"),
               np_inputs(randn(3, 4), randn(5, 4, seed=1)),
               lambda x, y: torch.einsum("ij,kj", x, y), ops=("linalg.einsum",)),
    DirectCase("einsum_ellipsis", one_op("linalg.einsum", equation="...ij,...jk->...ik"),
               np_inputs(randn(2, 1, 3, 4), randn(5, 4, 2, seed=1)),
               lambda x, y: torch.einsum("...ij,...jk->...ik", x, y), ops=("linalg.einsum",)),
    DirectCase("einsum_trace_outer", one_op("linalg.einsum", equation="ii,j->j"),
               np_inputs(randn(3, 3), randn(4, seed=1)),
               lambda x, y: torch.einsum("ii,j->j", x, y), ops=("linalg.einsum",)),
    DirectCase("einsum_int64", one_op("linalg.einsum", equation="ij->ji"),
               np_inputs(ints(3, 4)), lambda x: torch.einsum("ij->ji", x),
               ops=("linalg.einsum",), exact=True),
]

PRESERVED = [
    PreservedCase("linear_preserved", F.linear,
                  lambda: (randn(2, 3, 4), randn(5, 4, seed=1), randn(5, seed=2)),
                  ("linear.default",), ("linalg.linear",)),
    PreservedCase("einsum_preserved", lambda x, y: torch.einsum("bij,bjk->bik", x, y),
                  lambda: (randn(2, 3, 4), randn(2, 4, 5, seed=1)), ("einsum.default",),
                  ("linalg.einsum",)),
    PreservedCase("matmul_preserved", lambda x, y: x @ y,
                  lambda: (randn(2, 1, 3, 4), randn(3, 4, 5, seed=1)), ("matmul.default",),
                  ("linalg.matmul",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


@pytest.mark.parametrize("case", PRESERVED, ids=lambda c: c.id)
def test_preserved_converter(case):
    run_preserved_case(case)


def _types(*shapes):
    b = GraphBuilder("g")
    return b, [b.input(f"x{i}", TensorType(s, DType.f32)) for i, s in enumerate(shapes)]


def test_matmul_symbolic_batch_broadcast():
    n, s = symbol("N"), symbol("S")
    b, (x, y) = _types((n, 1, s, 8), (4, 8, 16))
    assert str(b.op("linalg.matmul", x, y).type) == "f32[N, 4, S, 16]"


def test_matmul_rejects_mismatched_k():
    b, (x, y) = _types((3, 4), (5, 6))
    with pytest.raises(IRError, match="contracted sizes differ"):
        b.op("linalg.matmul", x, y)


def test_einsum_symbolic_and_bad_equations():
    n = symbol("N")
    b, (x, y) = _types((n, 3, 4), (n, 4, 5))
    assert str(b.op("linalg.einsum", x, y, equation="bij,bjk->bik").type) == "f32[N, 3, 5]"
    for bad in ("bij,bjk->bz", "bij->b,i", "bi,bjk->bik", "bij,bjj->bik"):
        with pytest.raises(IRError):
            b.op("linalg.einsum", x, y, equation=bad)
