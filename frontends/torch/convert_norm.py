"""ATen converters for normalizations and softmax (`nn.batch_norm`, `nn.layer_norm`,
`nn.group_norm`, `nn.instance_norm`, `nn.rms_norm`, `nn.softmax`, `nn.log_softmax`).

The `native_*` norms return `(out, mean, rstd)` (batch norm: `(out, save_mean,
save_invstd)`); inference graphs use only `out`, so the statistics come back as `None`.
`instance_norm` and `rms_norm` are kept whole by `decompositions.PRESERVED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlc.errors import FrontendError
from dlc.frontends.torch.convert_nn import checked
from dlc.frontends.torch.registry import torch_op
from dlc.ir.graph import Value


def _filled(b: Any, value: float, shape: Sequence[Any], like: Value, what: str) -> Value:
    """A constant weight or bias standing in for torch's `None` (batch_norm's schema has no
    optional affine operands, and layer_norm's weight cannot be skipped before its bias)."""
    if not all(isinstance(d, int) for d in shape):
        raise FrontendError(f"cannot build a default {what} of symbolic shape {list(shape)}")
    return b.const(np.full(tuple(shape), value, dtype=like.dtype.numpy), what)


def _params(b: Any, dtype: Any, *ps: Value | None) -> list[Value | None]:
    """Affine parameters in the output dtype (torch lets f32 parameters normalize f16)."""
    return [None if p is None else b.cast(p, dtype) for p in ps]


@torch_op("aten._native_batch_norm_legit_no_training.default")
def _batch_norm(b: Any, node: Any, x: Value, weight: Value | None, bias: Value | None,
                running_mean: Value, running_var: Value, momentum: float,
                eps: float) -> tuple[Value, None, None]:
    return _batch_norm_value(b, node, x, weight, bias, running_mean, running_var, eps, 0), \
        None, None


def _batch_norm_value(b: Any, node: Any, x: Value, weight: Value | None, bias: Value | None,
                      mean: Value, var: Value, eps: float, index: int | None) -> Value:
    dtype = b.out_dtype(node, index)
    mean, var, weight, bias = _params(b, dtype, mean, var, weight, bias)
    c = (x.shape[1],)
    scale = weight if weight is not None else _filled(b, 1.0, c, x, "bn_ones")
    shift = bias if bias is not None else _filled(b, 0.0, c, x, "bn_zeros")
    out = b.op("nn.batch_norm", x, scale, shift, mean, var, eps=eps, axis=1)
    return checked(b, node, out, index)


@torch_op("aten.native_layer_norm.default")
def _layer_norm(b: Any, node: Any, x: Value, normalized_shape: Sequence[Any],
                weight: Value | None, bias: Value | None,
                eps: float) -> tuple[Value, None, None]:
    weight, bias = _params(b, b.out_dtype(node, 0), weight, bias)
    if weight is None and bias is not None:
        weight = _filled(b, 1.0, normalized_shape, x, "ln_ones")
    operands = [p for p in (x, weight, bias) if p is not None]
    out = b.op("nn.layer_norm", *operands, axes=tuple(range(-len(normalized_shape), 0)),
               eps=eps)
    return checked(b, node, out, 0), None, None


@torch_op("aten.native_group_norm.default")
def _group_norm(b: Any, node: Any, x: Value, weight: Value | None, bias: Value | None,
                n: Any, c: Any, hxw: Any, group: int, eps: float) -> tuple[Value, None, None]:
    weight, bias = _params(b, b.out_dtype(node, 0), weight, bias)
    if weight is None and bias is not None:
        weight = _filled(b, 1.0, (x.shape[1],), x, "gn_ones")
    operands = [p for p in (x, weight, bias) if p is not None]
    out = b.op("nn.group_norm", *operands, num_groups=group, eps=eps)
    return checked(b, node, out, 0), None, None


@torch_op("aten.instance_norm.default")
def _instance_norm(b: Any, node: Any, x: Value, weight: Value | None, bias: Value | None,
                   running_mean: Value | None, running_var: Value | None,
                   use_input_stats: bool, momentum: float, eps: float,
                   cudnn_enabled: bool = False) -> Value:
    if not use_input_stats:
        # track_running_stats=True in eval: normalize with the running statistics, which
        # is exactly an inference batch norm.
        return _batch_norm_value(b, node, x, weight, bias, running_mean, running_var, eps,
                                 None)
    weight, bias = _params(b, b.out_dtype(node), weight, bias)
    if weight is None and bias is not None:
        weight = _filled(b, 1.0, (x.shape[1],), x, "in_ones")
    operands = [p for p in (x, weight, bias) if p is not None]
    return checked(b, node, b.op("nn.instance_norm", *operands, eps=eps))


@torch_op("aten.rms_norm.default")
def _rms_norm(b: Any, node: Any, x: Value, normalized_shape: Sequence[Any],
              weight: Value | None = None, eps: float | None = None) -> Value:
    operands = [x] if weight is None else [x, b.cast(weight, x.dtype)]
    out = b.op("nn.rms_norm", *operands, axes=tuple(range(-len(normalized_shape), 0)),
               eps=eps)
    return checked(b, node, out)


def _softmax_like(op: str) -> Any:
    def convert(b: Any, node: Any, x: Value, dim: int, half_to_float: bool) -> Value:
        # half_to_float computes an f16 input in f32 and returns f32: cast first.
        return checked(b, node, b.op(op, b.cast(x, b.out_dtype(node)), axis=dim))

    return convert


torch_op("aten._softmax.default")(_softmax_like("nn.softmax"))
torch_op("aten._log_softmax.default")(_softmax_like("nn.log_softmax"))
