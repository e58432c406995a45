"""ONNX converters for tensors made from attributes and shapes (`create.*`, constants)."""

from __future__ import annotations

import math

import numpy as np

from dlc.errors import FrontendError
from dlc.frontends.onnx.builder import OnnxGraphBuilder, OnnxNode
from dlc.frontends.onnx.dtypes import from_onnx
from dlc.frontends.onnx.registry import onnx_op
from dlc.ir.dtypes import DType
from dlc.ir.graph import Constant, Value
from dlc.ir.symbolic import ceildiv, dim

B = OnnxGraphBuilder


@onnx_op("Constant")
def _constant(b: B, node: OnnxNode) -> Value:
    for key in ("value", "sparse_value"):
        if key in node.attrs:
            return b.const(node.attrs[key])
    if "value_float" in node.attrs:
        return b.const(np.array(node.attrs["value_float"], dtype=np.float32))
    if "value_floats" in node.attrs:
        return b.const(np.array(node.attrs["value_floats"], dtype=np.float32))
    if "value_int" in node.attrs:
        return b.const(np.array(node.attrs["value_int"], dtype=np.int64))
    if "value_ints" in node.attrs:
        return b.const(np.array(node.attrs["value_ints"], dtype=np.int64))
    raise b.unsupported(node, f"with attributes {sorted(node.attrs)} (strings are out of scope)")


@onnx_op("ConstantOfShape")
def _constant_of_shape(b: B, node: OnnxNode) -> Value:
    value = node.attr("value")
    array = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dtype = DType.from_numpy(array.dtype)
    fill = array[0].item()
    if not isinstance(node.inputs[0], Constant):  # the shape is known at run time only
        return b.op("create.full_dynamic", b.cast(node.inputs[0], DType.i64),
                    value=float(fill), dtype=dtype)
    shape = b.static_dims(node, 0, "shape")
    if dtype.is_int and abs(fill) >= 2**53:
        raise b.unsupported(node, f"with the value {fill} (not exact as a float)")
    return b.op("create.full", shape=shape, value=float(fill), dtype=dtype)


@onnx_op("Range")
def _range(b: B, node: OnnxNode) -> Value:
    if any(not isinstance(v, Constant) for v in node.inputs[:3]):  # bounds known at run time
        return b.op("create.range", *(b.op("shape.reshape", v, shape=())
                                      for v in node.inputs[:3]))
    start = b.static_scalar(node, 0, "start")
    limit = b.static_scalar(node, 1, "limit")
    delta = b.static_scalar(node, 2, "delta")
    dtype = node.inputs[0].dtype
    if isinstance(limit, (int, float, np.number)) and isinstance(start, (int, float)):
        if dtype.is_float:
            t = dtype.numpy.type
            count = math.ceil(float(t(t(limit) - t(start)) / t(delta)))
        else:
            count = -(-(int(limit) - int(start)) // int(delta))
        length = max(count, 0)
    elif isinstance(delta, int) and isinstance(start, int):
        length = ceildiv(dim(limit - start), delta) if delta > 0 else \
            ceildiv(dim(start - limit), -delta)
    else:
        raise FrontendError(f"{node.describe()}: a symbolic range needs integer start and "
                            "delta")
    return b.op("create.arange", shape=(length,), start=float(start), step=float(delta),
                dtype=dtype)


@onnx_op("EyeLike")
def _eye_like(b: B, node: OnnxNode) -> Value:
    x = node.inputs[0]
    dtype = from_onnx(node.attr("dtype")) if node.attr("dtype") is not None else x.dtype
    rows, cols = b.shape_of(x)
    i = b.op("shape.reshape", b.op("create.arange", shape=(rows,), dtype=DType.i64),
             shape=(rows, 1))
    j = b.op("shape.reshape", b.op("create.arange", shape=(cols,), dtype=DType.i64),
             shape=(1, cols))
    on = b.op("ew.eq", b.op("ew.sub", j, i), b.scalar(node.attr("k", 0), DType.i64))
    return b.cast(on, dtype)
