"""GEMM-like nests (matmul, linear, convolution): register-tiled micro-kernels on packed
panels, the loop structure of every BLAS (Goto and van de Geijn; BLIS).

A reduction nest is GEMM-like when its update multiplies reads of two different buffers
that both change with the reduction, and one spatial loop — the *lane* loop `j` — can be
vectorized: each read either stays the same along `j` (the `A` operand: it is broadcast),
reads consecutive elements along it, or is a kernel parameter that `pack` can re-lay out
so that it does (the `B` operand). The rule picks the lane loop with the fewest packs
(ties: the innermost), so

* matmul `C[i, j] += A[i, k] * B[k, j]`: `j`, with `B` packed into panels `[N/NR, K, NR]`;
* linear `y[i, j] += x[i, k] * W[j, k]`: `j`, with `W` packed `[N/NR, K, NR]` (the
  transpose and the panels in one copy);
* conv `out[n, o, h, w] += x[n, c, h+r, w+s] * W[o, c, r, s]`: `o`, with `W` packed
  `[O/NR, C, R, S, NR]`, unless the image row fills two vectors as well as the channels
  do (64 columns, 128 channels): then `w`, the input read in place, `W` broadcast. A
  padded conv reads a zero-padded copy of its input (`dlc/ops/nn_conv.py`); guarded
  reads along `w` would be non-contiguous.
* strided transposed conv, by phase (`(l + pad) % s` picks the tap): no output column
  can be a row of the register tile until each output loop is split by the stride and
  its phases run outermost (`_split_phases`); then each phase is a conv as above.

Packing a weight (a parameter bound to a graph constant) is free: the backend runs that
pack once, at compile time (`passes/tensor/prepack.py`). Packing an activation is a copy
per call, done only when at least MIN_PACK_ROWS rows reuse it.

    Before (linear, 64 x 256 -> 512):          After:
      for i, j:                                  parallel for j_o in 0..16:        # B panel
        acc = 0                                    for i_o in 0..8:
        for k: acc += x[i, k] * W[j, k]              tile: f32[8, 2, 16] = 0
        y[i, j] = acc                                for k:
                                                       unrolled i_i, j_v; vectorized j_l:
                                                         tile += x[i, k] * W_packed[j_o, k, j]
                                                     y[i_o*8 + i_i, j_o*32 + ...] = tile

The micro-kernel holds MR x NV vectors of accumulators (NR = 16 * NV lanes; 16 of the 32
zmm registers), each loaded B vector feeds MR FMAs and each broadcast A element NV.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlc.ir.tensor.expr import Expr, free_vars, subexprs
from dlc.ir.tensor.stmt import Buffer, For, Store, walk
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.schedule_analysis import linear_terms
from dlc.passes.tensor.schedule_nest import loads_of
from dlc.passes.tensor.schedule_rules import _extent

LANES = 16  # float32 lanes of one AVX-512 register
ROW_CHOICES = {2: (8, 7, 6), 1: (12, 14, 8, 7)}  # MR that divide the rows; else MAX_ROWS
MAX_ROWS = {2: 8, 1: 12}
MIN_PACK_ROWS = 64  # rows that must reuse a packed activation to pay for its copy
MIN_PARALLEL_WORK = 1 << 15  # innermost iterations a nest needs before forking pays
BLOCKS_PER_THREAD = 4  # parallel iterations per thread wanted for load balance


@dataclass(frozen=True)
class _Plan:
    lane: str
    rows: str | None  # the register tile's row loop
    packs: tuple[tuple[Buffer, int], ...]  # (buffer, the dim the lane loop indexes)
    score: tuple[int, float, int, int]


def schedule_gemm(sch: Schedule, buffer: str, threads: int, report: object,
                  constants: frozenset[str]) -> bool:
    """Schedule the nest writing `buffer` as a GEMM micro-kernel; False (and the nest left
    as it was) when it is not GEMM-like or no lane loop vectorizes without gathers."""
    spatial = sch.loops(buffer)
    best = _best_plan(sch, spatial, constants)
    if best is None or _tile_rows(*best) < MAX_ROWS[_vectors(*best)]:  # try the phases
        saved = _snapshot(sch)
        phased = _split_phases(sch, spatial)
        better = _best_plan(sch, phased, constants) if phased else None
        if better is not None and (best is None or (
                better[0].score[0] <= best[0].score[0]
                and _tile_rows(*better) > _tile_rows(*best))):
            spatial, best = phased, better  # type: ignore[assignment]
        else:
            _restore(sch, saved)
    if best is None:
        return False
    plan, extents = best
    _apply(sch, buffer, spatial, plan, extents, threads)
    return True


def _best_plan(sch: Schedule, spatial: list[str], constants: frozenset[str]
               ) -> tuple[_Plan, dict[str, int | None]] | None:
    """The best way to vectorize the nest whose spatial loops are `spatial` (and their
    extents), or None when it is not GEMM-like or every lane loop would gather."""
    update = _update(sch, spatial[0])
    if update is None:
        return None
    reduce_vars = _reduction_vars(sch, spatial)
    operands = [e for e in loads_of(update.value)
                if e.args[0].scope != "local" and free_vars(e) & reduce_vars]
    if len({e.args[0] for e in operands}) < 2:
        return None  # one array summed (a norm's statistics): not a product of two
    extents = {name: _extent(sch, name) for name in spatial}
    params = set(sch.func.params)
    plans = []
    for pos, lane in enumerate(spatial):
        n = extents[lane]
        if n is None or n < LANES:
            continue
        deps = {v for e in operands if lane in free_vars(e) for v in free_vars(e)}
        rows = _rows_loop(spatial, lane, extents, deps)
        plan = _plan(lane, rows, operands, params, constants,
                     extents[rows] or 1 if rows is not None else 1, (pos, n))
        if plan is not None:
            plans.append(plan)
    if not plans:
        return None
    return min(plans, key=lambda p: p.score), extents


def _split_phases(sch: Schedule, spatial: list[str]) -> list[str] | None:
    """Split each output loop `l` that an operand reads through `(l + a) % s` by the
    stride `s` (when `s` divides its extent), phase loop outermost; the new spatial loops,
    or None if nothing was split.

    A strided transposed conv (`dlc/ops/nn_conv.py`) reads the weight tap
    `(l + pad) % s + s*j`, which changes with every output column, so no column loop
    can be the register tile's rows. Within one phase `l = l_o*s + l_i` the tap depends
    on `l_i` only and the input column `l_o + (l_i + pad) // s - j` moves with `l_o`:
    each phase is a GEMM whose rows are `l_o`.

        for k, l: out[k, l] += x[(k+1)//2 - r, (l+1)//2 - t] * w[(k+1)%2 + 2r, (l+1)%2 + 2t]
      ->
        for k_i, l_i, k_o, l_o:
          out[k_o*2 + k_i, l_o*2 + l_i] += x[k_o + (k_i+1)//2 - r, l_o + (l_i+1)//2 - t]
                                          * w[(k_i+1)%2 + 2r, (l_i+1)%2 + 2t]
    """
    update = _update(sch, spatial[0])
    strides: dict[str, int] = {}
    for e in loads_of(update.value) if update is not None else ():
        for x in (x for i in e.args[1:] for x in subexprs(i)):
            if x.op == "mod" and x.args[1].is_const and x.args[1].value > 1:
                s = int(x.args[1].value)
                for name in free_vars(x.args[0]) & set(spatial):
                    n = _extent(sch, name)
                    if n is not None and n > s and n % s == 0 and strides.get(name, s) == s:
                        strides[name] = s
    if not strides:
        return None
    phases, order = [], []
    try:
        for name in spatial:
            if name in strides:
                outer, inner = sch.split(name, strides[name])
                phases.append(inner)
                order.append(outer)
            else:
                order.append(name)
        sch.reorder(*phases, *order)
    except ScheduleError:  # not a perfect nest, or unanalyzable: keep the lowered nest
        return None
    outers = set(order) - set(spatial)
    update = _update(sch, phases[0])
    if update is None or any(x.op in ("mod", "floordiv") and free_vars(x) & outers
                             for e in loads_of(update.value) for i in e.args[1:]
                             for x in subexprs(i)):
        return None  # a phase still mixes with its output position
    return [*phases, *order]


def _plan(lane: str, rows: str | None, operands: list[Expr], params: set[Buffer],
          constants: frozenset[str], rows_n: int, where: tuple[int, int]) -> _Plan | None:
    """How to vectorize along `lane` (at position `where[0]` of the spatial loops, with
    `where[1]` iterations): the operands to pack, or None if some operand would have to
    be gathered, or nothing is reused across the lanes. Plans compare by the activations
    they must re-lay out at run time, then by how full their vectors are (56 columns fill
    56 of 64 lanes, 64 channels all of them), then by the register tile's width (a 16-wide
    image fills one vector per row, 256 channels two: half the accumulators idle), then
    innermost first."""
    broadcast = False
    strided = 0
    packs: dict[Buffer, int] = {}
    for e in operands:
        buf = e.args[0]
        access = _lane_access(e, lane)
        if access == "broadcast":
            broadcast = True
            continue
        dim = _packable_dim(e, lane)
        can_pack = buf in params and dim is not None and packs.get(buf, dim) == dim and \
            (buf.name in constants or rows_n >= MIN_PACK_ROWS)
        if access == "strided":
            if not can_pack:
                return None  # the lanes would gather this operand
            strided += buf.name not in constants  # a weight is packed at compile time
        if can_pack:  # contiguous operands get panels too: they keep the k stride small
            packs[buf] = dim  # type: ignore[assignment]
    if not broadcast:
        return None  # nothing is reused across lanes: not a GEMM
    pos, n = where
    nv = 2 if n >= 2 * LANES else 1
    filled = n / (-(-n // (LANES * nv)) * LANES * nv)
    return _Plan(lane, rows, tuple(packs.items()), (strided, -filled, -nv, -pos))


def _apply(sch: Schedule, buffer: str, spatial: list[str], plan: _Plan,
           extents: dict[str, int | None], threads: int) -> None:
    lane, rows = plan.lane, plan.rows
    nv = _vectors(plan, extents)
    nr = LANES * nv
    lanes_n = extents[lane] or LANES
    reduction = _order_reduction(sch, spatial[-1], lane)
    for buf, dim in plan.packs:
        if lanes_n > nr or _lane_access_any(sch, buf, lane) == "strided":
            rest = _dims_by_loop_order(sch, buf, dim, reduction)
            sch.pack(buf.name, ",".join([f"{dim}/{nr}", *map(str, rest), f"{dim}%{nr}"]))
    others = [s for s in spatial if s not in (lane, rows)]
    order = [*others, *([rows] if rows else []), lane]
    if order != spatial:
        sch.reorder(*order)
    deps = _lane_operand_loops(sch, order[0], lane, set(others))
    if rows is not None:
        mr = _tile_rows(plan, extents)
        # a partial last row block would guard every FMA: shift it inwards instead
        rows_o, lane_o, rows_i, lane_i = sch.tile(rows, lane, mr, nr, tail="shift")
        anchor = rows_o
        inner_order = [*[o for o in others if o in deps], lane_o,
                       *[o for o in others if o not in deps], rows_o]
        if inner_order != [*others, rows_o, lane_o]:
            sch.reorder(*inner_order)
    else:
        rows_i = None
        lane_o, lane_i = sch.split(lane, nr)
        anchor = lane_o
    register_tile(sch, buffer, anchor, lane_i, rows_i, nv)
    loops = sch.loops(buffer)
    _parallel(sch, loops[: loops.index(anchor) + 1], threads)


def _vectors(plan: _Plan, extents: dict[str, int | None]) -> int:
    """Vectors per row of the register tile (two when the lanes fill them)."""
    return 2 if (extents[plan.lane] or LANES) >= 2 * LANES else 1


def _tile_rows(plan: _Plan, extents: dict[str, int | None]) -> int:
    """MR, the register tile's rows (0 without a row loop)."""
    if plan.rows is None:
        return 0
    r, nv = extents[plan.rows] or 1, _vectors(plan, extents)
    return next((m for m in ROW_CHOICES[nv] if r % m == 0), min(MAX_ROWS[nv], r))


def _order_reduction(sch: Schedule, inner_spatial: str, lane: str) -> list[str]:
    """Make innermost the reduction loop along which the broadcast operand reads
    consecutive elements (k of a matmul's A[i, k]; the input channel of a channels-last
    conv, the kernel column of a channels-first one), so its scalar loads stream through
    cache lines. Returns the reduction loops, outermost first."""
    nest = _find(sch, inner_spatial)
    assert nest is not None
    loops = [s.var.name for s in walk(nest.body) if isinstance(s, For)]
    update = _update(sch, inner_spatial)
    if update is None or len(loops) < 2:
        return loops
    streams = [r for r in loops for e in loads_of(update.value)
               if e.args[0].scope != "local" and _lane_access(e, lane) == "broadcast"
               and _lane_access(e, r) == "contiguous"]
    if not streams or streams[0] == loops[-1]:
        return loops
    order = [r for r in loops if r != streams[0]] + [streams[0]]
    try:
        sch.reorder(*order)
    except ScheduleError:  # not a perfect nest, or unanalyzable: keep the lowered order
        return loops
    return order


def _dims_by_loop_order(sch: Schedule, buf: Buffer, lane_dim: int, loops: list[str]
                        ) -> list[int]:
    """B's dims other than the lane's, ordered like the reduction loops that index them
    (dims no reduction loop indexes first), so the packed panel is read front to back."""
    index = next(e.args[1:] for s in walk(sch.func.body) if isinstance(s, Store)
                 for e in loads_of(s.value) if e.args[0] is buf)
    def rank(d: int) -> int:
        names = free_vars(index[d])
        hits = [k for k, r in enumerate(loops) if r in names]
        return hits[0] + 1 if hits else 0

    return sorted((d for d in range(len(buf.shape)) if d != lane_dim), key=rank)


def register_tile(sch: Schedule, buffer: str, anchor: str, lane_i: str, rows_i: str | None,
                  nv: int) -> None:
    """Keep the MR x (nv * 16) tile under `anchor` in registers: split the lane loop
    `lane_i` into `nv` vectors, `cache_write` at `anchor`, vectorize the lanes and unroll
    the rows and vectors (of the update, its init and its write-back)."""
    lane_v = None
    if nv > 1:
        lane_v, lane_i = sch.split(lane_i, LANES)
    sch.cache_write(buffer, anchor)
    for name in (lane_i, f"{lane_i}_init", f"{lane_i}_wb"):
        sch.vectorize(name)
    for loop in (rows_i, lane_v):
        if loop is not None:
            for name in (loop, f"{loop}_init", f"{loop}_wb"):
                sch.unroll(name)


def _parallel(sch: Schedule, loops: list[str], threads: int) -> None:
    """Fuse leading loops until there are a few blocks per thread, then run them in
    parallel (if the nest has enough work to pay for the fork).

    Only loops of constant extent are fused: fusing a symbolic one (the batch `N`) leaves
    `// N` and `% N` indices whose writes the independence check cannot prove distinct
    (and a batch of 1 has nothing to share out). So when the constant loops hold a block
    per thread, the symbolic ones move outside them first.

        Before (conv, 128 channels):           After:
          for j_o in 0..4:                       for i in 0..N:
            for i in 0..N:                         parallel for j_o_k_fused in 0..256:
              for k in 0..64:                        for l_o in 0..8: <micro-kernel>
                for l_o in 0..8: <micro-kernel>
    """
    if threads < 2 or not loops or _work(sch, loops[0]) < MIN_PARALLEL_WORK:
        return
    symbolic = [name for name in loops if _extent(sch, name) is None]
    constant = [name for name in loops if name not in symbolic]
    blocks = _product(sch, constant)
    start = 0
    if symbolic and constant and blocks >= threads and loops[0] in symbolic:
        start = len(symbolic)  # already outermost: parallelize the constant loops inside
    elif symbolic and constant and blocks >= threads:
        saved = _snapshot(sch)
        try:
            sch.reorder(*symbolic, *constant)
            loops, start = [*symbolic, *constant], len(symbolic)
        except ScheduleError:  # not a perfect nest: keep the order, fuse no symbolic loop
            _restore(sch, saved)
    band = [loops[start]]
    while (len(band) < len(loops) - start and _extent(sch, band[-1]) is not None
           and _product(sch, band) < BLOCKS_PER_THREAD * threads
           and _extent(sch, loops[start + len(band)]) is not None):
        band.append(loops[start + len(band)])
    saved = _snapshot(sch)
    for count in range(len(band), 0, -1):  # fewer fused loops if the fused one is refused
        try:
            outer = band[0]
            for nxt in band[1:count]:
                outer = sch.fuse(outer, nxt)
            if (_extent(sch, outer) or 2) >= 2:
                sch.parallel(outer)
            return
        except ScheduleError:  # e.g. shifted row blocks overlap: not provably race-free
            _restore(sch, saved)


def _product(sch: Schedule, names: list[str]) -> int:
    total = 1
    for name in names:
        total *= _extent(sch, name) or 1
    return total


def _snapshot(sch: Schedule) -> tuple[object, int]:
    return sch.func, len(sch.trace.instructions)


def _restore(sch: Schedule, saved: tuple[object, int]) -> None:
    """Undo the primitives applied since `saved` (a schedule only ever moves forward)."""
    sch.func = saved[0]  # type: ignore[assignment]
    del sch.trace.instructions[saved[1]:]


# -- analysis --------------------------------------------------------------------------------


def _find(sch: Schedule, name: str) -> For | None:
    return next((s for s in walk(sch.func.body) if isinstance(s, For) and s.var.name == name),
                None)


def _work(sch: Schedule, name: str) -> int:
    loop = _find(sch, name)
    total = 1
    if loop is None:
        return 0
    for s in walk(loop):
        if isinstance(s, For):
            total *= s.extent.value if s.extent.is_const else 1 << 10
    return total


def _update(sch: Schedule, outer: str) -> Store | None:
    """The accumulator update in the innermost loop of the nest under `outer`."""
    nest = _find(sch, outer)
    if nest is None:
        return None
    loops = [s for s in walk(nest) if isinstance(s, For)]
    stores = [s for s in walk(loops[-1].body) if isinstance(s, Store)]
    if len(stores) != 1 or stores[0].buffer.scope != "local":
        return None
    return stores[0]


def _reduction_vars(sch: Schedule, spatial: list[str]) -> set[str]:
    nest = _find(sch, spatial[-1])
    assert nest is not None
    return {s.var.name for s in walk(nest.body) if isinstance(s, For)}


def _lane_access(load: Expr, lane: str) -> str:
    """How a load's address moves along the lane loop: "broadcast" (not at all),
    "contiguous" (+1 in the last dim only) or "strided" (anything else, incl. nonlinear)."""
    if lane not in free_vars(load):
        return "broadcast"
    coeffs = []
    for index in load.args[1:]:
        terms, _ = linear_terms(index)
        c = 0
        for atom, k in terms.items():
            if atom.op == "var" and atom.name == lane:
                c += k
            elif lane in free_vars(atom):
                return "strided"  # under a clamp, a division, a loaded index
        coeffs.append(c)
    return "contiguous" if coeffs[-1] == 1 and not any(coeffs[:-1]) else "strided"


def _lane_access_any(sch: Schedule, buf: Buffer, lane: str) -> str:
    kinds = {_lane_access(e, lane) for s in walk(sch.func.body) if isinstance(s, Store)
             for e in loads_of(s.value) if e.args[0] is buf}
    return "strided" if "strided" in kinds else "contiguous"


def _packable_dim(load: Expr, lane: str) -> int | None:
    """The one dim of the load indexed by exactly the lane variable, if it is the only dim
    that uses it (then `pack` can move that dim innermost)."""
    index = load.args[1:]
    dims = [d for d, i in enumerate(index) if lane in free_vars(i)]
    if len(dims) == 1 and index[dims[0]].op == "var":
        return dims[0]
    return None


def _rows_loop(spatial: list[str], lane: str, extents: dict[str, int | None],
               lane_deps: set[str]) -> str | None:
    """The register tile's row loop: the innermost other spatial loop with > 1 iteration
    that the operands read along the lanes do not depend on (so each of their vectors is
    reused by every row of the tile)."""
    for name in reversed(spatial):
        if name != lane and name not in lane_deps and (extents[name] or 0) > 1:
            return name
    return None


def _lane_operand_loops(sch: Schedule, outer: str, lane: str, candidates: set[str]
                        ) -> set[str]:
    """Which of `candidates` the operands read along the lanes depend on: the panel of B
    changes with them, so they stay outside the lane block loop."""
    out: set[str] = set()
    nest = _find(sch, outer)
    for s in walk(nest) if nest is not None else ():
        if isinstance(s, Store) and s.buffer.scope == "local":
            for e in loads_of(s.value):
                if e.args[0].scope != "local" and lane in free_vars(e):
                    out |= free_vars(e) & candidates
    return out
