"""The op families. Importing this package registers every op declaration.

One module per family; the op name's prefix is the family's short name:
`ew` (elementwise), `linalg`, `nn`, `reduce`, `shape`, `create`, `index`, `sparse`, `image`.
"""

from dlc.ops import (  # noqa: F401  (imported for their registrations)
    attention,
    creation,
    elementwise,
    image,
    indexing,
    linalg,
    nn,
    normalization,
    onnx_pending,
    reduce,
    shape,
    sparse,
)
from dlc.ops.registry import Attr, FusionKind, OpDef, all_ops, get_op, register_op

__all__ = ["Attr", "FusionKind", "OpDef", "all_ops", "get_op", "register_op"]
