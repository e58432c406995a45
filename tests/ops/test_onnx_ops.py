"""The ops declared for the ONNX frontend (bit shifts, 3-D convolutions, N-d pools, LRN,
Col2Im, DeformConv, linear attention, determinants, ONNX's resize and grid sampling,
RoiAlign, NMS, the run-time-shaped `*_dynamic` ops and the ONNX-only indexing ops), each
against PyTorch (torch.nn.functional where torch has the op, a few lines of torch
otherwise). ONNX's own conformance cases check them too (tests/frontends/onnx)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlc.ir.builder import GraphBuilder
from dlc.ir.dtypes import DType
from dlc.ir.types import TensorType
from tests.ops.cases import DirectCase, case_params, run_case, seeded


def graph(op: str, **attrs):
    """A builder of the one-op graph `op(inputs..., **attrs)` (all outputs returned)."""
    def build(*arrays):
        b = GraphBuilder(op.replace(".", "_"))
        xs = [b.input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype)))
              for i, a in enumerate(arrays)]
        out = b.op(op, *xs, **attrs)
        return b.build(list(out) if isinstance(out, tuple) else [out])
    return build


def randn(*shape, seed=0, dtype=np.float32):
    return seeded(seed).standard_normal(shape).astype(dtype)


def ints(low, high, *shape, seed=0, dtype=np.int64):
    return seeded(seed).integers(low, high, shape).astype(dtype)


# -- torch versions of ops torch (without torchvision) does not have ---------------------


def torch_roi_align(x, rois, idx, out_h, out_w, ratio):
    """Mask R-CNN's RoiAlign (aligned, average), sample by sample."""
    n, c, h, w = x.shape
    out = torch.zeros(rois.shape[0], c, out_h, out_w, dtype=torch.float64)
    for r in range(rois.shape[0]):
        x1, y1, x2, y2 = (float(v) - 0.5 for v in rois[r])
        bh, bw = (y2 - y1) / out_h, (x2 - x1) / out_w
        for i in range(out_h):
            for j in range(out_w):
                acc = torch.zeros(c, dtype=torch.float64)
                for a in range(ratio):
                    for b in range(ratio):
                        y = y1 + i * bh + (a + 0.5) * bh / ratio
                        xx = x1 + j * bw + (b + 0.5) * bw / ratio
                        acc += bilinear(x[int(idx[r])].double(), y, xx)
                out[r, :, i, j] = acc / ratio**2
    return out.float()


def bilinear(img, y, x):
    h, w = img.shape[1:]
    if y < -1 or y > h or x < -1 or x > w:
        return torch.zeros(img.shape[0], dtype=img.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(y), h - 1), min(int(x), w - 1)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    y, x = (y0 if y0 == h - 1 else y), (x0 if x0 == w - 1 else x)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[:, y0, x0] + (1 - ly) * lx * img[:, y0, x1] +
            ly * (1 - lx) * img[:, y1, x0] + ly * lx * img[:, y1, x1])


def torch_nms(boxes, scores, max_per_class, iou_threshold, score_threshold):
    """Greedy NMS per batch and class on corner boxes [y1, x1, y2, x2]."""
    out = []
    for b in range(scores.shape[0]):
        y1, x1, y2, x2 = boxes[b].unbind(-1)
        area = (y2 - y1) * (x2 - x1)
        for c in range(scores.shape[1]):
            order = torch.argsort(-scores[b, c], stable=True)
            kept = []
            for i in order.tolist():
                if scores[b, c, i] <= score_threshold or len(kept) >= max_per_class:
                    continue
                ok = True
                for j in kept:
                    ih = torch.clamp(torch.minimum(y2[i], y2[j]) - torch.maximum(y1[i], y1[j]), 0)
                    iw = torch.clamp(torch.minimum(x2[i], x2[j]) - torch.maximum(x1[i], x1[j]), 0)
                    inter = ih * iw
                    if inter / (area[i] + area[j] - inter) > iou_threshold:
                        ok = False
                        break
                if ok:
                    kept.append(i)
                    out.append([b, c, i])
    return torch.tensor(out, dtype=torch.int64).reshape(-1, 3)


def torch_unique(x):
    values, inverse, counts = torch.unique(x.reshape(-1), sorted=True, return_inverse=True,
                                           return_counts=True)
    positions = torch.arange(x.numel())
    first = torch.full((values.numel(),), x.numel()).scatter_reduce(
        0, inverse, positions, reduce="amin")
    return values, first, inverse, counts


def torch_ngram_counts(x, pool, ngram_counts, ngram_indexes, min_n, max_n, max_skip):
    """TF counts of pooled n-grams (tokens up to `max_skip` apart) per row."""
    columns, k = {}, 0
    for n, start in enumerate(ngram_counts, start=1):
        end = ngram_counts[n] if n < len(ngram_counts) else len(pool)
        for s in range(start, end, n):
            columns[tuple(pool[s:s + n])] = ngram_indexes[k]
            k += 1
    out = torch.zeros(x.shape[0], max(ngram_indexes) + 1)
    for r in range(x.shape[0]):
        for n in range(min_n, max_n + 1):
            for d in range(1, (max_skip if n > 1 else 0) + 2):
                windows = x[r].unfold(0, d * (n - 1) + 1, 1)[:, ::d]
                for window in windows.tolist():
                    if tuple(window) in columns:
                        out[r, columns[tuple(window)]] += 1
    return out


def torch_linear_attention(q, k, v, state, decay, beta, heads):
    """The gated delta rule, token by token (single query and key/value head group)."""
    b, t, _ = q.shape
    dk = k.shape[2] // heads
    qs, ks, vs = (z.reshape(b, t, heads, -1) for z in (q, k, v))
    s = state.clone()
    outs = []
    for i in range(t):
        s = s * torch.exp(decay[:, i]).reshape(b, heads, 1, 1)
        pred = torch.einsum("bhkv,bhk->bhv", s, ks[:, i])
        u = beta[:, i].reshape(b, heads, 1) * (vs[:, i] - pred)
        s = s + ks[:, i].unsqueeze(-1) * u.unsqueeze(-2)
        outs.append(torch.einsum("bhk,bhkv->bhv", qs[:, i], s) / math.sqrt(dk))
    return torch.stack(outs, 1).reshape(b, t, -1), s


def torch_deform_conv(x, w, offset, mask):
    """Deformable conv (stride 1, no padding): each tap sampled with grid_sample."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    off = offset.reshape(n, kh, kw, 2, oh, ow)
    cols = []
    for i in range(kh):
        for j in range(kw):
            y = torch.arange(oh).reshape(-1, 1) + i + off[:, i, j, 0]
            xx = torch.arange(ow).reshape(1, -1) + j + off[:, i, j, 1]
            grid = torch.stack([xx / (wd - 1) * 2 - 1, y / (h - 1) * 2 - 1], -1)
            cols.append(F.grid_sample(x, grid, align_corners=True) * mask[:, i * kw + j, None])
    cols = torch.stack(cols, 2)  # [N, C, kh*kw, oh, ow]
    return torch.einsum("ock,nckhw->nohw", w.reshape(o, c, -1), cols)


def i64(*values):
    return np.array(values, dtype=np.int64)


CUBIC = dict(axes=(2, 3), mode="cubic", coordinate_mode="half_pixel", cubic_coeff_a=-0.75)

CASES = [
    DirectCase("onnx_shift_left_i32", graph("ew.shift_left"),
               lambda: (ints(-50, 50, 7), ints(0, 31, 7, seed=1)),
               lambda a, b: torch.bitwise_left_shift(a, b), ops=("ew.shift_left",), exact=True),
    DirectCase("onnx_shift_right_i32", graph("ew.shift_right"),
               lambda: (ints(-50, 50, 7, dtype=np.int32), ints(0, 31, 7, 1, dtype=np.int32)),
               torch.bitwise_right_shift, ops=("ew.shift_right",), exact=True),
    DirectCase("onnx_bitcast_f32_i32", graph("ew.bitcast", dtype=DType.i32), lambda: (randn(3, 4),),
               lambda x: x.view(torch.int32), ops=("ew.bitcast",), exact=True),
    DirectCase("onnx_conv3d", graph("nn.conv3d", stride=(1, 2, 1), padding=(1, 0, 1),
                               dilation=(1, 1, 2), groups=2),
               lambda: (randn(2, 4, 5, 6, 7), randn(6, 2, 3, 2, 3, seed=1), randn(6, seed=2)),
               lambda x, w, b: F.conv3d(x, w, b, (1, 2, 1), (1, 0, 1), (1, 1, 2), 2),
               ops=("nn.conv3d",), rtol=1e-4),
    DirectCase("onnx_conv_transpose3d", graph("nn.conv_transpose3d", stride=(2, 1, 2),
                                         padding=(1, 0, 0), output_padding=(1, 0, 1)),
               lambda: (randn(1, 3, 3, 4, 3), randn(3, 2, 3, 2, 2, seed=1)),
               lambda x, w: F.conv_transpose3d(x, w, None, (2, 1, 2), (1, 0, 0), (1, 0, 1)),
               ops=("nn.conv_transpose3d",), rtol=1e-4),
    DirectCase("onnx_max_pool_nd_3d_ceil", graph("nn.max_pool_nd", kernel=(2, 3, 2),
                                            strides=(2, 2, 1), pads=(0, 1, 1, 0, 1, 1),
                                            dilations=(1, 1, 2), ceil_mode=True),
               lambda: (randn(2, 3, 5, 6, 7),),
               lambda x: F.max_pool3d(x, (2, 3, 2), (2, 2, 1), (0, 1, 1), (1, 1, 2),
                                      ceil_mode=True), ops=("nn.max_pool_nd",)),
    DirectCase("onnx_max_pool_nd_indices", graph("nn.max_pool_nd", kernel=(3, 3), strides=(2, 2),
                                            pads=(1, 1, 1, 1), dilations=(1, 1), indices=True),
               lambda: (randn(2, 3, 6, 7),),
               lambda x: (lambda y, i: (y, i + torch.arange(6).reshape(2, 3, 1, 1) * 42))(
                   *F.max_pool2d(x, 3, 2, 1, return_indices=True)),
               ops=("nn.max_pool_nd",), exact=True),
    DirectCase("onnx_avg_pool_nd_1d_exclude_pad", graph("nn.avg_pool_nd", kernel=(3,), strides=(2,),
                                                   pads=(1, 1), dilations=(1,), ceil_mode=True),
               lambda: (randn(2, 3, 8),),
               lambda x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
               ops=("nn.avg_pool_nd",)),
    DirectCase("onnx_avg_pool_nd_3d_include_pad", graph("nn.avg_pool_nd", kernel=(2, 2, 3),
                                                   strides=(1, 2, 2), pads=(1, 0, 1, 1, 0, 1),
                                                   dilations=(1, 1, 1), count_include_pad=True),
               lambda: (randn(1, 2, 4, 5, 6),),
               lambda x: F.avg_pool3d(x, (2, 2, 3), (1, 2, 2), (1, 0, 1)),
               ops=("nn.avg_pool_nd",)),
    DirectCase("onnx_lp_pool_nd_2d", graph("nn.lp_pool_nd", kernel=(2, 3), strides=(2, 1),
                                      pads=(0, 0, 0, 0), dilations=(1, 1), p=2.0),
               lambda: (randn(2, 3, 6, 5),), lambda x: F.lp_pool2d(x, 2, (2, 3), (2, 1)),
               ops=("nn.lp_pool_nd",), rtol=1e-4),
    DirectCase("onnx_lrn", graph("nn.lrn", size=5, alpha=2e-4, beta=0.75, bias=2.0),
               lambda: (randn(2, 7, 3, 4),),
               lambda x: F.local_response_norm(x, 5, 2e-4, 0.75, 2.0), ops=("nn.lrn",)),
    DirectCase("onnx_det", graph("linalg.det"), lambda: (randn(2, 3, 4, 4, dtype=np.float64),),
               torch.linalg.det, ops=("linalg.det",), rtol=1e-10),
    DirectCase("onnx_scatter_nd_add", graph("index.scatter_nd", reduction="add"),
               lambda: (randn(4, 3, 2), np.array([[1, 2], [0, 0], [1, 2]]), randn(3, 2, seed=1)),
               lambda x, i, u: x.clone().index_put_((i[:, 0], i[:, 1]), u, accumulate=True),
               ops=("index.scatter_nd",)),
    DirectCase("onnx_nonzero", graph("index.nonzero"),
               lambda: ((randn(3, 4) > 0.3).astype(np.float32),),
               lambda x: torch.nonzero(x).T, ops=("index.nonzero",), exact=True),
    DirectCase("onnx_unique", graph("index.unique"), lambda: (ints(0, 5, 11),), torch_unique,
               ops=("index.unique",), exact=True),
    DirectCase("onnx_tfidf_tf_counts",
               graph("index.tfidf_vectorizer", pool=(2, 3, 5, 4, 5, 6, 7, 8, 6, 7),
                     ngram_counts=(0, 4), ngram_indexes=(0, 1, 2, 3, 4, 5, 6),
                     min_gram_length=1, max_gram_length=2, max_skip_count=2, mode="TF"),
               lambda: (ints(2, 9, 2, 12),),
               lambda x: torch_ngram_counts(x, (2, 3, 5, 4, 5, 6, 7, 8, 6, 7), (0, 4),
                                            (0, 1, 2, 3, 4, 5, 6), 1, 2, 2),
               ops=("index.tfidf_vectorizer",)),
    DirectCase("onnx_col2im", graph("nn.col2im", image_shape=(5, 6), block_shape=(2, 3),
                               strides=(1, 2), pads=(1, 1, 1, 1), dilations=(2, 1)),
               lambda: (randn(2, 3 * 6, 15),),
               lambda x: F.fold(x, (5, 6), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
               ops=("nn.col2im",)),
    DirectCase("onnx_deform_conv2d_zero_offsets_is_conv", graph("nn.deform_conv2d"),
               lambda: (randn(1, 2, 5, 5), randn(3, 2, 2, 2, seed=1),
                        np.zeros((1, 8, 4, 4), np.float32), np.ones((1, 4, 4, 4), np.float32)),
               lambda x, w, off, m: F.conv2d(x, w), ops=("nn.deform_conv2d",), rtol=1e-5),
    DirectCase("onnx_deform_conv2d", graph("nn.deform_conv2d"),
               lambda: (randn(1, 2, 5, 5), randn(3, 2, 2, 2, seed=1),
                        randn(1, 8, 4, 4, seed=2), seeded(3).random((1, 4, 4, 4)).astype(
                            np.float32)),
               torch_deform_conv, ops=("nn.deform_conv2d",), rtol=1e-5),
    DirectCase("onnx_linear_attention_gated_delta",
               graph("nn.linear_attention", q_num_heads=2, kv_num_heads=2),
               lambda: (randn(2, 5, 8), randn(2, 5, 8, seed=1) / 3, randn(2, 5, 6, seed=2),
                        randn(2, 2, 4, 3, seed=3), -seeded(4).random((2, 5, 2)).astype(
                            np.float32), seeded(5).random((2, 5, 2)).astype(np.float32)),
               lambda q, k, v, s, g, b: torch_linear_attention(q, k, v, s, g, b, 2),
               ops=("nn.linear_attention",), rtol=1e-5),
    DirectCase("onnx_resize_nd_nearest", graph("image.resize_nd", axes=(2, 3), sizes=(7, 3),
                                          scales=(7 / 4, 3 / 5), mode="nearest",
                                          coordinate_mode="asymmetric", nearest_mode="floor"),
               lambda: (randn(1, 2, 4, 5),), lambda x: F.interpolate(x, (7, 3), mode="nearest"),
               ops=("image.resize_nd",)),
    DirectCase("onnx_resize_nd_linear", graph("image.resize_nd", axes=(2, 3), sizes=(7, 3),
                                         scales=(7 / 4, 3 / 5), mode="linear"),
               lambda: (randn(1, 2, 4, 5),),
               lambda x: F.interpolate(x, (7, 3), mode="bilinear", align_corners=False),
               ops=("image.resize_nd",)),
    DirectCase("onnx_resize_nd_cubic", graph("image.resize_nd", sizes=(9, 4), scales=(9 / 5, 4 / 6),
                                        **CUBIC),
               lambda: (randn(2, 3, 5, 6),),
               lambda x: F.interpolate(x, (9, 4), mode="bicubic", align_corners=False),
               ops=("image.resize_nd",), rtol=1e-5),
    DirectCase("onnx_grid_sample_nd_3d_linear", graph("image.grid_sample_nd", mode="linear",
                                                 padding_mode="border"),
               lambda: (randn(2, 3, 4, 5, 6), seeded(1).uniform(-1.2, 1.2, (2, 3, 2, 4, 3))
                        .astype(np.float32)),
               lambda x, g: F.grid_sample(x, g, "bilinear", "border", align_corners=False),
               ops=("image.grid_sample_nd",), rtol=1e-5),
    DirectCase("onnx_grid_sample_nd_2d_cubic", graph("image.grid_sample_nd", mode="cubic",
                                                padding_mode="zeros", align_corners=True),
               lambda: (randn(1, 2, 5, 6), seeded(1).uniform(-1.1, 1.1, (1, 4, 3, 2))
                        .astype(np.float32)),
               lambda x, g: F.grid_sample(x, g, "bicubic", "zeros", align_corners=True),
               ops=("image.grid_sample_nd",), rtol=1e-5),
    DirectCase("onnx_roi_align", graph("image.roi_align", output_height=3, output_width=2,
                                  sampling_ratio=2, spatial_scale=1.0),
               lambda: (randn(2, 3, 8, 9), np.array([[0.5, 1.0, 6.0, 7.5], [2.0, 0.0, 8.5, 4.0]],
                                                    np.float32), np.array([1, 0])),
               lambda x, r, i: torch_roi_align(x, r, i, 3, 2, 2), ops=("image.roi_align",),
               rtol=1e-5),
    DirectCase("onnx_non_max_suppression", graph("image.non_max_suppression", max_per_class=3,
                                            iou_threshold=0.4, score_threshold=0.1),
               lambda: (np.sort(seeded(0).random((2, 6, 4)).astype(np.float32) * 10, axis=-1)[
                   ..., [0, 1, 2, 3]], seeded(1).random((2, 2, 6)).astype(np.float32)),
               lambda b, s: torch_nms(b, s, 3, 0.4, 0.1), ops=("image.non_max_suppression",),
               exact=True),
    # -- shape operands known at run time: result sizes are new symbols -------------------
    DirectCase("onnx_reduce_dynamic_axes_log_sum_exp",
               graph("reduce.dynamic_axes", kind="log_sum_exp", keepdims=False),
               lambda: (randn(2, 3, 4), i64(-1, 0)),
               lambda x, a: torch.logsumexp(x, dim=(0, 2)), ops=("reduce.dynamic_axes",)),
    DirectCase("onnx_reduce_dynamic_axes_empty_means_all",
               graph("reduce.dynamic_axes", kind="max", keepdims=True),
               lambda: (randn(2, 3), np.zeros(0, np.int64)),
               lambda x, a: x.amax(dim=(0, 1), keepdim=True), ops=("reduce.dynamic_axes",)),
    DirectCase("onnx_scan_dynamic_axis_exclusive_reverse",
               graph("reduce.scan_dynamic_axis", kind="sum", exclusive=True, reverse=True),
               lambda: (randn(3, 4), i64(1)),
               lambda x, a: torch.flip(torch.cumsum(torch.flip(x, [1]), 1) - torch.flip(x, [1]),
                                       [1]), ops=("reduce.scan_dynamic_axis",), rtol=1e-5),
    DirectCase("onnx_pad_dynamic", graph("shape.pad_dynamic", mode="constant"),
               lambda: (randn(2, 3), i64(1, -1, 0, 2), np.array(9.0, np.float32)),
               lambda x, p, v: F.pad(x, (-1, 2, 1, 0), value=9.0), ops=("shape.pad_dynamic",)),
    DirectCase("onnx_range", graph("create.range"),
               lambda: (np.array(1.5, np.float32), np.array(7.0, np.float32),
                        np.array(1.25, np.float32)),
               lambda s, e, d: torch.arange(1.5, 7.0, 1.25), ops=("create.range",)),
    DirectCase("onnx_resize_dynamic_scales", graph("image.resize_dynamic", axes=(2, 3),
                                              mode="linear"),
               lambda: (randn(1, 2, 4, 5), np.zeros(0, np.float32),
                        np.array([2.0, 0.6], np.float32), np.zeros(0, np.int64)),
               lambda x, r, s, z: F.interpolate(x, scale_factor=(2.0, 0.6), mode="bilinear"),
               ops=("image.resize_dynamic",), rtol=1e-5),
    DirectCase("onnx_reshape_dynamic", graph("shape.reshape_dynamic"),
               lambda: (randn(2, 3, 4), i64(0, -1, 2)),
               lambda x, s: x.reshape(2, -1, 2), ops=("shape.reshape_dynamic",)),
    DirectCase("onnx_expand_dynamic", graph("shape.expand_dynamic"),
               lambda: (randn(3, 1), i64(2, 1, 4)),
               lambda x, s: x.expand(2, 3, 4), ops=("shape.expand_dynamic",)),
    DirectCase("onnx_tile_dynamic", graph("shape.tile_dynamic"), lambda: (randn(2, 3), i64(2, 1)),
               lambda x, r: x.repeat(2, 1), ops=("shape.tile_dynamic",)),
    DirectCase("onnx_slice_dynamic", graph("shape.slice_dynamic"),
               lambda: (randn(5, 6), i64(4, 1), i64(0, 100), i64(0, 1), i64(-2, 2)),
               lambda x, *_: x[[4, 2], 1::2],
               ops=("shape.slice_dynamic",)),
    DirectCase("onnx_unsqueeze_dynamic", graph("shape.unsqueeze_dynamic"),
               lambda: (randn(2, 3), i64(0, -1)),
               lambda x, a: x[None, :, :, None], ops=("shape.unsqueeze_dynamic",)),
    DirectCase("onnx_squeeze_dynamic", graph("shape.squeeze_dynamic"),
               lambda: (randn(1, 3, 1), i64(-1)),
               lambda x, a: x.squeeze(-1), ops=("shape.squeeze_dynamic",)),
    DirectCase("onnx_split_dynamic", graph("shape.split_dynamic", axis=1),
               lambda: (randn(2, 7), i64(2, 5)),
               lambda x, s: torch.split(x, [2, 5], dim=1), ops=("shape.split_dynamic",)),
    DirectCase("onnx_full_dynamic", graph("create.full_dynamic", value=3.0, dtype=DType.i32),
               lambda: (i64(2, 3),), lambda s: torch.full((2, 3), 3, dtype=torch.int32),
               ops=("create.full_dynamic",), exact=True),
    DirectCase("onnx_topk_dynamic", graph("reduce.topk_dynamic", axis=1, largest=False),
               lambda: (randn(3, 6), i64(2)),
               lambda x, k: torch.topk(x, 2, dim=1, largest=False),
               ops=("reduce.topk_dynamic",)),
]


@pytest.mark.parametrize("case", case_params(CASES))
def test_case(case):
    run_case(case)
