"""The C side of an AOT library: the header users include and the wrapper that loads the
weights, places the arena and calls `dlc_entry` (see `dlc.backends.llvm.aot`).

Sizes that depend on size symbols are written as integer-only C expressions
(`c_expr`), so a symbolic model's arena and shapes are computed in C from the sizes the
caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sympy

from dlc.backends.llvm.jit import host_cpu
from dlc.errors import AOTError
from dlc.ir.symbolic import Dim
from dlc.passes.graph.plan_memory import nbytes as _nbytes
from dlc.runtime import NUM_THREADS_SYMBOL

if TYPE_CHECKING:
    from dlc.backends.llvm.aot import Layout, Port



# -- C text ------------------------------------------------------------------------------


def c_expr(d: Dim, symbols: Sequence[str], var: str = "s") -> str:
    """A size as an int64 C expression over `var[k]`, the value of `symbols[k]`.

    Integer arithmetic only: `floor(N/16)` is `dlc_floordiv(s[0], 16LL)` (Python's floor
    division), `ceiling`, `Max`, `Min` and `Mod` have helpers in the generated C.
    """
    if isinstance(d, int):
        return f"{d}LL"
    return _CPrinter(list(symbols), var).render(sympy.sympify(d))


class _CPrinter:
    def __init__(self, symbols: list[str], var: str) -> None:
        self.symbols, self.var = symbols, var

    def render(self, e: sympy.Expr) -> str:
        if e.is_Integer:
            return f"{int(e)}LL"
        if e.is_Symbol:
            return f"{self.var}[{self.symbols.index(str(e))}]"
        if isinstance(e, (sympy.floor, sympy.ceiling)):
            num, den = sympy.fraction(sympy.together(e.args[0]))
            if den == 1:
                return self.render(num)
            helper = "dlc_floordiv" if isinstance(e, sympy.floor) else "dlc_ceildiv"
            return f"{helper}({self.render(num)}, {self.render(den)})"
        if isinstance(e, (sympy.Max, sympy.Min, sympy.Mod)):
            helper = {sympy.Max: "dlc_max", sympy.Min: "dlc_min", sympy.Mod: "dlc_mod"}[type(e)]
            out = self.render(e.args[0])
            for a in e.args[1:]:
                out = f"{helper}({out}, {self.render(a)})"
            return out
        if e.is_Add or e.is_Mul:
            num, den = sympy.fraction(sympy.together(e))
            if den != 1:  # an integer-valued quotient such as N*(N + 1)/2
                return f"({self.render(num)} / {self.render(den)})"
            sep = " + " if e.is_Add else " * "
            return "(" + sep.join(self.render(a) for a in e.args) + ")"
        if e.is_Pow and e.exp.is_Integer and int(e.exp) > 0:
            return "(" + " * ".join([self.render(e.base)] * int(e.exp)) + ")"
        raise AOTError(f"cannot write the size {e} as C integer arithmetic")


def c_string(text: str) -> str:
    """A C string literal (octal escapes: they never swallow the next character)."""
    out = []
    for byte in text.encode():
        ch = chr(byte)
        out.append(ch if 32 <= byte < 127 and ch not in '"\\?' else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def _array(ctype: str, name: str, values: Sequence[Any]) -> str:
    body = ", ".join(str(v) for v in values) if values else "0"  # C has no empty arrays
    return f"static const {ctype} {name}[{max(len(values), 1)}] = {{{body}}};"


_API = """\
typedef struct dlc_model dlc_model;

/* Status of dlc_model_run: 0, the 1-based index of the kernel whose debug bounds check
 * failed (> 0), or one of these. */
enum {
    DLC_OK = 0,
    DLC_ERR_ARGUMENT = -1, /* a NULL model, input or output */
    DLC_ERR_SIZES = -2,    /* sizes missing (the model has size symbols) or one < 1 */
    DLC_ERR_MEMORY = -3,   /* the arena could not be allocated */
    DLC_ERR_ENTRY = -4     /* dlc_entry failed */
};

/* Read the weights file (NULL: the one written next to the library) and allocate the
 * arena. NULL on failure: dlc_model_last_error() says why. */
DLC_API dlc_model* dlc_model_load(const char* weights_path);
DLC_API const char* dlc_model_last_error(void);
/* Run the model: inputs[i] and outputs[i] are dense row-major buffers of
 * dlc_model_*_nbytes(i, sizes) bytes. Not reentrant per handle. */
DLC_API int dlc_model_run(dlc_model* m, const void* const* inputs, void* const* outputs);
DLC_API int dlc_model_run_with_sizes(dlc_model* m, const int64_t* sizes,
                                     const void* const* inputs, void* const* outputs);
DLC_API void dlc_model_free(dlc_model* m);
DLC_API const char* dlc_model_strerror(int status);
/* Threads of the parallel loops (<= 0: libgomp's default, OMP_NUM_THREADS or every core). */
DLC_API void dlc_model_set_num_threads(int n);

DLC_API int dlc_model_num_inputs(void);
DLC_API int dlc_model_num_outputs(void);
DLC_API int dlc_model_num_sizes(void);
DLC_API const char* dlc_model_size_name(int k);
DLC_API const char* dlc_model_input_name(int i);
DLC_API const char* dlc_model_output_name(int i);
DLC_API const char* dlc_model_input_dtype(int i);  /* "f32", "i64", "bf16", ... */
DLC_API const char* dlc_model_output_dtype(int i);
/* Write the shape into `shape` (room for the rank) and return the rank; -1 for a bad
 * index, or a symbolic shape and NULL sizes. */
DLC_API int dlc_model_input_shape(int i, const int64_t* sizes, int64_t* shape);
DLC_API int dlc_model_output_shape(int i, const int64_t* sizes, int64_t* shape);
/* Bytes of the buffer, or -1 (as for the shape). */
DLC_API int64_t dlc_model_input_nbytes(int i, const int64_t* sizes);
DLC_API int64_t dlc_model_output_nbytes(int i, const int64_t* sizes);
"""


def render_header(layout: Layout, library: str, weights: str) -> str:
    """model.h: the API, and per input/output its name, dtype and shape."""
    guard = re.sub(r"\W", "_", f"DLC_MODEL_{Path(library).stem}_H").upper()
    sizes = ", ".join(layout.symbols) or "none (static shapes)"
    lines = [f"/* {_comment(library)}: model @{_comment(layout.name)}, compiled by dlc "
             "(generated: do not edit).",
             " *",
             f" * Weights: {_comment(weights)} (dlc_model_load(NULL) finds it next to "
             f"{_comment(library)}).",
             f" * Code for this CPU: {host_cpu()[:60]}...",
             f" * Size symbols (the `sizes` array, in this order): {sizes}",
             " */",
             f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "",
             "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
             "#if defined(__GNUC__)", '#define DLC_API __attribute__((visibility("default")))',
             "#else", "#define DLC_API", "#endif", "",
             f"#define DLC_MODEL_NUM_INPUTS {len(layout.inputs)}",
             f"#define DLC_MODEL_NUM_OUTPUTS {len(layout.outputs)}",
             f"#define DLC_MODEL_NUM_SIZES {len(layout.symbols)}"]
    if layout.symbols:
        names = ", ".join(map(c_string, layout.symbols))
        lines.append(f"#define DLC_MODEL_SIZE_NAMES {{{names}}}  /* the order of `sizes` */")
    lines.append("")
    for kind, ports in (("INPUT", layout.inputs), ("OUTPUT", layout.outputs)):
        for i, p in enumerate(ports):
            lines += _port_macros(f"DLC_MODEL_{kind}{i}", f"{kind.lower()} {i}", p)
    lines += [_API, "#ifdef __cplusplus", "}", "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def _port_macros(prefix: str, what: str, p: Port) -> list[str]:
    t = p.type
    dims = [d if isinstance(d, int) else -1 for d in t.shape]
    out = [f"/* {what}: %{_comment(p.name)}: {_comment(str(t))} */",
           f"#define {prefix}_NAME {c_string(p.name)}",
           f'#define {prefix}_DTYPE "{t.dtype}"',
           f"#define {prefix}_ITEMSIZE {t.dtype.itemsize}",
           f"#define {prefix}_RANK {t.rank}",
           _array("int64_t", f"{prefix}_SHAPE", dims) + "  /* -1: a size symbol */"]
    nbytes = _nbytes(t)
    if isinstance(nbytes, int):
        out.append(f"#define {prefix}_NBYTES {nbytes}")
    return [*out, ""]


_PRELUDE = r"""
#define ALIGN 64

extern int32_t dlc_entry(void** slots, const int64_t* sizes);

struct dlc_model {
    void* slots[NUM_SLOTS];
    unsigned char* weights; /* the weights file's bytes, 64-byte aligned */
    unsigned char* arena;
    uint64_t arena_capacity;
    int64_t bound[NUM_SIZES + 1];
    int is_bound;
};

static __thread char last_error[1024];

static void set_error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

static inline int64_t dlc_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t dlc_ceildiv(int64_t a, int64_t b) { return -dlc_floordiv(-a, b); }
static inline int64_t dlc_mod(int64_t a, int64_t b) { return a - b * dlc_floordiv(a, b); }
static inline int64_t dlc_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t dlc_min(int64_t a, int64_t b) { return a < b ? a : b; }
"""

_RUNTIME = r"""
static unsigned char* read_file(const char* path, uint64_t* size) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        set_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    void* buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        set_error("cannot read %s: %s", path, strerror(errno));
    } else if (posix_memalign(&buf, ALIGN, n > 0 ? (size_t)n : ALIGN) != 0) {
        set_error("out of memory reading %s (%ld bytes)", path, n);
        buf = NULL;
    } else if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        set_error("cannot read %s: short read", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (uint64_t)(n > 0 ? n : 0);
    return (unsigned char*)buf;
}

static int load_weights(dlc_model* m, const char* path) {
    uint64_t size = 0, fingerprint, offset, nbytes;
    uint32_t version, count;
    unsigned char* w = m->weights = read_file(path, &size);
    if (!w) return -1;
    if (size < 24 || memcmp(w, "DLCWGHTS", 8) != 0) {
        set_error("%s is not a dlc weights file", path);
        return -1;
    }
    memcpy(&version, w + 8, 4);
    memcpy(&count, w + 12, 4);
    memcpy(&fingerprint, w + 16, 8);
    if (version != 1) {
        set_error("%s has format version %u; this library reads version 1", path, version);
        return -1;
    }
    if (count != NUM_WEIGHTS || fingerprint != FINGERPRINT) {
        set_error("%s holds the weights of another model (%u constants, fingerprint "
                  "%016llx); %s needs %d constants, fingerprint %016llx", path, count,
                  (unsigned long long)fingerprint, MODEL_NAME, NUM_WEIGHTS,
                  (unsigned long long)FINGERPRINT);
        return -1;
    }
    if (size < 24 + 16 * (uint64_t)count) {
        set_error("%s is truncated (%llu bytes)", path, (unsigned long long)size);
        return -1;
    }
    for (uint32_t k = 0; k < count; k++) {
        memcpy(&offset, w + 24 + 16 * k, 8);
        memcpy(&nbytes, w + 32 + 16 * k, 8);
        if (nbytes != WEIGHT_NBYTES[k] || offset % ALIGN != 0 || offset > size ||
            nbytes > size - offset) {
            set_error("%s: constant %u (%s) has a bad offset or size (offset %llu, "
                      "%llu bytes; expected %llu bytes in a %llu-byte file)", path, k,
                      WEIGHT_NAMES[k], (unsigned long long)offset, (unsigned long long)nbytes,
                      (unsigned long long)WEIGHT_NBYTES[k], (unsigned long long)size);
            return -1;
        }
        m->slots[WEIGHT_SLOTS[k]] = w + offset;
    }
    return 0;
}

static int bind_arena(dlc_model* m, const int64_t* s) {
    if (m->is_bound && memcmp(m->bound, s, sizeof(int64_t) * NUM_SIZES) == 0) return 0;
    uint64_t need = (uint64_t)arena_bytes(s);
    if (need > m->arena_capacity || !m->arena) {
        void* p = NULL;
        free(m->arena);
        m->arena = NULL;
        m->arena_capacity = 0;
        m->is_bound = 0;
        if (posix_memalign(&p, ALIGN, need > 0 ? need : ALIGN) != 0) return DLC_ERR_MEMORY;
        m->arena = (unsigned char*)p;
        m->arena_capacity = need;
    }
    place_arena(m, s);
    memcpy(m->bound, s, sizeof(int64_t) * NUM_SIZES);
    m->is_bound = 1;
    return 0;
}

static const char* default_weights_path(char* buf, size_t n) {
    Dl_info info;
    if (!dladdr((const void*)no_sizes, &info) || !info.dli_fname) {
        set_error("cannot locate the library to find %s next to it; pass its path",
                  WEIGHTS_FILE);
        return NULL;
    }
    const char* slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname + 1) : 0;
    snprintf(buf, n, "%.*s%s", dir, info.dli_fname, WEIGHTS_FILE);
    return buf;
}

dlc_model* dlc_model_load(const char* weights_path) {
    char fallback[4096];
    if (!weights_path && !(weights_path = default_weights_path(fallback, sizeof fallback)))
        return NULL;
    dlc_model* m = (dlc_model*)calloc(1, sizeof(dlc_model));
    if (!m) {
        set_error("out of memory");
        return NULL;
    }
    if (load_weights(m, weights_path) != 0) {
        dlc_model_free(m);
        return NULL;
    }
    if (NUM_SIZES == 0 && bind_arena(m, no_sizes) != 0) {
        set_error("out of memory allocating the arena (%lld bytes)",
                  (long long)arena_bytes(no_sizes));
        dlc_model_free(m);
        return NULL;
    }
    return m;
}

const char* dlc_model_last_error(void) { return last_error; }

void dlc_model_free(dlc_model* m) {
    if (!m) return;
    free(m->weights);
    free(m->arena);
    free(m);
}

int dlc_model_run(dlc_model* m, const void* const* inputs, void* const* outputs) {
    return dlc_model_run_with_sizes(m, NULL, inputs, outputs);
}

int dlc_model_run_with_sizes(dlc_model* m, const int64_t* sizes, const void* const* inputs,
                             void* const* outputs) {
    const int64_t* s = NUM_SIZES ? sizes : no_sizes;
    if (!m || (NUM_INPUTS && !inputs) || (NUM_OUTPUTS && !outputs)) return DLC_ERR_ARGUMENT;
    if (!s) return DLC_ERR_SIZES;
    for (int k = 0; k < NUM_SIZES; k++)
        if (s[k] < 1) return DLC_ERR_SIZES;
    for (int i = 0; i < NUM_INPUTS; i++)
        if (!inputs[i]) return DLC_ERR_ARGUMENT;
    for (int i = 0; i < NUM_OUTPUTS; i++)
        if (!outputs[i]) return DLC_ERR_ARGUMENT;
    int status = bind_arena(m, s);
    if (status != 0) return status;
    for (int i = 0; i < NUM_INPUTS; i++) m->slots[INPUT_SLOTS[i]] = (void*)inputs[i];
    for (int i = 0; i < NUM_OUTPUTS; i++)
        if (OUTPUT_KIND[i] == 0) m->slots[OUTPUT_SLOTS[i]] = outputs[i];
    status = dlc_entry(m->slots, s);
    if (status != 0) return status > 0 ? status : DLC_ERR_ENTRY;
    for (int i = 0; i < NUM_OUTPUTS; i++) /* outputs that are inputs, weights or repeats */
        if (OUTPUT_KIND[i] != 0)
            memcpy(outputs[i], m->slots[OUTPUT_SLOTS[i]],
                   (size_t)dlc_model_output_nbytes(i, s));
    return DLC_OK;
}

const char* dlc_model_strerror(int status) {
    switch (status) {
    case DLC_OK: return "ok";
    case DLC_ERR_ARGUMENT: return "a NULL model, input or output pointer";
    case DLC_ERR_SIZES: return "the sizes are missing, or a size is < 1";
    case DLC_ERR_MEMORY: return "out of memory allocating the arena";
    case DLC_ERR_ENTRY: return "dlc_entry failed";
    }
    if (status > 0 && status <= NUM_KERNELS) return KERNEL_FAULTS[status - 1];
    return "unknown status";
}

int dlc_model_num_inputs(void) { return NUM_INPUTS; }
int dlc_model_num_outputs(void) { return NUM_OUTPUTS; }
int dlc_model_num_sizes(void) { return NUM_SIZES; }
#define NAME_OF(table, n, i) ((i) >= 0 && (i) < (n) ? table[i] : NULL)
const char* dlc_model_size_name(int k) { return NAME_OF(SIZE_NAMES, NUM_SIZES, k); }
const char* dlc_model_input_name(int i) { return NAME_OF(INPUT_NAMES, NUM_INPUTS, i); }
const char* dlc_model_output_name(int i) { return NAME_OF(OUTPUT_NAMES, NUM_OUTPUTS, i); }
const char* dlc_model_input_dtype(int i) { return NAME_OF(INPUT_DTYPES, NUM_INPUTS, i); }
const char* dlc_model_output_dtype(int i) { return NAME_OF(OUTPUT_DTYPES, NUM_OUTPUTS, i); }
"""


def render_wrapper(layout: Layout, header: str, weights: str) -> str:
    """The C source of the API around `dlc_entry`."""
    out = ["/* Generated by dlc: the C API of a compiled model around its dlc_entry. */",
           "#define _GNU_SOURCE", "#include <dlfcn.h>", "#include <errno.h>",
           "#include <stdarg.h>", "#include <stdint.h>", "#include <stdio.h>",
           "#include <stdlib.h>", "#include <string.h>", f'#include "{header}"', "",
           f"#define MODEL_NAME {c_string('@' + layout.name)}",
           f"#define WEIGHTS_FILE {c_string(weights)}",
           f"#define NUM_SLOTS {max(layout.num_slots, 1)}",
           f"#define NUM_WEIGHTS {len(layout.weights)}",
           f"#define NUM_INPUTS {len(layout.inputs)}",
           f"#define NUM_OUTPUTS {len(layout.outputs)}",
           f"#define NUM_SIZES {len(layout.symbols)}",
           f"#define NUM_KERNELS {len(layout.kernels)}",
           f"#define FINGERPRINT 0x{layout.fingerprint:016x}ULL",
           _array("int32_t", "WEIGHT_SLOTS", [w[2] for w in layout.weights]),
           _array("uint64_t", "WEIGHT_NBYTES", [f"{w[1].nbytes}ULL" for w in layout.weights]),
           _array("char* const", "WEIGHT_NAMES", [c_string(w[0]) for w in layout.weights]),
           _array("int32_t", "INPUT_SLOTS", [p.slot for p in layout.inputs]),
           _array("int32_t", "OUTPUT_SLOTS", [p.slot for p in layout.outputs]),
           _array("int32_t", "OUTPUT_KIND", [int(p.kind != "slot") for p in layout.outputs]),
           _array("char* const", "SIZE_NAMES", [c_string(s) for s in layout.symbols]),
           _array("char* const", "KERNEL_FAULTS", [c_string(k) for k in layout.kernels])]
    for kind, ports in (("INPUT", layout.inputs), ("OUTPUT", layout.outputs)):
        out.append(_array("char* const", f"{kind}_NAMES", [c_string(p.name) for p in ports]))
        out.append(_array("char* const", f"{kind}_DTYPES", [f'"{p.type.dtype}"' for p in ports]))
    out.append(_array("int64_t", "no_sizes", []))
    out.append(_PRELUDE)
    out.append(_threads(layout.threads_ctype))
    out.append("\nstatic int64_t arena_bytes(const int64_t* s) {\n    (void)s;\n"
               f"    return {c_expr(layout.arena_bytes, layout.symbols)};\n}}\n")
    out.append("static void place_arena(dlc_model* m, const int64_t* s) {\n    (void)s;")
    for slot, offset, name in layout.arena:
        out.append(f"    m->slots[{slot}] = m->arena + {c_expr(offset, layout.symbols)};"
                   f"  /* {_comment(name)}: {_comment(str(offset))} */")
    out.append("}")
    out.append(_RUNTIME)
    for kind, ports in (("input", layout.inputs), ("output", layout.outputs)):
        out.append(_shape_function(kind, ports, layout.symbols))
    return "\n".join(out)


def _threads(ctype: str | None) -> str:
    """`dlc_model_set_num_threads`: writes the module's thread-count global, which the
    parallel loops read as they fork (0: libgomp's default, OMP_NUM_THREADS or every core).
    A module without parallel loops has no such global: the call does nothing."""
    if not ctype:
        return "void dlc_model_set_num_threads(int n) { (void)n; }\n"
    return (f"extern {ctype} {NUM_THREADS_SYMBOL};\n\n"
            "void dlc_model_set_num_threads(int n) {\n"
            f"    {NUM_THREADS_SYMBOL} = ({ctype})(n > 0 ? n : 0);\n}}\n")


def _shape_function(kind: str, ports: Sequence[Port], symbols: Sequence[str]) -> str:
    """`dlc_model_<kind>_shape` and `_nbytes`: a switch over the ports."""
    shape = [f"int dlc_model_{kind}_shape(int i, const int64_t* s, int64_t* shape) {{",
             "    switch (i) {"]
    size = [f"int64_t dlc_model_{kind}_nbytes(int i, const int64_t* s) {{", "    switch (i) {"]
    for i, p in enumerate(ports):
        guard = "if (!s) return -1; " if p.type.symbols else ""
        dims = "".join(f"shape[{k}] = {c_expr(d, symbols)}; " for k, d in enumerate(p.type.shape))
        shape.append(f"    case {i}: {guard}{dims}return {p.type.rank};")
        size.append(f"    case {i}: {guard}return {c_expr(_nbytes(p.type), symbols)};")
    tail = ["    }", "    (void)s;", "    return -1;", "}", ""]
    return "\n".join([*shape, *tail, *size, *tail])
