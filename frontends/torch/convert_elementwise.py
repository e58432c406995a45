"""ATen converters for elementwise ops: arithmetic, math, activations, comparisons, casts.

Torch promotes operand dtypes implicitly; the converters make it explicit with
`b.promote` so every registry op sees operands of one dtype.
"""

from __future__ import annotations

from typing import Any

from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value


def _binary(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value, y: Any, alpha: Any = 1) -> Value:
        dtype = b.out_dtype(node)
        x, y = b.promote(dtype, x, y)
        if alpha != 1:
            y = b.op("ew.mul", y, b.as_value(alpha, dtype))
        return b.op(op, x, y)

    return convert


torch_op("aten.add.Tensor", "aten.add.Scalar")(_binary("ew.add"))
torch_op("aten.sub.Tensor", "aten.sub.Scalar")(_binary("ew.sub"))
torch_op("aten.mul.Tensor", "aten.mul.Scalar")(_binary("ew.mul"))


@torch_op("aten.relu.default")
def _relu(b: Any, node: Any, x: Value) -> Value:
    return b.op("ew.relu", x)


@torch_op("aten.exp.default")
def _exp(b: Any, node: Any, x: Value) -> Value:
    return b.op("ew.exp", b.cast(x, b.out_dtype(node)))
