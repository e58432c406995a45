"""Scaled dot-product attention: the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.cases import TorchCase, case_params, run_case
from tests.ops.test_nn import Lambda, randn

SDPA = ("nn.sdpa",)


def qkv(batch=(2, 3), L=5, S=7, E=8, Ev=6):
    """Inputs q [*batch, L, E], k [*batch, S, E], v [*batch, S, Ev]."""
    return lambda: (randn(*batch, L, E), randn(*batch, S, E, seed=1),
                    randn(*batch, S, Ev, seed=2))


def bool_mask(L, S, seed=3):
    """A random [L, S] keep-mask."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(L, S, generator=g) > 0.4
    keep[:, 0] = True  # every query keeps a key: no all-masked rows
    return keep


CASES = [
    TorchCase("sdpa", lambda: Lambda(F.scaled_dot_product_attention), qkv(), ops=SDPA),
    TorchCase("sdpa_causal", lambda: Lambda(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, is_causal=True)), qkv(S=5), ops=SDPA),
    TorchCase("sdpa_causal_rectangular", lambda: Lambda(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        qkv(L=4, S=6), ops=SDPA),
    TorchCase("sdpa_scale", lambda: Lambda(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, scale=0.2)), qkv(batch=(4,)), ops=SDPA),
    TorchCase("sdpa_bool_mask", lambda: Lambda(lambda q, k, v, m: F.scaled_dot_product_attention(
        q, k, v, attn_mask=m)), lambda: (*qkv()(), bool_mask(5, 7)), ops=SDPA),
    TorchCase("sdpa_float_mask", lambda: Lambda(lambda q, k, v, m: F.scaled_dot_product_attention(
        q, k, v, attn_mask=m)), lambda: (*qkv()(), randn(3, 1, 7, seed=4)), ops=SDPA),
    TorchCase("sdpa_masked_row_is_zero", lambda: Lambda(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
        lambda: (*qkv(batch=(1, 2), L=3, S=4)(),
                 torch.tensor([[True, False, True, True], [False] * 4, [True] * 4])),
        ops=SDPA),
    TorchCase("sdpa_3d", lambda: Lambda(F.scaled_dot_product_attention),
              qkv(batch=(2,), L=3, S=3, E=4, Ev=4), ops=SDPA),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)


def test_sdpa_rejects_dropout():
    from dlc.errors import FrontendError
    from dlc.frontends.torch import import_module

    module = Lambda(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.1))
    with pytest.raises(FrontendError, match="dropout_p"):
        import_module(module, qkv()())
