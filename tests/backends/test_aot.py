"""Ahead-of-time libraries: model.so + model.h + model.weights, run from C without Python.

Each test compiles a model with `dlc.compile(..., target="llvm")`, writes the library,
builds a small C driver against model.h with the system C compiler, runs it as a
subprocess on inputs from a binary file, and compares the outputs it writes with the
reference interpreter.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy

import dlc
from dlc.backends.llvm.aot import read_weights, write_library
from dlc.backends.llvm.aot_c import c_expr
from dlc.cli import main
from dlc.errors import AOTError, DLCError
from dlc.interpreter import run_graph
from dlc.ir import GraphBuilder, TensorType, symbol
from dlc.ir.dtypes import DType
from dlc.ir.symbolic import evaluate
from dlc.ir.types import SparseTensorType
from dlc.testing import assert_close

CC = shutil.which("cc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on the PATH")
N, H, W = symbol("N"), symbol("H"), symbol("W")

# Runs the model on the runs in IN (u32 count; per run: the sizes as i64, then each input's
# bytes) and writes every run's outputs to OUT. WEIGHTS "-" loads the file next to the .so.
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

static void* read_exact(FILE* f, int64_t n) {
    void* p = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "short input\n");
        exit(4);
    }
    return p;
}

int main(int argc, char** argv) {
    if (argc != 4) return 5;
    dlc_model* m = dlc_model_load(strcmp(argv[1], "-") ? argv[1] : NULL);
    if (!m) { fprintf(stderr, "load failed: %s\n", dlc_model_last_error()); return 2; }
    if (getenv("DRIVER_THREADS")) dlc_model_set_num_threads(atoi(getenv("DRIVER_THREADS")));
    FILE* in = fopen(argv[2], "rb");
    FILE* out = fopen(argv[3], "wb");
    uint32_t runs = 0;
    if (!in || !out || fread(&runs, 4, 1, in) != 1) return 6;
    for (uint32_t r = 0; r < runs; r++) {
        int64_t sizes[DLC_MODEL_NUM_SIZES + 1];
        if (DLC_MODEL_NUM_SIZES && fread(sizes, 8, DLC_MODEL_NUM_SIZES, in) != DLC_MODEL_NUM_SIZES)
            return 6;
        const void* inputs[DLC_MODEL_NUM_INPUTS + 1];
        void* outputs[DLC_MODEL_NUM_OUTPUTS + 1];
        for (int i = 0; i < dlc_model_num_inputs(); i++)
            inputs[i] = read_exact(in, dlc_model_input_nbytes(i, sizes));
        for (int i = 0; i < dlc_model_num_outputs(); i++)
            outputs[i] = malloc((size_t)dlc_model_output_nbytes(i, sizes) + 1);
        int status = DLC_MODEL_NUM_SIZES ? dlc_model_run_with_sizes(m, sizes, inputs, outputs)
                                         : dlc_model_run(m, inputs, outputs);
        if (status != DLC_OK) {
            fprintf(stderr, "run failed: %d (%s)\n", status, dlc_model_strerror(status));
            return 3;
        }
        for (int i = 0; i < dlc_model_num_outputs(); i++) {
            fwrite(outputs[i], 1, (size_t)dlc_model_output_nbytes(i, sizes), out);
            free(outputs[i]);
        }
        for (int i = 0; i < dlc_model_num_inputs(); i++) free((void*)inputs[i]);
    }
    fclose(out);
    dlc_model_free(m);
    return 0;
}
"""

# Prints what the C API says about the model, and the status of malformed calls.
PROBE = r"""
#include <stdio.h>
#include "model.h"

int main(void) {
    int64_t shape[8], sizes[DLC_MODEL_NUM_SIZES + 1];
    for (int k = 0; k <= DLC_MODEL_NUM_SIZES; k++) sizes[k] = 5;
    printf("counts %d %d %d\n", dlc_model_num_inputs(), dlc_model_num_outputs(),
           dlc_model_num_sizes());
    for (int i = 0; i < dlc_model_num_inputs(); i++) {
        int rank = dlc_model_input_shape(i, sizes, shape);
        printf("input %s %s %lld", dlc_model_input_name(i), dlc_model_input_dtype(i),
               (long long)dlc_model_input_nbytes(i, sizes));
        for (int k = 0; k < rank; k++) printf(" %lld", (long long)shape[k]);
        printf("\n");
    }
    for (int i = 0; i < dlc_model_num_outputs(); i++) {
        int rank = dlc_model_output_shape(i, sizes, shape);
        printf("output %s %s %lld", dlc_model_output_name(i), dlc_model_output_dtype(i),
               (long long)dlc_model_output_nbytes(i, sizes));
        for (int k = 0; k < rank; k++) printf(" %lld", (long long)shape[k]);
        printf("\n");
    }
    printf("bad index %d %lld\n", dlc_model_input_shape(99, sizes, shape),
           (long long)dlc_model_output_nbytes(-1, sizes));
    dlc_model* m = dlc_model_load(NULL);
    if (!m) { printf("load failed: %s\n", dlc_model_last_error()); return 1; }
    const void* inputs[8] = {0};
    void* outputs[8] = {0};
    printf("null model %d\n", dlc_model_run(NULL, inputs, outputs));
    printf("null input %d\n", dlc_model_run_with_sizes(m, sizes, inputs, outputs));
    sizes[0] = 0;
    printf("zero size %d\n", dlc_model_run_with_sizes(m, sizes, inputs, outputs));
    printf("strerror %s | %s\n", dlc_model_strerror(1), dlc_model_strerror(-3));
    dlc_model_set_num_threads(2);
    dlc_model_free(m);
    return 0;
}
"""


def build_program(library: Path, source: str, tmp_path: Path, name: str = "driver") -> Path:
    """Compile `source` against the library's header and link it to the library (found
    through rpath)."""
    c_file, exe = tmp_path / f"{name}.c", tmp_path / name
    c_file.write_text(source.replace('"model.h"', f'"{library.with_suffix(".h").name}"'))
    done = subprocess.run([CC, "-std=c11", "-Wall", "-Werror", "-O1",
                           f"-I{library.parent}", str(c_file), str(library),
                           f"-Wl,-rpath,{library.parent}", "-o", str(exe)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return exe


def run_from_c(compiled: Any, runs: list[tuple[dict[str, int], list[np.ndarray]]],
               tmp_path: Path, weights: str = "-", threads: int | None = None
               ) -> list[list[np.ndarray]]:
    """Write the library, run it from C on each (sizes, inputs), return each run's outputs."""
    lib = write_library(compiled, tmp_path / "lib" / "model.so")
    exe = build_program(lib.library, DRIVER, tmp_path)
    graph = compiled.graph
    symbols = sorted(graph.symbols)
    blob = bytearray(struct.pack("<I", len(runs)))
    for sizes, arrays in runs:
        blob += np.array([sizes[s] for s in symbols], np.int64).tobytes()
        for a in arrays:
            blob += np.ascontiguousarray(a).tobytes()
    (tmp_path / "in.bin").write_bytes(bytes(blob))
    out_path = tmp_path / "out.bin"
    env = {**os.environ, **({"DRIVER_THREADS": str(threads)} if threads else {})}
    done = subprocess.run([str(exe), weights, str(tmp_path / "in.bin"), str(out_path)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"driver exited with {done.returncode}: {done.stderr}"
    raw, at, results = out_path.read_bytes(), 0, []
    for sizes, _ in runs:
        outs = []
        for v in graph.outputs:
            shape = tuple(evaluate(d, sizes) for d in v.type.shape)
            dtype = v.type.dtype.numpy
            n = int(np.prod(shape)) * dtype.itemsize
            outs.append(np.frombuffer(raw[at:at + n], dtype).reshape(shape))
            at += n
        results.append(outs)
    assert at == len(raw)
    return results


def check_against_interpreter(compiled: Any, tmp_path: Path, *inputs: np.ndarray,
                              rtol: float = 1e-4) -> None:
    (got,) = run_from_c(compiled, [({}, list(inputs))], tmp_path)
    want = run_graph(compiled.graph, *inputs)
    assert_close(tuple(got), tuple(want), rtol)


# -- models --------------------------------------------------------------------------------


def conv_matmul_model() -> tuple[Any, tuple[Any, ...]]:
    import torch

    class ConvNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 8 * 8, 5)

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.conv(x))
            return self.fc(y.flatten(1)), y

    torch.manual_seed(0)
    return ConvNet().eval(), (torch.randn(2, 3, 8, 8),)


def test_conv_matmul_model_runs_from_c(tmp_path: Path) -> None:
    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="llvm")
    check_against_interpreter(compiled, tmp_path, inputs[0].numpy())


@pytest.mark.parametrize("name", ["aica_cnn", "kge_transe"])
def test_zoo_model_runs_from_c(name: str, tmp_path: Path) -> None:
    from survey_bench import zoo

    module, inputs = zoo.get(name, "tiny")
    compiled = dlc.compile(module, inputs, target="llvm")
    check_against_interpreter(compiled, tmp_path, *(x.numpy() for x in inputs))


def symbolic_graph() -> Any:
    """Pools (floor sizes), a matmul with a weight and a softmax over `N x 2 x H x W`."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("symbolic")
    x = b.input("x", TensorType((N, 2, H, W), DType.f32))
    pooled = b.op("nn.max_pool2d", x, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
                  ceil_mode=False)
    avg = b.op("nn.avg_pool2d", pooled, kernel=(2, 2), stride=(2, 2), padding=(0, 0),
               ceil_mode=True, count_include_pad=False)
    w = b.const(rng.standard_normal((2, 3)).astype(np.float32), "w")
    rows = b.op("shape.permute", avg, perm=(0, 2, 3, 1))
    proj = b.op("nn.softmax", b.op("linalg.matmul", rows, w), axis=-1)
    return b.build([proj, b.op("ew.relu", pooled)])


def test_symbolic_sizes_rebind_the_arena(tmp_path: Path) -> None:
    graph = symbolic_graph()
    compiled = dlc.compile(graph, target="llvm")
    rng = np.random.default_rng(1)
    runs = []
    for n, h, w in [(2, 9, 7), (3, 16, 13), (1, 5, 4)]:  # grow, then shrink the arena
        runs.append(({"N": n, "H": h, "W": w},
                     [rng.standard_normal((n, 2, h, w)).astype(np.float32)]))
    got = run_from_c(compiled, runs, tmp_path)
    for (_, inputs), outs in zip(runs, got):
        assert_close(tuple(outs), tuple(run_graph(compiled.graph, *inputs)), 1e-5)


def test_outputs_that_are_inputs_weights_or_repeats(tmp_path: Path) -> None:
    b = GraphBuilder("passthrough")
    x = b.input("x", TensorType((N, 3), DType.i32))
    w = b.const(np.arange(6, dtype=np.int32).reshape(2, 3), "w")
    y = b.op("ew.add", x, x)
    graph = b.build([y, x, w, y])
    compiled = dlc.compile(graph, target="llvm", opt_level=0)
    xs = np.arange(12, dtype=np.int32).reshape(4, 3)
    (got,) = run_from_c(compiled, [({"N": 4}, [xs])], tmp_path)
    assert_close(tuple(got), tuple(run_graph(compiled.graph, xs)), exact=True)


def test_debug_model_and_explicit_weights_path(tmp_path: Path) -> None:
    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="llvm", debug=True, opt_level=1)
    x = inputs[0].numpy()
    (got,) = run_from_c(compiled, [({}, [x])], tmp_path,
                        weights=str(tmp_path / "lib" / "model.weights"))
    assert_close(tuple(got), tuple(run_graph(compiled.graph, x)), 1e-4)


def test_parallel_loops_run_on_libgomp(tmp_path: Path) -> None:
    """Mark each kernel's outer loop parallel: the library calls GOMP_parallel (-lgomp)
    and reads its thread count from dlc_model_set_num_threads."""
    loops = pytest.importorskip("dlc.passes.tensor.schedule_loops")
    from dlc.backends.llvm.executable import emit_module
    from dlc.ir.tensor.stmt import For, LoopKind, walk

    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="llvm")
    model = compiled.executable.model
    groups = []
    for g in model.groups:
        outer = next((s for s in walk(g.func.body) if isinstance(s, For)), None)
        try:
            func = loops.annotate(g.func, outer.var.name, LoopKind.PARALLEL, "parallel")
        except DLCError:  # a loop whose iterations depend on each other stays serial
            func = g.func
        groups.append(dataclasses.replace(g, func=func))
    compiled.executable.llvm_ir = str(emit_module(dataclasses.replace(model, groups=groups)))
    assert "GOMP_parallel" in compiled.executable.llvm_ir
    x = inputs[0].numpy()
    (got,) = run_from_c(compiled, [({}, [x])], tmp_path, threads=2)
    assert_close(tuple(got), tuple(run_graph(compiled.graph, x)), 1e-4)
    imports = subprocess.run(["nm", "-D", "--undefined-only", str(tmp_path / "lib" / "model.so")],
                             capture_output=True, text=True).stdout
    assert "GOMP_parallel" in imports or not shutil.which("nm")


# -- the C API, the header and the weights file --------------------------------------------


def test_c_api_describes_the_model_and_refuses_bad_calls(tmp_path: Path) -> None:
    compiled = dlc.compile(symbolic_graph(), target="llvm", debug=True)
    lib = write_library(compiled, tmp_path / "model.so")
    header = lib.header.read_text()
    assert "/* input 0: %x: f32[N, 2, H, W] */" in header
    assert "DLC_MODEL_INPUT0_SHAPE[4] = {-1, 2, -1, -1}" in header
    assert "#define DLC_MODEL_NUM_SIZES 3" in header and '{"H", "N", "W"}' in header
    probe = build_program(lib.library, PROBE, tmp_path, "probe")
    out = subprocess.run([str(probe)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "counts 1 2 3"
    assert lines[1] == f"input x f32 {5 * 2 * 5 * 5 * 4} 5 2 5 5"  # H = N = W = 5
    # max_pool 3/2/1: floor((5 + 2 - 3) / 2) + 1 = 3; avg_pool 2/2 ceil: 2
    assert lines[2].split()[2:] == ["f32", str(5 * 2 * 2 * 3 * 4), "5", "2", "2", "3"]
    assert lines[3].split()[2:] == ["f32", str(5 * 2 * 3 * 3 * 4), "5", "2", "3", "3"]
    assert lines[4] == "bad index -1 -1"
    assert lines[5:8] == ["null model -1", "null input -1", "zero size -2"]
    assert lines[8].startswith("strerror out-of-bounds access in kernel k0_")
    assert lines[8].endswith("| out of memory allocating the arena")


def test_weights_file_holds_the_constants_aligned(tmp_path: Path) -> None:
    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="llvm")
    lib = write_library(compiled, tmp_path / "model.so")
    _, blobs = read_weights(lib.weights)
    constants = list(compiled.graph.constant_values())
    assert [bytes(b) for b in blobs] == [np.ascontiguousarray(c.data).tobytes()
                                         for c in constants]
    raw = lib.weights.read_bytes()
    offsets = [struct.unpack_from("<Q", raw, 24 + 16 * k)[0] for k in range(len(blobs))]
    assert raw[:8] == b"DLCWGHTS" and all(o % 64 == 0 for o in offsets)


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="llvm")
    lib = write_library(compiled, tmp_path / "model.so")
    exe = build_program(lib.library, DRIVER, tmp_path)
    other = dlc.compile(symbolic_graph(), target="llvm")
    other_lib = write_library(other, tmp_path / "other" / "other.so")
    (tmp_path / "in.bin").write_bytes(struct.pack("<I", 0))
    for weights, message in [(other_lib.weights, "holds the weights of another model"),
                             (lib.header, "is not a dlc weights file"),
                             (tmp_path / "missing.weights", "cannot open")]:
        done = subprocess.run([str(exe), str(weights), str(tmp_path / "in.bin"),
                               str(tmp_path / "out.bin")], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.mark.parametrize("expr", [
    N, N * H + 3, sympy.floor((H - 1) / 2) + 1, sympy.ceiling(W / 16) * 64,
    sympy.Max(N, 2 * H - 7), sympy.Min(N, H), sympy.Mod(2 * N + 1, 3),
    N * (N + 1) / 2, sympy.floor(N / H), (N + 2) ** 2, sympy.floor((H - 9) / 4),
])
def test_size_expressions_in_c_match_sympy(expr: Any, tmp_path: Path) -> None:
    symbols = ["H", "N", "W"]
    points = [(1, 1, 1), (5, 7, 3), (12, 3, 33), (2, 100, 17)]
    body = "\n".join(
        f'    {{ int64_t s[3] = {{{h}, {n}, {w}}}; printf("%lld\\n", (long long)({code})); }}'
        for h, n, w in points for code in [c_expr(expr, symbols)])
    source = PRELUDE + "int main(void) {\n" + body + "\n    return 0;\n}\n"
    (tmp_path / "e.c").write_text(source)
    subprocess.run([CC, "-std=c11", str(tmp_path / "e.c"), "-o", str(tmp_path / "e")],
                   check=True, capture_output=True, text=True)
    got = subprocess.run([str(tmp_path / "e")], capture_output=True, text=True,
                         check=True).stdout.split()
    want = [str(int(evaluate(expr, {"H": h, "N": n, "W": w}))) for h, n, w in points]
    assert got == want, c_expr(expr, symbols)


PRELUDE = """#include <stdint.h>
#include <stdio.h>
static inline int64_t dlc_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t dlc_ceildiv(int64_t a, int64_t b) { return -dlc_floordiv(-a, b); }
static inline int64_t dlc_mod(int64_t a, int64_t b) { return a - b * dlc_floordiv(a, b); }
static inline int64_t dlc_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t dlc_min(int64_t a, int64_t b) { return a < b ? a : b; }
"""


# -- errors --------------------------------------------------------------------------------


def test_sparse_inputs_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    b = GraphBuilder("spmm")
    a = b.input("a", SparseTensorType("csr", (5, 4), DType.f32, symbol("E")))
    x = b.input("x", TensorType((4, 3), DType.f32))
    compiled = dlc.compile(b.build([b.op("sparse.spmm", a, x)]), target="llvm")
    with pytest.raises(AOTError, match=r"input %a is sparse; an AOT library takes .* dense"):
        write_library(compiled, tmp_path / "model.so")


def test_a_model_compiled_for_ref_is_refused(tmp_path: Path) -> None:
    module, inputs = conv_matmul_model()
    compiled = dlc.compile(module, inputs, target="ref")
    with pytest.raises(AOTError, match="target 'llvm'"):
        write_library(compiled, tmp_path / "model.so")
    assert not (tmp_path / "model.weights").exists()


# -- the command line ----------------------------------------------------------------------

MODEL_FILE = '''
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((3,), 2.0))

    def forward(self, x):
        return torch.relu(x * self.scale) + x

def make():
    return Net(), (torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2,)
'''


def test_cli_compile_writes_the_three_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "net.py"
    model.write_text(MODEL_FILE)
    out = tmp_path / "build" / "net.so"
    assert main(["compile", f"{model}:make", "-o", str(out), "--opt-level", "2"]) == 0
    text = capsys.readouterr().out
    for suffix in (".so", ".h", ".weights"):
        path = out.with_suffix(suffix)
        assert path.is_file() and f"{path}  ({path.stat().st_size:,} bytes)" in text
    exe = build_program(out, DRIVER, tmp_path)
    x = (np.arange(6, dtype=np.float32).reshape(2, 3) - 2)
    (tmp_path / "in.bin").write_bytes(struct.pack("<I", 1) + x.tobytes())
    subprocess.run([str(exe), "-", str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                   check=True)
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.float32)
    np.testing.assert_array_equal(got, [-2, -1, 0, 3, 6, 9])


def test_cli_compile_reports_errors_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(tmp_path / "nope.py:make"), "-o",
                 str(tmp_path / "m.so")]) == 1
    assert "dlc compile: error:" in capsys.readouterr().err
