"""Indexing ops: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.ops.cases import TorchCase, case_params, run_case


class Lambda(torch.nn.Module):
    """A module wrapping a function, so each case is one line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def randint(high, *shape, seed=0, dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g).to(dtype)


def ints(*values, dtype=torch.int64):
    return torch.tensor(values, dtype=dtype)


def set_index(x, i, v):
    y = x.clone()
    y[i] = v
    return y


def set_mask(x, m):
    y = x.clone()
    y[m] = 0.0
    return y


def add_at(x, i, j, v):
    y = x.clone()
    y[i, j] += v
    return y


class SelectWithBuffer(torch.nn.Module):
    """index_select with a 0-d index keeps the axis (length 1)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("index", torch.tensor(2))

    def forward(self, x):
        return torch.index_select(x, 1, self.index)


CASES = [
    # -- gather ------------------------------------------------------------------------
    TorchCase("gather", lambda: Lambda(lambda x, i: torch.gather(x, 1, i)),
              lambda: (randn(5, 4), randint(4, 5, 6)), ops=("index.gather",)),
    TorchCase("gather_neg_axis", lambda: Lambda(lambda x, i: torch.gather(x, -3, i)),
              lambda: (randn(3, 4, 5), randint(3, 2, 4, 5)), ops=("index.gather",)),
    TorchCase("gather_smaller_index", lambda: Lambda(lambda x, i: torch.gather(x, 0, i)),
              lambda: (randn(5, 4), randint(5, 7, 2)), ops=("index.gather",)),
    TorchCase("gather_i32_int_data", lambda: Lambda(lambda x, i: torch.gather(x, 1, i)),
              lambda: (torch.arange(20).reshape(4, 5), randint(5, 4, 3, dtype=torch.int32)),
              ops=("index.gather",), exact=True),
    # -- index_select / embedding --------------------------------------------------------
    TorchCase("index_select", lambda: Lambda(lambda x, i: torch.index_select(x, 0, i)),
              lambda: (randn(5, 4), ints(4, 0, 2, 2)), ops=("index.take",)),
    TorchCase("index_select_neg_axis_i32",
              lambda: Lambda(lambda x, i: torch.index_select(x, -1, i)),
              lambda: (randn(2, 3, 5), ints(1, 4, 1, dtype=torch.int32)), ops=("index.take",)),
    TorchCase("index_select_0d_buffer", SelectWithBuffer, lambda: (randn(3, 4),),
              ops=("index.take",)),
    TorchCase("embedding", lambda: torch.nn.Embedding(10, 6),
              lambda: (ints(1, 9, 9, 0, 3, 5).reshape(2, 3),), ops=("index.embedding",)),
    TorchCase("embedding_i32_padding",
              lambda: torch.nn.Embedding(10, 6, padding_idx=0),
              lambda: (ints(0, 7, 7, 2, dtype=torch.int32),), ops=("index.embedding",)),
    # -- scatters ------------------------------------------------------------------------
    TorchCase("scatter_add_duplicates", lambda: Lambda(lambda x, i, s: x.scatter_add(0, i, s)),
              lambda: (randn(4, 3), ints(1, 1, 1, 1, 0, 1, 3, 1, 1).reshape(3, 3),
                       randn(3, 3, seed=1)), ops=("index.scatter_add",)),
    TorchCase("scatter_add_neg_axis_small_index",
              lambda: Lambda(lambda x, i, s: x.scatter_add(-1, i, s)),
              lambda: (randn(3, 6), randint(6, 2, 8), randn(3, 9, seed=1)),
              ops=("index.scatter_add",)),
    TorchCase("scatter_add_i32_int_data",
              lambda: Lambda(lambda x, i, s: x.scatter_add(1, i, s)),
              lambda: (torch.zeros(2, 4, dtype=torch.int64), randint(4, 2, 5, dtype=torch.int32),
                       torch.arange(10).reshape(2, 5)), ops=("index.scatter_add",), exact=True),
    TorchCase("scatter_src", lambda: Lambda(lambda x, i, s: x.scatter(1, i, s)),
              lambda: (randn(3, 5), ints(4, 0, 2, 1, 3, 0).reshape(3, 2), randn(3, 2, seed=1)),
              ops=("index.scatter",)),
    TorchCase("scatter_value", lambda: Lambda(lambda x, i: x.scatter(0, i, 2.5)),
              lambda: (randn(4, 3), ints(3, 0, 1).reshape(1, 3)), ops=("index.scatter",)),
    TorchCase("scatter_reduce_amax",
              lambda: Lambda(lambda x, i, s: x.scatter_reduce(0, i, s, "amax")),
              lambda: (randn(4, 3), randint(4, 6, 3), randn(6, 3, seed=1)),
              ops=("index.scatter_reduce",)),
    TorchCase("scatter_reduce_mean_exclude_self",
              lambda: Lambda(lambda x, i, s: x.scatter_reduce(1, i, s, "mean",
                                                              include_self=False)),
              lambda: (randn(3, 4), randint(4, 3, 7), randn(3, 7, seed=1)),
              ops=("index.scatter_reduce",)),
    TorchCase("scatter_reduce_mean_int",
              lambda: Lambda(lambda x, i, s: x.scatter_reduce(0, i, s, "mean")),
              lambda: (torch.arange(4) - 2, ints(0, 0, 3, 0), ints(-5, 2, 7, -1)),
              ops=("index.scatter_reduce",), exact=True),
    TorchCase("scatter_reduce_amin_bf16",
              lambda: Lambda(lambda x, i, s: x.scatter_reduce(0, i, s, "amin",
                                                              include_self=False)),
              lambda: (randn(4, dtype=torch.bfloat16), ints(1, 1, 2),
                       randn(3, seed=1, dtype=torch.bfloat16)),
              ops=("index.scatter_reduce",), exact=True),
    TorchCase("scatter_reduce_prod",
              lambda: Lambda(lambda x, i, s: x.scatter_reduce(0, i, s, "prod")),
              lambda: (randn(3, 2), randint(3, 4, 2), randn(4, 2, seed=1)),
              ops=("index.scatter_reduce",)),
    # -- index_put (index_add, setitem) ------------------------------------------------
    TorchCase("index_add_duplicates", lambda: Lambda(lambda x, i, s: x.index_add(0, i, s)),
              lambda: (randn(5, 3), ints(4, 0, 4, 4), randn(4, 3, seed=1)),
              ops=("index.index_put",)),
    TorchCase("index_add_axis1_alpha_i32",
              lambda: Lambda(lambda x, i, s: x.index_add(1, i, s, alpha=2.0)),
              lambda: (randn(2, 5), ints(3, 3, 1, dtype=torch.int32), randn(2, 3, seed=1)),
              ops=("index.index_put",)),
    TorchCase("index_put_accumulate",
              lambda: Lambda(lambda x, i, s: x.index_put((i,), s, accumulate=True)),
              lambda: (randn(4, 3), ints(2, 2, 2, 0), randn(4, 3, seed=1)),
              ops=("index.index_put",)),
    TorchCase("index_put_two_indices_accumulate_int",
              lambda: Lambda(lambda x, i, j, s: x.index_put((i, j), s, accumulate=True)),
              lambda: (torch.zeros(3, 4, dtype=torch.int64), ints(0, 2, 0, 0), ints(1, 3, 1, 1),
                       torch.arange(4)), ops=("index.index_put",), exact=True),
    TorchCase("index_put_broadcast_value",
              lambda: Lambda(lambda x, i, s: x.index_put((i,), s)),
              lambda: (randn(4, 3), ints(3, 1), randn(3, seed=1)), ops=("index.index_put",)),
    TorchCase("setitem", lambda: Lambda(set_index),
              lambda: (randn(5, 2), ints(1, 3), randn(2, 2, seed=1)), ops=("index.index_put",)),
    TorchCase("setitem_bool_mask", lambda: Lambda(set_mask),
              lambda: (randn(4, 3), randn(4, 3, seed=1) > 0),
              ops=("index.index_put",)),
    TorchCase("add_at_two_indices", lambda: Lambda(add_at),
              lambda: (randn(4, 3), ints(0, 3, 2), ints(1, 1, 2), randn(3, seed=1)),
              ops=("index.index", "index.index_put")),
    # -- advanced indexing ---------------------------------------------------------------
    TorchCase("index_rows", lambda: Lambda(lambda x, i: x[i]),
              lambda: (randn(5, 4), ints(3, 3, 0, 4)), ops=("index.index",)),
    TorchCase("index_negative_i32", lambda: Lambda(lambda x, i: x[i]),
              lambda: (randn(5, 4), ints(-1, 0, -5, dtype=torch.int32)), ops=("index.index",)),
    TorchCase("index_cols", lambda: Lambda(lambda x, i: x[:, i]),
              lambda: (randn(5, 4), ints(3, 1).reshape(2, 1)), ops=("index.index",)),
    TorchCase("index_pairs_broadcast", lambda: Lambda(lambda x, i, j: x[i, j]),
              lambda: (randn(5, 4), ints(0, 4, 2).reshape(3, 1), ints(1, 3)),
              ops=("index.index",)),
    TorchCase("index_non_adjacent", lambda: Lambda(lambda x, i, j: x[i, :, j]),
              lambda: (randn(3, 4, 5), ints(0, 2), ints(1, 4, 4).reshape(3, 1)),
              ops=("index.index",)),
    TorchCase("index_last_axis_int", lambda: Lambda(lambda x, i: x[..., i]),
              lambda: (torch.arange(24).reshape(2, 3, 4), ints(3, 0)), ops=("index.index",),
              exact=True),
    TorchCase("take", lambda: Lambda(torch.take),
              lambda: (randn(3, 4), ints(0, 11, 5, 5)), ops=("index.index",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_bool_mask_indexing_is_reported():
    """x[mask] has a data-dependent length: refused with an error, not a wrong graph (the
    importer may stop first, at torch's runtime asserts on that length)."""
    from dlc.errors import FrontendError, UnsupportedOpError
    from dlc.frontends.torch import import_module

    with pytest.raises((FrontendError, UnsupportedOpError), match="bool mask|_assert_scalar"):
        import_module(Lambda(lambda x, m: x[m]), (randn(4, 3), randn(4, 3, seed=1) > 0))


def test_type_rules_reject_bad_operands():
    from dlc.errors import TypeInferenceError
    from dlc.ir.builder import GraphBuilder
    from dlc.ir.dtypes import DType
    from dlc.ir.types import TensorType

    b = GraphBuilder()
    x = b.input("x", TensorType((4, 3), DType.f32))
    fi = b.input("fi", TensorType((4, 3), DType.f32))
    i = b.input("i", TensorType((2,), DType.i64))
    v = b.input("v", TensorType((2, 4), DType.f32))
    with pytest.raises(TypeInferenceError, match="integer dtype"):
        b.op("index.gather", x, fi, axis=0)
    with pytest.raises(TypeInferenceError, match="axis 2 is out of range"):
        b.op("index.take", x, i, axis=2)
    with pytest.raises(TypeInferenceError, match="do not broadcast"):
        b.op("index.index_put", x, v, i, axes=[0])
    with pytest.raises(TypeInferenceError, match="axes"):
        b.op("index.index", x, i, i, axes=[1, 0])
