"""The op families. Importing this package registers every op declaration.

The op name's prefix is the family's short name: `ew` (elementwise), `linalg`, `nn`,
`reduce`, `shape`, `create`, `index`, `sparse`, `image`. A family may span several
modules, one concept each; the prefix, not the module, is the op's identity:

* `ew`: elementwise;  `linalg`: linalg;  `reduce`: reduce;  `create`: creation;
  `sparse`: sparse;
* `nn`: nn_conv (convolutions), nn_pool (pools), normalization (norms, softmax, LRN),
  attention (sdpa, linear attention);
* `shape`: shape (views, joins, splits), shape_slice (slices, flips, pads, repeats),
  shape_dynamic (sizes known only at run time);
* `index`: indexing (gathers, advanced indexing), scatter (scatters, index_put,
  scatter_nd), selection (nonzero, unique, tfidf_vectorizer);
* `image`: image (resize), image_sample (grid sampling, affine grids),
  image_detection (roi_align, non_max_suppression).

Shared helpers have their own small modules: `registry` (declarations and type-rule
helpers), `opmath` (computing f16/bf16 in f32), `nn_window` (sliding-window geometry);
index arithmetic for lowerings is `dlc.ir.tensor.index`.
"""

from dlc.ops import (  # noqa: F401  (imported for their registrations)
    attention,
    creation,
    elementwise,
    image,
    image_detection,
    image_sample,
    indexing,
    linalg,
    nn_conv,
    nn_pool,
    normalization,
    reduce,
    scatter,
    selection,
    shape,
    shape_dynamic,
    shape_slice,
    sparse,
)
from dlc.ops.registry import Attr, FusionKind, OpDef, all_ops, get_op, register_op

__all__ = ["Attr", "FusionKind", "OpDef", "all_ops", "get_op", "register_op"]
