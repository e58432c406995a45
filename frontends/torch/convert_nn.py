"""ATen converters for convolution, pooling and attention (`nn.conv*`, `nn.*_pool2d`,
`nn.sdpa`).

torch.export routes every convolution through `aten.convolution` (1-D and 2-D, plain and
transposed) and every 1-D pool through the 2-D op with an unsqueezed axis, so these few
overloads cover `nn.Conv*`, `nn.ConvTranspose*`, `F.max_pool*`, `F.avg_pool*` and the
adaptive pools. Ops that return indices (max pools) give back `None` for them: a graph
that uses the indices fails with a clear error in the importer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlc.errors import DLCError, FrontendError
from dlc.frontends.torch.registry import torch_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Value
from dlc.ir.symbolic import evaluate


def _per_axis(values: int | Sequence[int], n: int) -> tuple[int, ...]:
    """An ATen int[N] argument as N ints (ATen allows one value for all axes; `[]`, a
    pool's "same as the kernel" stride, stays empty)."""
    if isinstance(values, int):
        return (values,) * n
    values = tuple(values)
    return values * n if len(values) == 1 else values


def checked(b: Any, node: Any, value: Value, index: int | None = None) -> Value:
    """`value`, after asserting it has the type torch inferred for output `index`.

    Symbolic sizes may be equal without SymPy proving it (`floor((floor(H/4) - 1)/2)` vs
    `floor(H/8 - 1/2)`), so sizes that differ in form are compared at sample values.
    """
    got, want = value.type, b.meta_type(node, index)
    if not got.same_as(want) and not _same_at_samples(got, want):
        raise FrontendError(f"converter for {node.target} produced {got}, torch says {want}")
    return value


def _same_at_samples(got: Any, want: Any) -> bool:
    if got.dtype != want.dtype or got.rank != want.rank:
        return False
    names = sorted(got.symbols | want.symbols)
    samples = [{n: v for n in names} for v in range(1, 65)]
    samples += [{n: 7 + 5 * i + 3 * v for i, n in enumerate(names)} for v in range(16)]
    try:
        return all(evaluate(a, env) == evaluate(b, env)
                   for env in samples for a, b in zip(got.shape, want.shape))
    except (TypeError, ValueError, DLCError):  # an expression that does not evaluate
        return False


@torch_op("aten.convolution.default")
def _convolution(b: Any, node: Any, x: Value, w: Value, bias: Value | None,
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                 transposed: bool, output_padding: Sequence[int], groups: int) -> Value:
    k = w.tensor_type.rank - 2
    if k not in (1, 2):
        raise FrontendError(f"{k}-D convolutions are not supported; dlc has nn.conv1d and "
                            "nn.conv2d (and their transposes)")
    kind = "conv_transpose" if transposed else "conv"
    attrs: dict[str, Any] = {"stride": _per_axis(stride, k), "padding": _per_axis(padding, k),
                             "dilation": _per_axis(dilation, k), "groups": groups}
    if transposed:
        attrs["output_padding"] = _per_axis(output_padding, k)
    operands = (x, w) if bias is None else (x, w, bias)
    return checked(b, node, b.op(f"nn.{kind}{k}d", *operands, **attrs))


@torch_op("aten.max_pool2d_with_indices.default")
def _max_pool2d(b: Any, node: Any, x: Value, kernel_size: Sequence[int],
                stride: Sequence[int] = (), padding: Sequence[int] | int = 0,
                dilation: Sequence[int] | int = 1, ceil_mode: bool = False
                ) -> tuple[Value, None]:
    kernel = _per_axis(kernel_size, 2)
    out = b.op("nn.max_pool2d", x, kernel=kernel,
               stride=_per_axis(stride, 2) or kernel,
               padding=_per_axis(padding, 2), dilation=_per_axis(dilation, 2),
               ceil_mode=ceil_mode)
    return checked(b, node, out, 0), None


@torch_op("aten.avg_pool2d.default")
def _avg_pool2d(b: Any, node: Any, x: Value, kernel_size: Sequence[int],
                stride: Sequence[int] = (), padding: Sequence[int] | int = 0,
                ceil_mode: bool = False, count_include_pad: bool = True,
                divisor_override: int | None = None) -> Value:
    kernel = _per_axis(kernel_size, 2)
    out = b.op("nn.avg_pool2d", x, kernel=kernel,
               stride=_per_axis(stride, 2) or kernel,
               padding=_per_axis(padding, 2), ceil_mode=ceil_mode,
               count_include_pad=count_include_pad, divisor_override=divisor_override)
    return checked(b, node, out)


@torch_op("aten._adaptive_avg_pool2d.default")
def _adaptive_avg_pool2d(b: Any, node: Any, x: Value, output_size: Sequence[int]) -> Value:
    out = b.op("nn.adaptive_avg_pool2d", x, output_size=_per_axis(output_size, 2))
    return checked(b, node, out)


@torch_op("aten.adaptive_max_pool2d.default")
def _adaptive_max_pool2d(b: Any, node: Any, x: Value, output_size: Sequence[int]
                         ) -> tuple[Value, None]:
    out = b.op("nn.adaptive_max_pool2d", x, output_size=_per_axis(output_size, 2))
    return checked(b, node, out, 0), None


@torch_op("aten.scaled_dot_product_attention.default")
def _sdpa(b: Any, node: Any, q: Value, k: Value, v: Value, attn_mask: Value | None = None,
          dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
          enable_gqa: bool = False) -> Value:
    if dropout_p:
        raise FrontendError(f"scaled_dot_product_attention with dropout_p={dropout_p} is "
                            "random even in eval mode; pass dropout_p=0.0 for inference")
    if enable_gqa and q.shape[-3:-2] != k.shape[-3:-2]:
        raise FrontendError("grouped-query attention (enable_gqa with fewer k/v heads) is "
                            "not supported by nn.sdpa; repeat k and v to q's head count")
    dtype = b.out_dtype(node)
    q, k, v = b.promote(dtype, q, k, v)
    operands = [q, k, v]
    if attn_mask is not None:
        operands.append(attn_mask if attn_mask.dtype == DType.bool
                        else b.cast(attn_mask, dtype))
    out = b.op("nn.sdpa", *operands, is_causal=is_causal, scale=scale)
    return checked(b, node, out)
