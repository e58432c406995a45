"""Whole ONNX models through the importer and the reference interpreter.

* the pytorch-converted and pytorch-operator cases shipped in onnx/backend/test/data/;
* the model-zoo models in onnx/backend/test/data/light/ (ResNet-50, DenseNet-121, ...),
  fed what onnx's backend runner feeds them and compared with their stored outputs;
* the same light models with random weights instead of their constant ones, against
  ONNX Runtime (the stored outputs of constant-weight networks are uniform, so this is
  the check that every layer computes the right thing);
* every survey_bench zoo model exported with torch.onnx.export, against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from tests.frontends.onnx.conformance import (  # noqa: E402
    LIGHT_MODELS,
    data_dir,
    light_inputs,
    run_light_model,
    run_shipped_case,
    shipped_cases,
)

SLOW_LIGHT = {"densenet121", "inception_v2", "resnet50", "vgg19"}  # > 2.5 s each


@pytest.mark.parametrize("kind, name", [(k, n) for k in ("pytorch-converted",
                                                         "pytorch-operator")
                                        for n in shipped_cases(k)])
def test_shipped_pytorch_case(kind: str, name: str) -> None:
    outcome = run_shipped_case(kind, name)
    assert outcome.passed, f"{kind}/{name}: {outcome.error}"


@pytest.mark.parametrize("name", [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW_LIGHT
                                               else []) for m in LIGHT_MODELS])
def test_light_model_matches_stored_output(name: str) -> None:
    outcome, seconds = run_light_model(name)
    assert outcome.passed, f"light_{name}: {outcome.error}"


def _random_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """The model with each ConstantOfShape weight replaced by a seeded random initializer
    (He-scaled for weights, in [0.5, 1.5] for per-channel parameters: positive variances)."""
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    keep = []
    for node in out.graph.node:
        if node.op_type != "ConstantOfShape":
            keep.append(node)
            continue
        shape = tuple(int(d) for d in inits[node.input[0]])
        if len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            value = rng.uniform(0.5, 1.5, shape)
        out.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32),
                                                             node.output[0]))
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_with_random_weights_matches_onnxruntime(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from dlc.frontends.onnx import import_onnx
    from dlc.interpreter import run_graph
    from dlc.testing import assert_close

    model = _random_weights(onnx.load(str(data_dir() / "light" / f"light_{name}.onnx")))
    inputs = light_inputs(model)
    got = run_graph(import_onnx(model), *inputs)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    want = session.run(None, dict(zip(names, inputs)))
    assert_close(got, want, rtol=1e-3)
    assert float(np.std(want[0])) > 1e-4, "random weights should give distinct class scores"


def _zoo_names() -> list:
    try:
        from survey_bench import zoo
    except ImportError:
        return []
    return [n for n in zoo.names() if zoo.info(n).onnx_exportable]


@pytest.mark.slow
@pytest.mark.parametrize("name", _zoo_names())
def test_zoo_model_exported_to_onnx_matches_pytorch(name: str) -> None:
    torch = pytest.importorskip("torch")
    from dlc.frontends.onnx import import_onnx
    from dlc.interpreter import run_graph
    from dlc.testing import assert_close, to_numpy
    from survey_bench import zoo
    from survey_bench.zoo.onnx_export import export_onnx

    path = export_onnx(name, "tiny")
    graph = import_onnx(path)
    module, inputs = zoo.get(name, "tiny")
    got = run_graph(graph, *(to_numpy(x) for x in inputs))
    with torch.no_grad():
        want = module(*inputs)
    want = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    assert_close(tuple(got), tuple(to_numpy(w) for w in want), rtol=1e-4)
    if zoo.dynamic_shapes(name) is not None:  # a dynamic dimension is a symbol in dlc
        assert graph.symbols, f"{name} was exported with dynamic shapes; dlc sees none"


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_compiles_to_native_code(name: str) -> None:
    """Every op the light models use lowers: each compiles with the LLVM backend at O3 and
    matches the interpreter (random weights, so the outputs are not constant)."""
    import dlc
    from dlc.frontends.onnx import import_onnx
    from dlc.interpreter import run_graph
    from dlc.testing import assert_close

    model = _random_weights(onnx.load(str(data_dir() / "light" / f"light_{name}.onnx")))
    inputs = light_inputs(model)
    graph = import_onnx(model)
    compiled = dlc.compile(graph, target="llvm")
    got = compiled(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    assert_close(got, tuple(run_graph(graph, *inputs)), rtol=1e-4, what=name)
