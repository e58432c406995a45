"""Scaled dot-product attention (`nn.sdpa`): every stage of a block of query rows inside
one parallel loop, each stage with the micro-kernel that suits it (flash attention's loop
structure, with the softmax of a block finished before its product with V).

`nn.sdpa` lowers to these nests, the query rows in blocks (dlc/ops/attention.py):

    kpanels[b, jo, e, jl] = k[b, jo * 32 + jl, e]                K^T, padded to 32 keys
    scores[b, ib, ii, j]  = sum_e q[b, row, e] * kpanels[..]     GEMM
    max[b, ib, ii]        = max_j s(scores)                      row reduction
    exps[b, ib, ii, j]    = exp(s - max)                         elementwise along j
    sum[b, ib, ii]        = sum_j exps                           row reduction
    probs[b, ib, ii, j]   = exps / sum                           elementwise along j
    acc[b, ib, ii, e]     = sum_j probs[b, ib, ii, j] * v[b, j, e]   GEMM
    out[b, i, e]          = acc[b, i // RB, i % RB, e]           copy (and any epilogue)

Scheduled nest by nest by the other rules, the scores, exponentials and probabilities of
all heads pass through memory between the stages. Here the block nests move into the
block loop `ib` of `acc` (`compute_at`), so one block's scores and probabilities
(RB x S floats, RB <= 64) stay in L2 from the GEMM that writes them to the GEMM that
reads them, and one fork runs all of them:

    parallel for b_ib_fused:                      # batch x heads x row blocks
      for j_o, ii_o: tile[MR, 2, 16] += q[row, e] * kpanels[.., j_o, e, j_i]   scores
      for ii: rfactor'd vector max over j                                       max
      for ii, j_o: vectorized j_i: exps = exp(s - max)                          exps
      for ii: rfactor'd vector sum over j                                       sum
      for ii, j_o: vectorized j_i: probs = exps * (1 / sum)                     probs
      for e_o, ii_o: tile[MR, 2, 16] += probs[ii, j] * v[j, e]                  acc
    parallel for b, i: vectorized e: out = acc[..]                              out

The register tiles are those of schedule_gemm.py (MR rows x NR = 32 lanes), with every
tail shifted inwards rather than guarded (see `_gemm`); V is read as it is (its rows are
contiguous along the lanes). A decoding step (one query row) has no panels: its scores
are dot products, rfactor'd along the embedding.
"""

from __future__ import annotations

import re

from dlc.ir.tensor.stmt import For, Stmt, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_gemm import LANES, register_tile
from dlc.passes.tensor.schedule_injective import parallel_outer, schedule_injective
from dlc.passes.tensor.schedule_nest import chain_of, find_loop
from dlc.passes.tensor.schedule_rules import _extent

ROW_TILES = {2: (8, 7, 6), 1: (12, 14, 8, 7)}  # MR per vectors of lanes (schedule_gemm)
MAX_ROWS = {2: 8, 1: 12}
MIN_PARALLEL_WORK = 1 << 15  # innermost iterations a nest needs before forking pays
STAGES = ("kpanels", "scores", "max", "exps", "sum", "probs", "acc")  # in order
BLOCK_STAGES = STAGES[1:-1]  # computed inside the loop over row blocks


def schedule_attention(sch: Schedule, nests: list[tuple[str, bool]], threads: int,
                       report: object) -> bool:
    """Schedule an `nn.sdpa` kernel as one parallel loop over blocks of query rows; False
    (the schedule untouched) when the kernel is not one, or a primitive refuses."""
    stages = _stages(nests)
    if stages is None:
        return False
    saved = (sch.func, len(sch.trace.instructions))
    try:
        _schedule(sch, stages, nests[-1][0], threads, report)
    except ScheduleError as err:
        sch.func = saved[0]
        del sch.trace.instructions[saved[1]:]
        _skip(report, f"attention({nests[-1][0]}): {err}")
        return False
    return True


def _stages(nests: list[tuple[str, bool]]) -> dict[str, str] | None:
    """{stage: buffer} when the nests are exactly sdpa's: the reductions named
    `<prefix>_<stage>` in order (K's panels only for more than a few query rows), then
    the output's copy."""
    if not nests or nests[-1][1]:
        return None
    names = STAGES if len(nests) == len(STAGES) + 1 else STAGES[1:]
    if len(nests) != len(names) + 1:
        return None
    found = {}
    prefix = None
    for (name, reduces), stage in zip(nests, names):
        m = re.fullmatch(rf"(\w+)_{stage}\d*", name)
        if not reduces or m is None or prefix not in (None, m.group(1)):
            return None
        prefix = m.group(1)
        found[stage] = name
    return found


def _schedule(sch: Schedule, stages: dict[str, str], out: str, threads: int,
              report: object) -> None:
    acc_loops = sch.loops(stages["acc"])
    block = acc_loops[-3]  # ib: the loop over row blocks
    for stage in reversed(BLOCK_STAGES):
        sch.compute_at(stages[stage], block)
    if "kpanels" in stages:
        _gemm(sch, stages["scores"])
    else:  # a dot product of a query row and a key row per score
        for loop in _reduction_loops(sch, stages["scores"]):
            _vector_reduction(sch, loop)
    for stage in ("max", "sum"):
        for loop in _reduction_loops(sch, stages[stage]):
            _vector_reduction(sch, loop)
    for stage in ("exps", "probs"):
        _elementwise(sch, stages[stage])
    _gemm(sch, stages["acc"])
    outer = sch.loops(stages["acc"])
    _parallel(sch, outer[: outer.index(block) + 1], threads)
    if "kpanels" in stages:
        panels = sch.loops(stages["kpanels"])
        parallel_outer(sch, panels[:-2], threads, report)
    schedule_injective(sch, out, threads, report)


def _gemm(sch: Schedule, buffer: str) -> None:
    """A register-tiled micro-kernel for the nest writing `buffer`, whose two innermost
    spatial loops are the rows (ii) and the lanes (j of scores, e of acc): MR x NR
    accumulators, each operand vector along the lanes feeding MR FMAs.

    Tails are shifted inwards (the last block overlaps the one before), not guarded:
    under a guard, the broadcast operand's load from a buffer of symbolic batch size
    cannot be proved in bounds for the lanes turned off, and codegen gathers it (4x
    slower). The scores' lanes have no tail (K's panels are padded); only fewer lanes
    than one block (Ev < 16) keep a guard."""
    rows, lane = sch.loops(buffer)[-2:]
    n = _extent(sch, lane)
    nv = 2 if n is None or n >= 2 * LANES else 1
    nr = LANES * nv
    r = _extent(sch, rows) or 1
    lane_tail = "shift" if n is not None and n % nr and n > nr else "guard"
    if r > 1:
        mr = next((m for m in ROW_TILES[nv] if r % m == 0), min(MAX_ROWS[nv], r))
        rows_o, rows_i = sch.split(rows, mr, "shift" if r % mr else "guard")
        lane_o, lane_i = sch.split(lane, nr, lane_tail)
        sch.reorder(lane_o, rows_o, rows_i, lane_i)  # the B panel outside the row tiles
        anchor: str = rows_o
    else:
        rows_i = None
        lane_o, lane_i = sch.split(lane, nr, lane_tail)
        anchor = lane_o
    register_tile(sch, buffer, anchor, lane_i, rows_i, nv)


def _vector_reduction(sch: Schedule, loop: str) -> None:
    """rfactor a row reduction into vector lanes: 64 partial results (independent add
    chains) when they divide a long row, 32 for a row of 32 or more (a whole panel of
    keys), else 16 (an embedding of 16 or 24 dims)."""
    n = _extent(sch, loop)
    if n is not None and n < LANES // 2:
        return  # most lanes would be off
    factor = 4 * LANES if n is not None and n % (4 * LANES) == 0 and n >= 16 * LANES \
        else 2 * LANES if n is None or n >= 2 * LANES else LANES
    _, lane, _ = sch.rfactor(loop, factor)
    sch.vectorize(lane)
    sch.vectorize(f"{lane}_init")


def _elementwise(sch: Schedule, buffer: str) -> None:
    """Vector lanes along the innermost loop of the exponentials' or the probabilities'
    nest (a sum over one element: the lanes get a local tile, as a GEMM's do)."""
    lane = sch.loops(buffer)[-1]
    lane_o, lane_i = sch.split(lane, LANES)
    sch.cache_write(buffer, lane_o)
    for name in (lane_i, f"{lane_i}_init", f"{lane_i}_wb"):
        sch.vectorize(name)


def _parallel(sch: Schedule, loops: list[str], threads: int) -> None:
    """Fuse the batch and block loops into one and run it on threads (when they hold
    enough work to pay for the fork). If the fused loop's iterations cannot be proved
    independent (a fused extent divided by a symbolic one), fuse only the loops up to
    the first symbolic extent after the outermost."""
    if threads < 2 or _work(sch, loops[0]) < MIN_PARALLEL_WORK:
        return
    fixed = next((k for k in range(1, len(loops)) if _extent(sch, loops[k]) is None),
                 len(loops))
    for group in (loops, loops[:fixed]):
        saved = (sch.func, len(sch.trace.instructions))
        try:
            outer = group[0]
            for nxt in group[1:]:
                outer = sch.fuse(outer, nxt)
            sch.parallel(outer)
            return
        except ScheduleError:
            sch.func = saved[0]
            del sch.trace.instructions[saved[1]:]


# -- analysis --------------------------------------------------------------------------------


def _work(sch: Schedule, loop: str) -> int:
    """Innermost iterations of the nests under `loop` (a symbolic extent counts as 1024)."""

    def count(s: Stmt) -> int:
        if isinstance(s, For):
            n = s.extent.value if s.extent.is_const else 1 << 10
            return n * max(1, count(s.body))
        return sum(count(c) for c in s.children())

    return count(find_loop(sch.func, loop, "attention"))


def _reduction_loops(sch: Schedule, buffer: str) -> list[str]:
    """The innermost loops of the reduction nest writing `buffer` that hold only the
    accumulator's update."""
    spatial = sch.loops(buffer)
    nest = find_loop(sch.func, spatial[-1], "attention")
    return [s.var.name for s in walk(nest.body) if isinstance(s, For)
            and len(chain_of(s).loops) == 1 and isinstance(chain_of(s).body, Store)]


def _skip(report: object, reason: str) -> None:
    report.skipped.append(reason)  # type: ignore[attr-defined]
