"""The PyTorch frontend: locations, constants, symbols, sparse inputs, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlc.errors import FrontendError, UnsupportedOpError
from dlc.frontends.torch import import_module
from dlc.interpreter import run_graph
from dlc.ir.graph import Constant
from dlc.ir.types import SparseTensorType
from dlc.testing import assert_close


class Scale(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 3))
        self.register_buffer("offset", torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * self.offset) + 1.0


class Outer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) - x


def test_nodes_record_module_path_and_user_source_line() -> None:
    graph = import_module(Outer(), (torch.randn(2, 3),))
    relu = next(n for n in graph.nodes if n.op.name == "ew.relu")
    assert relu.loc is not None
    assert relu.loc.name == "block"
    assert relu.loc.file == "test_torch_importer.py"
    assert relu.loc.line > 0
    assert 'loc("block" test_torch_importer.py:' in str(graph)


def test_weights_are_shared_not_copied() -> None:
    model = Scale()
    graph = import_module(model, (torch.randn(2, 3),))
    (offset,) = [c for c in graph.constant_values() if c.name == "offset"]
    assert isinstance(offset, Constant)
    assert np.shares_memory(offset.data, model.offset.detach().numpy())


def test_dynamic_dimensions_become_named_symbols() -> None:
    n = torch.export.Dim("N")
    graph = import_module(Outer(), (torch.randn(5, 3),), dynamic_shapes=({0: n},))
    assert str(graph.inputs[0].type) == "f32[N, 3]"
    assert str(graph.outputs[0].type) == "f32[N, 3]"
    for batch in (1, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 3)).astype(np.float32)
        model = Outer()
        graph = import_module(model, (torch.randn(5, 3),), dynamic_shapes=({0: n},))
        (got,) = run_graph(graph, x)
        assert_close(got, model(torch.from_numpy(x)).detach().numpy())


def test_sparse_coo_input_gets_a_sparse_type() -> None:
    class SpMM(torch.nn.Module):
        def forward(self, adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return torch.sparse.mm(adj, h)

    adj = torch.sparse_coo_tensor(torch.tensor([[0, 1, 2], [1, 2, 0]]), torch.ones(3), (3, 3))
    graph = import_module(SpMM(), (adj, torch.randn(3, 2)))
    assert isinstance(graph.inputs[0].type, SparseTensorType)
    assert str(graph.inputs[0].type) == "coo<f32>[3, 3, nnz=nnz_adj]"
    assert "sparse.spmm" in graph.ops_used()


class Unsupported(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x) + torch.special.bessel_j1(x)


def test_unsupported_ops_are_collected_and_reported_once() -> None:
    with pytest.raises(UnsupportedOpError) as info:
        import_module(Unsupported(), (torch.randn(3),))
    err = info.value
    assert set(err.ops) == {"aten.special_bessel_j0.default", "aten.special_bessel_j1.default"}
    text = str(err)
    assert "test_torch_importer.py:" in text  # where each op was seen
    assert "torch frontend: 2 unsupported op(s)" in text
    assert "convert_<family>.py" in text  # what the user can do


def test_export_failure_is_a_frontend_error() -> None:
    class DataDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow cannot be exported
                return x
            return -x

    with pytest.raises(FrontendError, match="torch.export failed on DataDependent"):
        import_module(DataDependent(), (torch.randn(3),))


def test_interpolation_scale_becomes_an_exact_symbolic_size() -> None:
    class Up(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=1.5, mode="nearest")

    h = torch.export.Dim("H", min=2)
    graph = import_module(Up(), (torch.randn(1, 2, 4, 4),), dynamic_shapes=({2: h},))
    assert str(graph.outputs[0].type) == "f32[1, 2, floor(3*H/2), 6]"
    x = torch.randn(1, 2, 6, 4)
    (got,) = run_graph(graph, x.numpy())
    assert_close(got, Up()(x).numpy())
