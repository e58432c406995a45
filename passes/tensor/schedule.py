"""Schedules: primitives that rewrite a kernel's loop nest, recorded as a replayable trace.

    sch = Schedule(func)                      # a lowered kernel (one fused group)
    i, j = sch.loops("C")                     # loops around the store to C, outermost first
    io, jo, ii, ji = sch.tile(i, j, 4, 8)
    sch.cache_write("C", jo)                  # a 4x8 register tile under jo
    sch.vectorize(ji)
    sch.parallel(io)
    print(sch.trace)                          # tile(i, j, 4, 8) -> i_o, j_o, i_i, j_i ...
    func = sch.func                           # or sch.trace.apply(fresh_lowering)

Loops are named by their variable. A Schedule first gives every loop a distinct name
(lowering reuses `v2_i` for each row loop of a softmax; the second becomes `v2_i_1`), and
new loops get readable suffixes: `_o`/`_i` from split, `_fused` from fuse, `_init`/`_wb`
from cache_write. Every primitive checks its preconditions and raises ScheduleError with
the reason instead of producing a wrong kernel; after each one the annotations are
re-checked (a parallel loop must still have independent iterations, a vectorized loop
must still be innermost), so no sequence of accepted primitives changes what the kernel
computes, except that reordering the loops of a sum reassociates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlc.ir.tensor.stmt import For, LoopKind, PrimFunc, Store, walk
from dlc.passes.tensor import schedule_dataflow as dataflow
from dlc.passes.tensor import schedule_loops as loops_
from dlc.passes.tensor import schedule_rfactor as rfactor_
from dlc.passes.tensor import schedule_unswitch as unswitch_
from dlc.passes.tensor.schedule_analysis import check_annotations
from dlc.passes.tensor.schedule_nest import (
    ScheduleError,
    chain_of,
    find_buffer,
    find_loop,
    path_to,
    unique_loop_names,
)
from dlc.passes.tensor.trace import Arg, Trace

__all__ = ["Schedule", "ScheduleError", "Trace"]


class Schedule:
    """A kernel being scheduled: the current PrimFunc and the trace that produced it."""

    def __init__(self, func: PrimFunc) -> None:
        self.func = unique_loop_names(func)
        self.trace = Trace()

    def __str__(self) -> str:
        return str(self.func)

    # -- looking loops up --------------------------------------------------------------------
    def get_loop(self, name: str) -> str:
        """`name`, after checking that the kernel has a loop of that name."""
        find_loop(self.func, name, "get_loop")
        return name

    def loops(self, buffer: str) -> list[str]:
        """The loops around the innermost store to `buffer`, outermost first.

        For a matmul `C` that is [i, j] (the store of the finished sum); for its accumulator
        `C_acc` it is [i, j, k].
        """
        buf = find_buffer(self.func, buffer, "loops")
        best: list[str] | None = None
        for s in walk(self.func.body):
            if isinstance(s, Store) and s.buffer is buf:
                around = [x.var.name for x in path_to(self.func.body, s) if isinstance(x, For)]
                if best is None or len(around) > len(best):
                    best = around
        if best is None:
            raise ScheduleError("loops", buffer, f"no statement in @{self.func.name} writes "
                                f"{buffer}")
        return best

    # -- applying and recording --------------------------------------------------------------
    def _apply(self, primitive: str, args: tuple[Arg, ...], label: str,
               fn: Callable[[PrimFunc], tuple[PrimFunc, Any]]) -> Any:
        new, made = fn(self.func)
        problem = check_annotations(new)
        if problem is not None:
            loop, reason = problem
            raise ScheduleError(primitive, label, f"afterwards, loop {loop} would be invalid: "
                                f"{reason}")
        self.func = new
        outputs = () if made is None else (made,) if isinstance(made, str) else tuple(made)
        self.trace.record(primitive, args, outputs)
        return made

    # -- loop primitives ---------------------------------------------------------------------
    def split(self, loop: str, factor: int, tail: str = "guard") -> tuple[str, str]:
        """Split `loop` into an outer loop of ceil(n / factor) and an inner one of `factor`.

        A tail that does not fill the last block is skipped by a guard (when the extent is
        not a multiple of `factor`, or is symbolic). With `tail="shift"` the last block is
        shifted inwards instead (Halide's ShiftInwards): `min(o * f, n - f) + i`, no guard,
        some iterations computed twice — allowed when the body reads nothing it writes.
        The loop must be serial.

        Before:
            for i in 0..6 {
              B[i] = A[i] * 2.0
            }

        After split(i, 4) -> i_o, i_i:
            for i_o in 0..2 {
              for i_i in 0..4 {
                if i_o * 4 + i_i < 6 {
                  B[i_o * 4 + i_i] = A[i_o * 4 + i_i] * 2.0
                }
              }
            }
        """
        args = (loop, factor) if tail == "guard" else (loop, factor, tail)
        return self._apply("split", args, loop, lambda f: loops_.split(f, loop, factor, tail))

    def reorder(self, *loops: str) -> None:
        """Put perfectly nested loops in the given order (they swap positions).

        Refused when a statement sits between the loops, when an extent would use a loop
        inside it, or when the dependence test cannot show the new order is safe (a
        non-commutative update over two of the loops; unanalyzable indices).

        Before:
            for i in 0..2 {
              for j in 0..3 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After reorder(j, i):
            for j in 0..3 {
              for i in 0..2 {
                B[i, j] = A[i, j] + 1.0
              }
            }
        """
        label = ", ".join(loops)
        return self._apply("reorder", loops, label, lambda f: (loops_.reorder(f, loops), None))

    def fuse(self, outer: str, inner: str) -> str:
        """Fuse `inner` (the loop directly inside `outer`) into `outer`: one loop over the
        product, the old indices recovered with // and %.

        Before:
            for i in 0..2 {
              for j in 0..3 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After fuse(i, j) -> i_j_fused:
            for i_j_fused in 0..6 {
              B[i_j_fused // 3, i_j_fused % 3] = A[i_j_fused // 3, i_j_fused % 3] + 1.0
            }
        """
        return self._apply("fuse", (outer, inner), f"{outer}, {inner}",
                           lambda f: loops_.fuse(f, outer, inner))

    def tile(self, x: str, y: str, fx: int, fy: int, tail: str = "guard"
             ) -> tuple[str, str, str, str]:
        """split(x, fx), split(y, fy), reorder(x_o, y_o, x_i, y_i): a fx-by-fy tile.
        `tail` is the tail strategy of x's split (see `split`).

        `y` must be the loop directly inside `x`. Returns (x_o, y_o, x_i, y_i).

        Before:
            for i in 0..4 {
              for j in 0..6 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After tile(i, j, 2, 3) -> i_o, j_o, i_i, j_i:
            for i_o in 0..2 {
              for j_o in 0..2 {
                for i_i in 0..2 {
                  for j_i in 0..3 {
                    B[i_o * 2 + i_i, j_o * 3 + j_i] = A[i_o * 2 + i_i, j_o * 3 + j_i] + 1.0
                  }
                }
              }
            }
        """
        def run(f: PrimFunc) -> tuple[PrimFunc, tuple[str, str, str, str]]:
            nest = chain_of(find_loop(f, x, "tile")).loops
            if len(nest) < 2 or nest[1] is not find_loop(f, y, "tile"):
                raise ScheduleError("tile", f"{x}, {y}", f"{y} is not the loop directly "
                                    f"inside {x}")
            f, (xo, xi) = loops_.split(f, x, fx, tail)
            f, (yo, yi) = loops_.split(f, y, fy)
            return loops_.reorder(f, (xo, yo, xi, yi)), (xo, yo, xi, yi)

        args = (x, y, fx, fy) if tail == "guard" else (x, y, fx, fy, tail)
        return self._apply("tile", args, f"{x}, {y}", run)

    def vectorize(self, loop: str) -> None:
        """Mark an innermost loop of constant extent as vector lanes.

        Every buffer the body writes must be written at an index that gives each lane its
        own element (and read, if at all, only at that index): a loop that updates an
        accumulator in every iteration is refused. A tail guard may remain in the body;
        codegen predicates or scalarizes it.

        Before:
            for i in 0..2 {
              for j in 0..4 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After vectorize(j):
            for i in 0..2 {
              vectorized for j in 0..4 {
                B[i, j] = A[i, j] + 1.0
              }
            }
        """
        return self._apply("vectorize", (loop,), loop, lambda f: (
            loops_.annotate(f, loop, LoopKind.VECTORIZED, "vectorize"), None))

    def unroll(self, loop: str) -> None:
        """Mark a loop of constant extent to be fully unrolled.

        Before:
            for i in 0..2 {
              for j in 0..4 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After unroll(j):
            for i in 0..2 {
              unrolled for j in 0..4 {
                B[i, j] = A[i, j] + 1.0
              }
            }
        """
        return self._apply("unroll", (loop,), loop, lambda f: (
            loops_.annotate(f, loop, LoopKind.UNROLLED, "unroll"), None))

    def parallel(self, loop: str) -> None:
        """Run the iterations of `loop` on threads.

        Each iteration must write its own elements of every buffer (not allocated inside the
        loop): a reduction loop, whose iterations all update one accumulator, is refused, as
        is a parallel loop inside or around another.

        Before:
            for i in 0..2 {
              for j in 0..3 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After parallel(i):
            parallel for i in 0..2 {
              for j in 0..3 {
                B[i, j] = A[i, j] + 1.0
              }
            }
        """
        return self._apply("parallel", (loop,), loop, lambda f: (
            loops_.annotate(f, loop, LoopKind.PARALLEL, "parallel"), None))

    # -- dataflow primitives -----------------------------------------------------------------
    def compute_at(self, producer: str, loop: str) -> None:
        """Compute the intermediate `producer` inside `loop`, only the part one iteration
        reads (its nest moves in, minus the loops over dimensions the iteration fixes).

        The producer's nest must run before `loop` in the same sequence, write only
        `producer`, and be its only writer; `loop` must be its only reader, and nothing
        between may write what the nest reads. The buffer keeps its full size.

        Before:
            M: f32[2] global
            for i in 0..2 {
              M_acc: f32[1] local
              M_acc[0] = -inf
              for r in 0..3 {
                M_acc[0] = max(M_acc[0], X[i, r])
              }
              M[i] = M_acc[0]
            }
            for i_1 in 0..2 {
              for j in 0..3 {
                Y[i_1, j] = exp(X[i_1, j] - M[i_1])
              }
            }

        After compute_at(M, i_1):
            M: f32[2] global
            for i_1 in 0..2 {
              M_acc: f32[1] local
              M_acc[0] = -inf
              for r in 0..3 {
                M_acc[0] = max(M_acc[0], X[i_1, r])
              }
              M[i_1] = M_acc[0]
              for j in 0..3 {
                Y[i_1, j] = exp(X[i_1, j] - M[i_1])
              }
            }
        """
        return self._apply("compute_at", (producer, loop), f"{producer}, {loop}", lambda f: (
            dataflow.compute_at(f, producer, loop), None))

    def inline(self, buffer: str) -> None:
        """Replace every load of an intermediate by the expression stored into it, and
        delete its nest and buffer.

        The nest must be a single store `B[i, j] = e` over loops i, j of B's extents, not
        inside another loop; nothing after it may write what `e` reads.

        Before:
            B: f32[4] global
            for i in 0..4 {
              B[i] = A[i] * 2.0
            }
            for j in 0..4 {
              C[j] = B[j] + 1.0
            }

        After inline(B):
            for j in 0..4 {
              C[j] = A[j] * 2.0 + 1.0
            }
        """
        return self._apply("inline", (buffer,), buffer, lambda f: (
            dataflow.inline(f, buffer), None))

    def cache_write(self, buffer: str, loop: str) -> str:
        """Accumulate the reduction into `buffer` for all iterations of the loops inside
        `loop` in one local tile, then write the tile back: a GEMM's register tile.

        The loops between `loop` and the reduction's accumulator become three copies:
        `_init` loops, the original loops moved inside the reduction loops, and `_wb`
        (write-back) loops. They must be serial with constant extents. Returns the tile's
        buffer name.

        Before:
            for i in 0..2 {
              for j in 0..2 {
                C_acc: f32[1] local
                C_acc[0] = 0.0
                for k in 0..3 {
                  C_acc[0] = C_acc[0] + A[i, k] * B[k, j]
                }
                C[i, j] = C_acc[0]
              }
            }

        After cache_write(C, i) -> C_local:
            for i in 0..2 {
              C_local: f32[2] local
              for j_init in 0..2 {
                C_local[j_init] = 0.0
              }
              for k in 0..3 {
                for j in 0..2 {
                  C_local[j] = C_local[j] + A[i, k] * B[k, j]
                }
              }
              for j_wb in 0..2 {
                C[i, j_wb] = C_local[j_wb]
              }
            }
        """
        return self._apply("cache_write", (buffer, loop), f"{buffer}, {loop}",
                           lambda f: dataflow.cache_write(f, buffer, loop))

    def pack(self, buffer: str, layout: str) -> str:
        """Copy the read-only operand `buffer` into a new buffer in a blocked `layout`, and
        read the copy instead (weight packing for GEMM and convolution).

        `layout` lists the packed axes: `d` (dim d whole), `d/f` (its block of f) and `d%f`
        (the position in the block); "1/8,0,1%8" packs W[K, N] as W_packed[N/8, K, 8].
        Returns the new buffer's name.

        Before:
            for i in 0..2 {
              for j in 0..4 {
                B[i, j] = A[i, j] + 1.0
              }
            }

        After pack(A, "1/2,0,1%2") -> A_packed:
            A_packed: f32[2, 2, 2] global
            for A_p0 in 0..2 {
              for A_p1 in 0..4 {
                A_packed[A_p1 // 2, A_p0, A_p1 % 2] = A[A_p0, A_p1]
              }
            }
            for i in 0..2 {
              for j in 0..4 {
                B[i, j] = A_packed[j // 2, i, j % 2] + 1.0
              }
            }
        """
        return self._apply("pack", (buffer, layout), f"{buffer}, {layout!r}",
                           lambda f: dataflow.pack(f, buffer, layout))

    def rfactor(self, loop: str, factor: int) -> tuple[str, str, str]:
        """Split the innermost reduction loop `loop` by `factor` and give each position of
        the inner loop its own partial accumulator, combined after the reduction: the
        inner loop's iterations become independent, so it can be vectorized.

        `loop` must hold only the update `acc = acc op x` (op: +, *, max, min) of a local
        accumulator that no loop between its allocation and `loop` indexes. Returns
        (outer loop, inner loop, partials buffer); the partials are set to the combiner's
        identity by `<inner>_init` and folded into the accumulator by `<inner>_red`.

        Before:
            for i in 0..2 {
              S_acc: f32[1] local
              S_acc[0] = 0.0
              for r in 0..3 {
                S_acc[0] = S_acc[0] + X[i, r]
              }
              S[i] = S_acc[0]
            }

        After rfactor(r, 2) -> r_o, r_i, S_acc_rf:
            for i in 0..2 {
              S_acc: f32[1] local
              S_acc[0] = 0.0
              S_acc_rf: f32[2] local
              for r_i_init in 0..2 {
                S_acc_rf[r_i_init] = 0.0
              }
              for r_o in 0..2 {
                for r_i in 0..2 {
                  if r_o * 2 + r_i < 3 {
                    S_acc_rf[r_i] = S_acc_rf[r_i] + X[i, r_o * 2 + r_i]
                  }
                }
              }
              for r_i_red in 0..2 {
                S_acc[0] = S_acc[0] + S_acc_rf[r_i_red]
              }
              S[i] = S_acc[0]
            }
        """
        return self._apply("rfactor", (loop, factor), loop,
                           lambda f: rfactor_.rfactor(f, loop, factor))

    def unswitch(self, loop: str) -> None:
        """Hoist each select in the body of `loop` whose condition does not change inside
        that body (it uses no loop inside it, and no memory) into an if/else around the
        body: one copy of the body per branch, each with the select replaced by its arm.
        Loops in the else-copies get new names. A concatenation then loads one input per
        element instead of all of them.

        Before:
            for i in 0..2 {
              for j in 0..3 {
                C[i, j] = select(i < 1, A[min(i, 0), j], B[max(i - 1, 0), j])
              }
            }

        After unswitch(i):
            for i in 0..2 {
              if i < 1 {
                for j in 0..3 {
                  C[i, j] = A[min(i, 0), j]
                }
              } else {
                for j_1 in 0..3 {
                  C[i, j_1] = B[max(i - 1, 0), j_1]
                }
              }
            }
        """
        return self._apply("unswitch", (loop,), loop,
                           lambda f: (unswitch_.unswitch(f, loop), None))
