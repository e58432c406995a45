"""reparameterize: merge parallel conv branches into one conv (RepVGG, MobileOne)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Constant, Graph, Node, Value
from dlc.passes.graph.fold_batchnorm import batch_norm_affine
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import OpPattern, P, Rule, RuleSet, rewrite_to_fixpoint, single_use

x = P.var("x")


def _branch(conv: Node, graph: Graph) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of a conv branch that may be merged, in f64; None if it may not."""
    if not single_use(graph, conv.output) or tuple(conv.attrs["dilation"]) != (1, 1):
        return None
    w = conv.inputs[1]
    c = conv.inputs[2] if len(conv.inputs) > 2 else None
    if not isinstance(w, Constant) or (c is not None and not isinstance(c, Constant)):
        return None
    weight = np.asarray(w.data, dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if c is None else np.asarray(c.data, dtype=np.float64)
    return weight, bias


def _centered(weight: np.ndarray, padding: tuple[int, ...], size: tuple[int, int],
              target_padding: tuple[int, ...]) -> np.ndarray | None:
    """`weight` zero-padded to kernel `size`, if it then reads the same window as a conv of
    that size with `target_padding` (a 1x1 with padding 0 inside a 3x3 with padding 1)."""
    grow = [s - k for s, k in zip(size, weight.shape[2:])]
    if any(g % 2 for g in grow) or \
            [p + g // 2 for p, g in zip(padding, grow)] != list(target_padding):
        return None
    pads = [(0, 0), (0, 0)] + [(g // 2, g // 2) for g in grow]
    return np.pad(weight, pads)


def _merge_convs(x: Value, a: Node, b_: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    """conv(x, wa, ca) + conv(x, wb, cb) -> conv(x, wa' + wb', ca + cb)."""
    keys = ("stride", "groups", "layout")
    if any(a.attrs[k] != b_.attrs[k] for k in keys):
        return None
    first, second = _branch(a, graph), _branch(b_, graph)
    if first is None or second is None:
        return None
    size = tuple(max(p, q) for p, q in zip(first[0].shape[2:], second[0].shape[2:]))
    big = a if first[0].shape[2:] == size else b_
    padding = tuple(big.attrs["padding"])
    wa = _centered(first[0], tuple(a.attrs["padding"]), size, padding)
    wb = _centered(second[0], tuple(b_.attrs["padding"]), size, padding)
    if wa is None or wb is None or wa.shape != wb.shape:
        return None
    return _conv(b, x, big, wa + wb, first[1] + second[1], a.inputs[1])


def _merge_identity(x: Value, a: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    """conv(x, w, c) + x -> conv(x, w + I, c)  (a "same" conv with stride 1)."""
    return _merge_scaled_identity(x, a, None, b, graph)


def _merge_norm(x: Value, a: Node, bn: Node, b: GraphBuilder, graph: Graph) -> Value | None:
    """conv(x, w, c) + batch_norm(x) -> conv(x, w + m I, c + t)  (MobileOne's skip branch)."""
    if not single_use(graph, bn.output):
        return None
    return _merge_scaled_identity(x, a, bn, b, graph)


def _merge_scaled_identity(x: Value, a: Node, bn: Node | None, b: GraphBuilder,
                           graph: Graph) -> Value | None:
    branch = _branch(a, graph)
    if branch is None or a.output.type != x.type or tuple(a.attrs["stride"]) != (1, 1):
        return None
    weight, bias = branch
    out_c, per_group, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0 or tuple(a.attrs["padding"]) != (kh // 2, kw // 2):
        return None
    mul, shift = np.ones(out_c), np.zeros(out_c)
    if bn is not None:
        channel_axis = 3 if a.attrs["layout"] == "NHWC" else 1
        params = batch_norm_affine(bn)
        if params is None or bn.attrs["axis"] % x.type.rank != channel_axis:
            return None
        mul, shift = params
    identity = np.zeros_like(weight)
    identity[np.arange(out_c), np.arange(out_c) % per_group, kh // 2, kw // 2] = mul
    return _conv(b, x, a, weight + identity, bias + shift, a.inputs[1])


def _conv(b: GraphBuilder, x: Value, like: Node, weight: np.ndarray, bias: np.ndarray,
          named: Value) -> Value:
    dtype = named.dtype.numpy
    base = named.name.rsplit(".", 1)[0] if named.name else "reparam"
    w = Constant.of(weight.astype(dtype), f"{base}.weight_rep")
    c = Constant.of(bias.astype(dtype), f"{base}.bias_rep")
    return b.op("nn.conv2d", x, w, c, **dict(like.attrs))


def _conv_pattern(name: str, with_bias: bool) -> OpPattern:
    operands = (x, P.const(), P.const()) if with_bias else (x, P.const())
    return P.op("nn.conv2d", *operands, name=name)


_NORM = P.op("nn.batch_norm", x, P.const(), P.const(), P.const(), P.const(), name="bn")

rules_reparameterize = RuleSet(
    [Rule(f"conv(x, wa{'+ca' if ba else ''}) + conv(x, wb{'+cb' if bb else ''}) "
          "-> conv(x, wa + wb)",
          P.op("ew.add", _conv_pattern("a", ba), _conv_pattern("b_", bb)), _merge_convs)
     for ba in (False, True) for bb in (False, True)]
    + [Rule(f"conv(x, w{'+c' if ba else ''}) + x -> conv(x, w + I)",
            P.op("ew.add", _conv_pattern("a", ba), x), _merge_identity)
       for ba in (False, True)]
    + [Rule(f"x + conv(x, w{'+c' if ba else ''}) -> conv(x, w + I)",
            P.op("ew.add", x, _conv_pattern("a", ba)), _merge_identity)
       for ba in (False, True)]
    + [Rule(f"conv(x, w{'+c' if ba else ''}) + batch_norm(x) -> conv(x, w + m I, c + t)",
            P.op("ew.add", _conv_pattern("a", ba), _NORM), _merge_norm)
       for ba in (False, True)]
    + [Rule(f"batch_norm(x) + conv(x, w{'+c' if ba else ''}) -> conv(x, w + m I, c + t)",
            P.op("ew.add", _NORM, _conv_pattern("a", ba)), _merge_norm)
       for ba in (False, True)]
)


@register_pass
@dataclass(frozen=True)
class Reparameterize(GraphPass):
    """Structural re-parameterization: parallel conv branches that read the same input
    and are summed (a 3x3 and a 1x1 conv, plus an identity, as in RepVGG and MobileOne at
    inference) become one conv whose kernel is the sum of the branches' kernels, each
    zero-padded to the largest size; an identity or batch-norm skip branch adds a
    (scaled) identity kernel. Runs after fold-batchnorm, so conv branches with batch
    norms are plain convs with bias by then.

    Before:
        graph @f(%x: f32[1, 1, 3, 3]) -> (f32[1, 1, 3, 3]) {
          %0 = nn.conv2d(%x, const([[[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]) : f32[1, 1, 3, 3], padding=[1, 1]) : f32[1, 1, 3, 3]
          %1 = nn.conv2d(%x, const([[[[2.0]]]]) : f32[1, 1, 1, 1]) : f32[1, 1, 3, 3]
          %2 = ew.add(%0, %1) : f32[1, 1, 3, 3]
          %3 = ew.add(%2, %x) : f32[1, 1, 3, 3]
          return %3
        }
    After:
        graph @f(%x: f32[1, 1, 3, 3]) -> (f32[1, 1, 3, 3]) {
          %0 = nn.conv2d(%x, const([[[[1.0, 1.0, 1.0], [1.0, 4.0, 1.0], [1.0, 1.0, 1.0]]]]) : f32[1, 1, 3, 3], const([0.0]) : f32[1], stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1, layout="NCHW") : f32[1, 1, 3, 3]
          return %0
        }
    """  # noqa: E501

    name: ClassVar[str] = "reparameterize"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return rewrite_to_fixpoint(graph, rules_reparameterize, ctx)
