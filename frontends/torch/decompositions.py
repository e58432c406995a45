"""Which ATen ops torch.export may decompose, and which dlc keeps whole.

The frontend imports core ATen after `run_decompositions()`. Ops listed in `PRESERVED`
are removed from the decomposition table, so they reach the importer as one node and map
to one registry op (a fused attention or normalization is easier to optimize whole than
re-discovered from its decomposition).
"""

from __future__ import annotations

from typing import Any

# Each entry needs a converter. Kept whole because each maps to one registry op that
# later stages optimize better than its decomposition (a fused attention kernel, a
# one-pass normalization, a resize whose index rule is exact rather than re-derived from
# float arithmetic on arange).
PRESERVED: tuple[str, ...] = (
    # nn.sdpa; otherwise bmm + softmax + masking (and _safe_softmax's where/any).
    "aten.scaled_dot_product_attention.default",
    # nn.rms_norm; otherwise pow + mean + rsqrt + mul.
    "aten.rms_norm.default",
    # nn.instance_norm; otherwise repeat + view + a training-mode batch norm.
    "aten.instance_norm.default",
    # image.affine_grid; otherwise arange/where/pad arithmetic and a batched matmul.
    "aten.affine_grid_generator.default",
    # image.resize for the modes that are not core ATen (otherwise arange + index).
    "aten._upsample_nearest_exact2d.vec",
    "aten._upsample_nearest_exact1d.vec",
    "aten.upsample_nearest1d.vec",
    "aten.upsample_linear1d.vec",
    # ew.silu / ew.hardswish / ew.hardsigmoid / ew.softplus; otherwise 2-6 elementwise ops
    # each (the converters and tests are in convert_elementwise / test_elementwise).
    "aten.silu.default",
    "aten.hardswish.default",
    "aten.hardsigmoid.default",
    "aten.softplus.default",
    # linalg.linear; otherwise permute + addmm, and fold-batchnorm wants the whole layer.
    "aten.linear.default",
)


def decomposition_table() -> Any:
    """torch.export's default decomposition table minus the PRESERVED ops."""
    import torch

    table = torch.export.default_decompositions()
    for name in PRESERVED:
        packet, _, overload = name.removeprefix("aten.").rpartition(".")
        op = getattr(getattr(torch.ops.aten, packet), overload)
        if op in table:
            del table[op]
    return table
