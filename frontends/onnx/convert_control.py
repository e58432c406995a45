"""ONNX control flow that a compiler can resolve at import time.

An `If` whose condition is known when the model is imported (a constant, or computed from
static shapes, as inside the AffineGrid and CenterCropPad function bodies) is replaced by
the branch it takes. Run-time control flow (If on data, Loop, Scan) is not supported.
"""

from __future__ import annotations

import numpy as np

from dlc.errors import FrontendError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.graph import Value

B = OnnxGraphBuilder


@onnx_op("If")
def _if(b: B, node: OnnxNode) -> tuple[Value | None, ...]:
    cond = b.constant(node.inputs[0])
    if cond is None or cond.dtype == object:
        raise b.unsupported(node, "with a condition computed at run time (control flow "
                                  "on data is not supported)")
    branch = node.attr("then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else
                       "else_branch")
    if branch is None:
        raise FrontendError(f"{node.describe()}: the branch taken is missing")
    return b.inline_subgraph(node, branch.g)
