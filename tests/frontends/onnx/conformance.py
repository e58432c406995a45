"""Run ONNX's own test cases through the ONNX frontend and the reference interpreter.

    python -m tests.frontends.onnx.conformance            # summary + unexpected results
    python -m tests.frontends.onnx.conformance -v Resize  # details of matching cases

The node cases come from `onnx.backend.test.case.node.collect_testcases(None)`, generated
in memory (about 1,900 models, each with inputs and expected outputs). A case is run
without help first; if the importer says an operand that fixes a shape (shape, axes,
pads, k, scales) is a graph input, those inputs are bound as constants (a compiler
specializes on them) and the case runs again. The result records both outcomes, so the
pass rate is reported with and without binding.

Outputs are compared as ONNX's backend runner compares them: same shape, same dtype,
`np.testing.assert_allclose(rtol, atol)` with the case's tolerances (bf16 outputs get at
least two bf16 ulps of relative tolerance, as the runner gives them).
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

BIND_LIMIT = 64  # elements: only small tensors (shapes, axes, pads, k, scales) are bound


@dataclass
class Outcome:
    """How one case went: passed unbound, passed after binding, or why it failed."""

    name: str
    passed: bool
    passed_unbound: bool
    bound: tuple[str, ...] = ()
    error: str = ""


@functools.cache
def node_cases() -> dict[str, Any]:
    """Every ONNX node test case, by name (generated once per process)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases(None)}


def _to_numpy(x: Any) -> Any:
    from onnx import numpy_helper

    if hasattr(x, "SerializeToString"):
        return numpy_helper.to_array(x)
    return x


def compare(got: list[Any], want: list[Any], rtol: float, atol: float) -> None:
    """Raise AssertionError unless the outputs match as ONNX's runner requires."""
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(_to_numpy(w))
        assert g.shape == w.shape, f"output {i}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"output {i}: dtype {g.dtype}, expected {w.dtype}"
        r = rtol
        if g.dtype.name == "bfloat16":
            r = max(rtol, 2**-6)
            g, w = g.astype(np.float32), w.astype(np.float32)
        np.testing.assert_allclose(g, w, rtol=r, atol=atol, err_msg=f"output {i}")


def run_model(model: Any, inputs: list[Any], bind: dict[str, Any]) -> list[Any]:
    """Import `model` (binding `bind`), run it on the other inputs, return the outputs."""
    from dlc.frontends.onnx import import_onnx
    from dlc.interpreter import run_graph

    graph = import_onnx(model, constant_inputs=bind)
    init = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    feeds = [np.asarray(_to_numpy(x)) for n, x in zip(names, inputs) if n not in bind]
    with np.errstate(all="ignore"):
        return run_graph(graph, *feeds)


def run_case(case: Any) -> Outcome:
    """Run one case unbound, then (if the importer asks for it) with inputs bound."""
    from dlc.frontends.onnx import DynamicInputError

    inputs, want = case.data_sets[0]
    init = {t.name for t in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in init]
    by_name = dict(zip(names, inputs))
    bind: dict[str, Any] = {}
    unbound_ok = None
    for _ in range(8):
        try:
            got = run_model(case.model, list(inputs), bind)
            compare(got, list(want), case.rtol, case.atol)
        except DynamicInputError as err:
            if unbound_ok is None:
                unbound_ok = False
            wanted = [v for v in err.values if v in by_name and v not in bind and
                      np.asarray(_to_numpy(by_name[v])).size <= BIND_LIMIT]
            if not wanted:
                return Outcome(case.name, False, False, tuple(bind), _first_line(err))
            for v in wanted:
                bind[v] = np.asarray(_to_numpy(by_name[v]))
            continue
        except Exception as err:  # noqa: BLE001 - a conformance run reports every failure
            return Outcome(case.name, False, False, tuple(bind),
                           _first_line(err))
        return Outcome(case.name, True, unbound_ok is None, tuple(bind))
    return Outcome(case.name, False, False, tuple(bind), "too many binding rounds")


def _first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:4])[:400]


@dataclass
class Summary:
    total: int
    in_scope: int
    passed: int
    passed_unbound: int
    passed_in_scope: int
    passed_unbound_in_scope: int

    def lines(self) -> list[str]:
        def pct(a: int, b: int) -> str:
            return f"{a}/{b} = {100 * a / max(b, 1):.1f}%"
        return [
            "ONNX node conformance (importer + reference interpreter):",
            f"  all cases:      {pct(self.passed, self.total)} with small shape inputs bound, "
            f"{pct(self.passed_unbound, self.total)} without binding",
            f"  in-scope cases: {pct(self.passed_in_scope, self.in_scope)} with binding, "
            f"{pct(self.passed_unbound_in_scope, self.in_scope)} without binding",
        ]


def summarize(outcomes: list[Outcome], out_of_scope: set[str]) -> Summary:
    inside = [o for o in outcomes if o.name not in out_of_scope]
    return Summary(len(outcomes), len(inside), sum(o.passed for o in outcomes),
                   sum(o.passed_unbound for o in outcomes), sum(o.passed for o in inside),
                   sum(o.passed_unbound for o in inside))


def main(argv: list[str]) -> int:
    from tests.frontends.onnx.expected_failures import EXPECTED_FAILURES, OUT_OF_SCOPE

    verbose = "-v" in argv
    pattern = [a for a in argv if not a.startswith("-")]
    cases = node_cases()
    outcomes = []
    start = time.perf_counter()
    for name, case in cases.items():
        if pattern and not any(p.lower() in name.lower() for p in pattern):
            continue
        t0 = time.perf_counter()
        o = run_case(case)
        dt = time.perf_counter() - t0
        outcomes.append(o)
        listed = name in OUT_OF_SCOPE or name in EXPECTED_FAILURES
        if verbose or (o.passed == listed) or dt > 5:
            status = "PASS" if o.passed else "FAIL"
            flag = " (unexpected)" if o.passed == listed else ""
            print(f"{status}{flag} {name} [{dt:.1f}s] bound={list(o.bound)} {o.error}")
    print(f"{len(outcomes)} cases in {time.perf_counter() - start:.0f} s")
    if "--suggest" in argv:
        print(suggest(outcomes))
    for line in summarize(outcomes, set(OUT_OF_SCOPE)).lines():
        print(line)
    return 0



# -- scope: what the issue leaves out, decided from each case's model ---------------------

_OUT_OF_SCOPE_OPS = {
    "string ops": {"StringConcat", "StringNormalizer", "StringSplit", "RegexFullMatch",
                   "TfIdfVectorizer_strings"},
    "sequence and optional types": {
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence",
        "Optional", "OptionalGetElement", "OptionalHasElement"},
    "control flow (If, Loop, Scan)": {"If", "Loop", "Scan"},
    "quantized ops": {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                      "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"},
    "random ops": {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                   "Multinomial", "Bernoulli"},
    "RNNs": {"RNN", "GRU", "LSTM"},
    "signal-processing ops": {"DFT", "STFT", "BlackmanWindow", "HammingWindow", "HannWindow",
                              "MelWeightMatrix"},
}
_OUT_OF_SCOPE_DOMAINS = {"ai.onnx.ml": "the ai.onnx.ml domain",
                         "ai.onnx.preview.training": "the training domain"}
# TensorProto element types: STRING 8, COMPLEX 14/15, FLOAT8* 17-20, UINT4 21, INT4 22,
# FLOAT4E2M1 23, FLOAT8E8M0 24, UINT2 25, INT2 26.
_NARROW_TYPES = {17, 18, 19, 20, 21, 22, 23, 24, 25, 26}
_STRING_TYPES = {8}


def _value_types(model: Any) -> set[int]:
    g = model.graph
    out = set()
    for v in [*g.input, *g.output, *g.value_info]:
        kind = v.type.WhichOneof("value")
        if kind == "tensor_type":
            out.add(v.type.tensor_type.elem_type)
        elif kind is not None:
            out.add(-1)  # sequence, optional, map
    for t in g.initializer:
        out.add(t.data_type)
    for n in g.node:
        for a in n.attribute:
            if a.name in ("to", "dtype") and a.type == 2:
                out.add(a.i)
            if a.type == 4:
                out.add(a.t.data_type)
    return out


def scope_reason(case: Any) -> str | None:
    """Why a case is out of scope (the issue's list), or None when it is in scope."""
    model = case.model
    domains = {n.domain for n in model.graph.node}
    for d, why in _OUT_OF_SCOPE_DOMAINS.items():
        if d in domains:
            return why
    ops = {n.op_type for n in model.graph.node}
    for why, names in _OUT_OF_SCOPE_OPS.items():
        if ops & names:
            return why
    types = _value_types(model)
    if -1 in types:
        return "sequence and optional types"
    if types & _STRING_TYPES:
        return "string ops"
    if types & _NARROW_TYPES:
        return "float8 / int4 / float4 dtypes"
    if "Dropout" in ops and case.name.startswith("test_training_dropout"):
        return "random ops"
    return None


def suggest(outcomes: list[Outcome]) -> str:
    """Entries for expected_failures.py from a run: every failing case, by reason."""
    cases = node_cases()
    out_of_scope: dict[str, list[str]] = {}
    failing: list[tuple[str, str]] = []
    for o in outcomes:
        if o.passed:
            continue
        why = scope_reason(cases[o.name])
        if why:
            out_of_scope.setdefault(why, []).append(o.name)
        else:
            failing.append((o.name, o.error))
    lines = ["OUT_OF_SCOPE = {"]
    for why, names in out_of_scope.items():
        lines.append(f"    # {why}")
        lines += [f"    {n!r}: {why!r}," for n in names]
    lines += ["}", "", "EXPECTED_FAILURES = {"]
    lines += [f"    {n!r}: {e[:80]!r}," for n, e in failing]
    lines.append("}")
    return "\n".join(lines)



# -- the model cases shipped as files: pytorch-converted, pytorch-operator, light ----------


def data_dir() -> Any:
    from pathlib import Path

    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def shipped_cases(kind: str) -> list[str]:
    """Names of the cases in onnx/backend/test/data/<kind> (folders with model.onnx)."""
    root = data_dir() / kind
    return sorted(p.name for p in root.iterdir() if (p / "model.onnx").exists())


def _read_tensor(path: Any) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def run_shipped_case(kind: str, name: str, rtol: float = 1e-3, atol: float = 1e-7) -> Outcome:
    """Import `<kind>/<name>/model.onnx`, run every stored data set, compare."""
    folder = data_dir() / kind / name
    model_path = folder / "model.onnx"
    import onnx

    model = onnx.load(str(model_path))
    try:
        for data in sorted(folder.glob("test_data_set_*")):
            inputs = [_read_tensor(p) for p in sorted(data.glob("input_*.pb"),
                                                      key=lambda p: int(p.stem.split("_")[1]))]
            want = [_read_tensor(p) for p in sorted(data.glob("output_*.pb"),
                                                    key=lambda p: int(p.stem.split("_")[1]))]
            got = run_model(model, inputs, {})
            compare(got, want, rtol, atol)
    except Exception as err:  # noqa: BLE001
        return Outcome(name, False, False, (), _first_line(err))
    return Outcome(name, True, True)


LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
                "shufflenet", "squeezenet", "vgg19", "zfnet512")


def light_inputs(model: Any) -> list[np.ndarray]:
    """What onnx's backend runner feeds a light model: arange(n).reshape(shape) / n, f32."""
    init = {t.name for t in model.graph.initializer}
    out = []
    for x in model.graph.input:
        if x.name in init:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in x.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        out.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    return out


def run_light_model(name: str) -> tuple[Outcome, float]:
    """Run `light_<name>.onnx` on the runner's inputs; compare with the stored output,
    using the tolerances in real/test_<name>/data.json. Returns the outcome and seconds."""
    import json

    import onnx

    root = data_dir()
    model = onnx.load(str(root / "light" / f"light_{name}.onnx"))
    meta = json.loads((root / "real" / f"test_{name}" / "data.json").read_text())
    want = _read_tensor(root / "light" / f"light_{name}_output_0.pb")
    start = time.perf_counter()
    try:
        got = run_model(model, light_inputs(model), {})
        compare(got, [want], meta["rtol"], meta["atol"])
    except Exception as err:  # noqa: BLE001
        return Outcome(name, False, False, (), _first_line(err)), time.perf_counter() - start
    return Outcome(name, True, True), time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
