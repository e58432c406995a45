"""Pre-packing: run a kernel's `pack` of a constant operand once, at compile time.

`Schedule.pack(w, layout)` copies a read-only operand into a blocked layout at the start
of the kernel, every call. When the operand is a weight (a parameter bound to a graph
constant) that copy always produces the same array, so the backend computes it once with
NumPy, binds it as a new constant, and removes the copy from the kernel — the tensor-IR
counterpart of folding a graph `layout_transform` of a constant (TVM's weight
pre-packing, "alter op layout").

    Before (the scheduled kernel):           After:
      kernel @k(x, w: f32[64, 32], y) {        kernel @k(x, w_packed: f32[2, 32, 32], y) {
        w_packed: f32[2, 32, 32] global          for ... y[...] += x[...] * w_packed[...]
        for p0, p1:                            }
          w_packed[p0 // 32, p1, p0 % 32] = w[p0, p1]     # w_packed = pack_array(w, ...)
        for ... y[...] += x[...] * w_packed[...]
      }
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dlc.ir.graph import Constant
from dlc.ir.tensor.stmt import Allocate, Seq, seq, walk
from dlc.passes.tensor.lower_group import LoweredGroup
from dlc.passes.tensor.schedule_dataflow import parse_layout
from dlc.passes.tensor.schedule_nest import replace, stmt_loads, stores_to

PackCache = dict[tuple[int, str], Constant]  # (id of the constant, layout) -> packed


def pack_array(data: np.ndarray, layout: str) -> np.ndarray:
    """`data` re-laid out as `Schedule.pack(..., layout)` would copy it: blocked dims are
    padded with zeros to a whole number of blocks (the kernel never reads the padding)."""
    axes = parse_layout(layout, data.ndim)
    factor = {d: f for d, op, f in axes if op}
    pad = [(0, (-n) % factor[d]) if d in factor else (0, 0) for d, n in enumerate(data.shape)]
    padded = np.pad(data, pad) if any(p for _, p in pad) else data
    split_shape: list[int] = []
    position: dict[tuple[int, str], int] = {}  # (dim, "" | "/" | "%") -> axis of `split`
    for d, n in enumerate(padded.shape):
        if d in factor:
            position[(d, "/")], position[(d, "%")] = len(split_shape), len(split_shape) + 1
            split_shape += [n // factor[d], factor[d]]
        else:
            position[(d, "")] = len(split_shape)
            split_shape.append(n)
    split = padded.reshape(split_shape)
    return np.ascontiguousarray(split.transpose([position[(d, op)] for d, op, _ in axes]))


def fold_constant_packs(group: LoweredGroup, trace: Any, cache: PackCache) -> LoweredGroup:
    """Replace each `pack` of a constant parameter in `group`'s kernel by a packed constant
    parameter (and drop the unpacked one if nothing else reads it); packs of activations
    stay in the kernel."""
    func = group.func
    n_in = len(group.inputs)
    bound = dict(zip(func.params[:n_in], group.inputs))
    for step in trace if trace is not None else ():
        if step.primitive != "pack":
            continue
        source_name, layout = step.args
        source = next((p for p in func.params[:n_in] if p.name == source_name), None)
        const = bound.get(source) if source is not None else None
        if not isinstance(const, Constant):
            continue
        alloc = next((x for x in walk(func.body)
                      if isinstance(x, Allocate) and x.buffer.name == step.outputs[0]), None)
        if alloc is None:
            continue  # a later primitive moved the copy: keep packing at run time
        packed_buf = alloc.buffer
        assert isinstance(alloc.body, Seq) and stores_to(alloc.body.stmts[0], packed_buf)
        body = replace(func.body, alloc, seq(*alloc.body.stmts[1:]))  # drop the copy loop
        key = (id(const), layout)
        if key not in cache:
            cache[key] = Constant.of(pack_array(np.asarray(const.data), layout),
                                     f"{source_name}_packed")  # the parameter's name: stable
        packed_const = cache[key]
        inputs = list(zip(func.params[:n_in], group.inputs))
        if not stmt_loads(body, source):
            inputs.remove((source, const))  # only the copy read the unpacked weight
        inputs.append((packed_buf, packed_const))
        func = dataclasses.replace(func, params=(*(p for p, _ in inputs),
                                                 *func.params[n_in:]), body=body)
        group = dataclasses.replace(group, func=func, inputs=tuple(v for _, v in inputs))
        n_in = len(inputs)
        bound[packed_buf] = packed_const
    return group
