"""ONNX converters for attention: Attention (`nn.sdpa`) and LinearAttention.

The common form of ONNX's Attention (opset 23) — no KV cache, no soft-capping, no
sliding window, no debug output — is one `nn.sdpa`, with grouped key/value heads
repeated to the query heads and 3-D packed operands unpacked to heads. Every other
variant imports through the op's ONNX function body (matmul / softmax form).
"""

from __future__ import annotations

from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode, UseFunctionBody
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.symbolic import dim, floordiv

B = OnnxGraphBuilder


def _heads(b: B, x: Value, heads: int) -> Value:
    """`[B, S, heads * D]` -> `[B, heads, S, D]`."""
    n, s, hidden = b.shape_of(x)
    y = b.op("shape.reshape", x, shape=(n, s, heads, floordiv(hidden, heads)))
    return b.op("shape.permute", y, perm=(0, 2, 1, 3))


def _repeat_heads(b: B, x: Value, times: int) -> Value:
    """`[B, H, S, D]` -> `[B, H * times, S, D]`, each head repeated `times` in a row."""
    if times == 1:
        return x
    n, h, s, d = b.shape_of(x)
    y = b.op("shape.unsqueeze", x, axes=(2,))
    y = b.op("shape.expand", y, shape=(n, h, times, s, d))
    return b.op("shape.reshape", y, shape=(n, dim(h * times), s, d))


@onnx_op("Attention", since=23)
def _attention(b: B, node: OnnxNode) -> Value:
    q, k, v, mask = node.inputs[0], node.inputs[1], node.inputs[2], node.input(3)
    plain = (all(node.input(i) is None for i in (4, 5, 6)) and node.num_outputs <= 1
             and not node.attr("softcap", 0.0) and not node.attr("qk_matmul_output_mode", 0)
             and node.attr("left_window_size", -1) == -1
             and node.attr("right_window_size", -1) == -1
             and node.attr("softmax_precision") is None)
    if not plain or (mask is not None and mask.dtype != DType.bool and mask.dtype != q.dtype):
        raise UseFunctionBody
    packed = b.rank_of(q) == 3
    if packed:
        hq, hk = node.attr("q_num_heads"), node.attr("kv_num_heads")
        q, k, v = _heads(b, q, hq), _heads(b, k, hk), _heads(b, v, hk)
    hq, hk = b.shape_of(q)[1], b.shape_of(k)[1]
    if not (isinstance(hq, int) and isinstance(hk, int) and hq % hk == 0):
        raise UseFunctionBody
    k, v = _repeat_heads(b, k, hq // hk), _repeat_heads(b, v, hq // hk)
    if mask is not None and b.shape_of(mask)[-1] != b.shape_of(k)[2]:
        raise UseFunctionBody  # a short mask is padded to the key length: the body does it
    y = b.op("nn.sdpa", q, k, v, *([mask] if mask is not None else []),
             is_causal=bool(node.attr("is_causal", 0)), scale=node.attr("scale"))
    if packed:
        n, h, s, d = b.shape_of(y)
        y = b.op("shape.reshape", b.op("shape.permute", y, perm=(0, 2, 1, 3)),
                 shape=(n, s, dim(h * d)))
    return y


@onnx_op("LinearAttention")
def _linear_attention(b: B, node: OnnxNode) -> tuple[Value, Value]:
    q, k, v = node.inputs[0], node.inputs[1], node.inputs[2]
    state, decay, beta = node.input(3), node.input(4), node.input(5)
    hq, hk = node.attr("q_num_heads"), node.attr("kv_num_heads")
    batch, steps = b.shape_of(q)[:2]
    dk = b.shape_of(k)[2] // hk
    dv = b.shape_of(v)[2] // hk
    rule = node.attr("update_rule", "gated_delta")
    if state is None:
        state = b.op("create.full", shape=(batch, hk, dk, dv), value=0.0, dtype=q.dtype)
    if decay is None or rule in ("linear", "delta"):
        decay = b.op("create.full", shape=(batch, steps, hk), value=0.0, dtype=q.dtype)
    if beta is None or rule in ("linear", "gated"):
        beta = b.op("create.full", shape=(batch, steps, 1), value=1.0, dtype=q.dtype)
    scale = node.attr("scale", 0.0)
    return b.op("nn.linear_attention", q, k, v, b.cast(state, q.dtype), b.cast(decay, q.dtype),
                b.cast(beta, q.dtype), q_num_heads=hq, kv_num_heads=hk, update_rule=rule,
                scale=scale or None)
