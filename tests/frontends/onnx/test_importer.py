"""The ONNX importer's behaviour: types, symbols, constants, errors, functions, the API."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import dlc  # noqa: E402
from dlc.errors import FrontendError, UnsupportedOpError  # noqa: E402
from dlc.frontends.onnx import DynamicInputError, import_onnx  # noqa: E402
from dlc.interpreter import run_graph  # noqa: E402
from dlc.ir.graph import Constant  # noqa: E402
from dlc.ir.parser import parse_graph  # noqa: E402
from dlc.ir.printer import constant_table  # noqa: E402
from dlc.testing import assert_close  # noqa: E402

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), opset=17, functions=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          functions=list(functions))
    m.ir_version = 8
    return m


def tensor(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "bias"], ["a"], name="fc_bias"),
             helper.make_node("Relu", ["a"], ["y"], name="act")]
    return model(nodes, [tensor("x", ["batch", 4])], [tensor("y", ["batch", 3])], [w, bias])


def test_initializers_become_constants_and_dynamic_dims_symbols() -> None:
    g = import_onnx(mlp())
    assert str(g.inputs[0].type) == "f32[batch, 4]"
    assert str(g.outputs[0].type) == "f32[batch, 3]"
    consts = {c.name for c in g.constant_values()}
    assert {"w", "bias"} <= consts
    assert [n.loc.name for n in g.nodes] == ["fc", "fc_bias", "act"]
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    m = mlp()
    w, bias = (numpy_helper.to_array(t) for t in m.graph.initializer)
    (y,) = run_graph(g, x)
    assert_close(y, np.maximum(x @ w + bias, 0))
    (y2,) = run_graph(g, x[:2])  # the batch is a symbol: any size runs
    assert y2.shape == (2, 3)


def test_the_graph_prints_and_parses_back() -> None:
    g = import_onnx(mlp())
    text = str(g)
    again = parse_graph(text, constant_table(g))
    assert str(again) == text


def test_unsupported_ops_are_collected_and_reported_once() -> None:
    nodes = [helper.make_node("FancyOp", ["x"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="ok"),
             helper.make_node("OtherOp", ["b"], ["y"], name="second")]
    m = model(nodes, [tensor("x", [2])], [tensor("y", [2])], opset=13)
    with pytest.raises(UnsupportedOpError) as info:
        import_onnx(m)
    text = str(info.value)
    assert "2 unsupported op(s)" in text
    assert "FancyOp (opset 13)" in text and "node 'first'" in text
    assert "OtherOp (opset 13)" in text and "node 'second'" in text


def test_an_unsupported_attribute_names_op_node_and_opset() -> None:
    node = helper.make_node("Pad", ["x", "pads"], ["y"], name="pad1", mode="mirror_me")
    pads = numpy_helper.from_array(np.array([1, 1], np.int64), "pads")
    m = model([node], [tensor("x", [3])], [tensor("y", [5])], [pads], opset=18)
    with pytest.raises(UnsupportedOpError, match=r"Pad \(opset 18\) with mode='mirror_me'.*"
                                                 r"node 'pad1'"):
        import_onnx(m)


def test_a_type_error_names_the_onnx_node() -> None:
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="bad_add")]
    m = model(nodes, [tensor("x", [2, 3]), tensor("z", [4])], [tensor("y", [2, 3])])
    with pytest.raises(FrontendError, match="Add node 'bad_add' \\(opset 17\\)"):
        import_onnx(m)


def test_opset_versions_pick_the_converter() -> None:
    # Squeeze's axes: an attribute before opset 13, an operand from 13.
    old = model([helper.make_node("Squeeze", ["x"], ["y"], axes=[0])], [tensor("x", [1, 3])],
                [tensor("y", [3])], opset=11)
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    new = model([helper.make_node("Squeeze", ["x", "axes"], ["y"])], [tensor("x", [1, 3])],
                [tensor("y", [3])], [axes], opset=13)
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    for m in (old, new):
        (y,) = run_graph(import_onnx(m), x)
        assert_close(y, x[0])


def test_shape_arithmetic_on_a_dynamic_batch_stays_symbolic() -> None:
    # Reshape(x, Concat(Gather(Shape(x), 0), [-1])): the exporters' flatten.
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    ax0 = numpy_helper.from_array(np.array([0], np.int64), "ax0")
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"]),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    m = model(nodes, [tensor("x", ["N", 2, 3])], [tensor("y", ["N", 6])],
              [zero, minus1, ax0])
    g = import_onnx(m)
    assert g.ops_used() == ["shape.reshape"]
    assert str(g.outputs[0].type) == "f32[N, 6]"
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    (y,) = run_graph(g, x)
    assert_close(y, x.reshape(4, 6))


def test_shape_operands_from_inputs_make_new_size_symbols() -> None:
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")]
    m = model(nodes, [tensor("x", [2, 3]), tensor("shape", [2], TensorProto.INT64)],
              [tensor("y", [3, 2])])
    g = import_onnx(m)
    assert g.ops_used() == ["shape.reshape_dynamic"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = run_graph(g, x, np.array([3, -1], np.int64))
    assert_close(y, x.reshape(3, 2))


def test_sizes_known_only_at_run_time_ask_to_be_bound() -> None:
    bias = numpy_helper.from_array(np.ones((3, 2), np.float32), "bias")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="r"),
             helper.make_node("Add", ["r", "bias"], ["y"], name="add_bias")]
    m = model(nodes, [tensor("x", [2, 3]), tensor("shape", [2], TensorProto.INT64)],
              [tensor("y", [3, 2])], [bias])
    with pytest.raises(DynamicInputError, match="Add node 'add_bias'") as info:
        import_onnx(m)
    assert info.value.values == ("shape",)
    g = import_onnx(m, constant_inputs={"shape": np.array([3, 2], np.int64)})
    assert [v.name for v in g.inputs] == ["x"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_close(run_graph(g, x)[0], x.reshape(3, 2) + 1)


def test_an_operand_that_must_be_static_names_the_inputs_to_bind() -> None:
    nodes = [helper.make_node("Col2Im", ["x", "image", "block"], ["y"], name="c")]
    m = model(nodes, [tensor("x", [1, 4, 4]), tensor("image", [2], TensorProto.INT64),
                      tensor("block", [2], TensorProto.INT64)], [tensor("y", [1, 1, 3, 3])],
              opset=18)
    with pytest.raises(DynamicInputError, match="image_shape operand 'image'") as info:
        import_onnx(m)
    assert info.value.values == ("image",)


def test_constant_subgraphs_fold_at_import() -> None:
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.array([1.0, 2.0], np.float32))),
             helper.make_node("Mul", ["c", "c"], ["c2"]),
             helper.make_node("Add", ["x", "c2"], ["y"])]
    g = import_onnx(model(nodes, [tensor("x", [2])], [tensor("y", [2])]))
    assert g.ops_used() == ["ew.add"]
    folded = [v for n in g.nodes for v in n.inputs if isinstance(v, Constant)]
    assert folded[0].name == "c2" and folded[0].data.tolist() == [1.0, 4.0]


def test_functions_expand_in_place() -> None:
    # A model-local function, and an op (Softsign) that ONNX defines as a function.
    fn = helper.make_function("local", "Twice", ["a"], ["b"],
                              [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("Twice", ["x"], ["t"], domain="local", name="twice"),
             helper.make_node("Softsign", ["t"], ["y"], name="soft")]
    m = model(nodes, [tensor("x", [3])], [tensor("y", [3])], functions=[fn])
    m.opset_import.append(helper.make_opsetid("local", 1))
    g = import_onnx(m)
    assert any(n.loc.name.startswith("twice/") for n in g.nodes)
    x = np.array([-2.0, 0.5, 3.0], np.float32)
    assert_close(run_graph(g, x)[0], 2 * x / (1 + np.abs(2 * x)))


def test_if_with_a_constant_condition_takes_its_branch() -> None:
    cond = numpy_helper.from_array(np.array(True), "cond")
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                             [tensor("t", [2])])
    other = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                              [tensor("e", [2])])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    g = import_onnx(model(nodes, [tensor("x", [2])], [tensor("y", [2])], [cond]))
    assert g.ops_used() == ["ew.neg"]


def test_external_data_is_read_from_beside_the_file(tmp_path) -> None:
    m = mlp()
    path = tmp_path / "mlp.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    g = import_onnx(path)
    want = import_onnx(mlp())
    x = np.ones((2, 4), np.float32)
    assert_close(run_graph(g, x)[0], run_graph(want, x)[0])


def test_dlc_compile_takes_a_model_proto_or_a_path(tmp_path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save_model(mlp(), str(path))
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    want = run_graph(import_onnx(mlp()), x)[0]
    for source in (mlp(), path, str(path)):
        assert_close(dlc.compile(source)(x), want)


def test_cli_show_and_run_an_onnx_file(tmp_path, capsys) -> None:
    from dlc.cli import main

    path = tmp_path / "mlp.onnx"
    onnx.save_model(mlp(), str(path))
    assert main(["show", str(path)]) == 0
    assert "linalg." in capsys.readouterr().out
    pytest.importorskip("onnxruntime")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "output 0" in out and "max|diff|" in out


def test_sparse_initializers_become_dense_constants() -> None:
    values = numpy_helper.from_array(np.array([5.0, 7.0], np.float32), "w")
    indices = numpy_helper.from_array(np.array([1, 4], np.int64))
    sparse = helper.make_sparse_tensor(values, indices, [2, 3])
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [tensor("x", [2, 3])],
              [tensor("y", [2, 3])])
    m.graph.sparse_initializer.append(sparse)
    x = np.zeros((2, 3), np.float32)
    (y,) = run_graph(import_onnx(m), x)
    assert y.tolist() == [[0, 5, 0], [0, 7, 0]]
