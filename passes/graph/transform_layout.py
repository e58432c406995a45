"""transform-layout: run convs and pools in the layout the backend prefers (NCHW by default)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from dlc.errors import DLCError
from dlc.ir.builder import GraphBuilder
from dlc.ir.graph import Graph, Node, Value
from dlc.ops.registry import all_ops
from dlc.passes.graph.sink_transposes import TRANSPOSERS, rules_sink_transposes
from dlc.passes.manager import GraphPass, PassContext, register_pass
from dlc.passes.rewrite import P, Rule, RuleSet, rewrite_to_fixpoint

PREFERRED_LAYOUT = "NCHW"  # measured: tests/bench conv kernels, NCHW ~1.2-1.4x NHWC
CHANNELS_LAST = {"NCHW": "NHWC", "NCW": "NWC"}
CHANNELS_FIRST = {v: k for k, v in CHANNELS_LAST.items()}


def _convert(root: Node, b: GraphBuilder, target: dict[str, str]) -> Value | None:
    src = root.attrs["layout"]
    dst = target.get(src)
    if dst is None or dst not in root.op.attrs["layout"].choices \
            or root.inputs[0].type.rank != len(src):  # an unbatched [C, H, W] pool input
        return None
    x = b.op("shape.layout_transform", root.inputs[0], src_layout=src, dst_layout=dst)
    attrs = {**root.attrs, "layout": dst}
    y = b.op(root.op, x, *root.inputs[1:], **attrs)
    return b.op("shape.layout_transform", y, src_layout=dst, dst_layout=src)


@cache
def rules_convert(layout: str) -> RuleSet:
    """One rule per op (and operand count) whose `layout` attribute offers `layout`."""
    if layout not in ("NHWC", "NCHW"):
        raise DLCError(f"transform-layout: layout must be NHWC or NCHW, not {layout!r}")
    target = CHANNELS_LAST if layout == "NHWC" else CHANNELS_FIRST
    rules = []
    for op in all_ops():
        spec = op.attrs.get("layout")
        if spec is None or not set(target) & set(spec.choices):
            continue
        lo, hi = op.arity()
        for n in range(max(lo, 1), (hi if hi is not None else lo) + 1):
            operands = [P.var(f"v{i}") for i in range(n)]
            rules.append(Rule(f"{op.name}(x, layout=L) -> transform({op.name}(transform(x)), "
                              f"layout={layout})",
                              P.op(op.name, *operands),
                              lambda root, b: _convert(root, b, target)))
    return RuleSet(rules)


@register_pass
@dataclass(frozen=True)
class TransformLayout(GraphPass):
    """Layout transformation: rewrite every conv and pool to `layout` by setting its layout
    attribute and wrapping it in `shape.layout_transform` ops, then sink those transforms
    through the elementwise ops and batch norms between layers so that back-to-back
    transforms cancel. The rewrite is kept only if it adds no more transforms than one
    converted region needs (one in and one out, or one per input and output of rank
    3 or more), plus `max_inner_transforms`: a transform stuck in the middle (before a
    group norm or a concat) costs a copy of the tensor, so a model full of them keeps its
    layout, and a note in the log says why.

    The default `layout` is the one dlc's CPU kernels run fastest, PREFERRED_LAYOUT =
    "NCHW": a convolution vectorizes over output channels with its weight packed at
    compile time and reads the input one broadcast element at a time, which a
    channels-first input serves from consecutive addresses along the kernel's columns
    (channels-last models, e.g. from ONNX converters, are turned around).
    `layout="NHWC"` gives the channels-last variant.

    Before:
        graph @f(%x: f32[1, 4, 4, 2]) -> (f32[1, 4, 4, 2]) {
          %0 = nn.max_pool2d(%x, kernel=[1, 1], stride=[1, 1], layout="NHWC") : f32[1, 4, 4, 2]
          %1 = ew.relu(%0) : f32[1, 4, 4, 2]
          %2 = nn.max_pool2d(%1, kernel=[1, 1], stride=[1, 1], layout="NHWC") : f32[1, 4, 4, 2]
          return %2
        }
    After:
        graph @f(%x: f32[1, 4, 4, 2]) -> (f32[1, 4, 4, 2]) {
          %0 = shape.layout_transform(%x, src_layout="NHWC", dst_layout="NCHW") : f32[1, 2, 4, 4]
          %1 = nn.max_pool2d(%0, kernel=[1, 1], stride=[1, 1], padding=[0, 0], dilation=[1, 1], ceil_mode=false, layout="NCHW") : f32[1, 2, 4, 4]
          %2 = ew.relu(%1) : f32[1, 2, 4, 4]
          %3 = nn.max_pool2d(%2, kernel=[1, 1], stride=[1, 1], padding=[0, 0], dilation=[1, 1], ceil_mode=false, layout="NCHW") : f32[1, 2, 4, 4]
          %4 = shape.layout_transform(%3, src_layout="NCHW", dst_layout="NHWC") : f32[1, 4, 4, 2]
          return %4
        }
    """  # noqa: E501

    name: ClassVar[str] = "transform-layout"
    layout: str = PREFERRED_LAYOUT
    max_inner_transforms: int = 0
    max_rounds: int = 32

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        trial = PassContext(current_pass=ctx.current_pass)
        out = rewrite_to_fixpoint(graph, rules_convert(self.layout), trial, self.max_rounds)
        if out is graph:
            return graph
        out = rewrite_to_fixpoint(out, rules_sink_transposes(), trial, self.max_rounds)
        added = _transforms(out) - _transforms(graph)
        edges = max(2, sum(1 for v in (*graph.inputs, *graph.outputs) if v.type.rank >= 3))
        if added > edges + self.max_inner_transforms:
            ctx.note(f"kept the graph's layouts: {self.layout} would leave {added} layout "
                     f"transforms (ops that transforms cannot pass, such as group norms or "
                     f"concats, block them); {edges} at the edges of the region plus "
                     f"max_inner_transforms={self.max_inner_transforms} are allowed")
            return graph
        ctx.log.extend(trial.log)
        return out


def _transforms(graph: Graph) -> int:
    return sum(1 for n in graph.nodes if n.op.name in TRANSPOSERS)
