"""Scaled dot-product attention as one op (`nn.sdpa`).

Kept whole (the torch frontend preserves `aten.scaled_dot_product_attention`) because a
backend computes it best as one fused kernel (flash attention), which is hard to
re-discover from its matmul/softmax decomposition.

Its fusion kind is OUT_FUSABLE: it contains matmuls and a softmax, so nothing fuses into
it, but an elementwise consumer can run in its epilogue, as after a matmul.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import dims_equal
from dlc.ir.types import TensorType
from dlc.ops.nn import float_tensor, upcast
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    register_op,
    same_dtype,
    tensor,
)


@register_op
class Sdpa(OpDef):
    """`softmax(q @ k^T * scale + mask) @ v` over the last two axes, torch's semantics.

    Shapes `q: [..., L, E]`, `k: [..., S, E]`, `v: [..., S, Ev]` -> `[..., L, Ev]`; the
    leading axes broadcast and q, k, v have the same number of heads (no GQA). `mask`
    broadcasts to `[..., L, S]`: a bool mask keeps the True positions, a float mask is
    added. `is_causal` keeps `j <= i` (the top-left aligned lower triangle). `scale`
    defaults to `1/sqrt(E)`. A query row with every key masked out yields zeros, as torch.
    """

    name = "nn.sdpa"
    inputs = ("q", "k", "v", "mask?")
    attrs = {"is_causal": Attr("bool", False),
             "scale": Attr("float", None, optional=True, doc="none: 1/sqrt(E)")}
    fusion_kind = FusionKind.OUT_FUSABLE

    def infer_type(self, q: Any, k: Any, v: Any, mask: Any = None, *, is_causal: bool,
                   scale: float | None) -> TensorType:
        q, k, v = float_tensor(self, q), float_tensor(self, k), float_tensor(self, v)
        dtype = same_dtype(self.name, q, k, v)
        if min(q.rank, k.rank, v.rank) < 2:
            raise self.error(f"q, k and v need rank >= 2, got {q}, {k}, {v}")
        (l_len, e), (s_len, ek), (sv, ev) = q.shape[-2:], k.shape[-2:], v.shape[-2:]
        if not dims_equal(e, ek):
            raise self.error(f"q {q} and k {k} differ in the embedding size")
        if not dims_equal(s_len, sv):
            raise self.error(f"k {k} and v {v} differ in the sequence length")
        batch = broadcast_shapes(self.name, q.shape[:-2], k.shape[:-2], v.shape[:-2])
        if mask is not None:
            mask = tensor(mask, self.name)
            if mask.dtype != DType.bool and mask.dtype != dtype:
                raise self.error(f"mask must be bool or {dtype}, got {mask.dtype}")
            scores = (*batch, l_len, s_len)
            full = broadcast_shapes(self.name, mask.shape, scores)
            if len(full) != len(scores) or not all(map(dims_equal, full, scores)):
                raise self.error(f"mask {mask} does not broadcast to the scores "
                                 f"[{', '.join(map(str, scores))}]")
        return TensorType((*batch, l_len, ev), dtype)

    def reference(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                  mask: np.ndarray | None = None, *, is_causal: bool,
                  scale: float | None) -> np.ndarray:
        qf, kf, vf = upcast(q), upcast(k), upcast(v)
        if scale is None:
            scale = 1 / math.sqrt(q.shape[-1])
        scores = (qf @ np.swapaxes(kf, -1, -2)) * qf.dtype.type(scale)
        keep = None
        if is_causal:
            l_len, s_len = scores.shape[-2:]
            keep = np.tril(np.ones((l_len, s_len), dtype=bool))
        if mask is not None and mask.dtype == np.bool_:
            keep = mask if keep is None else keep & mask
        elif mask is not None:
            scores = scores + upcast(mask)
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        top = scores.max(axis=-1, keepdims=True)
        # A fully masked row has max -inf; shifting by 0 instead gives exp(-inf) = 0 and
        # a zero row (torch's convention) instead of NaN.
        e = np.exp(scores - np.where(np.isfinite(top), top, 0))
        total = e.sum(axis=-1, keepdims=True)
        probs = e / np.where(total > 0, total, 1)
        return (probs @ vf).astype(q.dtype, copy=False)
