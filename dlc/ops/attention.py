"""Attention ops: scaled dot-product attention (`nn.sdpa`) and ONNX's linear attention
with a recurrent state (`nn.linear_attention`, reference only).

`nn.sdpa` is kept whole (the torch frontend preserves `aten.scaled_dot_product_attention`)
because a backend computes it best as one fused kernel (flash attention), which is hard
to re-discover from its matmul/softmax decomposition.

Its fusion kind is OUT_FUSABLE: it contains matmuls and a softmax, so nothing fuses into
it, but an elementwise consumer can run in its epilogue, as after a matmul.

Lowering: five computes over the (broadcast) batch, each reduction materialized once:

    scores[b, i, j] = sum_e q[b, i, e] * k[b, j, e]
    s(b, i, j)      = scores * scale (+ mask), or -inf where masked / causal (inlined)
    top[b, i]       = max_j s(b, i, j)                  shift = top, or 0 if not finite
    total[b, i]     = sum_j exp(s(b, i, j) - shift)
    probs[b, i, j]  = exp(s(b, i, j) - shift) / (total > 0 ? total : 1)
    out[b, i, e]    = sum_j probs[b, i, j] * v[b, j, e]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.ir.dtypes import DType
from dlc.ir.symbolic import dim, dims_equal, floordiv
from dlc.ir.tensor.compute import Reduce, Tensor, compute, reduce, reduce_axis
from dlc.ir.tensor.context import LowerContext, broadcast_load
from dlc.ir.tensor.expr import Expr, call, cast, compare, const, logical, select
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath_dtype, reduce_then, upcast, widen
from dlc.ops.registry import (
    Attr,
    FusionKind,
    OpDef,
    broadcast_shapes,
    float_tensor,
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

    def compute(self, ctx: LowerContext, q: Tensor, k: Tensor, v: Tensor,
                mask: Tensor | None = None, *, is_causal: bool,
                scale: float | None) -> Tensor:
        batch = ctx.out_shape()[:-2]
        rows, keys = q.shape[-2], k.shape[-2]
        names = ctx.axis_names(len(batch) + 2)
        wide = opmath_dtype(q.dtype)
        emb = q.shape[-1]
        if scale is not None:
            factor = const(scale, wide)
        elif emb.is_const:
            factor = const(1 / math.sqrt(emb.value), wide)
        else:
            factor = cast(const(1.0, DType.f64) / call("sqrt", cast(emb, DType.f64)), wide)

        def at(t: Tensor, b: Sequence[Expr], *rest: Expr) -> Expr:
            """`t[*b, *rest]`, t's batch axes broadcast against the output's."""
            dims = t.shape[:-2]
            lead = [const(0) if d.is_const and d.value == 1 else b[len(b) - len(dims) + n]
                    for n, d in enumerate(dims)]
            return t[(*lead, *rest)]

        re = reduce_axis(emb, ctx.name("re"))
        rj = reduce_axis(keys, ctx.name("rj"))

        def dot(*bij: Expr) -> Reduce:
            b, i, j = bij[:-2], bij[-2], bij[-1]
            return reduce("sum", widen(at(q, b, i, re.var)) * widen(at(k, b, j, re.var)), [re])

        scores = compute((*batch, rows, keys), dot, ctx.name("scores"), axis_names=names)

        def score(*bij: Expr) -> Expr:
            value = scores[bij] * factor
            keep = compare("le", bij[-1], bij[-2]) if is_causal else const(True)
            if mask is not None and mask.dtype == DType.bool:
                keep = logical("and", keep, broadcast_load(mask, bij))
            elif mask is not None:
                value = value + widen(broadcast_load(mask, bij))
            return select(keep, value, const(-math.inf, wide))

        top = compute((*batch, rows), lambda *bi: reduce("max", score(*bi, rj.var), [rj]),
                      ctx.name("max"), axis_names=names[:-1])

        def exp_shifted(*bij: Expr) -> Expr:
            m = top[bij[:-1]]
            finite = logical("not", logical("or", call("isinf", m), call("isnan", m)))
            return call("exp", score(*bij) - select(finite, m, const(0, wide)))

        total = compute((*batch, rows), lambda *bi: reduce("sum", exp_shifted(*bi, rj.var),
                                                            [rj]),
                        ctx.name("sum"), axis_names=names[:-1])

        def prob(*bij: Expr) -> Expr:
            t = total[bij[:-1]]
            return exp_shifted(*bij) / select(compare("gt", t, 0), t, 1)

        # A sum over one element, so the probabilities are stored once (reductions are
        # materialized) rather than recomputed, exp and all, for every output column.
        one = reduce_axis(1, ctx.name("r1"))
        probs = compute((*batch, rows, keys), lambda *bij: reduce("sum", prob(*bij), [one]),
                        ctx.name("probs"), axis_names=names)

        def weighted(*bie: Expr) -> Expr:
            b, i, e = bie[:-2], bie[-2], bie[-1]
            return probs[(*b, i, rj.var)] * widen(at(v, b, rj.var, e))

        return reduce_then(ctx, "sum", weighted, [rj])


# -- linear attention (a recurrence over time) -------------------------------------------


@register_op
class LinearAttention(OpDef):
    """Linear attention with a recurrent state (ONNX LinearAttention): per key/value head,
    `S_t = a_t * S_{t-1} + k_t (x) u_t` and `o_t = scale * q_t^T S_t`, where for the
    update rules `linear` a=1, u=v; `gated` a=exp(g); `delta` a=1, u=beta*(v - S^T k);
    `gated_delta` a=exp(g), u=beta*(v - a*S^T k). Packed `[B, T, heads * dim]` operands,
    grouped query heads, state `[B, H_kv, d_k, d_v]`; returns (output, final state)."""

    name = "nn.linear_attention"
    inputs = ("q", "k", "v", "state", "decay", "beta")
    attrs = {"q_num_heads": Attr("int"), "kv_num_heads": Attr("int"),
             "update_rule": Attr("str", "gated_delta",
                                 choices=("linear", "gated", "delta", "gated_delta")),
             "scale": Attr("float", None, optional=True, doc="none: 1/sqrt(d_k)")}
    fusion_kind = FusionKind.OPAQUE

    def infer_type(self, q: Any, k: Any, v: Any, state: Any, decay: Any, beta: Any, *,
                   q_num_heads: int, kv_num_heads: int, **_: Any
                   ) -> tuple[TensorType, TensorType]:
        q, k, v, state = (float_tensor(self, t) for t in (q, k, v, state))
        if q.rank != 3 or q_num_heads % kv_num_heads:
            raise self.error(f"expects [B, T, heads * d] operands and q heads a multiple of "
                             f"kv heads, got {q}, {q_num_heads} and {kv_num_heads}")
        dv = floordiv(v.shape[2], kv_num_heads)
        return (q.with_shape((q.shape[0], q.shape[1], dim(dv * q_num_heads))),
                state.with_dtype(q.dtype))

    def reference(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, state: np.ndarray,
                  decay: np.ndarray, beta: np.ndarray, *, q_num_heads: int,
                  kv_num_heads: int, update_rule: str, scale: float | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        b, t = q.shape[:2]
        hk = kv_num_heads
        dk = k.shape[2] // hk
        dv = v.shape[2] // hk
        qf = upcast(q).reshape(b, t, q_num_heads, dk)
        kf = upcast(k).reshape(b, t, hk, dk)
        vf = upcast(v).reshape(b, t, hk, dv)
        s = upcast(state).astype(qf.dtype).copy()  # [B, Hkv, dk, dv]
        gate = np.exp(upcast(decay))
        gate = gate.reshape(b, t, hk, -1)  # [.., 1] per head or [.., dk] per key dimension
        rate = np.broadcast_to(upcast(beta).reshape(b, t, -1), (b, t, hk))
        if scale is None or scale == 0:
            scale = 1 / np.sqrt(dk)
        group = q_num_heads // hk
        out = np.zeros((b, t, q_num_heads, dv), dtype=qf.dtype)
        for i in range(t):
            kt, vt = kf[:, i], vf[:, i]  # [B, Hkv, d]
            if update_rule in ("gated", "gated_delta"):
                s = s * gate[:, i][..., None]  # decays rows (key dimensions) of S
            if update_rule in ("delta", "gated_delta"):
                predicted = np.einsum("bhkv,bhk->bhv", s, kt)
                vt = rate[:, i][..., None] * (vt - predicted)
            s = s + kt[..., :, None] * vt[..., None, :]
            heads = np.repeat(s, group, axis=1)  # each kv head serves `group` q heads
            out[:, i] = scale * np.einsum("bhk,bhkv->bhv", qf[:, i], heads)
        return (out.reshape(b, t, -1).astype(q.dtype), s.astype(q.dtype))
