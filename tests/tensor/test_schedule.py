"""Schedule primitives: golden IR on small kernels, refusals with reasons, and traces.

The Before/After examples in each primitive's docstring are checked here too, so they
cannot drift from what the primitive does.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from dlc.errors import DLCError
from dlc.ir.dtypes import f32
from dlc.ir.tensor.compute import compute, placeholder, reduce, reduce_axis
from dlc.ir.tensor.expr import call, compare, max_, min_, select, var
from dlc.ir.tensor.interpreter import run_func
from dlc.ir.tensor.lower import lower_tensors
from dlc.ir.tensor.stmt import PrimFunc
from dlc.passes.tensor.schedule import Schedule, ScheduleError
from dlc.passes.tensor.trace import PRIMITIVES, Trace
from dlc.testing import assert_close

# -- kernels -------------------------------------------------------------------------------


def elementwise_1d(n: int = 6) -> PrimFunc:
    a = placeholder((n,), f32, "A")
    b = compute((n,), lambda i: a[i] * 2.0, "B", axis_names=("i",))
    return lower_tensors("scale", [a], [b])


def elementwise_2d(m: int = 2, n: int = 3) -> PrimFunc:
    a = placeholder((m, n), f32, "A")
    b = compute((m, n), lambda i, j: a[i, j] + 1.0, "B", axis_names=("i", "j"))
    return lower_tensors("add_one", [a], [b])


def symbolic_2d(n: int = 4) -> PrimFunc:
    big_n = var("N")
    a = placeholder((big_n, n), f32, "A")
    b = compute((big_n, n), lambda i, j: a[i, j] * 3.0, "B", axis_names=("i", "j"))
    return lower_tensors("scale_n", [a], [b])


def matmul(m: int = 2, k: int = 3, n: int = 2, relu: bool = False) -> PrimFunc:
    a, b = placeholder((m, k), f32, "A"), placeholder((k, n), f32, "B")
    r = reduce_axis(k, "k")
    c = compute((m, n), lambda i, j: reduce("sum", a[i, r] * b[r, j], [r]), "C",
                axis_names=("i", "j"))
    if not relu:
        return lower_tensors("matmul", [a, b], [c])
    out = compute((m, n), lambda i, j: max_(c[i, j], 0.0), "Out", axis_names=("i", "j"))
    return lower_tensors("matmul_relu", [a, b], [out])


def matmul_then_scale(m: int = 2, k: int = 3, n: int = 2) -> PrimFunc:
    """C = A @ B kept in a buffer, then D = C * 2 (C's nest can move into D's rows)."""
    a, b = placeholder((m, k), f32, "A"), placeholder((k, n), f32, "B")
    r = reduce_axis(k, "k")
    c = compute((m, n), lambda i, j: reduce("sum", a[i, r] * b[r, j], [r]), "C",
                axis_names=("i", "j"))
    d = compute((m, n), lambda i, j: c[i, j] * 2.0, "D", axis_names=("i", "j"))
    return lower_tensors("matmul_scale", [a, b], [d], materialize=[c])


def scaled_matmul(m: int = 2, k: int = 3, n: int = 2) -> PrimFunc:
    """A2 = A * 2 kept in a buffer (so inline has something to do), then A2 @ B."""
    a, b = placeholder((m, k), f32, "A"), placeholder((k, n), f32, "B")
    a2 = compute((m, k), lambda i, j: a[i, j] * 2.0, "A2", axis_names=("p", "q"))
    r = reduce_axis(k, "k")
    c = compute((m, n), lambda i, j: reduce("sum", a2[i, r] * b[r, j], [r]), "C",
                axis_names=("i", "j"))
    return lower_tensors("scaled_matmul", [a, b], [c], materialize=[a2])


def row_max_sub(m: int = 2, n: int = 3) -> PrimFunc:
    x = placeholder((m, n), f32, "X")
    r = reduce_axis(n, "r")
    mx = compute((m,), lambda i: reduce("max", x[i, r], [r]), "M", axis_names=("i",))
    y = compute((m, n), lambda i, j: call("exp", x[i, j] - mx[i]), "Y", axis_names=("i", "j"))
    return lower_tensors("row_max_sub", [x], [y])


def row_max_sub_and_double(m: int = 2, n: int = 3) -> PrimFunc:
    """row_max_sub, plus a second output that does not read the row maximum."""
    x = placeholder((m, n), f32, "X")
    r = reduce_axis(n, "r")
    mx = compute((m,), lambda i: reduce("max", x[i, r], [r]), "M", axis_names=("i",))
    y = compute((m, n), lambda i, j: x[i, j] - mx[i], "Y", axis_names=("i", "j"))
    z = compute((m, n), lambda i, j: x[i, j] * 2.0, "Z", axis_names=("i", "j"))
    return lower_tensors("two_outputs", [x], [y, z])


def row_sum(m: int = 2, n: int = 3) -> PrimFunc:
    x = placeholder((m, n), f32, "X")
    r = reduce_axis(n, "r")
    s = compute((m,), lambda i: reduce("sum", x[i, r], [r]), "S", axis_names=("i",))
    return lower_tensors("row_sum", [x], [s])


def concat_rows(n: int = 3) -> PrimFunc:
    """C = concat([A, B]) along the rows: a select on the row index."""
    a, b = placeholder((1, n), f32, "A"), placeholder((1, n), f32, "B")
    c = compute((2, n), lambda i, j: select(compare("lt", i, 1), a[min_(i, 0), j],
                                            b[max_(i - 1, 0), j]), "C", axis_names=("i", "j"))
    return lower_tensors("concat_rows", [a, b], [c])


def softmax(m: int = 2, n: int = 3) -> PrimFunc:
    x = placeholder((m, n), f32, "X")
    r1, r2 = reduce_axis(n, "r"), reduce_axis(n, "r")
    mx = compute((m,), lambda i: reduce("max", x[i, r1], [r1]), "Max", axis_names=("i",))
    e = compute((m, n), lambda i, j: call("exp", x[i, j] - mx[i]), "E", axis_names=("i", "j"))
    s = compute((m,), lambda i: reduce("sum", e[i, r2], [r2]), "Sum", axis_names=("i",))
    out = compute((m, n), lambda i, j: e[i, j] / s[i], "Out", axis_names=("i", "j"))
    return lower_tensors("softmax", [x], [out])


def scale_add(n: int = 4) -> PrimFunc:
    a = placeholder((n,), f32, "A")
    b = compute((n,), lambda i: a[i] * 2.0, "B", axis_names=("i",))
    c = compute((n,), lambda j: b[j] + 1.0, "C", axis_names=("j",))
    return lower_tensors("scale_add", [a], [c], materialize=[b])


def body_text(func: PrimFunc) -> str:
    """The printed kernel without its header and closing brace, dedented."""
    lines = str(func).splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("kernel"))
    return textwrap.dedent("\n".join(lines[start + 1:-1]))


def run(func: PrimFunc, seed: int = 0, **sizes: int) -> dict[str, np.ndarray]:
    """Run a kernel in the interpreter on random inputs; its outputs by name."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for b in func.params:
        shape = tuple(int(d.value) if d.is_const else sizes[d.name] for d in b.shape)
        arrays[b.name] = rng.standard_normal(shape).astype(b.dtype.numpy)
    for b in func.outputs:
        arrays[b.name][...] = 0
    run_func(func, arrays, sizes)
    return {b.name: arrays[b.name] for b in func.outputs}


def schedule(func: PrimFunc, trace: str) -> Schedule:
    sch = Schedule(func)
    for ins in Trace.parse(trace):
        getattr(sch, ins.primitive)(*ins.args)
    return sch


# -- the docstring examples ---------------------------------------------------------------

DOC_EXAMPLES = {
    "split": (elementwise_1d, "split(i, 4) -> i_o, i_i"),
    "reorder": (elementwise_2d, "reorder(j, i)"),
    "fuse": (elementwise_2d, "fuse(i, j) -> i_j_fused"),
    "tile": (lambda: elementwise_2d(4, 6), "tile(i, j, 2, 3) -> i_o, j_o, i_i, j_i"),
    "vectorize": (lambda: elementwise_2d(2, 4), "vectorize(j)"),
    "unroll": (lambda: elementwise_2d(2, 4), "unroll(j)"),
    "parallel": (elementwise_2d, "parallel(i)"),
    "compute_at": (row_max_sub, "compute_at(M, i_1)"),
    "inline": (scale_add, "inline(B)"),
    "cache_write": (matmul, "cache_write(C, i) -> C_local"),
    "pack": (lambda: elementwise_2d(2, 4), 'pack(A, "1/2,0,1%2") -> A_packed'),
    "rfactor": (row_sum, "rfactor(r, 2) -> r_o, r_i, S_acc_rf"),
    "unswitch": (concat_rows, "unswitch(i)"),
}


def _doc_blocks(doc: str) -> dict[str, str]:
    """{"Before": text, "After <trace line>": text} from a docstring."""
    lines = textwrap.dedent("\n".join(doc.splitlines()[1:])).splitlines()
    blocks: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith(("Before:", "After ")):
            current = line.rstrip(":")
            blocks[current] = []
        elif current is not None and (line.startswith(" ") or not line.strip()):
            blocks[current].append(line)
        else:
            current = None
    return {k: textwrap.dedent("\n".join(v)).strip() for k, v in blocks.items()}


@pytest.mark.parametrize("primitive", PRIMITIVES)
def test_docstring_example_holds(primitive: str) -> None:
    doc = getattr(Schedule, primitive).__doc__ or ""
    fixture, line = DOC_EXAMPLES[primitive]
    blocks = _doc_blocks(doc)
    assert set(blocks) == {"Before", f"After {line}"}, f"{primitive}: needs Before/After IR"
    func = fixture()
    assert body_text(Schedule(func).func) == blocks["Before"]
    sch = schedule(func, line)
    assert str(sch.trace) == line
    assert body_text(sch.func) == blocks[f"After {line}"]
    assert_close(tuple(run(sch.func).values()), tuple(run(func).values()))


# -- golden tests on a small matmul --------------------------------------------------------

MATMUL_GOLDEN = {
    "split(j, 2) -> j_o, j_i": """\
for i in 0..2 {
  for j_o in 0..2 {
    for j_i in 0..2 {
      if j_o * 2 + j_i < 3 {
        C_acc: f32[1] local
        C_acc[0] = 0.0
        for k in 0..4 {
          C_acc[0] = C_acc[0] + A[i, k] * B[k, j_o * 2 + j_i]
        }
        C[i, j_o * 2 + j_i] = C_acc[0]
      }
    }
  }
}""",
    "reorder(j, i)": """\
for j in 0..3 {
  for i in 0..2 {
    C_acc: f32[1] local
    C_acc[0] = 0.0
    for k in 0..4 {
      C_acc[0] = C_acc[0] + A[i, k] * B[k, j]
    }
    C[i, j] = C_acc[0]
  }
}""",
    "fuse(i, j) -> i_j_fused\nparallel(i_j_fused)": """\
parallel for i_j_fused in 0..6 {
  C_acc: f32[1] local
  C_acc[0] = 0.0
  for k in 0..4 {
    C_acc[0] = C_acc[0] + A[i_j_fused // 3, k] * B[k, i_j_fused % 3]
  }
  C[i_j_fused // 3, i_j_fused % 3] = C_acc[0]
}""",
    "split(k, 2) -> k_o, k_i\nunroll(k_i)": """\
for i in 0..2 {
  for j in 0..3 {
    C_acc: f32[1] local
    C_acc[0] = 0.0
    for k_o in 0..2 {
      unrolled for k_i in 0..2 {
        C_acc[0] = C_acc[0] + A[i, k_o * 2 + k_i] * B[k_o * 2 + k_i, j]
      }
    }
    C[i, j] = C_acc[0]
  }
}""",
    "tile(i, j, 2, 2) -> i_o, j_o, i_i, j_i\ncache_write(C, j_o) -> C_local\n"
    "vectorize(j_i)\nunroll(i_i)\nparallel(i_o)": """\
parallel for i_o in 0..1 {
  for j_o in 0..2 {
    C_local: f32[2, 2] local
    for i_i_init in 0..2 {
      for j_i_init in 0..2 {
        if j_o * 2 + j_i_init < 3 {
          C_local[i_i_init, j_i_init] = 0.0
        }
      }
    }
    for k in 0..4 {
      unrolled for i_i in 0..2 {
        vectorized for j_i in 0..2 {
          if j_o * 2 + j_i < 3 {
            C_local[i_i, j_i] = C_local[i_i, j_i] + A[i_o * 2 + i_i, k] * B[k, j_o * 2 + j_i]
          }
        }
      }
    }
    for i_i_wb in 0..2 {
      for j_i_wb in 0..2 {
        if j_o * 2 + j_i_wb < 3 {
          C[i_o * 2 + i_i_wb, j_o * 2 + j_i_wb] = C_local[i_i_wb, j_i_wb]
        }
      }
    }
  }
}""",
    'split(j, 2) -> j_o, j_i\npack(B, "1/2,0,1%2") -> B_packed': """\
B_packed: f32[2, 4, 2] global
for B_p0 in 0..4 {
  for B_p1 in 0..3 {
    B_packed[B_p1 // 2, B_p0, B_p1 % 2] = B[B_p0, B_p1]
  }
}
for i in 0..2 {
  for j_o in 0..2 {
    for j_i in 0..2 {
      if j_o * 2 + j_i < 3 {
        C_acc: f32[1] local
        C_acc[0] = 0.0
        for k in 0..4 {
          C_acc[0] = C_acc[0] + A[i, k] * B_packed[j_o, k, j_i]
        }
        C[i, j_o * 2 + j_i] = C_acc[0]
      }
    }
  }
}""",
}


@pytest.mark.parametrize("trace", list(MATMUL_GOLDEN), ids=lambda t: t.split("(")[0])
def test_matmul_golden(trace: str) -> None:
    func = matmul(2, 4, 3)
    sch = schedule(func, trace)
    assert body_text(sch.func) == MATMUL_GOLDEN[trace]
    assert str(sch.trace) == trace
    assert_close(run(sch.func)["C"], run(func)["C"], rtol=1e-5)


def test_compute_at_matmul_rows_into_their_consumer() -> None:
    func = matmul_then_scale(2, 3, 2)
    sch = schedule(func, "compute_at(C, i_1)")
    assert body_text(sch.func) == """\
C: f32[2, 2] global
for i_1 in 0..2 {
  for j in 0..2 {
    C_acc: f32[1] local
    C_acc[0] = 0.0
    for k in 0..3 {
      C_acc[0] = C_acc[0] + A[i_1, k] * B[k, j]
    }
    C[i_1, j] = C_acc[0]
  }
  for j_1 in 0..2 {
    D[i_1, j_1] = C[i_1, j_1] * 2.0
  }
}"""
    assert_close(run(sch.func)["D"], run(func)["D"])


def test_inline_matmul_operand() -> None:
    func = scaled_matmul(2, 3, 2)
    sch = schedule(func, "inline(A2)")
    assert body_text(sch.func) == """\
for i in 0..2 {
  for j in 0..2 {
    C_acc: f32[1] local
    C_acc[0] = 0.0
    for k in 0..3 {
      C_acc[0] = C_acc[0] + A[i, k] * 2.0 * B[k, j]
    }
    C[i, j] = C_acc[0]
  }
}"""
    assert_close(run(sch.func)["C"], run(func)["C"])


def test_softmax_rows_computed_per_row_then_parallel() -> None:
    func = softmax(3, 5)
    sch = schedule(func, "compute_at(Sum, i_2)\ncompute_at(Max, i_2)\nparallel(i_2)\n"
                         "split(j, 4) -> j_o, j_i\nvectorize(j_i)")
    text = body_text(sch.func)
    assert text.startswith("Max: f32[3] global\nSum: f32[3] global\nparallel for i_2 in 0..3 {")
    assert text.count("for ") == 5  # i_2, r, r_1, j_o, j_i
    assert_close(run(sch.func)["Out"], run(func)["Out"])


def test_epilogue_kernel_cache_write_keeps_the_epilogue_at_write_back() -> None:
    func = matmul(4, 3, 4, relu=True)
    sch = schedule(func, "tile(i, j, 2, 2) -> i_o, j_o, i_i, j_i\n"
                         "cache_write(Out, j_o) -> Out_local")
    assert "Out[i_o * 2 + i_i_wb, j_o * 2 + j_i_wb] = max(Out_local[i_i_wb, j_i_wb], 0.0)" \
        in body_text(sch.func)
    assert_close(run(sch.func)["Out"], run(func)["Out"], rtol=1e-5)


def test_symbolic_extent_split_guards_the_tail() -> None:
    func = symbolic_2d()
    sch = schedule(func, "split(i, 4) -> i_o, i_i\nfuse(j, k) -> j_k_fused" if False else
                   "split(i, 4) -> i_o, i_i")
    assert body_text(sch.func).splitlines()[:3] == [
        "for i_o in 0..(N + 3) // 4 {", "  for i_i in 0..4 {", "    for j in 0..4 {"]
    assert "if i_o * 4 + i_i < N {" in body_text(sch.func)
    for n in (1, 4, 7):
        assert_close(run(sch.func, N=n)["B"], run(func, N=n)["B"])


# -- names -----------------------------------------------------------------------------------


def test_repeated_loop_names_are_made_unique() -> None:
    sch = Schedule(softmax(2, 3))
    assert sch.loops("Max") == ["i"]
    assert sch.loops("Max_acc") == ["i", "r"]
    assert sch.loops("Sum_acc") == ["i_1", "r_1"]
    assert sch.loops("Out") == ["i_2", "j"]
    assert sch.get_loop("r_1") == "r_1"


def test_new_names_avoid_existing_ones() -> None:
    sch = Schedule(elementwise_2d(4, 4))
    assert sch.split("i", 2) == ("i_o", "i_i")
    assert sch.split("i_o", 2) == ("i_o_o", "i_o_i")
    assert sch.fuse("i_o_o", "i_o_i") == "i_o_o_i_fused"
    assert sch.split("i_o_o_i_fused", 1) == ("i_o_o_i_fused_o", "i_o_o_i_fused_i")


# -- refusals -------------------------------------------------------------------------------

REFUSALS = [
    (matmul, "split(x, 2)", "no loop named 'x' in kernel @matmul"),
    (matmul, "split(i, 0)", "factor must be a positive integer"),
    (matmul, "parallel(i)\nsplit(i, 2)", "i is already parallel; split loops before"),
    (matmul, "reorder(i, k)", "k is not perfectly nested under i"),
    (matmul, "reorder(i, i)", "a loop is listed twice"),
    (matmul, "fuse(j, k)", "k is not the loop directly inside j"),
    (matmul, "fuse(i, k)", "k is not the loop directly inside i (inside i is j)"),
    (matmul, "parallel(k)", "every iteration of k updates C_acc[0] (a reduction over k)"),
    (matmul, "vectorize(k)", "its lanes are not independent: every iteration of k updates"),
    (matmul, "vectorize(j)", "j is not an innermost loop (for k in 0..3 is inside it)"),
    (symbolic_2d, "vectorize(i)", "the extent N is not a constant"),
    (symbolic_2d, "unroll(i)", "the extent N is not a constant"),
    (matmul, "parallel(i)\nparallel(j)", "parallel loop i is already inside it"),
    (matmul, "parallel(j)\nparallel(i)", "parallel loop j is already around it"),
    (matmul, "unroll(k)\nunroll(k)", "k is already unrolled"),
    (matmul, "tile(i, k, 2, 2)", "k is not the loop directly inside i"),
    (matmul, "cache_write(C, j)", "no loops between j and the statement below it"),
    (matmul, "cache_write(A, i)", "is not a reduction into A"),
    (symbolic_2d, "cache_write(B, i)", "not a reduction into B"),
    (matmul, "compute_at(C, i)", "C is a kernel parameter"),
    (matmul, "inline(C_acc)", "C_acc is written by 2 stores"),
    (matmul, "pack(C, \"0,1\")", "the kernel writes C"),
    (matmul, "pack(B, \"0,1/2\")", "dimension 1 must appear once whole"),
    (matmul, "pack(B, \"0,2\")", "dimension 2 does not exist"),
    (matmul, "pack(B, \"x\")", "cannot read layout axis 'x'"),
    (softmax, "compute_at(Max, i_2)", "Max is also read outside i_2"),
    (softmax, "compute_at(Sum, j)", "does not depend on j"),
    (row_max_sub_and_double, "compute_at(M, i_2)", "i_2 does not read M"),
    (softmax, "compute_at(Sum, i)", "no loop nest writing Sum runs before i"),
    (softmax, "compute_at(Nope, i)", "no buffer named 'Nope'"),
    (softmax, "inline(Max)", "is not alone in a nest of loops over its indices (a reduction"),
    (scale_add, "compute_at(B, j)\ninline(B)", "is not alone in a nest of loops"),
    (matmul_then_scale, "compute_at(C, i_1)\ninline(C)", "is not alone in a nest"),
    (scale_add, "split(i, 2)\ninline(B)", "is not stored at its own loop variables"),
    (row_max_sub, "parallel(i_1)\nreorder(j, i_1)", "i_1 is already parallel"),
]


@pytest.mark.parametrize(("fixture", "trace", "reason"), REFUSALS,
                         ids=[r[1].replace("\n", "; ") for r in REFUSALS])
def test_refusals_say_why(fixture, trace: str, reason: str) -> None:
    func = fixture(2, 3) if fixture is matmul else fixture()
    *setup, last = Trace.parse(trace)
    sch = Schedule(func)
    for ins in setup:
        getattr(sch, ins.primitive)(*ins.args)
    before, steps = str(sch.func), len(sch.trace)
    with pytest.raises(ScheduleError) as info:
        getattr(sch, last.primitive)(*last.args)
    assert isinstance(info.value, DLCError)
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{last.primitive}(")
    assert str(sch.func) == before and len(sch.trace) == steps  # nothing changed


def test_reorder_of_a_non_commutative_update_is_refused() -> None:
    from dlc.ir.tensor.expr import const
    from dlc.ir.tensor.stmt import Allocate, Buffer, For, Store, seq

    x = Buffer("X", (const(3), const(4)), f32)
    out = Buffer("Out", (const(1),), f32)
    i, j = var("i"), var("j")
    zero = const(0)
    acc = Buffer("acc", (const(1),), f32, "local")
    update = Store(acc, (zero,), acc[zero] * 0.5 + x[i, j])  # order matters: not a reduction
    body = Allocate(acc, seq(Store(acc, (zero,), const(0.0)),
                             For(i, const(3), For(j, const(4), update)),
                             Store(out, (zero,), acc[zero])))
    func = PrimFunc("horner", (x, out), body, outputs=(out,))
    with pytest.raises(ScheduleError, match="acc is updated in order over i, j"):
        Schedule(func).reorder("j", "i")


def test_reorder_of_sum_loops_reassociates() -> None:
    a = placeholder((3, 4, 5), f32, "A")
    r1, r2 = reduce_axis(4, "r1"), reduce_axis(5, "r2")
    s = compute((3,), lambda i: reduce("sum", a[i, r1, r2], [r1, r2]), "S", axis_names=("i",))
    func = lower_tensors("sum2", [a], [s])
    sch = schedule(func, "reorder(r2, r1)")
    assert "for r2 in 0..5 {\n    for r1 in 0..4 {" in body_text(sch.func)
    assert_close(run(sch.func)["S"], run(func)["S"], rtol=1e-5)


def test_parallel_refuses_data_dependent_writes() -> None:
    from dlc.ir.tensor.expr import const
    from dlc.ir.tensor.stmt import For, Store

    idx = Buffer_ = None  # noqa: F841
    from dlc.ir.dtypes import i64
    from dlc.ir.tensor.stmt import Buffer

    idx = Buffer("Idx", (const(4),), i64)
    src = Buffer("Src", (const(4),), f32)
    out = Buffer("Out", (const(4),), f32)
    i = var("i")
    body = For(i, const(4), Store(out, (idx[i],), src[i]))
    func = PrimFunc("scatter", (idx, src, out), body, outputs=(out,))
    with pytest.raises(ScheduleError, match="data-dependent position"):
        Schedule(func).parallel("i")


# -- traces ----------------------------------------------------------------------------------

GEMM_TRACE = """\
tile(i, j, 2, 2) -> i_o, j_o, i_i, j_i
cache_write(C, j_o) -> C_local
split(k, 2) -> k_o, k_i
vectorize(j_i)
unroll(i_i)
parallel(i_o)
pack(B, "1/2,0,1%2") -> B_packed"""


def test_trace_prints_parses_and_round_trips_json(tmp_path) -> None:
    sch = schedule(matmul(4, 4, 4), GEMM_TRACE)
    assert str(sch.trace) == GEMM_TRACE
    assert Trace.parse(str(sch.trace)) == sch.trace
    text = sch.trace.to_json()
    assert json.loads(text)["trace"][0] == {
        "primitive": "tile", "args": ["i", "j", 2, 2], "outputs": ["i_o", "j_o", "i_i", "j_i"]}
    assert Trace.from_json(text) == sch.trace
    sch.trace.save(tmp_path / "gemm.json")
    assert Trace.load(tmp_path / "gemm.json") == sch.trace


def test_replay_on_a_fresh_lowering_gives_the_same_kernel() -> None:
    sch = schedule(matmul(4, 4, 4), GEMM_TRACE)
    fresh = matmul(4, 4, 4)
    assert str(Trace.parse(str(sch.trace)).apply(fresh)) == str(sch.func)
    assert str(Trace.from_json(sch.trace.to_json()).apply(fresh)) == str(sch.func)
    assert_close(run(sch.func)["C"], run(fresh)["C"], rtol=1e-5)


def test_replay_on_a_different_kernel_fails_loudly() -> None:
    trace = Trace.parse("split(j, 2) -> j_outer, j_inner")
    with pytest.raises(ScheduleError, match="replay created j_o, j_i where the trace recorded"):
        trace.apply(matmul(2, 3, 4))
    with pytest.raises(ScheduleError, match="no loop named 'j'"):
        Trace.parse("split(j, 2)").apply(elementwise_1d())


def test_trace_text_errors() -> None:
    with pytest.raises(ValueError, match="unknown schedule primitive 'explode'"):
        Trace.parse("explode(i)")
    with pytest.raises(ValueError, match="is not `primitive"):
        Trace.parse("split i 2")
    assert str(Trace.parse("# a comment\n\nsplit(i, 2) -> i_o, i_i\n")) == \
        "split(i, 2) -> i_o, i_i"
    with pytest.raises(ValueError, match="unknown schedule primitive '__class__'"):
        Trace.from_json('{"trace": [{"primitive": "__class__", "args": []}]}')
