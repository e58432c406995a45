"""fold-batchnorm: fold an inference batch norm into the conv or linear layer before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import P, Rule, RuleSet, rewrite_to_fixpoint, single_use

FOLDABLE = ("nn.conv1d", "nn.conv2d", "linalg.linear")
"""Layers whose weight has one row per output channel (`w[o, ...]`); transposed convs
keep output channels in their second axis and are not folded."""


def batch_norm_affine(bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (multiplier, shift) of a batch norm with constant parameters, in f64."""
    params = bn.inputs[1:]
    if not all(isinstance(p, Constant) for p in params):
        return None
    scale, bias, mean, var = (np.asarray(p.data, dtype=np.float64) for p in params)
    mul = scale / np.sqrt(var + bn.attrs["eps"])
    return mul, bias - mean * mul


def _channel_axis(layer: Node) -> int:
    """The output axis that holds the channels the weight's first axis indexes."""
    rank = layer.output.type.rank
    if layer.op.name == "linalg.linear":
        return rank - 1
    return rank - 1 if layer.attrs["layout"] in ("NHWC", "NWC") else 1


def _fold(layer: Node, bn: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    """layer(x, w, c) then bn  ->  layer(x, w * m, (c - mean) * m + beta), m = s / sqrt(v + e)."""
    y = layer.output
    if not single_use(graph, y):
        return None  # the unnormalized result is needed elsewhere: folding would duplicate
    if bn.attrs["axis"] % y.type.rank != _channel_axis(layer):
        return None
    params = batch_norm_affine(bn)
    w = layer.inputs[1]
    c = layer.inputs[2] if len(layer.inputs) > 2 else None
    if params is None or not isinstance(w, Constant) or \
            (c is not None and not isinstance(c, Constant)):
        return None
    mul, shift = params
    dtype = w.data.dtype
    w64 = np.asarray(w.data, dtype=np.float64)
    new_w = (w64 * mul.reshape((-1,) + (1,) * (w64.ndim - 1))).astype(dtype)
    old_c = np.zeros_like(mul) if c is None else np.asarray(c.data, dtype=np.float64).reshape(-1)
    new_c = (old_c * mul + shift).astype(dtype)
    base = w.name.rsplit(".", 1)[0] if w.name else "folded"
    weight = Constant.of(new_w, f"{base}.weight_bn")
    bias = Constant.of(new_c, f"{base}.bias_bn")
    return b.op(layer.op.name, layer.inputs[0], weight, bias, **dict(layer.attrs))


def _short(op: str) -> str:
    return op.split(".")[1]


rules_fold_batchnorm = RuleSet(
    [Rule(f"batch_norm({_short(op)}(x, w)) -> {_short(op)}(x, w', b')",
          P.op("nn.batch_norm", P.op(op, P.var("x"), P.const(), name="layer"),
               P.var("s"), P.var("t"), P.var("m"), P.var("v"), name="bn"), _fold)
     for op in FOLDABLE]
    + [Rule(f"batch_norm({_short(op)}(x, w, c)) -> {_short(op)}(x, w', c')",
            P.op("nn.batch_norm", P.op(op, P.var("x"), P.const(), P.const(), name="layer"),
                 P.var("s"), P.var("t"), P.var("m"), P.var("v"), name="bn"), _fold)
       for op in FOLDABLE]
)


@register_pass
@dataclass(frozen=True)
class FoldBatchnorm(GraphPass):
    """Batch-norm folding: at inference a batch norm is a per-channel affine map, so a
    batch norm right after a conv or linear layer with constant weights folds into that
    layer's weight and bias (computed once, in f64). The layer's result must have no
    other reader, and the norm must act on the layer's output channels.

    Before:
        graph @f(%x: f32[1, 2, 4, 4]) -> (f32[1, 2, 4, 4]) {
          %0 = nn.conv2d(%x, const([[[[2.0]], [[0.0]]], [[[0.0]], [[1.0]]]]) : f32[2, 2, 1, 1]) : f32[1, 2, 4, 4]
          %1 = nn.batch_norm(%0, const([1.0, 2.0]) : f32[2], const([0.5, 0.5]) : f32[2], const([0.0, 1.0]) : f32[2], const([1.0, 4.0]) : f32[2], eps=0.0) : f32[1, 2, 4, 4]
          return %1
        }
    After:
        graph @f(%x: f32[1, 2, 4, 4]) -> (f32[1, 2, 4, 4]) {
          %0 = nn.conv2d(%x, const([[[[2.0]], [[0.0]]], [[[0.0]], [[1.0]]]]) : f32[2, 2, 1, 1], const([0.5, -0.5]) : f32[2], stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1, layout="NCHW") : f32[1, 2, 4, 4]
          return %0
        }
    """  # noqa: E501

    name: ClassVar[str] = "fold-batchnorm"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return rewrite_to_fixpoint(graph, rules_fold_batchnorm, ctx)
