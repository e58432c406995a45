"""Attention ops: scaled dot-product attention (`nn.sdpa`) and ONNX's linear attention
with a recurrent state (`nn.linear_attention`, reference only).

`nn.sdpa` is kept whole (the torch frontend preserves `aten.scaled_dot_product_attention`)
because a backend computes it best as one fused kernel (flash attention), which is hard
to re-discover from its matmul/softmax decomposition.

Its fusion kind is OUT_FUSABLE: it contains matmuls and a softmax, so nothing fuses into
it, but an elementwise consumer can run in its epilogue, as after a matmul.

Lowering: computes over the (broadcast) batch, the query rows in blocks of RB
(`row = min(ib * RB + ii, L - 1)`: a partial last block repeats row L - 1) and the keys
padded to whole panels of PANEL (S' = S rounded up; padded keys are masked out), each
reduction materialized once:

    kt[b, jo, e, jl]     = k[b, min(jo * PANEL + jl, S - 1), e]   K^T in panels
    scores[b, ib, ii, j] = sum_e q[b, row, e] * kt[b, j // PANEL, e, j % PANEL]
    s(b, ib, ii, j)      = scores * scale (+ mask), or -inf where masked / causal / j >= S
    top[b, ib, ii]       = max_j s                       shift = top, or 0 if not finite
    exps[b, ib, ii, j]   = exp(s - shift)
    total[b, ib, ii]     = sum_j exps
    probs[b, ib, ii, j]  = exps * (1 / (total > 0 ? total : 1))
    acc[b, ib, ii, e]    = sum_{j < S} probs[b, ib, ii, j] * v[b, j, e]
    out[b, i, e]         = acc[b, i // RB, i % RB, e]

(With fewer than MIN_PANEL_ROWS query rows, a decoding step, scores read k directly and
the keys are not padded.) The blocks are what makes it fast: passes/tensor/
schedule_attention.py computes every stage of a block inside one parallel loop over
(batch, block), so a block's scores and probabilities stay in cache between the stages,
as in flash attention; the panels let the scores' GEMM run without a tail guard.
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
from dlc.ir.tensor.expr import (
    Expr,
    call,
    cast,
    compare,
    const,
    logical,
    min_,
    select,
)
from dlc.ir.types import TensorType
from dlc.ops.opmath import opmath_dtype, upcast, widen
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
        rows, keys, emb = q.shape[-2], k.shape[-2], q.shape[-1]
        block, blocks = row_blocks(rows)
        names = ctx.axis_names(len(batch) + 3)
        wide = opmath_dtype(q.dtype)
        if scale is not None:
            factor = const(scale, wide)
        elif emb.is_const:
            factor = const(1 / math.sqrt(emb.value), wide)
        else:
            factor = cast(const(1.0, DType.f64) / call("sqrt", cast(emb, DType.f64)), wide)

        def at(t: Tensor, b: Sequence[Expr], *rest: Expr) -> Expr:
            """`t[*b, *rest]`, t's batch axes broadcast against the output's."""
            dims = t.shape[:-len(rest)]
            lead = [const(0) if d.is_const and d.value == 1 else b[len(b) - len(dims) + n]
                    for n, d in enumerate(dims)]
            return t[(*lead, *rest)]

        def row(ib: Expr, ii: Expr) -> Expr:
            """The query row of position ii of block ib (a partial last block repeats the
            last row, so every block is full and its loads stay in bounds)."""
            if blocks.is_const and blocks.value == 1:
                return ii
            return min_(ib * block + ii, rows - 1)

        if rows.is_const and rows.value < MIN_PANEL_ROWS:
            # a few query rows (decoding): each score is a dot product along a contiguous
            # row of K, and a copy of K into panels would cost more than it saves
            padded = keys

            def key(b: Sequence[Expr], j: Expr, e: Expr) -> Expr:
                return widen(at(k, b, j, e))
        else:
            # K^T in panels of PANEL keys, kt[b, jo, e, jl] = k[b, jo * PANEL + jl, e], the
            # last one padded by repeating key S - 1 (masked out below): the GEMM's lanes
            # read whole panel rows, no tail guard. A sum over one element materializes it.
            padded = (keys + (PANEL - 1)) // PANEL * PANEL
            one_k = reduce_axis(1, ctx.name("r1"))
            kbatch = k.shape[:-2]
            kt = compute((*kbatch, padded // PANEL, emb, const(PANEL)), lambda *bejl: reduce(
                "sum", widen(k[(*bejl[:-3], min_(bejl[-3] * PANEL + bejl[-1], keys - 1),
                                bejl[-2])]), [one_k]),
                ctx.name("kpanels"), axis_names=ctx.axis_names(len(kbatch) + 3))

            def key(b: Sequence[Expr], j: Expr, e: Expr) -> Expr:
                return at(kt, b, j // PANEL, e, j % PANEL)

        re = reduce_axis(emb, ctx.name("re"))
        rj = reduce_axis(padded, ctx.name("rj"))
        blocked = (*batch, blocks, block)  # the scores' and probabilities' leading axes
        clamp = not (keys.is_const and padded.is_const and keys.value == padded.value)

        def dot(*bij: Expr) -> Reduce:
            b, i, j = bij[:-3], row(*bij[-3:-1]), bij[-1]
            return reduce("sum", widen(at(q, b, i, re.var)) * key(b, j, re.var), [re])

        scores = compute((*blocked, padded), dot, ctx.name("scores"), axis_names=names)

        def score(*bij: Expr) -> Expr:
            i, j = row(*bij[-3:-1]), bij[-1]
            value = scores[bij] * factor
            keep = compare("lt", j, keys) if clamp else const(True)  # a padded key?
            at_j = min_(j, keys - 1) if clamp else j
            if is_causal:
                keep = logical("and", keep, compare("le", j, i))
            if mask is not None and mask.dtype == DType.bool:
                keep = logical("and", keep, broadcast_load(mask, (*bij[:-3], i, at_j)))
            elif mask is not None:
                value = value + widen(broadcast_load(mask, (*bij[:-3], i, at_j)))
            return select(keep, value, const(-math.inf, wide))

        top = compute(blocked, lambda *bi: reduce("max", score(*bi, rj.var), [rj]),
                      ctx.name("max"), axis_names=names[:-1])

        def exp_shifted(*bij: Expr) -> Expr:
            m = top[bij[:-1]]
            finite = logical("not", logical("or", call("isinf", m), call("isnan", m)))
            return call("exp", score(*bij) - select(finite, m, const(0, wide)))

        # Sums over one element, so the exponentials and the probabilities are stored once
        # (reductions are materialized): exp runs once per score, not once per output column.
        one = reduce_axis(1, ctx.name("r1"))
        exps = compute((*blocked, padded), lambda *bij: reduce("sum", exp_shifted(*bij), [one]),
                       ctx.name("exps"), axis_names=names)
        total = compute(blocked, lambda *bi: reduce("sum", exps[(*bi, rj.var)], [rj]),
                        ctx.name("sum"), axis_names=names[:-1])

        def prob(*bij: Expr) -> Expr:
            t = total[bij[:-1]]
            return exps[bij] * (const(1, wide) / select(compare("gt", t, 0), t, 1))

        probs = compute((*blocked, padded), lambda *bij: reduce("sum", prob(*bij), [one]),
                        ctx.name("probs"), axis_names=names)

        rs = reduce_axis(keys, ctx.name("rs"))  # the real keys: no padded V rows

        def weighted(*bie: Expr) -> Reduce:
            b, e = bie[:-3], bie[-1]
            return reduce("sum", probs[(*bie[:-1], rs.var)] * widen(at(v, b, rs.var, e)),
                          [rs])

        acc = compute((*blocked, v.shape[-1]), weighted, ctx.name("acc"), axis_names=names)

        def unblocked(*bie: Expr) -> Expr:
            i = bie[-2]
            if blocks.is_const and blocks.value == 1:
                return cast(acc[(*bie[:-2], const(0), i, bie[-1])], ctx.out_dtype())
            return cast(acc[(*bie[:-2], i // block, i % block, bie[-1])], ctx.out_dtype())

        return compute(ctx.out_shape(), unblocked, ctx.name(), axis_names=names[:-1])


PANEL = 32  # keys per K^T panel: the GEMM micro-kernel's lanes (2 AVX-512 vectors)
MIN_PANEL_ROWS = 8  # fewer query rows read K as it is (a copy would not pay for itself)
ROW_BLOCK = 64  # most query rows per block: a block's scores (64 x S floats) stay in L2
SYMBOLIC_ROW_BLOCK = 8  # a block of rows of unknown count: at most 7 repeated rows


def row_blocks(rows: Expr) -> tuple[int, Expr]:
    """(RB, number of blocks) for `rows` query rows: blocks of at most ROW_BLOCK rows,
    as equal as possible and a multiple of 8 (the GEMM micro-kernel's row tile), so the
    last block repeats few rows (334 rows: 6 blocks of 56, the last repeating 2)."""
    if not rows.is_const:
        return SYMBOLIC_ROW_BLOCK, (rows + (SYMBOLIC_ROW_BLOCK - 1)) // SYMBOLIC_ROW_BLOCK
    n = int(rows.value)
    if n <= ROW_BLOCK:
        return max(n, 1), const(1)
    count = -(-n // ROW_BLOCK)
    block = -(-n // count)
    block = min(ROW_BLOCK, -(-block // 8) * 8)
    return block, const(-(-n // block))


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
