"""Graph-IR passes, one per module; importing this package registers every one.

| pass | what it does |
|---|---|
| `fold-constants` | evaluates nodes whose operands are all constants (with a size cap) |
| `eliminate-common-subexpressions` | computes each distinct expression once |
| `simplify` | algebraic identities, no-op reshapes/permutes/slices/casts |
| `fold-batchnorm` | folds an inference batch norm into the conv/linear before it |
| `reparameterize` | merges parallel conv branches (3x3 + 1x1 + identity) into one conv |
| `recognize-spmm` | turns edge-list message passing (gather, scale, scatter-add) into spmm |
| `sink-transposes` | moves permutes past elementwise ops so that they cancel |
| `transform-layout` | runs convs and pools channels-last, transforms only at the edges |
| `eliminate-dead-code` | removes nodes no output depends on |
| `fuse` | groups ops into kernels by fusion kind (post-dominator analysis, as TVM) |
| `plan-memory` | liveness + best-fit buffer reuse in one arena (an annotation) |
| `schedule` | switches the rule-based loop schedules on (applied when groups are lowered) |
"""

from dlc.passes.graph import (  # noqa: F401  (imported for their registrations)
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_batchnorm,
    fold_constants,
    fuse,
    plan_memory,
    recognize_spmm,
    reparameterize,
    schedule,
    simplify,
    sink_transposes,
    transform_layout,
)
