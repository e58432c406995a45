"""Every zoo model imports through the PyTorch frontend and matches eager PyTorch.

At tiny size for every model (default tier); at bench size for one model of each family
(slow tier). Each imported graph also round-trips through the printer and the parser.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import dlc
from dlc.interpreter import run_graph
from dlc.ir.parser import parse_graph
from dlc.ir.printer import constant_table, print_graph
from dlc.testing import assert_close, assert_input_dependent, to_numpy
from survey_bench import zoo

BENCH_ONE_PER_FAMILY = ("ddpm_unet", "gcn", "gcn_sparse", "kge_conve", "mobileclip",
                        "vim_mllm.decode_step", "aica_cnn", "compositional_gan")


@functools.cache
def imported(name: str, size: str):
    module, inputs = zoo.get(name, size)
    graph = dlc.import_model(module, inputs, zoo.dynamic_shapes(name))
    return module, inputs, graph


def runtime_args(inputs):
    from dlc.compiled import to_runtime_value

    return [to_runtime_value(x) for x in inputs]


def eager(module, inputs):
    with torch.no_grad():
        out = module(*inputs)
    return tuple(to_numpy(o) for o in (out if isinstance(out, (tuple, list)) else (out,)))


def check(name: str, size: str) -> None:
    module, inputs, graph = imported(name, size)
    text = print_graph(graph)
    again = parse_graph(text, constant_table(graph))
    assert print_graph(again) == text
    got = run_graph(again, *runtime_args(inputs))
    assert_close(tuple(got), eager(module, inputs), rtol=1e-4, what=name)
    float_inputs = [i for i, x in enumerate(inputs) if getattr(x, "is_floating_point",
                                                                lambda: False)()
                    and x.layout == torch.strided]
    if float_inputs:
        assert_input_dependent(lambda *xs: tuple(run_graph(graph, *runtime_args(xs))),
                               tuple(inputs), perturb=float_inputs[0])


@pytest.mark.parametrize("name", zoo.names())
def test_tiny_model_matches_eager(name: str) -> None:
    check(name, "tiny")


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCH_ONE_PER_FAMILY)
def test_bench_model_matches_eager(name: str) -> None:
    check(name, "bench")


def test_decode_step_serves_every_cache_length() -> None:
    """One graph with a symbolic cache length S runs at several lengths."""
    module, inputs, graph = imported("vim_mllm.decode_step", "tiny")
    assert any("S" in str(v.type) for v in graph.inputs)
    token, k_cache, v_cache, *rest = inputs
    for extra in (0, 3):
        k = torch.cat([k_cache, k_cache[..., :extra, :]], dim=-2) if extra else k_cache
        v = torch.cat([v_cache, v_cache[..., :extra, :]], dim=-2) if extra else v_cache
        args = (token, k, v, *rest)
        got = run_graph(graph, *runtime_args(args))
        assert_close(tuple(got), eager(module, args), rtol=1e-4)


def test_inputs_are_never_random_integers() -> None:
    """Integer inputs (ids, edges) come from the factory and are valid indices."""
    for name in zoo.names():
        _, inputs = zoo.get(name, "tiny")
        for x in inputs:
            if isinstance(x, torch.Tensor) and not x.is_floating_point() and x.layout == \
                    torch.strided:
                assert (np.asarray(x) >= 0).all(), name
